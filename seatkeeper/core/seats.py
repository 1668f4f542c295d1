"""Seat arithmetic over data: reservations that prevent overbooking, and the first-come-first-served waitlist.

free = enabled - consumed - Seatkeeper's open reservations (issue 7 item 2). A reservation is made before
the group add and stops counting when the seat is visible in `consumedUnits` (the license is active *and*
the SKU snapshot was read after that), when the assignment errored, or after a timeout no shorter than the
verification deadline. The state adapters apply `reserve` under optimistic concurrency; this module only
says what the answer is for a given snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from seatkeeper.core.skus import Sku, SkuCatalogue


class ReleaseReason(StrEnum):
    """Why a reservation stopped holding a seat."""

    CONSUMED = "consumed"
    ERRORED = "errored"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Reservation:
    """One seat held, in each of the group's Copilot SKUs, for one user between the gate and the license.

    `active_since` is when the license became active (its `lastUpdatedDateTime`); `released` is set when
    the assignment errored or the add was cancelled.
    """

    user_id: str
    group_id: str
    sku_ids: tuple[str, ...]
    opened_at: datetime
    active_since: datetime | None = None
    released: ReleaseReason | None = None


def reservation_timeout(verification_deadline: timedelta, configured: timedelta | None = None) -> timedelta:
    """The reservation timeout: as configured, but never shorter than the verification deadline."""
    return max(configured or verification_deadline, verification_deadline)


def release_reason(
    reservation: Reservation, *, snapshot_read_at: datetime, now: datetime, timeout: timedelta
) -> ReleaseReason | None:
    """Why the reservation no longer holds a seat against this SKU snapshot, or None while it still does."""
    if reservation.released is not None:
        return reservation.released
    if reservation.active_since is not None and snapshot_read_at >= reservation.active_since:
        return ReleaseReason.CONSUMED
    if now - reservation.opened_at >= timeout:
        return ReleaseReason.EXPIRED
    return None


def open_reservations(
    reservations: Iterable[Reservation], *, snapshot_read_at: datetime, now: datetime, timeout: timedelta
) -> tuple[Reservation, ...]:
    """The reservations still holding a seat; the others may be deleted from the store."""
    return tuple(
        r
        for r in reservations
        if release_reason(r, snapshot_read_at=snapshot_read_at, now=now, timeout=timeout) is None
    )


def free_seats(sku: Sku | None, held: Iterable[Reservation]) -> int:
    """enabled - consumed - open reservations for this SKU (never below zero; no SKU means no seat)."""
    if sku is None:
        return 0
    holding = sum(1 for r in held if sku.sku_id in r.sku_ids)
    return max(0, sku.prepaid_units.enabled - sku.consumed_units - holding)


def group_headroom(
    catalogue: SkuCatalogue,
    sku_ids: Sequence[str],
    reservations: Iterable[Reservation],
    *,
    now: datetime,
    timeout: timedelta,
    holder: tuple[str, str] | None = None,
) -> int:
    """Free seats for one more member of a group: the scarcest of the group's Copilot SKUs (0 if none).

    `holder` is the (user, group) asking. Its own open reservation is its seat, won under the ledger's
    concurrency: at least one is free for it, whatever the snapshot says meanwhile (a license Graph already
    counts in `consumedUnits` and the ledger not yet is counted twice for a while). An admission retried
    after a kill or a failed add must not wait for the seat it holds."""
    if not sku_ids:
        return 0
    held = open_reservations(reservations, snapshot_read_at=catalogue.read_at, now=now, timeout=timeout)
    mine = False
    if holder is not None:
        user, group = holder[0].lower(), holder[1].lower()
        others = tuple(r for r in held if (r.user_id.lower(), r.group_id.lower()) != (user, group))
        mine, held = len(others) < len(held), others
    free = min(free_seats(catalogue.get(sku_id), held) for sku_id in sku_ids)
    return max(free, 1) if mine else free


def reserve(
    catalogue: SkuCatalogue,
    sku_ids: Sequence[str],
    reservations: Iterable[Reservation],
    *,
    user_id: str,
    group_id: str,
    now: datetime,
    timeout: timedelta,
) -> Reservation | None:
    """The reservation to store for this user, or None when no seat is free.

    Idempotent: a user who already holds an open reservation for the group gets that one back.
    """
    held = open_reservations(reservations, snapshot_read_at=catalogue.read_at, now=now, timeout=timeout)
    mine = next((r for r in held if r.user_id == user_id and r.group_id == group_id), None)
    if mine is not None:
        return mine
    if not sku_ids or min(free_seats(catalogue.get(s), held) for s in sku_ids) <= 0:
        return None
    return Reservation(user_id, group_id, tuple(s.lower() for s in sku_ids), now)


def mark_active(reservation: Reservation, active_since: datetime) -> Reservation:
    """The reservation once its license is active: it stops counting with the first snapshot read after."""
    if reservation.active_since is not None and reservation.active_since <= active_since:
        return reservation
    return replace(reservation, active_since=active_since)


# --- the waitlist ---------------------------------------------------------------------------------------


class WaitSource(StrEnum):
    """Who waits: a person the gate left pending for want of a seat, or a member in `CountViolation`."""

    PENDING = "pending"
    COUNT_VIOLATION = "count_violation"


@dataclass(frozen=True)
class WaitlistEntry:
    """One person waiting for a seat in one group, since when (business time); `sequence` breaks ties."""

    user_id: str
    group_id: str
    since: datetime
    source: WaitSource
    sequence: int = 0


def _order_key(entry: WaitlistEntry) -> tuple[datetime, int, str]:
    return (entry.since, entry.sequence, entry.user_id)


def waitlist_order(entries: Iterable[WaitlistEntry]) -> tuple[WaitlistEntry, ...]:
    """First come, first served; a person listed twice for a group keeps the earlier place."""
    earliest: dict[tuple[str, str], WaitlistEntry] = {}
    for entry in entries:
        key = (entry.user_id, entry.group_id)
        known = earliest.get(key)
        if known is None or _order_key(entry) < _order_key(known):
            earliest[key] = entry
    return tuple(sorted(earliest.values(), key=_order_key))


@dataclass(frozen=True)
class Serving:
    """Who gets a seat now, in order, and who keeps waiting (in order)."""

    served: tuple[WaitlistEntry, ...]
    waiting: tuple[WaitlistEntry, ...]


def serve_waitlist(
    entries: Iterable[WaitlistEntry],
    free_by_sku: Mapping[str, int],
    skus_by_group: Mapping[str, Sequence[str]],
) -> Serving:
    """Hand free seats to waiting people in order; each needs a seat in every Copilot SKU of its group.

    A person whose group's SKUs are full keeps waiting without blocking people waiting for other SKUs.
    """
    free = {sku.lower(): count for sku, count in free_by_sku.items()}
    groups = {group.lower(): skus for group, skus in skus_by_group.items()}
    served: list[WaitlistEntry] = []
    waiting: list[WaitlistEntry] = []
    for entry in waitlist_order(entries):
        skus = [s.lower() for s in groups.get(entry.group_id.lower(), ())]
        if skus and all(free.get(s, 0) > 0 for s in skus):
            for s in skus:
                free[s] -= 1
            served.append(entry)
        else:
            waiting.append(entry)
    return Serving(tuple(served), tuple(waiting))
