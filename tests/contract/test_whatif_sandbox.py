"""`seatkeeper whatif` against the sandbox over HTTPS: every user is read page by page, the report agrees
with the tenant's own data, says which losers Seatkeeper would remove (only those it added), a
membershipRule edit is previewed, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from handlers.tenant_reads import TenantReads
from seatkeeper.adapters.clocks import WallClock
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.bootstrap import build_graph
from seatkeeper.cli.whatif import preview, rule_previews
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.policy import Policy
from seatkeeper.core.seat_ports import Addition
from seatkeeper.core.sensitive import Secret
from seatkeeper.policy_file import parse_policy
from seatkeeper.settings import CredentialKind, GraphSettings
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
COPILOT_GROUPS = {
    AMERICAS,
    "43767abd-c08a-4ccf-b141-a0a274d91aa4",
    "6b258a2a-6162-41e4-a550-b0bf7529a2e8",
}
DYNAMIC_SALES = "54497e83-235d-475e-ab4b-bccbc006bfc0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def control(info: SandboxInfo, method: str, path: str) -> Any:
    with httpx.Client(verify=info.ssl_context(), trust_env=False) as client:
        response = client.request(method, f"{info.control_url}{path}")
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture
async def graph(tenant: SandboxInfo) -> AsyncIterator[GraphPort]:
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
    client, closers = build_graph(settings)
    try:
        yield client
    finally:
        for close in reversed(closers):
            await close()


def sandbox_policy(hr_rules: list[dict[str, Any]]) -> Policy:
    """The sandbox's policy with these HR rules instead of its own."""
    data = yaml.safe_load((ROOT / "policies" / "sandbox.yaml").read_text(encoding="utf-8"))
    data["hr_rules"] = hr_rules
    return parse_policy(yaml.safe_dump(data), source="sandbox-variant.yaml")


SALES_ONLY = [{"name": "sales", "when": {"department": {"equals": "Sales"}}, "group_id": AMERICAS}]


async def users(graph: GraphPort) -> dict[str, Mapping[str, Any]]:
    select = "id,department,accountEnabled,licenseAssignmentStates"
    return {
        str(u["id"]).lower(): u
        async for page in graph.pages("/users", params={"$select": select, "$top": "999"})
        for u in page.items
    }


@pytest.fixture
def seats(tmp_path: Path) -> Iterator[StateSeatStore]:
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        yield StateSeatStore(state, timeout=timedelta(hours=1))
    finally:
        state.close()


async def test_whatif_agrees_with_the_tenant_and_writes_nothing(
    tenant: SandboxInfo, graph: GraphPort, seats: StateSeatStore
) -> None:
    """From no rules (people stay where they are) to "Sales goes to Americas": losses are members of
    Copilot groups outside Sales, gains and group changes are in Sales; of the losers, Seatkeeper would
    remove only the one it added; the membershipRule preview adds exactly the enabled Marketing people;
    every request is a read."""
    everyone = await users(graph)
    ours = next(
        u
        for u, d in sorted(everyone.items())
        if d.get("department") != "Sales"
        and any(
            str(s.get("assignedByGroup")).lower() == AMERICAS and s.get("state") == "Active"
            for s in d.get("licenseAssignmentStates") or []
        )
    )
    await seats.record_addition(Addition(ours, AMERICAS, datetime(2026, 1, 5, tzinfo=UTC), "rollout pilot"))
    control(tenant, "POST", "/counters/reset")
    records: list[Mapping[str, Any]] = []
    previews = await rule_previews(
        graph,
        [(DYNAMIC_SALES, 'user.department -in ["Sales","Marketing"] -and user.accountEnabled -eq true')],
    )
    summary = await preview(
        graph,
        TenantReads(graph, WallClock()),
        sandbox_policy([]),
        sandbox_policy(SALES_ONLY),
        previews,
        seats=seats,
        emit=records.append,
    )
    counters = control(tenant, "GET", "/counters")
    assert sum(counters["writes"].values()) == 0

    def department(user_id: str) -> str:
        return str(everyone[user_id].get("department"))

    def in_copilot_group(user_id: str) -> bool:
        states = everyone[user_id].get("licenseAssignmentStates") or []
        return any(str(s.get("assignedByGroup")).lower() in COPILOT_GROUPS for s in states)

    def holds_active_seat(user_id: str) -> bool:
        states = everyone[user_id].get("licenseAssignmentStates") or []
        return any(
            str(s.get("assignedByGroup")).lower() in COPILOT_GROUPS and s.get("state") == "Active"
            for s in states
        )

    people = [r for r in records if r["type"] == "person"]
    by_change: dict[str, list[str]] = {}
    for record in people:
        by_change.setdefault(record["change"], []).append(record["user_id"])
    assert by_change["lose"], "the sandbox has Copilot members outside Sales"
    assert all(in_copilot_group(u) and department(u) != "Sales" for u in by_change["lose"])
    assert all(
        department(u) == "Sales" for u in by_change.get("gain", []) + by_change.get("change_group", [])
    )
    assert all(department(u) == "Sales" for u in by_change.get("blocked", []))
    removes = {r["user_id"] for r in people if r["change"] == "lose" and r["removal"]["seatkeeper_removes"]}
    assert removes == {ours}
    left = len(by_change["lose"]) - 1
    assert summary["removals"]["lose"] == {
        "seatkeeper_removes": 1,
        "left_for_an_admin": left,
        "left_because": {"not_added_by_seatkeeper": left},
    }
    assert summary["people"] == len(everyone)
    assert (summary["gain"], summary["lose"]) == (len(by_change.get("gain", [])), len(by_change["lose"]))
    # A loser frees a seat only if their Copilot license is active (one in error holds none).
    freed = [u for u in by_change["lose"] if holds_active_seat(u)]
    [balance] = summary["seats"]
    assert balance["after"] == balance["consumed"] + summary["gain"] - len(freed)

    marketing = {
        u for u, d in everyone.items() if d.get("department") == "Marketing" and d.get("accountEnabled")
    }
    joins = {r["user_id"] for r in records if r["type"] == "membership_rule" and r["change"] == "join"}
    assert joins == marketing
    assert summary["membership_rules"][0]["leaves"] == 0
