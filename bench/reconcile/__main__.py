"""Reconciliation of one licensing group of 1,000 to 100,000 members: time, memory and Graph requests.

`python -m bench.reconcile [--sizes 1000 10000 30000 100000] [--users N]` generates, for each size, a tenant
of N users (default: the largest size; `sandbox.tenant_gen.large_tenant`, E3 to everyone by one group) whose
Copilot group has exactly that many members and Copilot seats for all of them, serves it from its own
`python -m sandbox serve` process (HTTPS on 127.0.0.1, Graph's quotas on), and runs in child processes
(`bench/reconcile/child.py`), with a policy naming that one group:

- the **service**: `handlers.reconcile.run_reconciliation` (the 30-minute timer's sweep) and the delta
  catch-up it queues (`handlers.group_changes.catch_up`: the first time a full delta read, the group's
  baseline), then both again (the steady state: delta from the stored link);
- the **baseline**, in the same run: `GET /groups/{id}/members?$select=id&$top=999`, every page, the ids
  collected in a list: ceil(members / 999) pages.

Each child runs twice: untraced for time, Graph requests and resident-memory growth (VmHWM reset at the
start of each phase), and under tracemalloc for the peak of Python allocations of each phase (the figure
that shows what the code holds per member; interpreter, libraries and caches are not in it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.model import COPILOT_SKU_ID
from sandbox.tenant_gen import large_tenant
from tests.fixtures.sandbox import SandboxInfo, start_sandbox, stop_sandbox

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SIZES = (1_000, 10_000, 30_000, 100_000)
PAGE = 999
MEMBERS_OP = "GET /groups/{id}/members"
DELTA_OP = "GET /groups/delta"
PHASES = (
    ("naive", "naive", "baseline (ids, list)"),
    ("service", "sweep-1", "sweep-1"),
    ("service", "catch-up-1", "catch-up-1 (first sync)"),
    ("service", "sweep-2", "sweep-2"),
    ("service", "catch-up-2", "catch-up-2 (delta)"),
)


def shape_tenant(doc: dict[str, Any], members: int) -> str:
    """Make the tenant's first Copilot group hold exactly the first `members` users, with a Copilot seat for
    each (so no member is in license error); returns the group's id."""
    users = [str(u["id"]) for u in doc["users"]]
    if members > len(users):
        raise ValueError(f"{members} members asked of a tenant of {len(users)} users")
    copilot = [
        g for g in doc["groups"] if any(a["skuId"] == COPILOT_SKU_ID for a in g.get("assignedLicenses", []))
    ]
    if not copilot:
        raise ValueError("the tenant has no Copilot group")
    copilot[0]["members"] = users[:members]
    for sku in doc["skus"]:
        if sku["skuId"] == COPILOT_SKU_ID:
            sku["prepaidUnits"]["enabled"] = max(int(sku["prepaidUnits"]["enabled"]), members + 100)
    return str(copilot[0]["id"])


@dataclass(frozen=True)
class Measured:
    """One child's phases, untraced and traced, and the requests the sandbox counted for the untraced run."""

    untraced: list[dict[str, Any]]
    traced: list[dict[str, Any]]
    sandbox_requests: dict[str, int]

    def phase(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The untraced and traced rows of one phase."""
        return (
            next(r for r in self.untraced if r["phase"] == name),
            next(r for r in self.traced if r["phase"] == name),
        )


def _control(info: SandboxInfo, method: str, path: str) -> Any:
    with httpx.Client(verify=info.ssl_context(), trust_env=False, timeout=120.0) as client:
        response = client.request(method, f"{info.control_url}{path}")
        response.raise_for_status()
        return response.json() if response.content else None


def _child(
    kind: str, group_id: str, env: dict[str, str], workdir: Path, *, trace: bool
) -> list[dict[str, Any]]:
    """Run one child on a fresh data directory; its rows."""
    out = workdir / f"{kind}-{'traced' if trace else 'untraced'}.json"
    data = Path(tempfile.mkdtemp(prefix=f"data-{kind}-", dir=workdir))
    command = [sys.executable, "-m", "bench.reconcile.child", str(out), kind, group_id]
    subprocess.run(
        [*command, *(["--trace"] if trace else [])],
        cwd=ROOT,
        env={**env, "SEATKEEPER_DATA_DIR": str(data)},
        stdout=subprocess.DEVNULL,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))
    return rows


def measure(size: int, users: int, workdir: Path) -> dict[str, Measured]:
    """Serve a tenant whose Copilot group has `size` members; measure the baseline and the service."""
    doc = large_tenant(users, 2)
    group_id = shape_tenant(doc, size)
    tenant_file = workdir / "tenant.json"
    tenant_file.write_text(json.dumps(doc), encoding="utf-8")
    del doc
    policy = workdir / "policy.yaml"
    policy.write_text(
        f"version: 1\nlicensing_groups:\n  - id: {group_id}\n    display_name: Copilot - bench\n"
        f"    copilot_sku_ids: [{COPILOT_SKU_ID}]\n",
        encoding="utf-8",
    )
    process, info = start_sandbox(workdir, "--tenant", str(tenant_file))
    env = {
        **os.environ,
        "SEATKEEPER_SANDBOX_READY_FILE": str(workdir / "ready.json"),
        "SEATKEEPER_POLICY_FILE": str(policy),
        "SEATKEEPER_LOG_LEVEL": "WARNING",
    }
    found: dict[str, Measured] = {}
    try:
        untraced: dict[str, list[dict[str, Any]]] = {}
        counted: dict[str, dict[str, int]] = {}
        for kind in ("naive", "service"):  # untraced first, one after the other (same load)
            _control(info, "POST", "/counters/reset")
            untraced[kind] = _child(kind, group_id, env, workdir, trace=False)
            counted[kind] = _control(info, "GET", "/counters")["requests"]
        for kind in ("naive", "service"):
            traced = _child(kind, group_id, env, workdir, trace=True)
            found[kind] = Measured(untraced[kind], traced, counted[kind])
    finally:
        stop_sandbox(process)
    return found


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def report(size: int, found: dict[str, Measured]) -> list[str]:
    """The lines printed for one size."""
    pages = math.ceil(size / PAGE)
    lines = [f"-- group of {size:,} members (baseline: ceil({size:,}/{PAGE}) = {pages} member pages)"]
    header = (
        f"{'phase':<26}{'wall s':>8}{'CPU s':>8}{'RSS+ MiB':>10}{'traced MiB':>12}{'B/member':>10}"
        f"{'µs CPU/member':>15}  Graph requests"
    )
    lines.append(header)
    for kind, name, label in PHASES:
        row, traced = found[kind].phase(name)
        peak = int(traced["traced_peak_bytes"])
        requests = ", ".join(f"{op} {n}" for op, n in sorted(row["requests"].items()))
        lines.append(
            f"{label:<26}{row['wall']:>8.2f}{row['cpu']:>8.2f}{_mib(row['rss_growth_kib']):>10}"
            f"{peak / 2**20:>12.1f}{peak / size:>10.0f}{row['cpu'] / size * 1e6:>15.1f}  {requests}"
        )
    sweep, _ = found["service"].phase("sweep-1")
    first, _ = found["service"].phase("catch-up-1")
    steady, _ = found["service"].phase("catch-up-2")
    naive, _ = found["naive"].phase("naive")
    lines.append(
        f"member read: service {sweep['requests'].get(MEMBERS_OP, 0)} pages, baseline "
        f"{naive['requests'].get(MEMBERS_OP, 0)} pages, expected {pages}; delta pages: first sync "
        f"{first['requests'].get(DELTA_OP, 0)}, steady state {steady['requests'].get(DELTA_OP, 0)}; "
        f"sandbox counted {sum(found['service'].sandbox_requests.values())} requests for the service's "
        f"two passes, {sum(found['naive'].sandbox_requests.values())} for the baseline"
    )
    return lines


def growth(small: tuple[int, dict[str, Measured]], large: tuple[int, dict[str, Measured]]) -> list[str]:
    """What each further member costs between two group sizes: the slope of the traced peak and of CPU time
    (fixed costs, such as the pages in flight, cancel out once both sizes fill whole pages)."""
    (n0, f0), (n1, f1) = small, large
    lines = [f"-- per further member, {n0:,} -> {n1:,} members (slope of traced peak and of CPU)"]
    for kind, name, label in PHASES:
        (row0, traced0), (row1, traced1) = f0[kind].phase(name), f1[kind].phase(name)
        peak = (int(traced1["traced_peak_bytes"]) - int(traced0["traced_peak_bytes"])) / (n1 - n0)
        cpu = (float(row1["cpu"]) - float(row0["cpu"])) / (n1 - n0) * 1e6
        lines.append(f"{label:<26}{peak:>8.0f} B/member{cpu:>8.1f} µs CPU/member")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure each size; print a block per size."""
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--users", type=int, default=None, help="tenant size (default: the largest size)")
    args = parser.parse_args(argv)
    users = args.users or max(args.sizes)
    print(
        f"tenant of {users:,} users per size; load average {os.getloadavg()[0]:.1f} at the start", flush=True
    )
    started = time.monotonic()
    results: list[tuple[int, dict[str, Measured]]] = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
            results.append((size, measure(size, users, Path(tmp))))
        print("\n".join(report(*results[-1])), flush=True)
    if len(results) > 1:
        # The two largest sizes: a group smaller than a page or two has not reached the fixed costs yet.
        by_size = sorted(results, key=lambda r: r[0])
        print("\n".join(growth(by_size[-2], by_size[-1])), flush=True)
    print(
        f"{time.monotonic() - started:.0f} s in all; load average {os.getloadavg()[0]:.1f} at the end",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
