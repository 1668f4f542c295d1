"""Subscription records in the state store: per group (upkeep's view) and per subscription id (the webhook's).

Table `subscriptions`: partition `group`, row = group id → the current record; partition `id`, row =
subscription id → group id and generation, which is all the webhook needs to derive the expected clientState.
The webhook's look-ups go through a short-lived in-process cache so a burst of deliveries costs one read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from seatkeeper.core.errors import ConcurrencyConflict
from seatkeeper.core.ports import StateStore
from seatkeeper.core.subscription_plan import SubscriptionRecord

SUBSCRIPTIONS_TABLE: Final = "subscriptions"
BY_GROUP: Final = "group"
BY_ID: Final = "id"


@dataclass(frozen=True)
class SubscriptionKey:
    """What the webhook needs to know about a subscription id: its group and generation."""

    group_id: str
    generation: int


def _record(data: Mapping[str, Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        group_id=str(data["group_id"]),
        subscription_id=str(data["subscription_id"]),
        generation=int(data["generation"]),
        expires_at=datetime.fromisoformat(str(data["expires_at"])),
        created_at=datetime.fromisoformat(str(data["created_at"])),
    )


def _data(record: SubscriptionRecord) -> dict[str, Any]:
    return {
        "group_id": record.group_id,
        "subscription_id": record.subscription_id,
        "generation": record.generation,
        "expires_at": record.expires_at.isoformat(),
        "created_at": record.created_at.isoformat(),
    }


class SubscriptionRecords:
    """Read and write subscription records; raises ConcurrencyConflict when another writer won."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def all(self) -> dict[str, SubscriptionRecord]:
        """Every group's current record, by group id."""
        return {
            entity.row: _record(entity.data)
            async for entity in self._store.query(SUBSCRIPTIONS_TABLE, BY_GROUP)
        }

    async def for_group(self, group_id: str) -> SubscriptionRecord | None:
        """The group's current record, if any."""
        entity = await self._store.get(SUBSCRIPTIONS_TABLE, BY_GROUP, group_id.lower())
        return None if entity is None else _record(entity.data)

    async def key(self, subscription_id: str) -> SubscriptionKey | None:
        """Group and generation of a subscription id we created, if we still keep it."""
        entity = await self._store.get(SUBSCRIPTIONS_TABLE, BY_ID, subscription_id.lower())
        if entity is None:
            return None
        return SubscriptionKey(str(entity.data["group_id"]), int(entity.data["generation"]))

    async def save(self, record: SubscriptionRecord, *, replaces: SubscriptionRecord | None) -> None:
        """Make `record` the group's current one; `replaces` is what the writer read (None: nothing).

        The id row is written first, so the webhook accepts the new subscription as soon as it exists; the
        superseded subscription's id row is removed last.
        """
        group_id = record.group_id.lower()
        await self._store.upsert(
            SUBSCRIPTIONS_TABLE,
            BY_ID,
            record.subscription_id.lower(),
            {"group_id": group_id, "generation": record.generation},
        )
        current = await self._store.get(SUBSCRIPTIONS_TABLE, BY_GROUP, group_id)
        if current is None:
            if replaces is not None:
                raise ConcurrencyConflict(f"subscription record of group {group_id} vanished")
            await self._store.insert(SUBSCRIPTIONS_TABLE, BY_GROUP, group_id, _data(record))
        else:
            if replaces is None or _record(current.data).subscription_id != replaces.subscription_id:
                raise ConcurrencyConflict(f"subscription record of group {group_id} changed meanwhile")
            await self._store.replace(current, _data(record))
        if replaces is not None and replaces.subscription_id.lower() != record.subscription_id.lower():
            await self._store.delete(SUBSCRIPTIONS_TABLE, BY_ID, replaces.subscription_id.lower())

    async def forget(self, group_id: str, subscription_id: str | None = None) -> None:
        """Drop a group's record (and a subscription id's row)."""
        record = await self.for_group(group_id)
        await self._store.delete(SUBSCRIPTIONS_TABLE, BY_GROUP, group_id.lower())
        for sid in {s.lower() for s in (subscription_id, record and record.subscription_id) if s}:
            await self._store.delete(SUBSCRIPTIONS_TABLE, BY_ID, sid)


class CachedSubscriptionKeys:
    """The webhook's view of `SubscriptionRecords.key`, cached for `ttl` seconds (`miss_ttl` for unknowns).

    Deliveries arrive in bursts for few subscriptions; the cache keeps the webhook's answer well inside
    Graph's 3-second limit. An unknown id is cached briefly only, so a just-created subscription is soon seen.
    """

    def __init__(
        self,
        records: SubscriptionRecords,
        *,
        monotonic: Callable[[], float],
        ttl: float = 60.0,
        miss_ttl: float = 2.0,
        max_entries: int = 10_000,
    ) -> None:
        self._records = records
        self._monotonic = monotonic
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, SubscriptionKey | None]] = {}

    async def key(self, subscription_id: str) -> SubscriptionKey | None:
        """The subscription's group and generation (None: not ours, or no longer)."""
        now = self._monotonic()
        cached = self._entries.get(subscription_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._records.key(subscription_id)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[subscription_id] = (now + (self._ttl if found else self._miss_ttl), found)
        return found
