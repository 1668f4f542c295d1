"""Runs `seatkeeper ARGS...` and writes this process's peak resident memory (VmHWM, KiB) to the file named
by the first argument. VmHWM starts afresh at exec, unlike `ru_maxrss`, which a child forked from a large
parent inherits."""

from __future__ import annotations

import sys
from pathlib import Path

from seatkeeper.cli import main


def peak_kib() -> int:
    """VmHWM of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    code = main(sys.argv[2:])
    Path(sys.argv[1]).write_text(str(peak_kib()), encoding="ascii")
    sys.exit(code)
