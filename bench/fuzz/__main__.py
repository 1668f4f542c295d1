"""`python -m bench.fuzz [--examples N]`: the HTTP fuzz tests (tests/e2e/test_fuzz_http.py) at full scale.

Runs the same properties as `make test` (no 5xx, nothing enqueued from refused input, no secret in an answer
or the host's output) with 10,000 cases per endpoint instead of 2,000, and prints the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_MODULE = "tests/e2e/test_fuzz_http.py"
ENDPOINTS = (
    "health",
    "graph/notifications",
    "graph/lifecycle",
    "hr/events (unsigned)",
    "hr/events (signed)",
    "hr/lifecycle-workflows",
)


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz module with `--examples` cases per endpoint; exit status is pytest's."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--examples", type=int, default=10_000, help="cases per endpoint (default 10,000)")
    args = parser.parse_args(argv)
    env = {**os.environ, "SEATKEEPER_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", TEST_MODULE, "-q", "-p", "no:cacheprovider", "--timeout=7200"]
    print(f"fuzz: {args.examples} cases per endpoint, {len(ENDPOINTS)} endpoints: {', '.join(ENDPOINTS)}")
    started = time.monotonic()
    status = subprocess.call(command, cwd=ROOT, env=env)
    seconds = time.monotonic() - started
    total = args.examples * len(ENDPOINTS)
    verdict = "passed: 0 5xx, 0 messages from refused input, 0 secrets" if status == 0 else "FAILED"
    print(f"fuzz: {total} requests in {seconds:.0f} s ({total / seconds:.0f} requests/s); {verdict}")
    return status


if __name__ == "__main__":
    sys.exit(main())
