"""One measured process: the service's reconciliation of one licensing group, or the naive member read.

`python -m bench.reconcile.child OUT.json service|naive GROUP_ID [--trace]` builds the service's container
from the environment (sandbox mode: `SEATKEEPER_SANDBOX_READY_FILE`, policy, data dir) and runs phases:

- `naive`: `GET /groups/{id}/members?$select=id&$top=999`, every page, the ids collected in a list (the
  issue's baseline);
- `service`: `run_reconciliation` (the timer's sweep), then the delta catch-up it queued
  (`handlers.group_changes.catch_up`, a first sync: the full delta read), then both again (the steady state:
  the delta from the stored link).

Per phase it writes wall and CPU seconds, the Graph requests by operation (the client's own counters, retries
included), and the phase's memory: its growth of resident memory (the peak over the phase, VmHWM reset
through `/proc/self/clear_refs` before it, minus the RSS at its start) or, with `--trace`, tracemalloc's peak
of Python allocations over the phase, above what was allocated at its start. Tracing slows Python down, so
times come from untraced runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from seatkeeper.core.graph_port import GraphPort, OperationCount


def _status_kib(field: str) -> int:
    """A `/proc/self/status` figure in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: `5 > /proc/self/clear_refs`); False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def _requests(before: Mapping[str, OperationCount], after: Mapping[str, OperationCount]) -> dict[str, int]:
    """Requests per operation made between two counter snapshots."""
    made: dict[str, int] = {}
    for op, count in after.items():
        n = count.requests - (before[op].requests if op in before else 0)
        if n:
            made[op] = n
    return made


async def _phase(
    name: str, graph: GraphPort, trace: bool, work: Callable[[], Awaitable[Any]]
) -> dict[str, Any]:
    """Run one phase and measure it."""
    counters = dict(graph.counters())
    rss = _status_kib("VmRSS")
    hwm_reset = _reset_hwm()
    if trace:
        tracemalloc.reset_peak()
    traced_start = tracemalloc.get_traced_memory()[0] if trace else 0
    cpu = time.process_time()
    started = time.perf_counter()
    result = await work()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    row: dict[str, Any] = {
        "phase": name,
        "wall": wall,
        "cpu": cpu,
        "requests": _requests(counters, graph.counters()),
        "rss_start_kib": rss,
        "rss_growth_kib": _status_kib("VmHWM") - rss if hwm_reset else None,
        "result": result,
    }
    if trace:
        row["traced_peak_bytes"] = tracemalloc.get_traced_memory()[1] - traced_start
    return row


async def run(kind: str, group_id: str, trace: bool) -> list[dict[str, Any]]:
    """Build the container and run the phases of `kind`."""
    from handlers.group_changes import catch_up
    from handlers.reconcile import run_reconciliation
    from seatkeeper.bootstrap import build_services
    from seatkeeper.notification_wiring import wiring
    from seatkeeper.sweep_wiring import reconcile_deps

    services = build_services()
    graph = services.graph
    rows: list[dict[str, Any]] = []
    try:
        await graph.granted_roles()  # the token is fetched outside the measured phases
        if kind == "naive":

            async def naive() -> int:
                ids: list[str] = []
                params = {"$select": "id", "$top": "999"}
                async for page in graph.pages(f"/groups/{group_id}/members", params=params):
                    ids.extend(str(item["id"]) for item in page.items)
                return len(ids)

            rows.append(await _phase("naive", graph, trace, naive))
            return rows
        deps = reconcile_deps(services)
        changes = wiring(services).group_changes
        for round_ in (1, 2):

            async def sweep(correlation: str = f"bench-sweep-{round_}") -> int:
                report = await run_reconciliation(deps, correlation_id=correlation)
                return len(report.findings) + len(report.license_checks) + len(report.without_base_license)

            async def delta(correlation: str = f"bench-catch-up-{round_}") -> int:
                return (await catch_up(group_id, changes, correlation_id=correlation)).members

            rows.append(await _phase(f"sweep-{round_}", graph, trace, sweep))
            rows.append(await _phase(f"catch-up-{round_}", graph, trace, delta))
        return rows
    finally:
        await services.aclose()


def main(argv: list[str]) -> int:
    """Run, then write the measured rows to OUT as JSON."""
    out, kind, group_id, *flags = argv
    trace = "--trace" in flags
    if trace:
        tracemalloc.start()
    rows = asyncio.run(run(kind, group_id, trace))
    Path(out).write_text(json.dumps(rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
