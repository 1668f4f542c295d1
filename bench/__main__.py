"""`python -m bench [--list] [--record [FILE]] [NAME ...]`: run every benchmark of `bench/`, or those named.

A benchmark is a package `bench/<name>/` whose `__main__.py` defines `main()`, or a module `bench/<name>.py`
that defines `main()`; each runs with its own defaults, as `python -m bench.<name>` would. New benchmarks
are found without editing this file. The exit status is the worst of theirs. `--record` appends what they
printed, with the date, the machine and the command, to docs/benchmarks.md (`make bench` does).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, cast

BENCH = Path(__file__).resolve().parent
RECORD_FILE = BENCH.parent / "docs" / "benchmarks.md"


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
    parser.add_argument(
        "--record",
        nargs="?",
        const=str(RECORD_FILE),
        default=None,
        metavar="FILE",
        help=f"append what the benchmarks print, with date, machine and command, to FILE ({RECORD_FILE})",
    )
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [name for name in args.names if name not in found]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {sorted(found)}")
    statuses: dict[str, int] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, printed)) if args.record else contextlib.nullcontext():
        for name in args.names or list(found):
            print(f"== bench.{name}", flush=True)
            statuses[name] = run(name, found[name])
        print("== summary: " + ", ".join(f"{name} exit {status}" for name, status in statuses.items()))
    if args.record:
        record(Path(args.record), argv if argv is not None else sys.argv[1:], printed.getvalue())
    return max(statuses.values(), default=0)


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy (what benchmarks print; their subprocesses print directly)."""

    def __init__(self, *streams: TextIO) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


def record(path: Path, argv: list[str], printed: str) -> None:
    """Append one run to the benchmarks page: date, machine, command and the figures as printed."""
    load = os.getloadavg()[0]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = " ".join(["python -m bench", *argv])
    stamp = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    with path.open("a", encoding="utf-8") as page:
        page.write(f"\n## Run of `{command}` ({stamp})\n\n{machine}, load average {load:.1f} at the end.\n\n")
        page.write("```text\n" + printed.rstrip() + "\n```\n")


if __name__ == "__main__":
    sys.exit(main())
