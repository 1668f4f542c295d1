"""1,000 joiners (issue 9): time from posting them to the last Copilot license `Active`, and the Graph
requests, resource units and writes per joiner, counted by the sandbox itself (`GET {control}/counters`).

`python -m bench.hr [--joiners 1000]` generates a benchmark tenant (E3 for everyone through one group, three
Copilot region groups), starts `python -m sandbox serve` with it (Graph's quotas on, licensing delay 0) and
the local host running the real `function_app.py` on it, with a policy whose rules send every joiner to a
region group by country. It gives the Copilot SKU seats for everyone, posts the joiners as signed
CloudEvents batches of 100 to `/api/hr/events`, and polls `subscribedSkus` (its own polls are subtracted
from the counts) until every joiner's seat is consumed, i.e. the license is Active. It then advances the
sandbox clock 5 minutes (verification re-checks fall due) and counts again. Loopback only.

Ten HTTP posts are not load: wrk measures request rates elsewhere; here the service's end-to-end time and
Graph economy are the figures.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.e2e.host_process import start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo, start_sandbox, stop_sandbox

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
SECRET = "whsec_" + base64.b64encode(b"sandbox-only-bench-hr-signing-04").decode()
KINDS = ("requests", "inner_requests", "resource_units", "writes")
REGIONS = (("US", "CA", "BR"), ("GB", "DE", "FR", "NL"), ("JP", "AU", "IN"))


def tenant_file(workdir: Path, users: int) -> tuple[Path, dict[str, Any]]:
    """A generated benchmark tenant (the sandbox's own generator)."""
    from sandbox import tenant_gen

    doc = tenant_gen.large_tenant(users, 4, seed=9)
    path = workdir / "tenant.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path, doc


def policy_file(workdir: Path, groups: list[dict[str, Any]]) -> Path:
    """Three region groups; one rule per region by country (every joiner is selected)."""
    lines = ["version: 1", "licensing_groups:"]
    for group in groups:
        lines += [
            f"  - id: {group['id']}",
            f"    display_name: {group['displayName']}",
            f"    copilot_sku_ids: [{COPILOT}]",
        ]
    lines += [
        f"copilot_skus:\n  sku_ids: [{COPILOT}]",
        "blast_radius:\n  max_removals_per_hour: 50",
        "hr_rules:",
    ]
    for n, (group, countries) in enumerate(zip(groups, REGIONS, strict=True)):
        lines += [
            f"  - name: region-{n + 1}",
            f"    when: {{country: {{in: [{', '.join(countries)}]}}}}",
            f"    group_id: {group['id']}",
        ]
    path = workdir / "policy.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def joiner(user: Mapping[str, Any], when: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"bench-{user['employeeId']}",
        "source": "/hr/bench",
        "type": "com.seatkeeper.hr.joiner",
        "time": (when - timedelta(days=1)).isoformat(),
        "data": {
            "employeeId": user["employeeId"],
            "userPrincipalName": user["userPrincipalName"],
            "department": user["department"],
            "country": user["usageLocation"],
            "hireDate": (when - timedelta(minutes=1)).isoformat(),
        },
    }


def signed(body: str) -> dict[str, str]:
    at = datetime.now(tz=UTC)
    msg_id = f"msg_{time.monotonic_ns()}"
    return {
        "Content-Type": "application/cloudevents-batch+json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(msg_id, at, body),
    }


def totals(control: httpx.Client) -> dict[str, int]:
    body = control.get("counters").json()
    return {k: int(body["total"].get(k, 0)) for k in KINDS}


def minus(a: Mapping[str, int], b: Mapping[str, int], times: int = 1) -> dict[str, int]:
    return {k: a.get(k, 0) - times * b.get(k, 0) for k in KINDS}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used (Linux /proc): load hardly moves this figure."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def consumed(graph: httpx.Client) -> int:
    sku = next(s for s in graph.get("subscribedSkus").json()["value"] if s["skuId"] == COPILOT)
    return int(sku["consumedUnits"])


def run(joiners: int, workdir: Path) -> dict[str, Any]:
    """The whole measurement; returns the figures."""
    path, doc = tenant_file(workdir, joiners + 200)
    regions = [g for g in doc["groups"] if g["displayName"].startswith("Copilot")]
    taken = {m for g in regions for m in g["members"]}
    people = [u for u in doc["users"] if u["id"] not in taken][:joiners]
    process, info = start_sandbox(workdir, "--tenant", str(path))
    host = None
    try:
        ready = workdir / "sandbox-ready.json"
        ready.write_text(json.dumps(dataclasses.asdict(info)), encoding="utf-8")
        host = start_host(
            workdir / "host",
            app="function_app:app",
            args=("--sandbox-ready-file", str(ready)),
            extra_env={
                "SEATKEEPER_HR_SIGNING_SECRET": SECRET,
                "SEATKEEPER_POLICY_FILE": str(policy_file(workdir, regions)),
                "SEATKEEPER_LOG_LEVEL": "WARNING",
            },
        )
        pids = {"host": host.process.pid, "sandbox": process.pid}
        return measure(info, host.info, host.api_url, host.function_key, people, pids=pids)
    finally:
        if host is not None:
            host.stop()
        stop_sandbox(process)


def measure(
    info: SandboxInfo,
    host_info: Mapping[str, Any],
    api_url: str,
    key: str,
    people: list[dict[str, Any]],
    *,
    pids: Mapping[str, int],
) -> dict[str, Any]:
    idle_url = str(host_info["idle_url"])
    token = _token(info)
    with (
        httpx.Client(base_url=info.control_url + "/", verify=info.ssl_context(), timeout=120) as control,
        httpx.Client(
            base_url=info.graph_url + "/",
            verify=info.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as graph,
        httpx.Client(base_url=api_url + "/", params={"code": key}, timeout=120, trust_env=False) as api,
    ):
        wait_for("an idle host", lambda: httpx.get(idle_url, timeout=10).json()["idle"], 120)
        control.post(f"skus/{COPILOT}/seats", json={"enabled": 10 * len(people)}).raise_for_status()
        start_consumed = consumed(graph)
        before_poll = totals(control)
        consumed(graph)
        one_poll = minus(totals(control), before_poll)
        now = datetime.fromisoformat(control.get("clock").json()["now"])
        events = [joiner(u, now) for u in people]
        control.post("counters/reset").raise_for_status()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        for i in range(0, len(events), 100):
            body = json.dumps(events[i : i + 100])
            answer = api.post("hr/events", content=body, headers=signed(body))
            if answer.status_code != 202:
                raise RuntimeError(f"intake answered {answer.status_code}: {answer.text[:300]}")
        posted = time.monotonic() - started
        polls = 0
        while True:
            polls += 1
            if consumed(graph) - start_consumed >= len(people):
                break
            if time.monotonic() - started > 900:
                raise RuntimeError("not every joiner became Active within 15 minutes")
            time.sleep(0.25)
        active = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        load = os.getloadavg()[0]
        at_active = minus(totals(control), one_poll, polls)
        by_operation = control.get("counters").json()["requests"]
        wait_for("an idle host", lambda: httpx.get(idle_url, timeout=10).json()["idle"], 300)
        advance = {"seconds": 300, "max_step_seconds": 60, "idle_url": idle_url, "idle_timeout": 300}
        control.post("clock/advance", json=advance, timeout=900).raise_for_status()
        time.sleep(1.2)
        wait_for("an idle host", lambda: httpx.get(idle_url, timeout=10).json()["idle"], 300)
        verified = minus(totals(control), one_poll, polls)
    return {
        "joiners": len(people),
        "posted_seconds": posted,
        "active_seconds": active,
        "cpu_seconds": cpu,
        "load": load,
        "at_active": at_active,
        "with_verification": verified,
        "requests_by_operation": by_operation,
    }


def _token(info: SandboxInfo) -> str:
    from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

    with httpx.Client(verify=info.ssl_context()) as http:
        result = confidential_app(info, http, info.client_id, info.client_secret).acquire_token_for_client(
            scopes=[GRAPH_SCOPE]
        )
    return str(result["access_token"])


def main(argv: list[str] | None = None) -> int:
    """Run once and print the figures for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.hr", description=__doc__)
    parser.add_argument("--joiners", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hr-") as temp:
        figures = run(args.joiners, Path(temp))
    n = figures["joiners"]
    batches = (n + 99) // 100
    print(
        f"{n} joiners posted in {figures['posted_seconds']:.1f} s ({batches} signed batches of at most 100)"
    )
    print(f"last Copilot license Active {figures['active_seconds']:.1f} s after the first post")
    cpu = figures["cpu_seconds"]
    print(
        f"CPU used meanwhile: local host {cpu['host']:.1f} s ({1000 * cpu['host'] / n:.0f} ms a joiner), "
        f"sandbox {cpu['sandbox']:.1f} s; load average at the last Active {figures['load']:.1f}"
    )
    print("| counted | requests | inner requests | resource units | writes |")
    print("|---|---:|---:|---:|---:|")
    for label, key in (
        ("to the last Active", "at_active"),
        ("+ verification (5 min later)", "with_verification"),
    ):
        cells = " | ".join(f"{figures[key][k]:,} ({figures[key][k] / n:.2f})" for k in KINDS)
        print(f"| {label} | {cells} |")
    print("requests by operation at the last Active (the poller's `GET /subscribedSkus` included):")
    for op, count in sorted(figures["requests_by_operation"].items(), key=lambda item: -int(item[1])):
        print(f"  {op}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
