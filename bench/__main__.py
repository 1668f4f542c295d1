"""`python -m bench [--list] [NAME ...]`: run every benchmark of `bench/` (or the named ones) in turn.

A benchmark is a package `bench/<name>/` whose `__main__.py` defines `main()`, or a module `bench/<name>.py`
that defines `main()`; each runs with its own defaults, as `python -m bench.<name>` would. New benchmarks
are found without editing this file. The exit status is the worst of theirs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

BENCH = Path(__file__).resolve().parent


def discover() -> dict[str, str]:
    """Benchmark name → the module holding its `main()`, in name order."""
    found: dict[str, str] = {}
    for path in sorted(BENCH.iterdir()):
        if path.is_dir() and (path / "__main__.py").is_file():
            found[path.name] = f"bench.{path.name}.__main__"
        elif path.suffix == ".py" and not path.name.startswith("_"):
            found[path.stem] = f"bench.{path.stem}"
    return found


def run(name: str, module_name: str) -> int:
    """Run one benchmark's `main()` with no arguments of ours; its exit status (2 if it has no main)."""
    module = importlib.import_module(module_name)
    main = getattr(module, "main", None)
    if not callable(main):
        print(f"bench: {name} has no main(); skipped", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [f"python -m bench.{name}"]  # its argparse must not read the runner's arguments
    try:
        status = cast(Callable[[], int | None], main)()
    finally:
        sys.argv = saved
    return int(status or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default) and report each one's exit status."""
    found = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {sorted(found)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [name for name in args.names if name not in found]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {sorted(found)}")
    statuses: dict[str, int] = {}
    for name in args.names or list(found):
        print(f"== bench.{name}", flush=True)
        statuses[name] = run(name, found[name])
    print("== summary: " + ", ".join(f"{name} exit {status}" for name, status in statuses.items()))
    return max(statuses.values(), default=0)


if __name__ == "__main__":
    sys.exit(main())
