"""Runs `seatkeeper ARGS...` — or, with `--pages-only`, only reads every user page with what-if's
`$select` (the Graph-paging baseline) — and writes this process's peak resident memory (VmHWM, KiB) to the
file named by the first argument. VmHWM starts afresh at exec, unlike `ru_maxrss`, which a child forked from
a large parent inherits."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from seatkeeper.cli import main
from seatkeeper.core.membership_rule import PROPERTIES
from seatkeeper.core.whatif import WHATIF_SELECT


def peak_kib() -> int:
    """VmHWM of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def pages_only() -> int:
    """Read every user page as `whatif` does, evaluating nothing; the number of users read."""
    from seatkeeper.bootstrap import build_graph
    from seatkeeper.settings import load_settings

    graph, closers = build_graph(load_settings().graph)
    select = ",".join(dict.fromkeys((*WHATIF_SELECT, *PROPERTIES)))
    users = 0
    try:
        async for page in graph.pages("/users", params={"$select": select, "$top": "999"}):
            users += len(page.items)
    finally:
        for close in reversed(closers):
            await close()
    return users


if __name__ == "__main__":
    if sys.argv[2:] == ["--pages-only"]:
        print(asyncio.run(pages_only()))
        code = 0
    else:
        code = main(sys.argv[2:])
    Path(sys.argv[1]).write_text(str(peak_kib()), encoding="ascii")
    sys.exit(code)
