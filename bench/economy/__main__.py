"""Graph economy of the license gate (issue 7 item 7): 1,000 users admitted and verified by Seatkeeper next to
the naive client, in one run, counted by the sandbox itself (`GET {control}/counters`).

`python -m bench.economy [--users 1000]` generates a benchmark tenant (E3 for everyone through one group,
three Copilot groups), starts `python -m sandbox serve` with it (Graph's quotas on), gives the Copilot SKU
seats for everyone, then:

- **Seatkeeper**: `handlers.admission.admit` for N users at once (one `$select`ed user read each through
  `$batch`, `subscribedSkus` cached, seats reserved in an embedded state store, members added 20 a request),
  then `handlers.verification.verify_members` for the N re-checks it scheduled (user reads through `$batch`);
- **naive** (issue 7's definition), per user: `GET /users/{id}` without `$select`, `GET /users/{id}` with
  `$select` for the license fields, `GET /subscribedSkus`, `POST /groups/{id}/members/$ref`, one
  verification `GET /users/{id}?$select=licenseAssignmentStates`;

and prints the sandbox's requests, inner requests, resource units and writes per user for both. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from handlers.admission import Result, admit
from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import TenantReads
from handlers.verification import verify_members
from seatkeeper.adapters.clocks import SandboxBusinessClock
from seatkeeper.adapters.graph.client import GraphClient, build_http_client, ssl_context
from seatkeeper.adapters.graph.tokens import confidential_client_provider
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.license_messages import LICENSE_CHECK_KIND, AdmitRequest, parse_check
from seatkeeper.core.messages import Message
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.seats import reservation_timeout
from seatkeeper.settings import SANDBOX_GRAPH_RESOURCE
from tests.fixtures.sandbox import SandboxInfo, start_sandbox, stop_sandbox

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
NAIVE_SELECT = "assignedLicenses,licenseAssignmentStates,usageLocation,accountEnabled"
KINDS = ("requests", "inner_requests", "resource_units", "writes")


@dataclass(frozen=True)
class Figures:
    """One client's totals from the sandbox's counters, for `users` users."""

    label: str
    users: int
    totals: Mapping[str, int]
    by_operation: Mapping[str, Mapping[str, int]]
    seconds: float

    def per_user(self, kind: str) -> float:
        return self.totals.get(kind, 0) / self.users

    def row(self) -> str:
        cells = " | ".join(f"{self.totals.get(k, 0):,} ({self.per_user(k):.3f})" for k in KINDS)
        return f"| {self.label} | {cells} | {self.seconds:.1f} s |"


class RecordingSender:
    """The queue, for the benchmark: keeps what the handlers send (re-checks and alerts)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, messages: Sequence[Message]) -> None:
        self.sent.extend(messages)


def tenant_file(workdir: Path, users: int) -> Path:
    """A generated benchmark tenant (the sandbox's own generator)."""
    from sandbox import tenant_gen

    path = workdir / "tenant.json"
    path.write_text(json.dumps(tenant_gen.large_tenant(users, 4, seed=7)), encoding="utf-8")
    return path


def candidates(doc: Mapping[str, Any]) -> tuple[str, list[str], list[str]]:
    """(the first Copilot group's id, users in no Copilot group, the other Copilot groups' ids)."""
    copilot = [g for g in doc["groups"] if g["displayName"].startswith("Copilot")]
    taken = {m for g in copilot for m in g.get("members", [])}
    free = [
        u["id"] for u in doc["users"] if u["id"] not in taken and u.get("usageLocation") not in ("RU", "BY")
    ]
    return copilot[0]["id"], free, [g["id"] for g in copilot[1:]]


def counters(control: httpx.Client) -> dict[str, Any]:
    response = control.get("counters")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def figures(label: str, users: int, body: Mapping[str, Any], seconds: float) -> Figures:
    by_op: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        for op, n in body.get(kind, {}).items():
            by_op.setdefault(op, {})[kind] = int(n)
    return Figures(label, users, {k: int(body["total"].get(k, 0)) for k in KINDS}, by_op, seconds)


def graph_client(info: SandboxInfo) -> tuple[GraphClient, httpx.Client]:
    verify = ssl_context(Path(info.ca_file))
    msal_http = httpx.Client(verify=verify, timeout=30, trust_env=False)
    token = confidential_client_provider(
        client_id=info.client_id,
        authority=info.authority,
        credential=info.client_secret,
        scope=f"{SANDBOX_GRAPH_RESOURCE}/.default",
        http_client=msal_http,
        instance_discovery=False,
    )
    client = GraphClient(
        graph_url=info.graph_url, http=build_http_client(verify=verify, timeout_seconds=30), token=token
    )
    return client, msal_http


async def seatkeeper_run(info: SandboxInfo, group: str, users: list[str], workdir: Path) -> tuple[int, int]:
    """Admit then verify `users` as the service does; returns (added, verified active)."""
    graph, msal_http = graph_client(info)
    state = SqliteStateStore(workdir / "state.sqlite3")
    clock = SandboxBusinessClock(info.control_url, verify=ssl_context(Path(info.ca_file)))
    policy = Policy(licensing_groups=(LicensingGroup(group, "Copilot - region 1", (COPILOT,)),))
    sender = RecordingSender()
    deps = LicenseDeps(
        graph=graph,
        reads=TenantReads(graph, clock),
        seats=StateSeatStore(state, timeout=reservation_timeout(policy.verification_deadline)),
        sender=sender,
        clock=clock,
        policy=policy,
    )
    try:
        requests = [AdmitRequest(u, group, "benchmark", "bench.economy") for u in users]
        admitted = await admit(requests, deps, correlation_id="bench", version="bench")
        checks = [parse_check(m.payload) for m in sender.sent if m.kind == LICENSE_CHECK_KIND]
        checked, _ = await verify_members(checks, deps, correlation_id="bench", version="bench")
    finally:
        await graph.aclose()
        msal_http.close()
        state.close()
    return sum(a.result is Result.ADDED for a in admitted), sum(c.status == "done" for c in checked)


async def naive_run(info: SandboxInfo, group: str, users: list[str], concurrency: int = 8) -> int:
    """The naive client of issue 7 item 7; returns how many it found active at verification."""
    graph, msal_http = graph_client(info)
    gate = asyncio.Semaphore(concurrency)
    active = 0

    async def one(user: str) -> None:
        nonlocal active
        async with gate:
            await graph.get(f"/users/{user}")
            await graph.get(f"/users/{user}", params={"$select": NAIVE_SELECT})
            await graph.get("/subscribedSkus")
            body = {"@odata.id": f"{info.graph_url}/directoryObjects/{user}"}
            await graph.send("POST", f"/groups/{group}/members/$ref", body)
            states = await graph.get(f"/users/{user}", params={"$select": "licenseAssignmentStates"})
            if any(s.get("state") == "Active" for s in states.get("licenseAssignmentStates", [])):
                active += 1

    try:
        await asyncio.gather(*(one(u) for u in users))
    finally:
        await graph.aclose()
        msal_http.close()
    return active


def main(argv: list[str] | None = None) -> int:
    """Run both clients on one sandbox and print the table for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.economy", description=__doc__)
    parser.add_argument("--users", type=int, default=1000, help="users per client")
    parser.add_argument("--json", action="store_true", help="also print the per-operation counts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="economy-") as temp:
        workdir = Path(temp)
        path = tenant_file(workdir, max(2400, args.users * 2 + 400))
        process, info = start_sandbox(workdir, "--tenant", str(path))
        try:
            with httpx.Client(
                base_url=info.control_url + "/", verify=info.ssl_context(), timeout=60
            ) as control:
                doc = json.loads(path.read_text(encoding="utf-8"))
                group, free, others = candidates(doc)
                ours, naive = free[: args.users], free[args.users : 2 * args.users]
                control.post(
                    f"skus/{COPILOT}/seats", json={"enabled": len(doc["users"]) * 2}
                ).raise_for_status()
                control.post("counters/reset").raise_for_status()
                started = time.monotonic()
                outcome: object = asyncio.run(seatkeeper_run(info, group, ours, workdir))
                ours_fig = figures("Seatkeeper", args.users, counters(control), time.monotonic() - started)
                results = [(ours_fig, outcome)]
                control.post("counters/reset").raise_for_status()
                started = time.monotonic()
                outcome = asyncio.run(naive_run(info, others[0], naive))
                naive_fig = figures("naive client", args.users, counters(control), time.monotonic() - started)
                results.append((naive_fig, outcome))
        finally:
            stop_sandbox(process)
    print(f"{args.users} users per client; cells: total (per user)")
    print("| client | requests | inner requests | resource units | writes | time |")
    print("|---|---:|---:|---:|---:|---:|")
    for result, _ in results:
        print(result.row())
    for result, outcome in results:
        print(f"{result.label}: outcome {outcome}")
    ratio = ours_fig.totals["resource_units"] / max(1, naive_fig.totals["resource_units"])
    print(f"resource units, Seatkeeper / naive: {ratio:.3f} (goal <= 0.5)")
    print(f"writes per added user, Seatkeeper: {ours_fig.per_user('writes'):.3f} (goal <= 0.1)")
    if args.json:
        print(json.dumps({r.label: r.by_operation for r, _ in results}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
