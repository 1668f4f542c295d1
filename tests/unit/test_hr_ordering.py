"""Per-person ordering by CloudEvents time, and the removal-safety rules (ownership, blast radius)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.hr_events import HrEvent, HrEventType, HrRecord
from seatkeeper.core.hr_ordering import Order, is_current, order, record_for
from seatkeeper.core.incidents import Scope
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.removal_safety import (
    GuardVerdict,
    RemovalRefusal,
    blast_radius_alert,
    guard,
    removal_refusal,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
GROUP = "43767abd-c08a-4ccf-b141-a0a274d91aa4"


def hr(kind: HrEventType, event_id: str, recorded: timedelta, effective: timedelta = timedelta()) -> HrEvent:
    return HrEvent(event_id, "/hr", kind, T0 + recorded, T0 + effective, HrRecord("E1"), "h")


JOIN = hr(HrEventType.JOINER, "j1", timedelta(0), timedelta(days=30))
LEAVE = hr(HrEventType.LEAVER, "l1", timedelta(hours=1), timedelta(days=1))
REHIRE = hr(HrEventType.JOINER, "j2", timedelta(days=60), timedelta(days=61))


@pytest.mark.parametrize(
    ("applied", "arriving", "expected"),
    [
        pytest.param((), JOIN, Order.APPLY, id="first-event"),
        pytest.param((JOIN,), JOIN, Order.DUPLICATE, id="replay"),
        pytest.param((JOIN,), LEAVE, Order.APPLY, id="leaver-after-joiner"),
        pytest.param((LEAVE,), JOIN, Order.STALE, id="joiner-arriving-late"),
        pytest.param((JOIN, LEAVE), REHIRE, Order.APPLY, id="rehire"),
        pytest.param((REHIRE,), LEAVE, Order.STALE, id="old-leaver-after-rehire"),
    ],
)
def test_order(applied: tuple[HrEvent, ...], arriving: HrEvent, expected: Order) -> None:
    """Events apply in the order HR recorded them, whatever order they arrive in."""
    record = None
    for event in applied:
        record = record_for(event, record, T0)
    assert order(record, arriving) is expected


def test_equal_times_are_ordered_by_source_and_id() -> None:
    """Two events recorded at the same instant: the same one wins everywhere."""
    a = replace(JOIN, id="a")
    b = replace(LEAVE, id="b", recorded_at=JOIN.recorded_at)
    assert order(record_for(a, None, T0), b) is Order.APPLY
    assert order(record_for(b, None, T0), a) is Order.STALE


def test_a_leaver_rescinds_a_hire_that_has_not_started() -> None:
    """Once the leaver applies, the joiner's scheduled action is no longer current."""
    record = record_for(LEAVE, record_for(JOIN, None, T0), T0)
    assert not is_current(record, JOIN)
    assert is_current(record, LEAVE)


def test_the_account_wait_restarts_only_for_another_kind() -> None:
    """A second joiner keeps the first one's first_seen; a rehire after a leaver starts afresh."""
    first = record_for(JOIN, None, T0)
    later = T0 + timedelta(hours=5)
    assert record_for(replace(JOIN, id="j1b"), first, later).first_seen == T0
    assert record_for(REHIRE, record_for(LEAVE, first, later), later + timedelta(1)).first_seen > T0


def group(*, dynamic: bool = False) -> GroupSnapshot:
    return GroupSnapshot(GROUP, "EMEA", frozenset({"DynamicMembership"}) if dynamic else frozenset())


def policy(**flags: bool) -> Policy:
    return Policy(
        licensing_groups=(LicensingGroup(GROUP, "EMEA", ("639dec6b-bb19-468b-871c-c5c441c4b0cb",), **flags),),
        protected_users=frozenset({"boss@contoso.example"}),
    )


@pytest.mark.parametrize(
    ("pol", "snapshot", "upn", "added", "expected"),
    [
        pytest.param(policy(), group(), None, True, None, id="added-by-us"),
        pytest.param(policy(), group(), None, False, RemovalRefusal.NOT_ADDED_BY_SEATKEEPER, id="not-ours"),
        pytest.param(policy(authoritative=True), group(), None, False, None, id="authoritative"),
        pytest.param(
            policy(observe_only=True), group(), None, True, RemovalRefusal.OBSERVE_ONLY, id="observe"
        ),
        pytest.param(
            policy(), group(dynamic=True), None, True, RemovalRefusal.GROUP_NOT_WRITABLE, id="dynamic"
        ),
        pytest.param(
            policy(), group(), "BOSS@contoso.example", True, RemovalRefusal.PROTECTED_USER, id="protected"
        ),
        pytest.param(
            Policy(licensing_groups=()),
            group(),
            None,
            True,
            RemovalRefusal.NOT_A_LICENSING_GROUP,
            id="unknown",
        ),
    ],
)
def test_removal_refusal(
    pol: Policy, snapshot: GroupSnapshot, upn: str | None, added: bool, expected: RemovalRefusal | None
) -> None:
    """Only members Seatkeeper added, unless the group is authoritative; never protected or read-only."""
    assert (
        removal_refusal(pol, user_id="u1", user_principal_name=upn, group=snapshot, added_by_seatkeeper=added)
        is expected
    )


@pytest.mark.parametrize(
    ("tripped", "planned", "expected"),
    [
        pytest.param(False, [T0] * 3, GuardVerdict.PROCEED, id="at-limit"),
        pytest.param(False, [T0] * 4, GuardVerdict.HOLD, id="over-limit"),
        pytest.param(
            False, [T0 - timedelta(hours=2)] * 10 + [T0], GuardVerdict.PROCEED, id="old-ones-expire"
        ),
        pytest.param(True, [T0], GuardVerdict.HOLD, id="tripped-holds-everything"),
    ],
)
def test_blast_radius_guard(tripped: bool, planned: list[datetime], expected: GuardVerdict) -> None:
    """More than the limit within an hour holds; a tripped guard holds until an admin decides."""
    assert guard(tripped=tripped, planned_at=planned, now=T0, limit=3) is expected


def test_one_incident_key_for_all_held_removals() -> None:
    """Every held removal raises the same incident key: one incident, not one per person."""
    first = blast_radius_alert(held=51, limit=50, now=T0)
    later = blast_radius_alert(held=80, limit=50, now=T0 + timedelta(minutes=5))
    assert first.key == later.key
    assert first.key.scope is Scope.SERVICE
