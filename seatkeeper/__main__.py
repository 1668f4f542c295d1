"""`python -m seatkeeper ...` is the same command as `seatkeeper ...` (serve, policy check, ...)."""

import sys

from seatkeeper.cli import main

sys.exit(main())
