"""`python -m bench.soak [--seed N] [--days N]`: the soak at full scale on its own sandbox.

30 days of business time (steps of 30 minutes, the host idle after each), 4 HR joiners and 2 direct group
edits a day, a 2-hour Graph outage on day 12: subscriptions never lapse, every change is processed, no
incident stays open without cause, the host's memory stays flat. Prints the seed first.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import tempfile
from pathlib import Path

from bench.soak.run import FULL_SOAK, run_soak
from tests.fixtures.sandbox import start_sandbox, stop_sandbox


def main(argv: list[str] | None = None) -> int:
    """Run once; exit 0 when every check passed."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="replay this seed (default: a new one)")
    parser.add_argument("--days", type=int, default=FULL_SOAK.days, help="days of business time (30)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    scale = dataclasses.replace(FULL_SOAK, days=args.days, outage_day=min(FULL_SOAK.outage_day, args.days))
    with tempfile.TemporaryDirectory(prefix="seatkeeper-soak-") as directory:
        workdir = Path(directory)
        process, sandbox = start_sandbox(workdir)
        try:
            report = run_soak(sandbox, workdir, scale, seed)
        finally:
            stop_sandbox(process)
    print("\n".join(report.lines()), flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
