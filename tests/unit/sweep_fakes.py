"""Recording fakes for the sweep, heartbeat and CLI tests: an in-memory state store with real ETag
semantics, a sender that keeps what it was given, and a clock the test moves."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from seatkeeper.core.errors import ConcurrencyConflict
from seatkeeper.core.messages import Message
from seatkeeper.core.ports import Entity, RowWrite
from tests.unit.notification_fakes import check_commit_conditions


class MemoryStore:
    """The StateStore port in memory (insert/replace/delete honour ETags)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Entity] = {}
        self._etags = itertools.count(1)

    def _put(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        entity = Entity(table, partition, row, dict(data), f"W/{next(self._etags)}")
        self.rows[(table, partition, row)] = entity
        return entity

    async def get(self, table: str, partition: str, row: str) -> Entity | None:
        return self.rows.get((table, partition, row))

    async def insert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        if (table, partition, row) in self.rows:
            raise ConcurrencyConflict("exists")
        return self._put(table, partition, row, data)

    async def replace(self, entity: Entity, data: Mapping[str, Any]) -> Entity:
        current = self.rows.get((entity.table, entity.partition, entity.row))
        if current is None or current.etag != entity.etag:
            raise ConcurrencyConflict("etag")
        return self._put(entity.table, entity.partition, entity.row, data)

    async def upsert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        return self._put(table, partition, row, data)

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        current = self.rows.get((table, partition, row))
        if current is not None and etag is not None and current.etag != etag:
            raise ConcurrencyConflict("etag")
        self.rows.pop((table, partition, row), None)

    async def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]:
        for (t, p, _), entity in sorted(self.rows.items()):
            if t == table and (partition is None or p == partition):
                yield entity

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]:
        check_commit_conditions(self.rows, table, partition, writes)
        return tuple(self._put(table, partition, w.row, w.data) for w in writes)


@dataclass
class RecordingSender:
    """Keeps every message sent, in order."""

    sent: list[Message] = field(default_factory=list)

    async def send(self, messages: Sequence[Message]) -> None:
        self.sent.extend(messages)

    def of_kind(self, kind: str) -> list[Message]:
        """The messages of one kind."""
        return [m for m in self.sent if m.kind == kind]


@dataclass
class MovableClock:
    """Business time that only moves when the test says so."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def advance(self, span: timedelta) -> None:
        """Move time forward."""
        self.current += span
