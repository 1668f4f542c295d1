"""A member who left: is the Copilot seat back? Entra keeps a leaver's group license (`DependencyViolation`,
seat still consumed) when another product of the user depends on a plan in it; Seatkeeper must say so,
look again until it is fixed, and resolve the incident then."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.admission import Result, admit
from handlers.verification import verify_members
from seatkeeper.core.commands import RaiseAlert, ReleaseReservation, ScheduleRecheck
from seatkeeper.core.incidents import Cause
from seatkeeper.core.license_alerts import LICENSE_NOT_ACTIVE
from seatkeeper.core.license_errors import LicenseError
from seatkeeper.core.license_messages import AdmitRequest, Change, LicenseCheck
from seatkeeper.core.people import AssignmentState, LicenseAssignment
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import ReleaseReason
from seatkeeper.core.verification import Status, next_removal_check_at, verify, verify_removal
from tests.unit.license_world import World, build_world, sku_json, user_json
from tests.unit.test_gate_builders import COPILOT, E3, GROUP, NOW, USER, active, catalogue, person, policy

DAY = timedelta(hours=24)
REMOVED_AT = NOW - timedelta(minutes=1)


def _kept(error: str = "DependencyViolation") -> LicenseAssignment:
    return LicenseAssignment(
        COPILOT, AssignmentState.ACTIVE_WITH_ERROR, GROUP, LicenseError(error), error, last_updated=NOW
    )


def test_a_leaver_whose_license_is_gone_has_its_seat_back_and_incident_resolved() -> None:
    """No entry of the group is left: seat back, and the user's license incident (if open) resolves."""
    result = verify_removal(
        person(E3), group=policy().licensing_groups[0], policy=policy(), catalogue=catalogue(),
        removed_at=REMOVED_AT, now=NOW,
    )  # fmt: skip
    assert result.status is Status.REMOVED
    signals = [c.signal for c in result.commands if isinstance(c, RaiseAlert)]
    assert [(s.key.subject, s.key.problem, s.cause) for s in signals] == [
        (f"{USER}/{COPILOT}", LICENSE_NOT_ACTIVE, Cause.GONE)
    ]


def test_a_leaver_kept_by_dependency_violation_is_alerted_and_looked_at_again() -> None:
    """The group's entry stays in DependencyViolation: alert with evidence, re-check as a removal."""
    leaver = person(E3, states=(active(E3), _kept()))
    result = verify_removal(
        leaver, group=policy().licensing_groups[0], policy=policy(), catalogue=catalogue(),
        removed_at=REMOVED_AT, now=NOW,
    )  # fmt: skip
    assert (result.status, result.error, result.reasons) == (
        Status.ERROR,
        LicenseError.DEPENDENCY_VIOLATION,
        (Reason.LICENSE_ERROR,),
    )
    [alert] = [c.signal for c in result.commands if isinstance(c, RaiseAlert)]
    assert (alert.key.problem, alert.cause, alert.title) == (
        LICENSE_NOT_ACTIVE,
        Cause.PRESENT,
        "Other products depend on this license",
    )
    assert "left" in {f.label: f.value for f in alert.evidence}["Membership"]
    assert {f.label: f.value for f in alert.evidence}["Other licenses"] == "SPE_E3"
    [recheck] = [c for c in result.commands if isinstance(c, ScheduleRecheck)]
    assert (recheck.removed, recheck.added_at, recheck.due_at) == (
        True,
        REMOVED_AT,
        REMOVED_AT + timedelta(minutes=2),
    )
    assert ReleaseReservation(USER, GROUP, ReleaseReason.CANCELLED) in result.commands


def test_another_error_on_the_sku_is_not_resolved_by_a_removal() -> None:
    """Still in error through another group: the removal does not resolve the user's incident."""
    other = LicenseAssignment(COPILOT, AssignmentState.ERROR, "another-group", LicenseError.COUNT_VIOLATION)
    result = verify_removal(
        person(E3, states=(active(E3), other)), group=policy().licensing_groups[0], policy=policy(),
        catalogue=catalogue(), removed_at=REMOVED_AT, now=NOW,
    )  # fmt: skip
    assert (result.status, result.commands) == (Status.REMOVED, ())


@pytest.mark.parametrize(
    ("elapsed", "due_after_removal"),
    [
        pytest.param(timedelta(0), timedelta(minutes=2), id="first-growing-delay"),
        pytest.param(DAY - timedelta(minutes=1), DAY, id="the-deadline"),
        pytest.param(DAY, 2 * DAY, id="then-daily"),
        pytest.param(3 * DAY + timedelta(hours=5), 4 * DAY, id="still-daily"),
    ],
)
def test_removal_checks_grow_then_repeat_daily(elapsed: timedelta, due_after_removal: timedelta) -> None:
    """Nobody else watches a leaver, so the checks never stop while the seat is kept."""
    assert next_removal_check_at(REMOVED_AT, REMOVED_AT + elapsed, DAY) == REMOVED_AT + due_after_removal


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built, close = build_world(tmp_path)
    yield built
    close()


@pytest.mark.anyio
async def test_a_kept_seat_is_not_handed_to_the_waitlist_until_it_is_back(world: World) -> None:
    """One seat: A holds it, B waits. A leaves but keeps the seat (DependencyViolation): B still waits, an
    admin is told, a removal re-check is scheduled; once the entry is gone, B is admitted and it resolves."""
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=11, consumed=10)
    first = world.tenant.add_user(user_json(21))
    [admission] = await admit(
        [AdmitRequest(first, GROUP, "test", "tester")], world.deps, correlation_id="c", version="v"
    )
    assert admission.result is Result.ADDED
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=11, consumed=11)
    second = world.tenant.add_user(user_json(22))
    [waiting] = await admit(
        [AdmitRequest(second, GROUP, "test", "tester")], world.deps, correlation_id="c", version="v"
    )
    assert waiting.result is Result.PENDING
    world.sender.sent.clear()

    world.tenant.members[GROUP].remove(first)
    world.tenant.set_license(first, "ActiveWithError", "DependencyViolation")
    (checked,), served = await verify_members(
        [LicenseCheck(first, GROUP, Change.REMOVED)], world.deps, correlation_id="c", version="v"
    )
    assert (checked.status, checked.error, served.admitted) == ("error", "DependencyViolation", ())
    assert (LICENSE_NOT_ACTIVE, "present") in world.sender.alerts()
    [(_, due, payload)] = world.sender.rechecks()
    assert (payload["change"], due) == ("removed", world.clock.now() + timedelta(minutes=2))

    # The admin removes the dependent product; group-based licensing takes the seat back.
    world.sender.sent.clear()
    world.clock.advance(timedelta(minutes=2))
    world.tenant.users[first]["licenseAssignmentStates"] = []
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=11, consumed=10)
    (again,), served = await verify_members(
        [LicenseCheck(first, GROUP, Change.REMOVED, added_at=NOW)],
        world.deps,
        correlation_id="c",
        version="v2",
    )
    assert again.status == "removed"
    assert (LICENSE_NOT_ACTIVE, "gone") in world.sender.alerts()
    assert [a.user_id for a in served.admitted if a.result is Result.ADDED] == [second]


@pytest.mark.parametrize(
    "early",
    [pytest.param(timedelta(0), id="on-time"), pytest.param(timedelta(seconds=1), id="a-second-early")],
)
def test_a_recheck_handled_slightly_early_schedules_the_next_one_not_itself(early: timedelta) -> None:
    """The 2-minute re-check handled a second early (queue/worker skew, the local host's clock cache) must
    schedule the 4-minute one: the same due time would be the same message id, dropped, ending the chain."""
    now = NOW + timedelta(minutes=2) - early
    member = person(E3, states=(active(E3),))
    pending = verify(
        member,
        group=policy().licensing_groups[0],
        policy=policy(),
        catalogue=catalogue(),
        added_at=NOW,
        now=now,
    )
    leaver = verify_removal(
        person(E3, states=(active(E3), _kept())), group=policy().licensing_groups[0], policy=policy(),
        catalogue=catalogue(), removed_at=NOW, now=now,
    )  # fmt: skip
    assert (pending.recheck_at, leaver.recheck_at) == (NOW + timedelta(minutes=4), NOW + timedelta(minutes=4))


@pytest.mark.anyio
async def test_a_check_is_made_as_of_its_due_time_when_the_handlers_clock_lags(world: World) -> None:
    """The queue delivered the 2-minute re-check while the handler's clock still read the add time (the
    local host follows a sandbox clock jump with a delay): the next re-check is the 4-minute one."""
    user = world.tenant.add_user(user_json(23))
    [admission] = await admit(
        [AdmitRequest(user, GROUP, "test", "tester")], world.deps, correlation_id="c", version="v"
    )
    assert admission.result is Result.ADDED
    [(_, first_due, _)] = world.sender.rechecks()
    assert first_due is not None
    world.sender.sent.clear()
    added = world.clock.now()
    due = LicenseCheck(user, GROUP, Change.RECHECK, added, source="recheck", due_at=first_due)
    (checked,), _ = await verify_members([due], world.deps, correlation_id="c", version="v")
    assert checked.status == "pending"
    assert [when for _, when, _ in world.sender.rechecks()] == [added + timedelta(minutes=4)]
