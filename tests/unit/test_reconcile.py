"""The reconciliation sweep with recording fakes: what it queues and alerts for each thing it can find."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers.alerts import handle_alert
from handlers.heartbeat import HEARTBEATS_TABLE, RECONCILE, RUNS_PARTITION
from handlers.reconcile import ReconcileDeps, SweepReport, run_reconciliation
from handlers.tenant_reads import TenantReads, user_path
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.core.group_health import Problem
from seatkeeper.core.incidents import ALERT_KIND, Cause, Decision, parse_alert
from seatkeeper.core.license_messages import ADMIT_KIND, LICENSE_CHECK_KIND
from seatkeeper.core.notifications import GROUP_CHANGED
from seatkeeper.core.policy import Alerts, LicensingGroup, Policy, SeatHeadroom
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import WaitlistEntry, WaitSource
from tests.unit.graph_fakes import FakeGraph
from tests.unit.sweep_fakes import MemoryStore, MovableClock, RecordingSender

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
GROUP = "a3193522-ecd3-4c1a-80cd-b107376dc077"
POLICY = Policy(
    licensing_groups=(LicensingGroup(GROUP, "Copilot - Americas", (COPILOT,)),),
    alerts=Alerts(seat_headroom=SeatHeadroom(alert_below=3, clear_at=6)),
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _sku(sku_id: str, part: str, enabled: int, consumed: int) -> dict[str, Any]:
    return {
        "skuId": sku_id,
        "skuPartNumber": part,
        "capabilityStatus": "Enabled",
        "prepaidUnits": {"enabled": enabled},
        "consumedUnits": consumed,
        "servicePlans": [],
    }


def _user(
    user_id: str, *, base: bool = True, copilot: str | None = None, location: str | None = "US"
) -> dict[str, Any]:
    licenses: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    if base:
        licenses.append({"skuId": E3, "disabledPlans": []})
        states.append({"skuId": E3, "state": "Active", "error": "None", "assignedByGroup": None})
    if copilot is not None:
        states.append({"skuId": COPILOT, "state": copilot, "error": "None", "assignedByGroup": GROUP})
        if copilot == "Active":
            licenses.append({"skuId": COPILOT, "disabledPlans": []})
    return {
        "@odata.type": "#microsoft.graph.user",
        "id": user_id,
        "userPrincipalName": f"{user_id}@contoso.example",
        "accountEnabled": True,
        "usageLocation": location,
        "assignedLicenses": licenses,
        "licenseAssignmentStates": states,
    }


class Rig:
    """A fake tenant behind the Graph port, the real seat store over an in-memory state store."""

    def __init__(self) -> None:
        self.clock = MovableClock(T0)
        self.store = MemoryStore()
        self.sender = RecordingSender()
        self.graph = FakeGraph()
        self.seats = StateSeatStore(self.store, timeout=timedelta(hours=24))
        self.group: dict[str, Any] = {
            "id": GROUP,
            "displayName": "Copilot - Americas",
            "groupTypes": [],
            "mailEnabled": False,
            "securityEnabled": True,
            "assignedLicenses": [{"skuId": COPILOT, "disabledPlans": []}],
            "licenseProcessingState": {"state": "ProcessingComplete"},
        }
        self.members: list[dict[str, Any]] = [_user("u-1", copilot="Active")]
        self.errors: list[str] = []
        self.seat_counts = (30, 10)
        self.others: list[dict[str, Any]] = []
        self.group_exists = True

    def publish(self) -> None:
        enabled, consumed = self.seat_counts
        self.graph.resources = {
            "/subscribedSkus": {"value": [_sku(COPILOT, "Microsoft_365_Copilot", enabled, consumed)]},
            f"/groups/{GROUP}/members": {"value": self.members},
            f"/groups/{GROUP}/membersWithLicenseErrors": {"value": [{"id": u} for u in self.errors]},
        }
        if self.group_exists:
            self.graph.resources[f"/groups/{GROUP}"] = self.group
        for user in (*self.members, *self.others):
            if user.get("@odata.type") == "#microsoft.graph.user":
                self.graph.resources[user_path(user["id"])] = user

    async def sweep(self) -> SweepReport:
        self.publish()
        self.sender.sent.clear()
        deps = ReconcileDeps(
            graph=self.graph,
            reads=TenantReads(self.graph, self.clock),
            seats=self.seats,
            state=self.store,
            sender=self.sender,
            clock=self.clock,
            policy=POLICY,
        )
        return await run_reconciliation(deps, correlation_id="sweep")

    def alerts(self) -> list[tuple[str, str, Cause]]:
        signals = [parse_alert(m.payload) for m in self.sender.of_kind(ALERT_KIND)]
        return [(s.key.subject, s.key.problem, s.cause) for s in signals]

    async def deliver_alerts(self) -> list[Decision]:
        """Feed the sent alerts to the incident manager (no channels): what each did."""
        return [
            (
                await handle_alert(
                    m.body(), store=self.store, channels={}, alerts=POLICY.alerts, clock=self.clock
                )
            ).decision
            for m in self.sender.of_kind(ALERT_KIND)
        ]


async def test_a_healthy_tenant_queues_the_catch_up_and_alerts_nothing() -> None:
    """All well: one delta catch-up per group, no alert, and the heartbeat is recorded."""
    rig = Rig()
    report = await rig.sweep()
    assert [m.kind for m in rig.sender.sent] == [GROUP_CHANGED.name]
    assert report.findings == []
    assert report.headroom == {COPILOT: 20}
    assert (HEARTBEATS_TABLE, RUNS_PARTITION, RECONCILE) in rig.store.rows


async def test_group_health_findings_become_group_incidents_and_resolve_when_fixed() -> None:
    """A nested group and a bundled product each open one group incident; fixing them resolves both."""
    rig = Rig()
    rig.members.append({"@odata.type": "#microsoft.graph.group", "id": "g-2", "displayName": "Pilots"})
    rig.group["assignedLicenses"].append({"skuId": E3, "disabledPlans": []})
    await rig.sweep()
    opened = rig.alerts()
    decisions = await rig.deliver_alerts()
    rig.members.pop()
    rig.group["assignedLicenses"].pop()
    rig.clock.advance(timedelta(minutes=30))
    await rig.sweep()
    closed = rig.alerts()
    resolved = await rig.deliver_alerts()
    await rig.sweep()  # nothing open any more: nothing more to say
    assert sorted(opened) == [
        (GROUP, Problem.NESTED_GROUPS.value, Cause.PRESENT),
        (GROUP, Problem.OTHER_PRODUCTS_BUNDLED.value, Cause.PRESENT),
    ]
    assert decisions == [Decision.OPENED, Decision.OPENED]
    assert sorted(closed) == [
        (GROUP, Problem.NESTED_GROUPS.value, Cause.GONE),
        (GROUP, Problem.OTHER_PRODUCTS_BUNDLED.value, Cause.GONE),
    ]
    assert resolved == [Decision.RESOLVED, Decision.RESOLVED]
    assert rig.alerts() == []


async def test_a_missing_licensing_group_is_an_incident() -> None:
    """A policy group Graph does not know opens `group.missing`."""
    rig = Rig()
    rig.group_exists = False
    report = await rig.sweep()
    assert [f.problem for f in report.findings] == [Problem.MISSING]
    assert rig.alerts() == [(GROUP, Problem.MISSING.value, Cause.PRESENT)]


async def test_members_with_license_errors_go_to_verification() -> None:
    """Each member Graph lists with a license error becomes one `license.check` (a re-check)."""
    rig = Rig()
    rig.members.append(_user("u-2", copilot="Error"))
    rig.errors = ["u-2"]
    report = await rig.sweep()
    checks = rig.sender.of_kind(LICENSE_CHECK_KIND)
    assert [(m.subject, m.payload["change"], m.payload["source"]) for m in checks] == [
        ("u-2", "recheck", "reconcile")
    ]
    assert report.license_checks == ["u-2"]


async def test_licensed_member_without_base_license_is_told_once_and_resolved() -> None:
    """'Licensed, but Copilot will not work' opens for the user; a base license resolves it."""
    rig = Rig()
    rig.members.append(_user("u-3", base=False, copilot="Active"))
    await rig.sweep()
    opened = rig.alerts()
    await rig.deliver_alerts()
    rig.members[-1] = _user("u-3", base=True, copilot="Active")
    rig.clock.advance(timedelta(minutes=30))
    await rig.sweep()
    problem = f"gate.{Reason.COPILOT_WILL_NOT_WORK.value}"
    assert opened == [("u-3", problem, Cause.PRESENT)]
    assert rig.alerts() == [("u-3", problem, Cause.GONE)]


async def test_pending_people_are_regated_only_when_their_blocker_cleared() -> None:
    """A pending person who now has a usage location is re-admitted; one still without is left alone."""
    rig = Rig()
    cleared, blocked = _user("p-1", location="DE"), _user("p-2", location=None)
    rig.others = [cleared, blocked]
    for user in (cleared, blocked):
        await rig.seats.record_pending(user["id"], GROUP, (Reason.NO_USAGE_LOCATION,), T0, now=T0)
    report = await rig.sweep()
    admits = rig.sender.of_kind(ADMIT_KIND)
    assert [(m.payload["person"], m.payload["group_id"]) for m in admits] == [("p-1", GROUP)]
    assert report.admits == ["p-1"]


async def test_seat_headroom_alerts_with_hysteresis() -> None:
    """Low seats open one SKU incident; 4 free (between the bounds) keeps it open; 6 free resolves it."""
    rig = Rig()
    decisions: list[Decision] = []
    for consumed in (28, 26, 24):
        rig.seat_counts = (30, consumed)
        rig.clock.advance(timedelta(minutes=30))
        await rig.sweep()
        decisions += await rig.deliver_alerts()
    rig.clock.advance(timedelta(minutes=30))
    await rig.sweep()
    assert decisions == [Decision.OPENED, Decision.UPDATED, Decision.RESOLVED]
    assert rig.alerts() == []


async def test_processing_stuck_is_measured_from_its_first_sighting() -> None:
    """`licenseProcessingState` unfinished for a day opens `group.license_processing_stuck`."""
    rig = Rig()
    rig.group["licenseProcessingState"] = {"state": "ProcessingInProgress"}
    first = await rig.sweep()
    rig.clock.advance(timedelta(hours=25))
    later = await rig.sweep()
    assert first.findings == []
    assert [f.problem for f in later.findings] == [Problem.LICENSE_PROCESSING_STUCK]


async def test_the_sweep_serves_the_waitlist_when_seats_are_free() -> None:
    """A member waiting after CountViolation gets a seat reserved and leaves the waitlist on the sweep."""
    rig = Rig()
    entry = WaitlistEntry("u-9", GROUP, T0, WaitSource.COUNT_VIOLATION)
    await rig.seats.join_waitlist(entry)
    report = await rig.sweep()
    assert report.waitlist_served == 1
    assert await rig.seats.waitlist() == ()
    assert [r.user_id for r in await rig.seats.reservations()] == ["u-9"]
