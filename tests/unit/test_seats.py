"""Seat arithmetic over data: free seats, when a reservation stops counting, racing for the last seats, and
the first-come-first-served waitlist."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from seatkeeper.core.seats import (
    ReleaseReason,
    Reservation,
    WaitlistEntry,
    WaitSource,
    free_seats,
    group_headroom,
    mark_active,
    open_reservations,
    release_reason,
    reservation_timeout,
    reserve,
    serve_waitlist,
    waitlist_order,
)
from seatkeeper.core.skus import PrepaidUnits, Sku, SkuCatalogue
from tests.unit.test_gate_builders import COPILOT, COPILOT_EDU, GROUP, NOW, OTHER_GROUP, catalogue, sku

DAY = timedelta(hours=24)


def _copilot(enabled: int, consumed: int, *, read_at: datetime = NOW) -> SkuCatalogue:
    return catalogue(
        sku(COPILOT, "Microsoft_365_Copilot", enabled=enabled, consumed=consumed), read_at=read_at
    )


def _held(user: str, *, opened: datetime = NOW, **changes: Any) -> Reservation:
    return replace(Reservation(user, GROUP, (COPILOT,), opened), **changes)


@pytest.mark.parametrize(
    ("enabled", "consumed", "held", "expected"),
    [
        pytest.param(20, 10, 0, 10, id="enabled-minus-consumed"),
        pytest.param(20, 10, 3, 7, id="minus-open-reservations"),
        pytest.param(20, 20, 0, 0, id="full"),
        pytest.param(20, 22, 0, 0, id="over-consumed-is-zero-not-negative"),
        pytest.param(20, 18, 5, 0, id="over-reserved-is-zero"),
    ],
)
def test_free_seats(enabled: int, consumed: int, held: int, expected: int) -> None:
    """free = enabled - consumed - open reservations, never below zero."""
    copilot = Sku(COPILOT, prepaid_units=PrepaidUnits(enabled=enabled), consumed_units=consumed)
    reservations = [_held(f"u{i}") for i in range(held)]
    assert free_seats(copilot, reservations) == expected


def test_unknown_sku_has_no_seat() -> None:
    """A SKU missing from the tenant has no seat to give."""
    assert free_seats(None, []) == 0


def test_reservation_for_another_sku_does_not_count() -> None:
    """Only reservations of this SKU hold its seats."""
    other = Reservation("u1", GROUP, (COPILOT_EDU,), NOW)
    assert free_seats(Sku(COPILOT, prepaid_units=PrepaidUnits(enabled=1)), [other]) == 1


@pytest.mark.parametrize(
    ("reservation", "read_at", "now", "expected"),
    [
        pytest.param(_held("u"), NOW, NOW, None, id="fresh-holds"),
        pytest.param(
            _held("u", active_since=NOW + timedelta(minutes=5)),
            NOW,
            NOW + timedelta(minutes=6),
            None,
            id="active-but-snapshot-older-still-holds",
        ),
        pytest.param(
            _held("u", active_since=NOW + timedelta(minutes=5)),
            NOW + timedelta(minutes=5),
            NOW + timedelta(minutes=6),
            ReleaseReason.CONSUMED,
            id="active-and-snapshot-read-after-is-consumed",
        ),
        pytest.param(
            _held("u", released=ReleaseReason.ERRORED), NOW, NOW, ReleaseReason.ERRORED, id="errored"
        ),
        pytest.param(_held("u"), NOW, NOW + DAY - timedelta(seconds=1), None, id="just-before-timeout-holds"),
        pytest.param(_held("u"), NOW, NOW + DAY, ReleaseReason.EXPIRED, id="timeout-expires"),
    ],
)
def test_when_a_reservation_stops_counting(
    reservation: Reservation, read_at: datetime, now: datetime, expected: ReleaseReason | None
) -> None:
    """A reservation holds until the seat shows in consumedUnits, the assignment errors, or it times out."""
    assert release_reason(reservation, snapshot_read_at=read_at, now=now, timeout=DAY) is expected


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        pytest.param(None, DAY, id="defaults-to-the-deadline"),
        pytest.param(timedelta(hours=1), DAY, id="never-shorter-than-the-deadline"),
        pytest.param(timedelta(hours=48), timedelta(hours=48), id="longer-is-kept"),
    ],
)
def test_reservation_timeout(configured: timedelta | None, expected: timedelta) -> None:
    """The timeout is never shorter than the verification deadline."""
    assert reservation_timeout(DAY, configured) == expected


def test_twenty_racing_for_five_seats_get_exactly_five() -> None:
    """Applied one at a time (as the store serialises them), 20 eligible users take 5 seats, 15 wait."""
    snapshot = _copilot(enabled=20, consumed=15)
    stored: list[Reservation] = []
    refused: list[str] = []
    for i in range(20):
        user = f"user-{i:02d}"
        got = reserve(snapshot, (COPILOT,), stored, user_id=user, group_id=GROUP, now=NOW, timeout=DAY)
        if got is None:
            refused.append(user)
        else:
            stored.append(got)
    assert ([r.user_id for r in stored], len(refused)) == ([f"user-{i:02d}" for i in range(5)], 15)


def test_reserve_is_idempotent_for_the_same_user() -> None:
    """A redelivered admit gets the same reservation back instead of a second seat."""
    snapshot = _copilot(enabled=1, consumed=0)
    first = reserve(snapshot, (COPILOT,), [], user_id="u", group_id=GROUP, now=NOW, timeout=DAY)
    assert first is not None
    again = reserve(snapshot, (COPILOT,), [first], user_id="u", group_id=GROUP, now=NOW, timeout=DAY)
    assert again == first


def test_consumed_reservation_frees_its_hold_without_double_counting() -> None:
    """Once the snapshot shows the seat consumed, the reservation no longer counts: no seat is lost twice."""
    activated = mark_active(_held("u"), NOW + timedelta(minutes=3))
    later = _copilot(enabled=2, consumed=1, read_at=NOW + timedelta(minutes=4))
    assert group_headroom(later, (COPILOT,), [activated], now=NOW + timedelta(minutes=4), timeout=DAY) == 1
    assert open_reservations([activated], snapshot_read_at=NOW, now=NOW, timeout=DAY) == (activated,)


def test_a_holders_own_reservation_is_its_seat_even_while_graph_counts_another_twice() -> None:
    """Two seats, both reserved (u1, u2); u2's license is already in `consumedUnits` but not yet marked active
    in the ledger, so the snapshot counts it twice: no seat for anyone else, but u1's is still u1's."""
    held = [_held("u1"), _held("u2")]
    snapshot = _copilot(enabled=2, consumed=1)
    assert group_headroom(snapshot, (COPILOT,), held, now=NOW, timeout=DAY) == 0
    assert group_headroom(snapshot, (COPILOT,), held, now=NOW, timeout=DAY, holder=("U1", GROUP)) == 1
    assert group_headroom(snapshot, (COPILOT,), held, now=NOW, timeout=DAY, holder=("u3", GROUP)) == 0


def test_mark_active_keeps_the_earliest_activation() -> None:
    """A later re-check does not push the activation time forward."""
    first = mark_active(_held("u"), NOW)
    assert mark_active(first, NOW + timedelta(hours=1)).active_since == NOW


def test_group_headroom_is_the_scarcest_sku() -> None:
    """A group assigning two Copilot SKUs needs a seat in each."""
    snapshot = catalogue(
        sku(COPILOT, "A", enabled=10, consumed=0), sku(COPILOT_EDU, "B", enabled=10, consumed=9)
    )
    assert group_headroom(snapshot, (COPILOT, COPILOT_EDU), [], now=NOW, timeout=DAY) == 1
    assert group_headroom(snapshot, (), [], now=NOW, timeout=DAY) == 0


def _wait(
    user: str, minutes: int, *, group: str = GROUP, source: WaitSource = WaitSource.PENDING
) -> WaitlistEntry:
    return WaitlistEntry(user, group, NOW + timedelta(minutes=minutes), source)


def test_waitlist_is_first_come_first_served_across_sources() -> None:
    """Pending people and members in CountViolation share one line ordered by arrival."""
    entries = [_wait("c", 3), _wait("a", 1, source=WaitSource.COUNT_VIOLATION), _wait("b", 2)]
    assert [e.user_id for e in waitlist_order(entries)] == ["a", "b", "c"]


def test_waitlist_keeps_the_earlier_place_of_a_duplicate() -> None:
    """A person listed twice for a group keeps the earlier place."""
    entries = [_wait("a", 5), _wait("b", 2), _wait("a", 1)]
    assert [(e.user_id, e.since) for e in waitlist_order(entries)] == [
        ("a", NOW + timedelta(minutes=1)),
        ("b", NOW + timedelta(minutes=2)),
    ]


def test_waitlist_ties_break_on_sequence() -> None:
    """Arrivals at the same instant keep their recorded sequence."""
    first = WaitlistEntry("z", GROUP, NOW, WaitSource.PENDING, sequence=1)
    second = WaitlistEntry("a", GROUP, NOW, WaitSource.PENDING, sequence=2)
    assert waitlist_order([second, first]) == (first, second)


def test_freed_seats_reach_waiting_people_in_order() -> None:
    """Two freed seats go to the first two in line; the rest keep waiting in order."""
    entries = [_wait("d", 4), _wait("b", 2), _wait("a", 1), _wait("c", 3)]
    served = serve_waitlist(entries, {COPILOT: 2}, {GROUP: (COPILOT,)})
    assert ([e.user_id for e in served.served], [e.user_id for e in served.waiting]) == (
        ["a", "b"],
        ["c", "d"],
    )


def test_a_full_sku_does_not_block_people_waiting_for_another() -> None:
    """Someone waiting for a full SKU keeps its place without holding up another SKU's line."""
    entries = [_wait("a", 1), _wait("b", 2, group=OTHER_GROUP)]
    served = serve_waitlist(
        entries, {COPILOT: 0, COPILOT_EDU: 1}, {GROUP: (COPILOT,), OTHER_GROUP: (COPILOT_EDU,)}
    )
    assert ([e.user_id for e in served.served], [e.user_id for e in served.waiting]) == (["b"], ["a"])


def test_unknown_group_keeps_waiting() -> None:
    """A group no longer in the policy gets no seat."""
    served = serve_waitlist([_wait("a", 1, group="gone")], {COPILOT: 5}, {GROUP: (COPILOT,)})
    assert served.served == ()
