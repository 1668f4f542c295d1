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

`python -m bench.hr --series` (or `--sizes 100,1000,10000`) runs the same measurement once per size, each on
a fresh sandbox, tenant and host state, and prints per size the wall time, joiners/s and the cost per joiner
(Graph requests, resource units, writes, queue messages, host CPU), then whether the cost per joiner is flat:
every size within `--tolerance` (15 %) of the smallest size, which is the reference (there is no naive client
for this path). The flatness check uses the settled cost (after the verification re-checks) unless
`--no-verify`: a run longer than the 2-minute verification delay counts re-checks before its last Active
that a shorter run counts after it. Queue messages are counted by SQLite triggers the bench adds to the
host's embedded queue file. A size whose messages are dead-lettered stops at once (reported as STALLED, with
the errors of the abandoned deliveries from the host's log) instead of waiting for joiners that never come.
The host runs with its own default peek-lock (30 s).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE
from tests.e2e.host_process import start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo, start_sandbox, stop_sandbox

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
SECRET = "whsec_" + base64.b64encode(b"sandbox-only-bench-hr-signing-04").decode()
KINDS = ("requests", "inner_requests", "resource_units", "writes")
REGIONS = (("US", "CA", "BR"), ("GB", "DE", "FR", "NL"), ("JP", "AU", "IN"))
# The local host's own default peek-lock (`seatkeeper serve --lock-seconds`); the e2e helper's 1 s would
# let locks run out under load and redeliver messages that are still being processed.
LOCK_SECONDS = 30.0


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


# Counts every message enqueued and every delivery, by queue, inside the host's own queue transactions.
_QUEUE_TRIGGERS = """
CREATE TABLE IF NOT EXISTS bench_queue_counts (
    queue TEXT NOT NULL, what TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (queue, what)
);
CREATE TRIGGER IF NOT EXISTS bench_sent AFTER INSERT ON messages BEGIN
    INSERT INTO bench_queue_counts (queue, what, n) VALUES (NEW.queue, 'sent', 1)
    ON CONFLICT (queue, what) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS bench_delivered AFTER UPDATE OF delivery_count ON messages BEGIN
    INSERT INTO bench_queue_counts (queue, what, n) VALUES (NEW.queue, 'delivered', 1)
    ON CONFLICT (queue, what) DO UPDATE SET n = n + 1;
END;
"""


def count_queue(state_dir: Path) -> None:
    """Add the counting triggers to the host's queue file (bench instrumentation only)."""
    with sqlite3.connect(state_dir / EMBEDDED_QUEUE_FILE, timeout=60) as db:
        db.executescript(_QUEUE_TRIGGERS)


def queue_counts(state_dir: Path) -> dict[str, dict[str, int]]:
    """{queue: {"sent": n, "delivered": n}} since the triggers were added."""
    out: dict[str, dict[str, int]] = {}
    with sqlite3.connect(state_dir / EMBEDDED_QUEUE_FILE, timeout=60) as db:
        for queue, what, n in db.execute("SELECT queue, what, n FROM bench_queue_counts"):
            out.setdefault(str(queue), {"sent": 0, "delivered": 0})[str(what)] = int(n)
    return out


class Stalled(RuntimeError):
    """Messages were dead-lettered: some joiners will never become Active, so the run stops there."""

    def __init__(
        self, joiners: int, active: int, seconds: float, dead: Mapping[str, int], errors: Mapping[str, int]
    ) -> None:
        super().__init__(
            f"{joiners:,} joiners: stalled after {seconds:.0f} s with {active:,} Active; dead letters "
            f"{dict(dead)}; abandoned deliveries by error {dict(errors)}"
        )
        self.joiners = joiners


def dead_letters(state_dir: Path) -> dict[str, int]:
    """Dead-lettered messages by queue in the host's queue file."""
    with sqlite3.connect(state_dir / EMBEDDED_QUEUE_FILE, timeout=60) as db:
        rows = db.execute(
            "SELECT queue, COUNT(*) FROM messages WHERE dead_seq IS NOT NULL GROUP BY queue"
        ).fetchall()
    return {str(queue): int(n) for queue, n in rows}


def abandoned(state_dir: Path) -> dict[str, int]:
    """Abandoned deliveries by error type, from the host's log (`localhost.message_abandoned`)."""
    counts: dict[str, int] = {}
    log = state_dir.parent / f"{state_dir.name}.log"
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"localhost.message_abandoned"' in line:
            error = json.loads(line).get("error", "?")
            counts[error] = counts.get(error, 0) + 1
    return counts


def run(joiners: int, workdir: Path, *, verify: bool = True) -> dict[str, Any]:
    """The whole measurement; returns the figures."""
    users = joiners + 200
    while users - 3 * (users // 40) < joiners:  # the generator puts users // 40 into each region group
        users += 100
    path, doc = tenant_file(workdir, users)
    regions = [g for g in doc["groups"] if g["displayName"].startswith("Copilot")]
    taken = {m for g in regions for m in g["members"]}
    people = [u for u in doc["users"] if u["id"] not in taken][:joiners]
    if len(people) != joiners:
        raise RuntimeError(f"the tenant has {len(people)} users outside the Copilot groups, not {joiners}")
    process, info = start_sandbox(workdir, "--tenant", str(path))
    host = None
    try:
        ready = workdir / "sandbox-ready.json"
        ready.write_text(json.dumps(dataclasses.asdict(info)), encoding="utf-8")
        host = start_host(
            workdir / "host",
            app="function_app:app",
            args=("--sandbox-ready-file", str(ready)),
            lock_seconds=LOCK_SECONDS,
            extra_env={
                "SEATKEEPER_HR_SIGNING_SECRET": SECRET,
                "SEATKEEPER_POLICY_FILE": str(policy_file(workdir, regions)),
                "SEATKEEPER_LOG_LEVEL": "WARNING",
            },
        )
        pids = {"host": host.process.pid, "sandbox": process.pid}
        return measure(
            info,
            host.info,
            host.api_url,
            host.function_key,
            people,
            pids=pids,
            state_dir=host.state_dir,
            verify=verify,
        )
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
    state_dir: Path,
    verify: bool = True,
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
        count_queue(state_dir)
        control.post("counters/reset").raise_for_status()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        deadline = max(900.0, 0.6 * len(people))
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
            active_now = consumed(graph) - start_consumed
            if active_now >= len(people):
                break
            if polls % 20 == 0 and (dead := dead_letters(state_dir)):
                raise Stalled(len(people), active_now, time.monotonic() - started, dead, abandoned(state_dir))
            if time.monotonic() - started > deadline:
                raise RuntimeError(f"not every joiner became Active within {deadline:.0f} s")
            time.sleep(0.25)
        active = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        load = os.getloadavg()[0]
        at_active = minus(totals(control), one_poll, polls)
        by_operation = control.get("counters").json()["requests"]
        queues = queue_counts(state_dir)
        verified: dict[str, int] | None = None
        settled_queues: dict[str, dict[str, int]] | None = None
        if verify:
            wait_for("an idle host", lambda: httpx.get(idle_url, timeout=10).json()["idle"], 300)
            advance = {"seconds": 300, "max_step_seconds": 60, "idle_url": idle_url, "idle_timeout": 300}
            control.post("clock/advance", json=advance, timeout=900).raise_for_status()
            time.sleep(1.2)
            wait_for("an idle host", lambda: httpx.get(idle_url, timeout=10).json()["idle"], 300)
            verified = minus(totals(control), one_poll, polls)
            settled_queues = queue_counts(state_dir)
    return {
        "joiners": len(people),
        "posted_seconds": posted,
        "active_seconds": active,
        "cpu_seconds": cpu,
        "load": load,
        "at_active": at_active,
        "with_verification": verified,
        "requests_by_operation": by_operation,
        "queues": queues,
        "settled_queues": settled_queues,
    }


def _token(info: SandboxInfo) -> str:
    from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

    with httpx.Client(verify=info.ssl_context()) as http:
        result = confidential_app(info, http, info.client_id, info.client_secret).acquire_token_for_client(
            scopes=[GRAPH_SCOPE]
        )
    return str(result["access_token"])


SERIES = (100, 1000, 10000)
# The cost figures whose flatness is the claim (per joiner, at the last Active).
COSTS = ("requests", "resource_units", "writes", "queue_messages")


def sizes_of(text: str) -> list[int]:
    """`100,1000,10000` -> [100, 1000, 10000] (ascending, positive)."""
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers, comma separated")
    return sizes


def per_joiner(figures: Mapping[str, Any], *, settled: bool = False) -> dict[str, float]:
    """Cost per joiner: Graph requests, resource units, writes, queue messages sent (and deliveries), at
    the last Active or, `settled`, once the verification re-checks have run too (the whole work)."""
    n = int(figures["joiners"])
    graph = figures["with_verification"] if settled else figures["at_active"]
    queues = figures["settled_queues"] if settled else figures["queues"]
    out = {k: graph[k] / n for k in ("requests", "resource_units", "writes")}
    out["queue_messages"] = sum(q["sent"] for q in queues.values()) / n
    out["deliveries"] = sum(q["delivered"] for q in queues.values()) / n
    out["host_cpu_ms"] = 1000 * figures["cpu_seconds"]["host"] / n
    return out


def flatness(rows: list[dict[str, Any]], tolerance: float, *, settled: bool) -> tuple[bool, list[str]]:
    """Whether every cost per joiner stays within `tolerance` of the smallest size's; the lines saying so.

    Settled (verification included) is the fair comparison: a run longer than the verification delay
    (2 minutes) counts some re-checks before its last Active that a shorter run counts after it."""
    reference = per_joiner(rows[0], settled=settled)
    flat = True
    lines = []
    for key in COSTS:
        ratios = [
            per_joiner(r, settled=settled)[key] / reference[key] if reference[key] else float("nan")
            for r in rows
        ]
        ok = all(abs(ratio - 1) <= tolerance for ratio in ratios)
        flat = flat and ok
        shown = ", ".join(f"{r['joiners']:,}: {ratio:.2f}x" for r, ratio in zip(rows, ratios, strict=True))
        lines.append(
            f"  {key} per joiner vs {rows[0]['joiners']:,}: {shown} -> {'flat' if ok else 'NOT flat'}"
        )
    return flat, lines


def series(sizes: list[int], tolerance: float, verify: bool) -> int:
    """One fresh run per size; prints each as it ends, then the table and the flatness verdict."""
    rows: list[dict[str, Any]] = []
    print(f"series {sizes}, licensing delay 0, load average before {load_text()}", flush=True)
    stalled: list[str] = []
    for size in sizes:
        try:
            with tempfile.TemporaryDirectory(prefix=f"bench-hr-{size}-") as temp:
                figures = run(size, Path(temp), verify=verify)
        except Stalled as error:
            stalled.append(f"{error} (load average {load_text()})")
            print(f"STALLED: {stalled[-1]}", flush=True)
            continue
        figures["finished"] = datetime.now(tz=UTC).strftime("%H:%M:%S")
        figures["load_text"] = load_text()
        rows.append(figures)
        report(figures)
        print(f"  queues: {json.dumps(figures['queues'], sort_keys=True)}", flush=True)
    print()
    print(
        "| joiners | first post → all `Active` | joiners/s | Graph requests | resource units | writes "
        "| queue messages (deliveries) | host CPU | load average (1, 5, 15 min) at the end |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        c = per_joiner(r)
        print(
            f"| {r['joiners']:,} | {r['active_seconds']:.1f} s | {r['joiners'] / r['active_seconds']:.1f} "
            f"| {c['requests']:.2f} | {c['resource_units']:.2f} | {c['writes']:.2f} "
            f"| {c['queue_messages']:.2f} ({c['deliveries']:.2f}) | {c['host_cpu_ms']:.0f} ms "
            f"| {r['load_text']} |"
        )
    for line in stalled:
        print(f"| STALLED | {line} |")
    if not rows:
        return 1
    settled = all(r["with_verification"] is not None for r in rows)
    if settled:
        print("settled, verification re-checks included (the whole work per joiner):")
        print("| joiners | Graph requests | resource units | writes | queue messages (deliveries) |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            c = per_joiner(r, settled=True)
            print(
                f"| {r['joiners']:,} | {c['requests']:.2f} | {c['resource_units']:.2f} | {c['writes']:.2f} "
                f"| {c['queue_messages']:.2f} ({c['deliveries']:.2f}) |"
            )
    flat, lines = flatness(rows, tolerance, settled=settled)
    flat = flat and not stalled
    print(
        f"cost per joiner {'settled' if settled else 'at the last Active'} "
        f"(requests, resource units, writes, queue messages) "
        f"{'FLAT' if flat else 'NOT FLAT'} (criterion: every size within ±{tolerance:.0%} of the "
        f"{rows[0]['joiners']:,}-joiner reference "
        "(the smallest size of this run; there is no naive client for this path))"
    )
    for line in lines:
        print(line)
    if stalled:
        print(
            f"  {len(stalled)} size(s) stalled with dead letters: not flat whatever the completed sizes say"
        )
    return 0 if flat else 1


def load_text() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def report(figures: Mapping[str, Any]) -> None:
    """The single run's figures, as before."""
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
        if figures[key] is None:
            continue
        cells = " | ".join(f"{figures[key][k]:,} ({figures[key][k] / n:.2f})" for k in KINDS)
        print(f"| {label} | {cells} |")
    print("requests by operation at the last Active (the poller's `GET /subscribedSkus` included):")
    for op, count in sorted(figures["requests_by_operation"].items(), key=lambda item: -int(item[1])):
        print(f"  {op}: {count}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run once (or once per size with `--series`/`--sizes`) and print the figures for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.hr", description=__doc__)
    parser.add_argument("--joiners", type=int, default=1000, help="one run of this many joiners")
    parser.add_argument("--series", action="store_true", help="run 100, 1,000 and 10,000 joiners in turn")
    parser.add_argument("--sizes", type=sizes_of, help="run these sizes in turn, e.g. 100,1000,10000")
    parser.add_argument(
        "--tolerance", type=float, default=0.15, help="flatness band around the smallest size"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the 5-minute verification count")
    args = parser.parse_args(argv)
    if args.series or args.sizes:
        return series(args.sizes or list(SERIES), args.tolerance, verify=not args.no_verify)
    with tempfile.TemporaryDirectory(prefix="bench-hr-") as temp:
        figures = run(args.joiners, Path(temp), verify=not args.no_verify)
    figures["queues"] = figures.get("queues", {})
    report(figures)
    c = per_joiner(figures)
    print(f"queue messages sent {c['queue_messages']:.2f} a joiner (deliveries {c['deliveries']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
