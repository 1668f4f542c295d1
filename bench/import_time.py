"""Cold import time of `function_app` next to that of its runtime dependencies alone (`python -X importtime`).

The Functions host imports `function_app.py` to index it and on every cold start, so it must import no more
than the binding library: adapters, handlers and the Graph stack load lazily in the trigger bodies.
Run: `.venv/bin/python -m bench.import_time [--runs 15]`. Each measurement is a fresh interpreter with the
.pyc files already written (one warm-up import first); the two imports take turns, and the fastest and the
median run of each are reported (on a shared machine the fastest is the one least disturbed by others).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The modules function_app.py imports at module level (its runtime dependencies at import time).
DEPENDENCIES = "azure.functions"
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def _top_level(statement: str) -> dict[str, int]:
    """Cumulative import time (µs) of each top-level module a fresh interpreter imports for `statement`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules: dict[str, int] = {}
    for line in result.stderr.splitlines():
        found = _LINE.match(line)
        if found and len(found.group(3)) == 1:  # top level: one space of indentation
            modules[found.group(4)] = int(found.group(2))
    return modules


def cumulative_microseconds(statement: str, startup: frozenset[str]) -> int:
    """Import time of what `statement` adds to the interpreter's own start-up (site, encodings...).

    Start-up modules are left out by name rather than subtracted as a time: their cost varies from run to
    run on a loaded machine by more than the difference being measured.
    """
    return sum(us for name, us in _top_level(statement).items() if name not in startup)


def measure(statements: Sequence[str], runs: int) -> list[list[float]]:
    """Import times in ms of each statement over `runs` rounds of fresh interpreters, after one warm-up.

    The statements take turns within each round, so a burst of load from elsewhere falls on both alike.
    """
    startup = frozenset(_top_level("pass"))
    for statement in statements:
        cumulative_microseconds(statement, startup)
    samples: list[list[float]] = [[] for _ in statements]
    for _ in range(runs):
        for i, statement in enumerate(statements):
            samples[i].append(cumulative_microseconds(statement, startup) / 1000)
    return samples


def main() -> int:
    """Print the fastest and the median run of each import and their ratios (goal: at most 1.3)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    dependencies, application = measure([f"import {DEPENDENCIES}", "import function_app"], args.runs)
    for name, times in ((DEPENDENCIES, dependencies), ("function_app", application)):
        print(f"import {name}: fastest {min(times):.1f} ms, median {statistics.median(times):.1f} ms")
    fastest = min(application) / min(dependencies)
    median = statistics.median(application) / statistics.median(dependencies)
    print(f"ratio: fastest {fastest:.2f}, median {median:.2f} over {args.runs} rounds (goal: at most 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
