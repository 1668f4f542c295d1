"""`python -m bench.chaos [--seed N] [--reduced] [--keep DIR] [--seats N]`: the chaos run at full scale on
its own sandbox (`--seats N`: only N Copilot seats free for the run's people, so seats run out).

1,000 joiners, 300 leavers and 200 movers interleaved with 300 direct group edits, 20 % Graph faults
(429 with Retry-After, 503, slow past the client timeout, dropped connections) and 8 kill -9 of the local
host; then faults off, dead letters resubmitted, one reconciliation pass and the person-by-person
comparison. Prints the seed first: the same seed replays the same workload.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import tempfile
from pathlib import Path

from bench.chaos.run import FULL, REDUCED, run_chaos
from tests.fixtures.sandbox import start_sandbox, stop_sandbox


def main(argv: list[str] | None = None) -> int:
    """Run once; exit 0 when every defect count is zero."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="replay this seed (default: a new one)")
    parser.add_argument("--reduced", action="store_true", help="the scale `make test` runs")
    parser.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it (logs)")
    parser.add_argument(
        "--seats", type=int, default=None, help="Copilot seats free for the run's people (default: plenty)"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    with tempfile.TemporaryDirectory(prefix="seatkeeper-chaos-") as directory:
        workdir = Path(directory) if args.keep is None else args.keep
        workdir.mkdir(parents=True, exist_ok=True)
        process, sandbox = start_sandbox(workdir)
        try:
            scale = dataclasses.replace(REDUCED if args.reduced else FULL, seats=args.seats)
            report = run_chaos(sandbox, workdir, scale, seed)
        finally:
            stop_sandbox(process)
    print("\n".join(report.lines()), flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
