"""Cold import time of `function_app` next to that of its runtime dependencies alone (`python -X importtime`).

The Functions host imports `function_app.py` to index it and on every cold start, so it must import no more
than the binding library: adapters, handlers and the Graph stack load lazily in the trigger bodies.
Run: `.venv/bin/python -m bench.import_time [--runs 15]`. Each measurement is a fresh interpreter with the
.pyc files already written (one warm-up import first), and the median of the runs is reported.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The modules function_app.py imports at module level (its runtime dependencies at import time).
DEPENDENCIES = "azure.functions"
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def cumulative_microseconds(statement: str) -> int:
    """Total import time of the top-level modules a fresh interpreter imports for `statement`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in result.stderr.splitlines():
        found = _LINE.match(line)
        if found and len(found.group(3)) == 1:  # top level: one space of indentation
            total += int(found.group(2))
    return total


def measure(statement: str, runs: int) -> float:
    """Median cumulative import time in milliseconds over `runs` fresh interpreters (after one warm-up)."""
    cumulative_microseconds(statement)
    return statistics.median(cumulative_microseconds(statement) for _ in range(runs)) / 1000


def main() -> int:
    """Print both medians, net of the interpreter's own start-up imports, and their ratio (goal: <= 1.3)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    startup = measure("pass", args.runs)
    dependencies = measure(f"import {DEPENDENCIES}", args.runs) - startup
    application = measure("import function_app", args.runs) - startup
    print(f"interpreter start-up imports: {startup:.1f} ms (subtracted below)")
    print(f"import {DEPENDENCIES}: {dependencies:.1f} ms (median of {args.runs})")
    print(f"import function_app: {application:.1f} ms (median of {args.runs})")
    print(f"ratio: {application / dependencies:.2f} (goal: at most 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
