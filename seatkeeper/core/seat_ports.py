"""The port for Seatkeeper's own licensing state: seat reservations, the waitlist, pending people and the
record of members Seatkeeper added. The arithmetic is `seats.py`; the adapter (`adapters/seat_store.py`)
applies it to the StateStore under ETag concurrency, so two workers never hand out the same last seat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import ReleaseReason, Reservation, WaitlistEntry
from seatkeeper.core.skus import SkuCatalogue


@dataclass(frozen=True)
class PendingPerson:
    """A person the gate left out of a group, with the blockers, since when (the earliest time seen)."""

    user_id: str
    group_id: str
    reasons: tuple[Reason, ...]
    since: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Addition:
    """A member Seatkeeper added itself: when, why and at whose request (later removals are limited to
    these unless the group is authoritative)."""

    user_id: str
    group_id: str
    added_at: datetime
    why: str
    requested_by: str = ""


class SeatStore(Protocol):
    """Seats, waitlist, pending people and additions; every write is safe under concurrent workers."""

    async def headroom(
        self,
        catalogue: SkuCatalogue,
        sku_ids: tuple[str, ...],
        *,
        now: datetime,
        holder: tuple[str, str] | None = None,
    ) -> int:
        """Free seats for one more member: the scarcest SKU's enabled - consumed - open reservations, the
        (user, group) `holder`'s own reservation counting as free for it."""
        ...

    async def reserve(
        self, catalogue: SkuCatalogue, *, user_id: str, group_id: str, sku_ids: tuple[str, ...], now: datetime
    ) -> bool:
        """Hold a seat of every SKU for the user (idempotent); False, holding nothing, when one is full."""
        ...

    async def mark_active(self, user_id: str, group_id: str, active_since: datetime) -> None:
        """The user's license is active: the reservation stops counting once a newer snapshot counts it."""
        ...

    async def release(self, user_id: str, group_id: str, reason: ReleaseReason) -> None:
        """Stop holding the user's seats for the group (errored, cancelled, timed out)."""
        ...

    async def reservations(self) -> tuple[Reservation, ...]:
        """Every reservation on record (open or not yet pruned), one per SKU held."""
        ...

    async def join_waitlist(self, entry: WaitlistEntry) -> None:
        """Put the person on the waitlist; one already waiting keeps the earlier place."""
        ...

    async def leave_waitlist(self, user_id: str, group_id: str) -> None:
        """Take the person off the group's waitlist (served, or no longer waiting)."""
        ...

    async def waitlist(self, group_id: str | None = None) -> tuple[WaitlistEntry, ...]:
        """The waiting people (of one group, or all), first come first."""
        ...

    async def claim_waitlist(
        self, user_id: str, group_id: str, *, claimant: str, until: datetime, now: datetime
    ) -> bool:
        """Hold the person's place for one serving until `until`; False when the place is gone or another
        claimant's hold has not run out (so servers racing for one freed seat admit each person once)."""
        ...

    async def unclaim_waitlist(self, user_id: str, group_id: str, *, claimant: str) -> None:
        """Give back this claimant's hold: a person still waiting keeps the place (nothing there is fine)."""
        ...

    async def record_pending(
        self, user_id: str, group_id: str, reasons: tuple[Reason, ...], since: datetime, *, now: datetime
    ) -> None:
        """Remember the person as pending with these blockers; the earliest `since` is kept."""
        ...

    async def clear_pending(self, user_id: str, group_id: str) -> None:
        """Forget the person's pending record for the group."""
        ...

    async def pending(self, group_id: str | None = None) -> tuple[PendingPerson, ...]:
        """The pending people (of one group, or all)."""
        ...

    async def record_addition(self, addition: Addition) -> None:
        """Record that Seatkeeper adds (or added) this member, before the write (the latest add wins)."""
        ...

    async def forget_addition(self, user_id: str, group_id: str) -> None:
        """Drop the record of an add that did not happen (Graph refused it, or the user is gone)."""
        ...

    async def addition(self, user_id: str, group_id: str) -> Addition | None:
        """The record of Seatkeeper's add of this member, if it added it."""
        ...
