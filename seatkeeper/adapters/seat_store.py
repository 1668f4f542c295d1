"""Seat reservations, the waitlist, pending people and Seatkeeper's additions on the StateStore port.

The ledger of a Copilot SKU is one partition of LEDGER_TABLE (partition = the SKU id): a small head row
(HEAD_ROW: a version, and per shard how many changes it has taken) and up to SHARDS shard rows (`shard-00`
...); a reservation lives in the shard a stable hash of (user, group) picks. Every change of a shard
(reserve, mark active, release) commits the shard row and the head row (version + 1, the shard's count + 1)
in one atomic commit under both ETags: of two workers racing for the last seat exactly one wins the head and
the other re-reads and is refused (issue 7 item 2). A read takes the head, then each shard row it counts:
from memory when this process has seen the row at the head's count, else from the store (read again while it
lags the head), so a reserve reads the head and the rows changed since it last looked, and a headroom never
misses a committed change. A shard row holds ~3,400 reservations (~4,250 open ones) within Table Storage's
entity limit, so a SKU holds ~SHARDS times that. The earlier one-row-per-SKU layout (partition "sku", row =
SKU id) is never read (nothing was deployed with it, so there is no migration). A group with several Copilot
SKUs takes them in a fixed order and gives back what it took when one is full. LEDGER_SKUS_TABLE lists the
SKUs with a ledger, so marking or releasing one person's reservation reads one shard row per SKU. The rest
are plain rows keyed (group, user); a waitlist place being served carries a claim (who, until when) set
under its ETag, so concurrent servers admit each waiting person once.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from seatkeeper.core.errors import ConcurrencyConflict
from seatkeeper.core.ports import Entity, RowWrite, StateStore
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
# In a SKU's partition: the head row, and the shard rows `shard-00` ... `shard-{SHARDS-1}`.
HEAD_ROW: Final = "head"
SHARD_PREFIX: Final = "shard-"
SHARDS: Final = 64
# Every SKU that has had a ledger (row = SKU id), so that finding one person's reservations reads one shard
# row per SKU instead of every ledger. Written before a SKU's first reserve in each process: a superset.
LEDGER_SKUS_TABLE: Final = "seatledgerskus"
LEDGER_SKUS_PARTITION: Final = "skus"
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

_SHARD_ROW: Final = re.compile(rf"{SHARD_PREFIX}\d\d")


def shard_of(user_id: str, group_id: str) -> str:
    """The shard row holding this (user, group)'s reservation: a hash stable across processes and runs."""
    digest = hashlib.sha256(f"{_key(user_id)}\n{_key(group_id)}".encode()).digest()
    return f"{SHARD_PREFIX}{int.from_bytes(digest[:8], 'big') % SHARDS:02d}"


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


def _changes(entity: Entity | None) -> int:
    """How many changes a shard row has taken (0 for a shard never written)."""
    return int(entity.data.get("n", 0)) if entity is not None else 0


def _head_write(head: Entity | None, row: str, changes: int) -> RowWrite:
    """The head row with `row`'s change count set and the version moved on, under the head's ETag."""
    data = head.data if head is not None else {}
    return RowWrite(
        HEAD_ROW,
        {"v": int(data.get("v", 0)) + 1, "n": {**data.get("n", {}), row: changes}},
        head.etag if head is not None else None,
    )


@dataclass(frozen=True)
class _Ledger:
    """One read of a SKU's ledger: the head row and each shard row it counts, decoded."""

    head: Entity | None
    shards: Mapping[str, tuple[Entity, tuple[Reservation, ...]]]

    def reservations(self) -> list[Reservation]:
        return [r for _, held in self.shards.values() for r in held]


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
        # (sku, shard row) -> (etag, reservations): the ledger is read on every gate and reserve but a shard
        # changes far less, and decoding thousands of reservations each time made onboarding quadratic in CPU.
        self._decoded: dict[tuple[str, str], tuple[str, tuple[Reservation, ...]]] = {}
        # (sku, shard row) -> the newest entity of the row seen: used again while the head counts no change
        # to the row since, so a reserve reads the head and the rows changed since it last looked.
        self._seen: dict[tuple[str, str], Entity] = {}
        self._registered: set[str] = set()

    # -- the ledger ------------------------------------------------------------------------------------

    def _held_in(self, entity: Entity) -> tuple[Reservation, ...]:
        """A shard row's reservations, decoded once per ETag (an ETag changes on every write)."""
        key = (entity.partition, entity.row)
        cached = self._decoded.get(key)
        if cached is not None and entity.etag and cached[0] == entity.etag:
            return cached[1]
        found = tuple(_decode(entity.partition, raw) for raw in entity.data.get("r", []))
        if entity.etag:
            self._decoded[key] = (entity.etag, found)
        return found

    async def _backoff(self, attempt: int) -> None:
        # Jittered and growing a little: a crowd racing for one head row spreads out instead of colliding.
        await self._sleep(self._rng() * min(0.002 * (attempt + 1), 0.05))

    async def _ledger(self, sku_id: str) -> _Ledger:
        """The head, then every shard it counts: one this process has seen at the head's count comes from
        memory (every change of a shard moves the head), one that lags the head is read again."""
        for attempt in range(WRITE_ATTEMPTS):
            head = await self._store.get(LEDGER_TABLE, sku_id, HEAD_ROW)
            counted: Mapping[str, int] = head.data.get("n", {}) if head is not None else {}
            shards: dict[str, tuple[Entity, tuple[Reservation, ...]]] = {}
            for row, changes in sorted(counted.items()):
                entity = self._seen.get((sku_id, row))
                if entity is None or _changes(entity) < changes:
                    entity = await self._store.get(LEDGER_TABLE, sku_id, row)
                    if entity is None or _changes(entity) < changes:
                        break
                    self._seen[(sku_id, row)] = entity
                shards[row] = (entity, self._held_in(entity))
            else:
                return _Ledger(head, shards)
            await self._backoff(attempt)
        raise ConcurrencyConflict(f"seat ledger of {sku_id} kept changing under us")

    def _keep(self, r: Reservation, now: datetime) -> bool:
        """Still worth storing: not timed out, and not consumed for longer than any snapshot is cached."""
        if now - r.opened_at >= self._timeout:
            return False
        return r.active_since is None or now - r.active_since < KEEP_CONSUMED

    def _written(self, entity: Entity, held: list[Reservation]) -> None:
        key = (entity.partition, entity.row)
        self._seen[key] = entity
        if entity.etag:
            self._decoded[key] = (entity.etag, tuple(held))

    async def _take(self, catalogue: SkuCatalogue, sku_id: str, user: str, group: str, now: datetime) -> bool:
        """Reserve one SKU: its shard and the head (version + 1) in one commit under both ETags."""
        row = shard_of(user, group)
        if sku_id not in self._registered:
            await self._store.upsert(LEDGER_SKUS_TABLE, LEDGER_SKUS_PARTITION, sku_id, {})
            self._registered.add(sku_id)
        for attempt in range(WRITE_ATTEMPTS):
            ledger = await self._ledger(sku_id)
            got = reserve(
                catalogue,
                [sku_id],
                ledger.reservations(),
                user_id=user,
                group_id=group,
                now=now,
                timeout=self._timeout,
            )
            if got is None:
                return False
            shard, current = ledger.shards.get(row, (None, ()))
            kept = [r for r in current if self._keep(r, now)]
            changed = kept if got in kept else [*kept, got]
            if changed == list(current):
                return True  # already held, nothing to prune
            if await self._commit_shard(sku_id, ledger.head, row, shard, changed):
                return True
            await self._backoff(attempt)
        raise ConcurrencyConflict(f"seat ledger of {sku_id} kept changing under us")

    async def _commit_shard(
        self, sku_id: str, head: Entity | None, row: str, shard: Entity | None, held: list[Reservation]
    ) -> bool:
        """Write the shard row and move the head, both under the ETags read; False when either changed."""
        changes = _changes(shard) + 1
        writes = [
            _head_write(head, row, changes),
            RowWrite(row, {"r": [_encode(r) for r in held], "n": changes}, shard.etag if shard else None),
        ]
        try:
            written = await self._store.commit(LEDGER_TABLE, sku_id, writes)
        except ConcurrencyConflict:
            return False
        self._written(written[1], held)
        return True

    async def _change_shard(
        self, sku_id: str, row: str, change: Callable[[list[Reservation]], list[Reservation]]
    ) -> None:
        """Apply `change` to one shard row, moving the head with it (nothing is taken, but every change of
        a shard is counted on the head so that other workers know to read the row again)."""
        for attempt in range(WRITE_ATTEMPTS):
            head = await self._store.get(LEDGER_TABLE, sku_id, HEAD_ROW)
            entity = await self._store.get(LEDGER_TABLE, sku_id, row)
            if entity is None:
                return
            current = list(self._held_in(entity))
            changed = change(current)
            if changed == current:
                return
            if await self._commit_shard(sku_id, head, row, entity, changed):
                return
            await self._backoff(attempt)
        raise ConcurrencyConflict(f"seat ledger of {sku_id} kept changing under us")

    async def reservations(self) -> tuple[Reservation, ...]:
        """Every reservation on record, one per SKU held."""
        found: list[Reservation] = []
        async for entity in self._store.query(LEDGER_TABLE):
            if _SHARD_ROW.fullmatch(entity.row):
                found += self._held_in(entity)
        return tuple(found)

    async def headroom(
        self,
        catalogue: SkuCatalogue,
        sku_ids: tuple[str, ...],
        *,
        now: datetime,
        holder: tuple[str, str] | None = None,
    ) -> int:
        """Free seats for one more member of a group with these SKUs (the holder's own seat counts free)."""
        held: list[Reservation] = []
        for sku_id in sorted({_key(s) for s in sku_ids}):
            held += (await self._ledger(sku_id)).reservations()
        return group_headroom(
            catalogue, [_key(s) for s in sku_ids], held, now=now, timeout=self._timeout, holder=holder
        )

    async def reserve(
        self, catalogue: SkuCatalogue, *, user_id: str, group_id: str, sku_ids: tuple[str, ...], now: datetime
    ) -> bool:
        """Hold a seat of every SKU (in a fixed order); on a full one, give back what was taken."""
        user, group = _key(user_id), _key(group_id)
        taken: list[str] = []
        for sku_id in sorted({_key(s) for s in sku_ids}):
            if not await self._take(catalogue, sku_id, user, group, now):
                for sku in taken:
                    await self._drop(sku, user, group)
                return False
            taken.append(sku_id)
        return bool(sku_ids)

    async def _drop(self, sku_id: str, user: str, group: str) -> None:
        await self._change_shard(
            sku_id,
            shard_of(user, group),
            lambda current: [r for r in current if (r.user_id, r.group_id) != (user, group)],
        )

    async def _skus_of(self, user: str, group: str) -> list[str]:
        """The SKUs holding a reservation of this (user, group): one shard row read per SKU."""
        row = shard_of(user, group)
        found: list[str] = []
        async for known in self._store.query(LEDGER_SKUS_TABLE, LEDGER_SKUS_PARTITION):
            entity = await self._store.get(LEDGER_TABLE, known.row, row)
            if entity is not None and any(
                (r.user_id, r.group_id) == (user, group) for r in self._held_in(entity)
            ):
                found.append(known.row)
        return sorted(found)

    async def mark_active(self, user_id: str, group_id: str, active_since: datetime) -> None:
        """Note the activation time on each of the user's reservations for the group.

        Graph's `lastUpdatedDateTime` has whole seconds: the activation may lie up to a second after it, so
        the reservation keeps counting until a snapshot read a full second later.
        """
        active_since += ACTIVATION_PRECISION
        user, group = _key(user_id), _key(group_id)
        for sku_id in await self._skus_of(user, group):
            await self._change_shard(
                sku_id,
                shard_of(user, group),
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
