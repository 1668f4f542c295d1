"""`seatkeeper rollout` against the sandbox over HTTPS: a dry run writes nothing, a real run admits the
eligible people 20 a request and records the rollout, people blocked by seats alone wait on the waitlist and
are served first come when seats free up, and an interrupted run resumes without redoing any add. Driven
through the command's own functions with the service's adapters (Graph client, SQLite state)."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.admission import Result
from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import TenantReads
from handlers.verification import serve_waiting
from seatkeeper.adapters.clocks import WallClock
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.bootstrap import build_graph
from seatkeeper.cli.rollout import EXIT_DONE, EXIT_INTERRUPTED, list_rollouts, rollout_file
from seatkeeper.core.errors import Unavailable
from seatkeeper.core.graph_port import (
    GraphPage,
    GraphPort,
    GraphRequest,
    GraphResponse,
    MemberAddResult,
    OperationCount,
)
from seatkeeper.core.person_mapping import PERSON_SELECT, person_from_entra
from seatkeeper.core.rollout_records import RolloutRecords
from seatkeeper.core.sensitive import Secret
from seatkeeper.license_wiring import build_license_deps
from seatkeeper.policy_file import load_policy
from seatkeeper.settings import CredentialKind, GraphSettings
from tests.fixtures.sandbox import SandboxInfo
from tests.unit.license_world import RecordingSender

pytestmark = pytest.mark.anyio

AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def control(info: SandboxInfo, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(verify=info.ssl_context(), trust_env=False) as client:
        response = client.request(method, f"{info.control_url}{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


@dataclass
class Rig:
    info: SandboxInfo
    deps: LicenseDeps
    records: RolloutRecords
    tmp: Path

    def members(self, group_id: str) -> set[str]:
        tenant = control(self.info, "GET", "/tenant")
        group = next(g for g in tenant["groups"] if g["id"] == group_id)
        return {str(m).lower() for m in group.get("members", [])}

    def member_writes(self) -> int:
        writes: Mapping[str, int] = control(self.info, "GET", "/counters")["writes"]
        return sum(n for op, n in writes.items() if op.startswith("PATCH /groups"))


@pytest.fixture
async def rig(tenant: SandboxInfo, tmp_path: Path) -> AsyncIterator[Rig]:
    settings = GraphSettings(
        tenant_id=tenant.tenant_id,
        graph_url=tenant.graph_url,
        authority=tenant.authority,
        credential=CredentialKind.SECRET,
        client_id=tenant.client_id,
        client_secret=Secret(tenant.client_secret),
        ca_file=Path(tenant.ca_file),
        token_resource="https://graph.microsoft.com",
    )
    graph, closers = build_graph(settings)
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    control(tenant, "POST", f"/skus/{COPILOT}/seats", {"enabled": 500})
    policy = load_policy(ROOT / "policies" / "sandbox.yaml")
    deps = build_license_deps(
        graph=graph, clock=WallClock(), sender=RecordingSender(), state=state, policy=policy
    )
    try:
        yield Rig(tenant, deps, RolloutRecords(state), tmp_path)
    finally:
        state.close()
        for close in reversed(closers):
            await close()


async def candidates(graph: GraphPort) -> tuple[list[str], list[str], list[str]]:
    """UPNs of people with an active E3 and a usage location and no Copilot, of people with no base
    license at all, and of people who hold Copilot (read from the tenant, not from the code under test)."""
    eligible, unlicensed, licensed = [], [], []
    async for page in graph.pages("/users", params={"$select": ",".join(PERSON_SELECT), "$top": "999"}):
        for user in page.items:
            person = person_from_entra(user)
            states = {(a.sku_id, a.state.value) for a in person.license_assignments}
            upn = str(person.user_principal_name)
            if any(sku == COPILOT for sku, _ in states):
                licensed.append(upn)
            elif not person.license_assignments and not person.assigned_licenses and person.account_enabled:
                unlicensed.append(upn)
            elif (E3, "Active") in states and person.usage_location and person.account_enabled:
                eligible.append(upn)
    return eligible, unlicensed, licensed


async def copilot_consumed(graph: GraphPort) -> int:
    """The Copilot SKU's consumed seats, as `subscribedSkus` reports them."""
    body = await graph.get("/subscribedSkus")
    return int(next(s for s in body["value"] if s["skuId"] == COPILOT)["consumedUnits"])


def args(path: Path, **changes: Any) -> argparse.Namespace:
    defaults = {
        "target": str(path),
        "group": AMERICAS,
        "rollout_name": "pilot",
        "dry_run": False,
        "reason": None,
        "requested_by": "test",
        "allow_bad_rows": False,
        "json": False,
        "csv": False,
    }
    return argparse.Namespace(**{**defaults, **changes})


class InterruptedAfterOneAdd:
    """The real Graph client, except that the second bulk add fails as if Graph went away."""

    def __init__(self, graph: GraphPort) -> None:
        self.graph = graph
        self.adds = 0

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        return await self.graph.get(path, params=params, retry_not_found=retry_not_found)

    def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        return self.graph.pages(path, params=params)

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        return await self.graph.send(method, path, body, idempotent=idempotent)

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        return await self.graph.batch(requests)

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        self.adds += 1
        if self.adds > 1:
            raise Unavailable("connection dropped")
        return await self.graph.add_members(group_id, user_ids)

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        return await self.graph.remove_member(group_id, user_id)

    async def granted_roles(self) -> frozenset[str]:
        return await self.graph.granted_roles()

    def counters(self) -> Mapping[str, OperationCount]:
        return self.graph.counters()


async def test_dry_run_gates_everyone_and_writes_nothing(rig: Rig) -> None:
    """The dry run reports eligible, blocked (with why), already licensed and missing people; no write."""
    eligible, unlicensed, licensed = await candidates(rig.deps.graph)
    path = rig.tmp / "pilot.csv"
    path.write_text(
        "upn\n" + "\n".join([eligible[0], unlicensed[0], licensed[0], "ghost@contoso.example"]) + "\n"
    )
    before = rig.members(AMERICAS)
    control(rig.info, "POST", "/counters/reset")
    out, err = io.StringIO(), io.StringIO()
    code = await rollout_file(args(path, dry_run=True, csv=True), rig.deps, rig.records, out, err)
    rows = [line.split(",")[3] for line in out.getvalue().splitlines()[1:]]
    assert (code, rows) == (EXIT_DONE, ["to_admit", "blocked", "already_licensed", "not_found"])
    assert "no_base_license" in out.getvalue().splitlines()[2]
    assert (rig.members(AMERICAS), rig.member_writes(), await rig.records.names()) == (before, 0, ())


async def test_bad_rows_stop_a_real_run_and_are_named_by_line(rig: Rig) -> None:
    """A file with a bad row writes nothing and says which line is wrong."""
    path = rig.tmp / "pilot.csv"
    path.write_text("upn\nana@contoso.example\nnot-an-upn\n")
    out, err = io.StringIO(), io.StringIO()
    code = await rollout_file(args(path), rig.deps, rig.records, out, err)
    assert (code, f"{path}:3:" in err.getvalue(), await rig.records.names()) == (2, True, ())


async def test_an_interrupted_rollout_resumes_without_double_work(rig: Rig) -> None:
    """45 eligible people: the run stops after the first bulk add of 20; the rerun adds the other 25 in two
    requests, never the first 20 again, and the rollout is recorded as the rule that keeps all 45."""
    eligible, _, _ = await candidates(rig.deps.graph)
    chosen = eligible[:45]
    assert len(chosen) == 45, "the default tenant has 45 people eligible for Copilot"
    path = rig.tmp / "wave1.csv"
    path.write_text("userPrincipalName\n" + "\n".join(chosen) + "\n")
    before = rig.members(AMERICAS)
    flaky = InterruptedAfterOneAdd(rig.deps.graph)
    broken = replace(rig.deps, graph=flaky, reads=TenantReads(flaky, rig.deps.clock))
    err = io.StringIO()
    first = await rollout_file(args(path), broken, rig.records, io.StringIO(), err)
    assert (first, "run the same command again" in err.getvalue()) == (EXIT_INTERRUPTED, True)
    assert len(rig.members(AMERICAS) - before) == 20
    control(rig.info, "POST", "/counters/reset")
    out = io.StringIO()
    second = await rollout_file(args(path, json=True), rig.deps, rig.records, out, io.StringIO())
    assert (second, rig.member_writes()) == (EXIT_DONE, 2)
    added = rig.members(AMERICAS) - before
    assert len(added) == 45
    [rule] = await rig.records.rules()
    assert (rule.name, rule.group_id, rule.user_ids) == ("pilot", AMERICAS, frozenset(added))
    assert '"added": 45' in out.getvalue()
    control(rig.info, "POST", "/counters/reset")
    third = await rollout_file(args(path), rig.deps, rig.records, io.StringIO(), io.StringIO())
    assert (third, rig.member_writes()) == (EXIT_DONE, 0)


async def test_a_rerun_gates_blocked_people_again_once_the_admin_fixed_the_blocker(rig: Rig) -> None:
    """Blocked for want of a base license, then given one (and a usage location) by an admin: the same
    command again admits the person; the one already added is not written again."""
    eligible, unlicensed, _ = await candidates(rig.deps.graph)
    path = rig.tmp / "wave2.csv"
    path.write_text("upn\n" + "\n".join([eligible[0], unlicensed[0]]) + "\n")
    out = io.StringIO()
    assert await rollout_file(args(path, csv=True), rig.deps, rig.records, out, io.StringIO()) == EXIT_DONE
    assert [line.split(",")[3] for line in out.getvalue().splitlines()[1:]] == ["added", "blocked"]
    user = await rig.deps.graph.get(f"/users/{unlicensed[0]}", params={"$select": "id"})
    await rig.deps.graph.send("PATCH", f"/users/{user['id']}", {"usageLocation": "US"})
    await rig.deps.graph.send(
        "POST",
        f"/users/{user['id']}/assignLicense",
        {"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []},
    )
    control(rig.info, "POST", "/counters/reset")
    out = io.StringIO()
    assert await rollout_file(args(path, csv=True), rig.deps, rig.records, out, io.StringIO()) == EXIT_DONE
    assert [line.split(",")[3] for line in out.getvalue().splitlines()[1:]] == ["added", "added"]
    assert rig.member_writes() == 1
    assert str(user["id"]).lower() in rig.members(AMERICAS)


async def test_people_blocked_by_seats_alone_wait_their_turn(rig: Rig) -> None:
    """Two free seats, five eligible people: the first two are added; the other three go through admission
    onto the waitlist in file order, the report gives each one's place, and when seats free up, serving the
    waitlist adds them, first come first served."""
    eligible, _, _ = await candidates(rig.deps.graph)
    chosen = eligible[:5]
    consumed = await copilot_consumed(rig.deps.graph)
    control(rig.info, "POST", f"/skus/{COPILOT}/seats", {"enabled": consumed + 2})
    path = rig.tmp / "wave2.csv"
    path.write_text("upn\n" + "\n".join(chosen) + "\n")
    before = rig.members(AMERICAS)

    out = io.StringIO()
    dry = await rollout_file(args(path, dry_run=True, json=True), rig.deps, rig.records, out, io.StringIO())
    planned = json.loads(out.getvalue())["people"]
    assert (dry, [(p["state"], p["waitlist_position"]) for p in planned]) == (
        EXIT_DONE,
        [("to_admit", None), ("to_admit", None), ("to_waitlist", 1), ("to_waitlist", 2), ("to_waitlist", 3)],
    )
    assert planned[2]["note"] == "would wait for a seat (position 1)"

    out = io.StringIO()
    code = await rollout_file(args(path, json=True), rig.deps, rig.records, out, io.StringIO())
    document = json.loads(out.getvalue())
    people = document["people"]
    waiters = [p["user_id"] for p in people[2:]]
    assert (code, [p["state"] for p in people]) == (
        EXIT_DONE,
        ["added", "added", "pending", "pending", "pending"],
    )
    assert [p["note"] for p in people[2:]] == [f"waiting for a seat (position {n})" for n in (1, 2, 3)]
    assert document["totals"]["waiting_for_seat"] == 3
    assert len(rig.members(AMERICAS) - before) == 2
    assert [e.user_id for e in await rig.deps.seats.waitlist(AMERICAS)] == waiters
    [rule] = await rig.records.rules()
    assert rule.user_ids == frozenset(p["user_id"] for p in people)

    assert await listed_states(rig) == {"added": 2, "pending": 3}

    control(rig.info, "POST", f"/skus/{COPILOT}/seats", {"enabled": consumed + 20})
    served = await serve_waiting(rig.deps, correlation_id="seats-freed", version="seats-freed:1")
    assert [(a.user_id, a.result) for a in served.admitted] == [(u, Result.ADDED) for u in waiters]
    assert rig.members(AMERICAS) - before == {p["user_id"] for p in people}
    assert await rig.deps.seats.waitlist(AMERICAS) == ()
    assert await listed_states(rig) == {"added": 2, "added_from_waitlist": 3}


async def listed_states(rig: Rig) -> dict[str, int]:
    """`seatkeeper rollout list --json`: the one rollout's people by state."""
    out = io.StringIO()
    assert await list_rollouts(rig.records, out, as_json=True, seats=rig.deps.seats) == EXIT_DONE
    [entry] = json.loads(out.getvalue())
    states: dict[str, int] = entry["by_state"]
    return states


def seatkeeper(info: SandboxInfo, data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m seatkeeper ARGV` (the console script's `main()`), its settings from the environment as an
    admin's shell gives them: sandbox mode through the ready file, state in its own data directory."""
    ready = data / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(info)), encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEATKEEPER_")}
    environ |= {
        "SEATKEEPER_SANDBOX_READY_FILE": str(ready),
        "SEATKEEPER_DATA_DIR": str(data / "state"),
        "SEATKEEPER_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "seatkeeper", *argv],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_command_runs_through_main_with_the_service_s_settings(rig: Rig) -> None:
    """`seatkeeper rollout FILE --group G --json` through `main()` and the composition root (settings,
    policy, Graph over HTTPS, the SQLite state in the data directory): the people are added and the rollout
    is recorded, so `seatkeeper rollout list` in a new process finds it."""
    eligible, _, _ = await candidates(rig.deps.graph)
    chosen = eligible[:3]
    path = rig.tmp / "cli wave.csv"
    path.write_text("upn\n" + "\n".join(chosen) + "\n")
    before = rig.members(AMERICAS)
    run = seatkeeper(rig.info, rig.tmp, "rollout", str(path), "--group", AMERICAS, "--json")
    assert run.returncode == EXIT_DONE, run.stderr
    document = json.loads(run.stdout)
    added = {p["user_id"] for p in document["people"] if p["state"] == "added"}
    assert (document["rollout"], len(added), rig.members(AMERICAS) - before) == ("cli-wave", 3, added)
    listed = seatkeeper(rig.info, rig.tmp, "rollout", "list", "--json")
    assert listed.returncode == EXIT_DONE, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["group_id"], entry["by_state"]) == ("cli-wave", AMERICAS, {"added": 3})
