"""The sweep resolves the gate's incident for a pending person's blocker once it has cleared."""

from __future__ import annotations

import pytest

from handlers.alerts import handle_alert
from seatkeeper.core.incidents import Cause, Decision, alert_message
from seatkeeper.core.license_alerts import finding_alert
from seatkeeper.core.people import person_from_graph
from seatkeeper.core.reasons import Reason
from tests.unit.test_reconcile import GROUP, POLICY, T0, Rig, _user

pytestmark = pytest.mark.anyio
PROBLEM = f"gate.{Reason.NO_USAGE_LOCATION.value}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _open_incident(rig: Rig, user: dict[str, object]) -> None:
    """The incident admission opened when it parked the person (as its alert would)."""
    signal = finding_alert(
        Reason.NO_USAGE_LOCATION, person=person_from_graph(user), now=T0, sentence="parked", group_id=GROUP
    )
    assert signal is not None
    message = alert_message(signal, correlation_id="admission", version="1")
    outcome = await handle_alert(
        message.body(), store=rig.store, channels={}, alerts=POLICY.alerts, clock=rig.clock
    )
    assert outcome.decision is Decision.OPENED


async def test_a_cleared_blocker_resolves_its_incident_and_a_standing_one_does_not() -> None:
    """Usage location set: the admit is queued and the incident resolved; still missing: it stays open."""
    rig = Rig()
    cleared, blocked = _user("p-1", location="DE"), _user("p-2", location=None)
    rig.others = [cleared, blocked]
    for user in (cleared, blocked):
        await rig.seats.record_pending(user["id"], GROUP, (Reason.NO_USAGE_LOCATION,), T0, now=T0)
        await _open_incident(rig, {**user, "usageLocation": None})
    await rig.sweep()
    decisions = await rig.deliver_alerts()
    assert [a for a in rig.alerts() if a[1] == PROBLEM] == [("p-1", PROBLEM, Cause.GONE)]
    assert Decision.RESOLVED in decisions
