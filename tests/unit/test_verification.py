"""Verification after the add as tables: re-check schedule, done / pending / stuck, each error's action."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from seatkeeper.core.commands import (
    Command,
    JoinWaitlist,
    MarkSeatActive,
    RaiseAlert,
    ReleaseReservation,
    Reprocess,
    ScheduleRecheck,
    SetUsageLocation,
)
from seatkeeper.core.incidents import SEAT_HEADROOM_PROBLEM, Cause, Scope, alert_payload, parse_alert
from seatkeeper.core.license_alerts import LICENSE_NOT_ACTIVE
from seatkeeper.core.license_errors import LicenseError, parse_license_error
from seatkeeper.core.people import AssignmentState, LicenseAssignment, Person
from seatkeeper.core.policy import LicensingGroup, Policy, UsageLocationFix, UsageLocationSource
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import ReleaseReason, WaitSource
from seatkeeper.core.skus import SkuCatalogue
from seatkeeper.core.verification import (
    InferredConflict,
    Status,
    Verification,
    infer_conflicts,
    next_check_at,
    recheck_offsets,
    verify,
)
from tests.unit.test_gate_builders import (
    COPILOT,
    COPILOT_APPS,
    COPILOT_EDU,
    DEFAULT_SKUS,
    E3,
    EXO_PLAN_1,
    GROUP,
    NOW,
    OFFICE_APPS,
    OTHER_GROUP,
    PROJECT,
    SPB,
    USER,
    VISIO,
    active,
    catalogue,
    licensing_group,
    person,
    policy,
    sku,
)

ADDED = NOW - timedelta(minutes=30)
DAY = timedelta(hours=24)


def _failed(raw: str | None, *, state: AssignmentState = AssignmentState.ERROR) -> LicenseAssignment:
    return LicenseAssignment(COPILOT, state, GROUP, parse_license_error(raw), raw)


def _member(*copilot: LicenseAssignment, base: str = E3, **changes: Any) -> Person:
    return person(base, COPILOT, states=(active(base), *copilot), **changes)


def _verify(
    who: Person,
    *,
    now: datetime = NOW,
    reprocesses: int = 0,
    the_policy: Policy | None = None,
    group: LicensingGroup | None = None,
    the_catalogue: SkuCatalogue | None = None,
) -> Verification:
    group = group or licensing_group()
    return verify(
        who,
        group=group,
        policy=the_policy or policy(group),
        catalogue=the_catalogue or catalogue(),
        added_at=ADDED,
        now=now,
        reprocesses=reprocesses,
    )


def _kinds(commands: tuple[Command, ...]) -> list[type]:
    return [type(c) for c in commands]


# --- the schedule ------------------------------------------------------------------------------------------


def test_rechecks_grow_from_two_minutes_and_end_at_the_deadline() -> None:
    """Delays double from 2 minutes; the last look is exactly at the deadline."""
    minutes = [int(o.total_seconds() // 60) for o in recheck_offsets(DAY)]
    assert minutes == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1440]


def test_a_deadline_shorter_than_the_first_step_is_the_only_recheck() -> None:
    """A one-minute deadline means one look, at one minute."""
    assert recheck_offsets(timedelta(minutes=1)) == (timedelta(minutes=1),)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        pytest.param(timedelta(0), timedelta(minutes=2), id="at-the-add"),
        pytest.param(timedelta(minutes=2), timedelta(minutes=4), id="on-a-step-goes-to-the-next"),
        pytest.param(timedelta(minutes=30), timedelta(minutes=32), id="between-steps"),
        pytest.param(timedelta(hours=20), DAY, id="last-step-is-the-deadline"),
        pytest.param(DAY, None, id="at-the-deadline-no-more"),
        pytest.param(DAY * 2, None, id="past-the-deadline-no-more"),
    ],
)
def test_next_check_is_derived_from_the_add_time(elapsed: timedelta, expected: timedelta | None) -> None:
    """The due time depends only on the add and now, so a duplicate lands on the same due time."""
    due = next_check_at(ADDED, ADDED + elapsed, DAY)
    assert due == (ADDED + expected if expected is not None else None)


# --- done, pending, stuck ----------------------------------------------------------------------------------


def test_active_license_is_done_marks_the_seat_and_resolves_the_incident() -> None:
    """Active: done; the reservation learns since when; any open license incident is resolved."""
    since = NOW - timedelta(minutes=5)
    result = _verify(_member(active(COPILOT, group=GROUP, updated=since)))
    assert (result.status, result.reasons) == (Status.DONE, (Reason.LICENSE_ACTIVE,))
    assert result.commands[0] == MarkSeatActive(USER, GROUP, since)
    (alert,) = [c for c in result.commands if isinstance(c, RaiseAlert)]
    assert (alert.signal.key.problem, alert.signal.cause) == (LICENSE_NOT_ACTIVE, Cause.GONE)


def test_active_with_error_counts_as_done() -> None:
    """ActiveWithError is an active license."""
    result = _verify(_member(_failed("DependencyViolation", state=AssignmentState.ACTIVE_WITH_ERROR)))
    assert result.status is Status.DONE


def test_licensed_without_base_license_is_flagged_copilot_will_not_work() -> None:
    """A member licensed for Copilot but without an active base license gets the "will not work" alert."""
    result = _verify(_member(active(COPILOT, group=GROUP), base=VISIO))
    assert (result.status, result.reasons) == (
        Status.DONE,
        (Reason.LICENSE_ACTIVE, Reason.COPILOT_WILL_NOT_WORK),
    )
    problems = [c.signal.key.problem for c in result.commands if isinstance(c, RaiseAlert)]
    assert "gate.copilot_will_not_work" in problems
    assert "licensed, but Copilot will not work" in result.summary


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(person(E3), id="no-copilot-state-yet"),
        pytest.param(
            _member(LicenseAssignment(COPILOT, AssignmentState.DISABLED, GROUP)),
            id="group-assignment-disabled",
        ),
        pytest.param(_member(active(COPILOT, group=OTHER_GROUP)), id="active-only-through-another-group"),
        pytest.param(_member(active(COPILOT)), id="active-only-directly"),
    ],
)
def test_not_active_through_the_group_is_rechecked(who: Person) -> None:
    """Until the group's own assignment is active, verification looks again later."""
    result = _verify(who)
    assert (result.status, result.recheck_at) == (Status.PENDING, ADDED + timedelta(minutes=32))
    assert result.commands == (ScheduleRecheck(USER, GROUP, ADDED + timedelta(minutes=32), ADDED),)


def test_every_copilot_sku_of_the_group_must_be_active() -> None:
    """A group assigning two Copilot SKUs is done only when both are active."""
    group = licensing_group(copilot_sku_ids=(COPILOT, COPILOT_EDU))
    result = _verify(_member(active(COPILOT, group=GROUP)), group=group)
    assert result.status is Status.PENDING


def test_not_active_at_the_deadline_is_stuck() -> None:
    """Past the deadline: stuck, alerted, and the reservation released."""
    result = _verify(person(E3), now=ADDED + DAY)
    assert (result.status, result.reasons) == (Status.STUCK, (Reason.LICENSE_STUCK,))
    alert, release = result.commands
    assert isinstance(alert, RaiseAlert)
    assert (alert.signal.key.subject, alert.signal.key.problem) == (f"{USER}/{COPILOT}", LICENSE_NOT_ACTIVE)
    assert release == ReleaseReservation(USER, GROUP, ReleaseReason.EXPIRED)


def test_deadline_comes_from_the_policy() -> None:
    """A shorter verification deadline makes the member stuck sooner."""
    short = policy(verification_deadline=timedelta(minutes=10))
    assert _verify(person(E3), the_policy=short).status is Status.STUCK


# --- errors ------------------------------------------------------------------------------------------------

FIX_DE = policy(usage_location_fix=UsageLocationFix(UsageLocationSource.FIXED, "DE"))
HUMAN = [RaiseAlert, ReleaseReservation, ScheduleRecheck]

ERROR_CASES = {
    "count-violation-waits-for-a-seat": (
        "CountViolation",
        0,
        None,
        [ReleaseReservation, JoinWaitlist, RaiseAlert],
    ),
    "mutually-exclusive-needs-a-human": ("MutuallyExclusiveViolation", 0, None, HUMAN),
    "dependency-needs-a-human": ("DependencyViolation", 0, None, HUMAN),
    "uniqueness-needs-a-human": ("UniquenessViolation", 0, None, HUMAN),
    "usage-location-fixed-and-reprocessed": (
        "ProhibitedInUsageLocationViolation",
        0,
        FIX_DE,
        [SetUsageLocation, Reprocess, ScheduleRecheck],
    ),
    "usage-location-without-fix-source-needs-a-human": ("ProhibitedInUsageLocationViolation", 0, None, HUMAN),
    "usage-location-fix-already-tried-needs-a-human": (
        "ProhibitedInUsageLocationViolation",
        1,
        FIX_DE,
        HUMAN,
    ),
    "other-is-reprocessed-once": ("Other", 0, None, [Reprocess, ScheduleRecheck]),
    "others-old-spelling-is-reprocessed-once": ("Others", 0, None, [Reprocess, ScheduleRecheck]),
    "unknown-value-is-reprocessed-once": ("BrandNewViolation", 0, None, [Reprocess, ScheduleRecheck]),
    "error-state-without-value-is-reprocessed-once": (None, 0, None, [Reprocess, ScheduleRecheck]),
    "other-after-reprocess-needs-a-human": ("Other", 1, None, HUMAN),
    "unknown-after-reprocess-needs-a-human": ("BrandNewViolation", 1, None, HUMAN),
}


@pytest.mark.parametrize(
    ("raw", "reprocesses", "the_policy", "kinds"), ERROR_CASES.values(), ids=ERROR_CASES.keys()
)
def test_each_error_gets_its_action(
    raw: str | None, reprocesses: int, the_policy: Policy | None, kinds: list[type]
) -> None:
    """Every classified error leads to the documented action of the catalogue."""
    result = _verify(_member(_failed(raw)), reprocesses=reprocesses, the_policy=the_policy)
    assert (result.status, result.reasons) == (Status.ERROR, (Reason.LICENSE_ERROR,))
    assert _kinds(result.commands) == kinds


@pytest.mark.parametrize(
    ("raw", "reprocesses", "the_policy", "kinds"), ERROR_CASES.values(), ids=ERROR_CASES.keys()
)
def test_every_alert_travels_on_the_alerts_queue_intact(
    raw: str | None, reprocesses: int, the_policy: Policy | None, kinds: list[type]
) -> None:
    """Each alert verification raises is a valid `alerts` payload that parses back to the same signal."""
    result = _verify(_member(_failed(raw)), reprocesses=reprocesses, the_policy=the_policy)
    for alert in (c for c in result.commands if isinstance(c, RaiseAlert)):
        assert parse_alert(alert_payload(alert.signal)) == alert.signal


@pytest.mark.parametrize(
    ("who", "now"),
    [
        pytest.param(_member(active(COPILOT, group=GROUP)), NOW, id="done"),
        pytest.param(_member(active(COPILOT, group=GROUP), base=VISIO), NOW, id="copilot-will-not-work"),
        pytest.param(person(E3), ADDED + DAY, id="stuck"),
    ],
)
def test_done_and_stuck_alerts_travel_intact(who: Person, now: datetime) -> None:
    """Resolving, "will not work" and "stuck" signals are valid `alerts` payloads too."""
    result = _verify(who, now=now)
    alerts = [c for c in result.commands if isinstance(c, RaiseAlert)]
    assert alerts
    for alert in alerts:
        assert parse_alert(alert_payload(alert.signal)) == alert.signal


def test_count_violation_keeps_the_members_place_from_the_add() -> None:
    """A member in CountViolation waits from the time it was added, and the seat incident is the SKU's."""
    result = _verify(_member(_failed("CountViolation")))
    assert JoinWaitlist(USER, GROUP, ADDED, WaitSource.COUNT_VIOLATION) in result.commands
    (alert,) = [c for c in result.commands if isinstance(c, RaiseAlert)]
    assert (alert.signal.key.scope, alert.signal.key.problem) == (Scope.SKU, SEAT_HEADROOM_PROBLEM)


def test_usage_location_fix_writes_the_configured_value_and_counts_the_reprocess() -> None:
    """The configured usage location is set, and the next check knows a reprocess was spent."""
    result = _verify(_member(_failed("ProhibitedInUsageLocationViolation")), the_policy=FIX_DE)
    assert result.commands[0] == SetUsageLocation(USER, "DE")
    recheck = result.commands[-1]
    assert isinstance(recheck, ScheduleRecheck)
    assert recheck.reprocesses == 1


def test_usage_location_already_equal_to_the_fix_needs_a_human() -> None:
    """Setting the same value again cannot help: an admin must act."""
    result = _verify(
        _member(_failed("ProhibitedInUsageLocationViolation"), usage_location="DE"), the_policy=FIX_DE
    )
    assert _kinds(result.commands) == HUMAN


def test_unknown_error_is_reported_as_graph_sent_it() -> None:
    """An undocumented error value is classified UNKNOWN and quoted verbatim in the evidence."""
    result = _verify(_member(_failed("BrandNewViolation")), reprocesses=1)
    assert (result.error, result.raw_error) == (LicenseError.UNKNOWN, "BrandNewViolation")
    (alert,) = [c for c in result.commands if isinstance(c, RaiseAlert)]
    assert ("Error", "BrandNewViolation") in {(f.label, f.value) for f in alert.signal.evidence}


def test_errors_after_the_deadline_are_not_rechecked() -> None:
    """Past the deadline an error is alerted once more but no further re-check is scheduled."""
    result = _verify(_member(_failed("DependencyViolation")), now=ADDED + DAY)
    assert _kinds(result.commands) == [RaiseAlert, ReleaseReservation]


def test_mutually_exclusive_names_the_inferred_conflicts() -> None:
    """The licenses sharing service plans with Copilot are named, labelled as inferred."""
    project = sku(PROJECT, "PROJECT_BUNDLE", COPILOT_APPS)
    who = person(
        E3, PROJECT, COPILOT, states=(active(E3), active(PROJECT), _failed("MutuallyExclusiveViolation"))
    )
    result = _verify(who, the_catalogue=catalogue(*DEFAULT_SKUS, project))
    assert result.conflicts == (InferredConflict(PROJECT, "PROJECT_BUNDLE", ("M365_COPILOT_APPS",), True),)
    (alert,) = [c for c in result.commands if isinstance(c, RaiseAlert)]
    facts = {f.label: f.value for f in alert.signal.evidence}
    assert facts["Conflicting plans (inferred)"] == "PROJECT_BUNDLE: M365_COPILOT_APPS"


def test_no_shared_plan_says_so() -> None:
    """Without a shared plan the alert points to the audit log instead of guessing."""
    result = _verify(_member(_failed("MutuallyExclusiveViolation")))
    (alert,) = [c for c in result.commands if isinstance(c, RaiseAlert)]
    facts = {f.label: f.value for f in alert.signal.evidence}
    assert facts["Conflicting plans (inferred)"].startswith("no shared service plan")


def test_infer_conflicts_ignores_skus_missing_from_the_catalogue() -> None:
    """A license the catalogue does not list cannot be compared and is skipped."""
    unknown = "99999999-0000-4000-8000-000000000000"
    assert infer_conflicts(person(E3, unknown), GROUP, (COPILOT,), catalogue()) == ()


def test_plans_of_one_family_are_inferred_conflicts() -> None:
    """A group giving E3 and Copilot to a user who holds Business Premium: Exchange Plan 1 vs Plan 2."""
    premium = sku(SPB, "SPB", EXO_PLAN_1, OFFICE_APPS)
    who = person(
        SPB,
        states=(
            active(SPB),
            LicenseAssignment(E3, AssignmentState.ERROR, GROUP, LicenseError.MUTUALLY_EXCLUSIVE_VIOLATION),
            LicenseAssignment(
                COPILOT, AssignmentState.ERROR, GROUP, LicenseError.MUTUALLY_EXCLUSIVE_VIOLATION
            ),
        ),
    )
    found = infer_conflicts(who, GROUP, (COPILOT,), catalogue(*DEFAULT_SKUS, premium))
    assert found == (
        InferredConflict(SPB, "SPB", ("EXCHANGE_S_STANDARD vs EXCHANGE_S_ENTERPRISE", "OFFICESUBSCRIPTION")),
    )


@pytest.mark.parametrize(
    ("the_policy", "group"),
    [
        pytest.param(FIX_DE, licensing_group(observe_only=True), id="observe-only-group"),
        pytest.param(
            policy(
                protected_users=frozenset({USER}),
                usage_location_fix=UsageLocationFix(UsageLocationSource.FIXED, "DE"),
            ),
            None,
            id="protected-user",
        ),
    ],
)
def test_no_tenant_write_for_observe_only_groups_or_protected_users(
    the_policy: Policy, group: LicensingGroup | None
) -> None:
    """Reprocess and usage-location fixes are dropped; the verdict stays the same."""
    chosen = group or licensing_group()
    fixed = Policy(
        licensing_groups=(chosen,),
        protected_users=the_policy.protected_users,
        usage_location_fix=the_policy.usage_location_fix,
    )
    result = _verify(_member(_failed("ProhibitedInUsageLocationViolation")), the_policy=fixed, group=chosen)
    assert result.status is Status.ERROR
    assert not any(isinstance(c, SetUsageLocation | Reprocess) for c in result.commands)
