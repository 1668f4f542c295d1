"""Seat reservations, the waitlist, pending people and Seatkeeper's additions on the StateStore port.

Reservations live in one ledger row per Copilot SKU, changed only by read-modify-write under its ETag: of
two workers racing for the last seat exactly one wins, the other re-reads, sees no seat and is refused
(issue 7 item 2). A group with several Copilot SKUs takes them in a fixed order and gives back what it took
when one is full. The rest are plain rows keyed (group, user); a waitlist place being served carries a
claim (who, until when) set under its ETag, so concurrent servers admit each waiting person once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from seatkeeper.core.errors import ConcurrencyConflict
from seatkeeper.core.ports import Entity, StateStore
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seat_ports import Addition, PendingPerson
from seatkeeper.core.seats import (
    ReleaseReason,
    Reservation,
    WaitlistEntry,
    WaitSource,
    group_headroom,
    mark_active,
    reserve,
    waitlist_order,
)
from seatkeeper.core.skus import SkuCatalogue

LEDGER_TABLE: Final = "seatledger"
LEDGER_PARTITION: Final = "sku"
WAITLIST_TABLE: Final = "seatwaitlist"
PENDING_TABLE: Final = "seatpending"
ADDITIONS_TABLE: Final = "seatadditions"
# A waitlist place being served: by whom, until when (business time).
CLAIMED_BY: Final = "claimed_by"
CLAIMED_UNTIL: Final = "claimed_until"

# The precision of Graph's `lastUpdatedDateTime` (whole seconds).
ACTIVATION_PRECISION: Final = timedelta(seconds=1)
# Optimistic-concurrency rounds before giving up (the message is then retried by the queue).
WRITE_ATTEMPTS: Final = 200
# A consumed reservation is kept this long after activation, so a worker still counting with an older
# (cached) SKU snapshot keeps seeing it; it stops counting for newer snapshots at once.
KEEP_CONSUMED: Final = timedelta(hours=1)


def _key(value: str) -> str:
    return value.strip().lower()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _encode(r: Reservation) -> list[Any]:
    return [r.user_id, r.group_id, r.opened_at.isoformat(), _iso(r.active_since)]


def _decode(sku_id: str, raw: list[Any]) -> Reservation:
    opened = _time(raw[2])
    if opened is None:
        raise ValueError("reservation without opening time")
    return Reservation(str(raw[0]), str(raw[1]), (sku_id,), opened, _time(raw[3]))


class StateSeatStore:
    """The SeatStore port over any StateStore (embedded SQLite or Table Storage)."""

    def __init__(
        self,
        store: StateStore,
        *,
        timeout: timedelta,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._timeout = timeout
        self._sleep = sleep
        self._rng = rng
        # sku -> (etag, reservations): the ledger is read on every gate and reserve but changes far less,
        # and decoding a thousand reservations each time made a bulk onboarding quadratic in CPU.
        self._decoded: dict[str, tuple[str, tuple[Reservation, ...]]] = {}

    # -- the ledger ------------------------------------------------------------------------------------

    def _reservations_of(self, sku_id: str, entity: Entity) -> list[Reservation]:
        """The ledger row's reservations, decoded once per ETag (an ETag changes on every write)."""
        cached = self._decoded.get(sku_id)
        if cached is not None and entity.etag and cached[0] == entity.etag:
            return list(cached[1])
        found = [_decode(sku_id, raw) for raw in entity.data.get("r", [])]
        if entity.etag:
            self._decoded[sku_id] = (entity.etag, tuple(found))
        return found

    async def _ledger(self, sku_id: str) -> tuple[Entity | None, list[Reservation]]:
        entity = await self._store.get(LEDGER_TABLE, LEDGER_PARTITION, sku_id)
        if entity is None:
            return None, []
        return entity, self._reservations_of(sku_id, entity)

    def _keep(self, r: Reservation, now: datetime) -> bool:
        """Still worth storing: not timed out, and not consumed for longer than any snapshot is cached."""
        if now - r.opened_at >= self._timeout:
            return False
        return r.active_since is None or now - r.active_since < KEEP_CONSUMED

    async def _change(
        self,
        sku_id: str,
        change: Callable[[list[Reservation]], list[Reservation] | None],
    ) -> bool:
        """Apply `change` to the SKU's ledger under its ETag; False when `change` declines (returns None)."""
        for attempt in range(WRITE_ATTEMPTS):
            entity, current = await self._ledger(sku_id)
            changed = change(current)
            if changed is None:
                return False
            if changed == current:
                return True
            data = {"r": [_encode(r) for r in changed]}
            try:
                if entity is None:
                    await self._store.insert(LEDGER_TABLE, LEDGER_PARTITION, sku_id, data)
                else:
                    await self._store.replace(entity, data)
            except ConcurrencyConflict:
                # Jittered and growing a little: a crowd racing for one row spreads out instead of colliding.
                await self._sleep(self._rng() * min(0.002 * (attempt + 1), 0.05))
                continue
            return True
        raise ConcurrencyConflict(f"seat ledger of {sku_id} kept changing under us")

    async def reservations(self) -> tuple[Reservation, ...]:
        """Every reservation on record, one per SKU held."""
        found: list[Reservation] = []
        async for entity in self._store.query(LEDGER_TABLE, LEDGER_PARTITION):
            found += self._reservations_of(entity.row, entity)
        return tuple(found)

    async def headroom(self, catalogue: SkuCatalogue, sku_ids: tuple[str, ...], *, now: datetime) -> int:
        """Free seats for one more member of a group with these SKUs."""
        held: list[Reservation] = []
        for sku_id in sorted({_key(s) for s in sku_ids}):
            held += (await self._ledger(sku_id))[1]
        return group_headroom(catalogue, [_key(s) for s in sku_ids], held, now=now, timeout=self._timeout)

    async def reserve(
        self, catalogue: SkuCatalogue, *, user_id: str, group_id: str, sku_ids: tuple[str, ...], now: datetime
    ) -> bool:
        """Hold a seat of every SKU (in a fixed order); on a full one, give back what was taken."""
        user, group = _key(user_id), _key(group_id)
        taken: list[str] = []
        for sku_id in sorted({_key(s) for s in sku_ids}):

            def take(current: list[Reservation], sku_id: str = sku_id) -> list[Reservation] | None:
                got = reserve(
                    catalogue, [sku_id], current, user_id=user, group_id=group, now=now, timeout=self._timeout
                )
                if got is None:
                    return None
                kept = [r for r in current if self._keep(r, now)]
                return kept if got in kept else [*kept, got]

            if not await self._change(sku_id, take):
                for sku in taken:
                    await self._drop(sku, user, group)
                return False
            taken.append(sku_id)
        return bool(sku_ids)

    async def _drop(self, sku_id: str, user: str, group: str) -> None:
        await self._change(
            sku_id, lambda current: [r for r in current if (r.user_id, r.group_id) != (user, group)]
        )

    async def _skus_of(self, user: str, group: str) -> list[str]:
        return sorted(
            {r.sku_ids[0] for r in await self.reservations() if (r.user_id, r.group_id) == (user, group)}
        )

    async def mark_active(self, user_id: str, group_id: str, active_since: datetime) -> None:
        """Note the activation time on each of the user's reservations for the group.

        Graph's `lastUpdatedDateTime` has whole seconds: the activation may lie up to a second after it, so
        the reservation keeps counting until a snapshot read a full second later.
        """
        active_since += ACTIVATION_PRECISION
        user, group = _key(user_id), _key(group_id)
        for sku_id in await self._skus_of(user, group):
            await self._change(
                sku_id,
                lambda current: [
                    mark_active(r, active_since) if (r.user_id, r.group_id) == (user, group) else r
                    for r in current
                ],
            )

    async def release(self, user_id: str, group_id: str, reason: ReleaseReason) -> None:
        """Remove the user's reservations for the group (the reason is the caller's to log)."""
        user, group = _key(user_id), _key(group_id)
        for sku_id in await self._skus_of(user, group):
            await self._drop(sku_id, user, group)

    # -- the waitlist --------------------------------------------------------------------------------------

    async def join_waitlist(self, entry: WaitlistEntry) -> None:
        """Insert the entry; one already waiting keeps the earlier place."""
        group, user = _key(entry.group_id), _key(entry.user_id)
        data = {"since": entry.since.isoformat(), "source": entry.source.value, "sequence": entry.sequence}
        for _ in range(WRITE_ATTEMPTS):
            existing = await self._store.get(WAITLIST_TABLE, group, user)
            try:
                if existing is None:
                    await self._store.insert(WAITLIST_TABLE, group, user, data)
                elif entry.since < _time_of(existing, "since"):
                    await self._store.replace(existing, {**existing.data, **data})  # a claim stays
            except ConcurrencyConflict:
                continue
            return
        raise ConcurrencyConflict(f"waitlist place of {user} kept changing under us")

    async def leave_waitlist(self, user_id: str, group_id: str) -> None:
        """Delete the person's place (nothing there is fine)."""
        await self._store.delete(WAITLIST_TABLE, _key(group_id), _key(user_id))

    async def claim_waitlist(
        self, user_id: str, group_id: str, *, claimant: str, until: datetime, now: datetime
    ) -> bool:
        """Mark the place held by `claimant` until `until`, under its ETag: of two servers claiming one
        place exactly one succeeds. A hold that has run out (its server died) is taken over."""
        group, user = _key(group_id), _key(user_id)
        for _ in range(WRITE_ATTEMPTS):
            existing = await self._store.get(WAITLIST_TABLE, group, user)
            if existing is None:
                return False
            holder = existing.data.get(CLAIMED_BY)
            held_until = _time(existing.data.get(CLAIMED_UNTIL))
            if holder and holder != claimant and held_until is not None and now < held_until:
                return False
            data = {**existing.data, CLAIMED_BY: claimant, CLAIMED_UNTIL: until.isoformat()}
            try:
                await self._store.replace(existing, data)
            except ConcurrencyConflict:
                continue  # changed or gone: look again
            return True
        raise ConcurrencyConflict(f"waitlist place of {user} kept changing under us")

    async def unclaim_waitlist(self, user_id: str, group_id: str, *, claimant: str) -> None:
        """Drop the hold if it is still `claimant`'s; the place (and its `since`) stays."""
        group, user = _key(group_id), _key(user_id)
        for _ in range(WRITE_ATTEMPTS):
            existing = await self._store.get(WAITLIST_TABLE, group, user)
            if existing is None or existing.data.get(CLAIMED_BY) != claimant:
                return
            data = {k: v for k, v in existing.data.items() if k not in (CLAIMED_BY, CLAIMED_UNTIL)}
            try:
                await self._store.replace(existing, data)
            except ConcurrencyConflict:
                continue
            return
        raise ConcurrencyConflict(f"waitlist place of {user} kept changing under us")

    async def waitlist(self, group_id: str | None = None) -> tuple[WaitlistEntry, ...]:
        """Waiting people, first come first."""
        entries = [
            WaitlistEntry(
                user_id=e.row,
                group_id=e.partition,
                since=_time_of(e, "since"),
                source=WaitSource(str(e.data.get("source", WaitSource.PENDING.value))),
                sequence=int(e.data.get("sequence", 0)),
            )
            async for e in self._store.query(WAITLIST_TABLE, _key(group_id) if group_id else None)
        ]
        return waitlist_order(entries)

    # -- pending people ----------------------------------------------------------------------------------

    async def record_pending(
        self, user_id: str, group_id: str, reasons: tuple[Reason, ...], since: datetime, *, now: datetime
    ) -> None:
        """Write the blockers; keep the earliest `since` already on record."""
        group, user = _key(group_id), _key(user_id)
        for _ in range(WRITE_ATTEMPTS):
            existing = await self._store.get(PENDING_TABLE, group, user)
            first = since
            if existing is not None:
                first = min(since, _time_of(existing, "since"))
            data = {
                "reasons": [r.value for r in reasons],
                "since": first.isoformat(),
                "updated_at": now.isoformat(),
            }
            try:
                if existing is None:
                    await self._store.insert(PENDING_TABLE, group, user, data)
                else:
                    await self._store.replace(existing, data)
            except ConcurrencyConflict:
                continue
            return
        raise ConcurrencyConflict(f"pending record of {user} kept changing under us")

    async def clear_pending(self, user_id: str, group_id: str) -> None:
        """Delete the pending record (nothing there is fine)."""
        await self._store.delete(PENDING_TABLE, _key(group_id), _key(user_id))

    async def pending(self, group_id: str | None = None) -> tuple[PendingPerson, ...]:
        """Pending people, oldest first."""
        found = [
            PendingPerson(
                user_id=e.row,
                group_id=e.partition,
                reasons=tuple(Reason(r) for r in e.data.get("reasons", [])),
                since=_time_of(e, "since"),
                updated_at=_time_of(e, "updated_at"),
            )
            async for e in self._store.query(PENDING_TABLE, _key(group_id) if group_id else None)
        ]
        return tuple(sorted(found, key=lambda p: (p.since, p.user_id)))

    # -- additions -----------------------------------------------------------------------------------------

    async def record_addition(self, addition: Addition) -> None:
        """Upsert the record of the add."""
        await self._store.upsert(
            ADDITIONS_TABLE,
            _key(addition.group_id),
            _key(addition.user_id),
            {
                "added_at": addition.added_at.isoformat(),
                "why": addition.why,
                "requested_by": addition.requested_by,
            },
        )

    async def forget_addition(self, user_id: str, group_id: str) -> None:
        """Delete the record of the add (absent is fine)."""
        await self._store.delete(ADDITIONS_TABLE, _key(group_id), _key(user_id))

    async def addition(self, user_id: str, group_id: str) -> Addition | None:
        """The record of Seatkeeper's add, if any."""
        entity = await self._store.get(ADDITIONS_TABLE, _key(group_id), _key(user_id))
        if entity is None:
            return None
        return Addition(
            user_id=entity.row,
            group_id=entity.partition,
            added_at=_time_of(entity, "added_at"),
            why=str(entity.data.get("why", "")),
            requested_by=str(entity.data.get("requested_by", "")),
        )


def _time_of(entity: Entity, name: str) -> datetime:
    value = _time(entity.data.get(name))
    if value is None:
        raise ValueError(f"{entity.table}/{entity.partition}/{entity.row}: {name} is missing")
    return value
