"""Time and peak memory of `seatkeeper whatif` over large sandbox tenants.

`python -m bench.whatif [--users 10000 100000] [--no-throttling]` generates each tenant
(`python -m sandbox generate`), serves it, writes a current policy (the tenant's three Copilot groups, no
rules) and a new one (HR rules: Engineering -> region 1, Sales -> region 2, nobody else), and runs the real
command (`python -m seatkeeper whatif --policy NEW --summary-only --json`) in a child process against it:
wall time, next to a child that only reads the same user pages (the Graph-paging baseline); the child's
peak RSS (VmHWM, read by the child itself: `ru_maxrss` would include the RSS a forked child inherits from
this parent); and the Graph requests the sandbox counted. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.sandbox import SandboxInfo, start_sandbox, stop_sandbox

ROOT = Path(__file__).resolve().parents[2]
COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds, and the CPU seconds the child used (steadier on a shared machine)."""

    wall: float
    cpu: float


@dataclass(frozen=True)
class Run:
    """One measured `whatif` run."""

    users: int
    whatif: Timing
    paging: Timing  # the same pages read by a process that evaluates nothing
    peak_rss_mib: float
    requests: int
    summary: dict[str, Any]


def _policies(tenant: dict[str, Any], workdir: Path) -> tuple[Path, Path]:
    groups = [g for g in tenant["groups"] if str(g["displayName"]).startswith("Copilot - region")]
    listing = "".join(
        f"  - id: {g['id']}\n    display_name: {g['displayName']}\n    copilot_sku_ids: [{COPILOT}]\n"
        for g in groups
    )
    current = f"version: 1\nlicensing_groups:\n{listing}"
    rules = (
        "hr_rules:\n"
        "  - name: engineering\n    when:\n      department: {equals: Engineering}\n"
        f"    group_id: {groups[0]['id']}\n"
        "  - name: sales\n    when:\n      department: {equals: Sales}\n"
        f"    group_id: {groups[1]['id']}\n"
    )
    (workdir / "current.yaml").write_text(current, encoding="utf-8")
    (workdir / "new.yaml").write_text(current + rules, encoding="utf-8")
    return workdir / "current.yaml", workdir / "new.yaml"


def _control(info: SandboxInfo, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(verify=info.ssl_context(), trust_env=False, timeout=60.0) as client:
        response = client.request(method, f"{info.control_url}{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


def _fresh(info: SandboxInfo, *, throttling: bool) -> None:
    """Reset the tenant (counters and Graph quota usage too), then set throttling as asked."""
    _control(info, "POST", "/reset")
    _control(info, "POST", "/throttling", {"enabled": throttling})


def measure(users: int, workdir: Path, *, throttling: bool) -> Run:
    """Generate, serve and preview one tenant of `users` users."""
    tenant_file = workdir / f"tenant-{users}.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "generate",
            "--users",
            str(users),
            "--groups",
            "10",
            "--out",
            str(tenant_file),
        ],
        check=True,
        cwd=ROOT,
    )
    tenant = json.loads(tenant_file.read_text(encoding="utf-8"))
    current, new = _policies(tenant, workdir)
    del tenant
    process, info = start_sandbox(workdir, "--tenant", str(tenant_file))
    try:
        env = {
            **os.environ,
            "SEATKEEPER_SANDBOX_READY_FILE": str(workdir / "ready.json"),
            "SEATKEEPER_POLICY_FILE": str(current),
            "SEATKEEPER_DATA_DIR": str(workdir / "data"),
            "SEATKEEPER_LOG_LEVEL": "WARNING",
        }
        _fresh(info, throttling=throttling)
        paging, _, _ = _child(["--pages-only"], env, workdir)
        _fresh(info, throttling=throttling)
        timing, peak_mib, output = _child(
            ["whatif", "--policy", str(new), "--summary-only", "--json"], env, workdir
        )
        summary = json.loads(output.strip().splitlines()[-1])
        counters = _control(info, "GET", "/counters")
    finally:
        stop_sandbox(process)
    return Run(users, timing, paging, peak_mib, sum(counters["requests"].values()), summary)


def _child(command: list[str], env: dict[str, str], workdir: Path) -> tuple[Timing, float, str]:
    """Run `bench.whatif.child` with `command`: its wall and CPU seconds, peak RSS in MiB, stdout."""
    peak_file = workdir / "peak.txt"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-m", "bench.whatif.child", str(peak_file), *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if child.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {child.returncode}")
    return Timing(seconds, cpu), int(peak_file.read_text(encoding="ascii")) / 1024, child.stdout.decode()


def main() -> int:
    """Measure each size and print one line per run."""
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-throttling", action="store_true", help="switch the sandbox's Graph quotas off")
    args = parser.parse_args()
    for users in args.users:
        with tempfile.TemporaryDirectory(prefix="bench-whatif-") as tmp:
            run = measure(users, Path(tmp), throttling=not args.no_throttling)
        s = run.summary
        print(
            f"whatif {run.users:>7} users: {run.whatif.wall:6.1f} s wall, {run.whatif.cpu:6.1f} s CPU "
            f"(paging alone {run.paging.wall:5.1f} s wall, {run.paging.cpu:5.1f} s CPU), "
            f"peak RSS {run.peak_rss_mib:6.1f} MiB, "
            f"{run.requests} Graph requests; gain {s['gain']} lose {s['lose']} change {s['change_group']} "
            f"blocked {s['blocked']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
