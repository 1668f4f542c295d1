"""Recording fakes for the change-notification handlers: a state store, a queue, a clock, and a Graph that
serves `groups/delta` (versions, paging, replays, expired tokens) and `/subscriptions`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from seatkeeper.core.errors import ConcurrencyConflict, NotFound, Rejected, TransientError
from seatkeeper.core.graph_port import GraphPage, GraphRequest, GraphResponse, MemberAddResult, OperationCount
from seatkeeper.core.messages import Message
from seatkeeper.core.ports import Entity, RowWrite

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class MemoryStore:
    """In-memory StateStore with real ETag semantics."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Entity] = {}
        self._etags = itertools.count(1)

    def _put(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        entity = Entity(table, partition, row, dict(data), f"W/{next(self._etags)}")
        self.rows[(table, partition, row)] = entity
        return entity

    async def get(self, table: str, partition: str, row: str) -> Entity | None:
        await asyncio.sleep(0)
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
        self.rows.pop((table, partition, row), None)

    async def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]:
        for (t, p, _), entity in list(self.rows.items()):
            if t == table and (partition is None or p == partition):
                yield entity

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]:
        check_commit_conditions(self.rows, table, partition, writes)
        return tuple(self._put(table, partition, w.row, w.data) for w in writes)


def check_commit_conditions(
    rows: Mapping[tuple[str, str, str], Entity], table: str, partition: str, writes: Sequence[RowWrite]
) -> None:
    """A `StateStore.commit`'s conditions over in-memory rows: ConcurrencyConflict unless every write's
    row is absent (an insert) or still at its etag (a replace)."""
    for w in writes:
        current = rows.get((table, partition, w.row))
        if (current is not None) if w.etag is None else (current is None or current.etag != w.etag):
            raise ConcurrencyConflict("exists or etag")


@dataclass
class RecordingQueue:
    """The MessageSender port with the queue's duplicate detection; `fail` makes the next sends fail."""

    messages: dict[str, Message] = field(default_factory=dict)
    fail: int = 0

    async def send(self, messages: Sequence[Message]) -> None:
        if self.fail:
            self.fail -= 1
            raise TransientError("queue unavailable")
        for message in messages:
            self.messages.setdefault(message.message_id, message)

    def of_kind(self, kind: str) -> list[Message]:
        return [m for m in self.messages.values() if m.kind == kind]


@dataclass
class FakeClock:
    """Business time that tests move by hand."""

    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


@dataclass
class DeltaGraph:
    """Graph for the notification path: group delta from a change log, and the app's subscriptions.

    Delta links are `delta:{group}:{version}`; a link in `expired` answers 410 as Graph does for a lost sync
    state. A full round lists the group's members `page_size` per page and replays the last page's first
    member once more (Graph repeats itself). Subscriptions answer NotFound once deleted behind our back.
    """

    members: dict[str, set[str]] = field(default_factory=dict)
    log: list[tuple[int, str, str, bool]] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)
    page_size: int = 3
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    create_error: Exception | None = None
    delta_error: Exception | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def version(self) -> int:
        return len(self.log)

    def add(self, group_id: str, *users: str) -> None:
        for user in users:
            self.members.setdefault(group_id, set()).add(user)
            self.log.append((self.version + 1, group_id, user, True))

    def remove(self, group_id: str, *users: str) -> None:
        for user in users:
            self.members.setdefault(group_id, set()).discard(user)
            self.log.append((self.version + 1, group_id, user, False))

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        if path == "/subscriptions":
            yield GraphPage(items=tuple(self.listed()))
            return
        if path.startswith("delta:"):
            if self.delta_error is not None:
                raise self.delta_error
            if path in self.expired:
                raise Rejected("GET /groups/delta: 410 syncStateInvalid", status=410, code="syncStateInvalid")
            _, group_id, since = path.split(":")
            entries = [
                {"id": user, **({} if added else {"@removed": {"reason": "deleted"}})}
                for _, g, user, added in self.log[int(since) :]
                if g == group_id
            ]
            # Two items for the group, the second replaying the first's last entry.
            items = [{"id": group_id, "members@delta": entries}]
            if entries:
                items.append({"id": group_id, "members@delta": entries[-1:]})
            yield GraphPage(items=tuple(items), delta_link=f"delta:{group_id}:{self.version}")
            return
        assert path == "/groups/delta"
        assert params is not None
        group_id = params["$filter"].split("'")[1]
        users = sorted(self.members.get(group_id, set()))
        chunks = [users[i : i + self.page_size] for i in range(0, len(users), self.page_size)] or [[]]
        for index, chunk in enumerate(chunks):
            listed: list[dict[str, Any]] = [{"@odata.type": "#microsoft.graph.user", "id": u} for u in chunk]
            if index == len(chunks) - 1 and chunk:
                listed.append({"@odata.type": "#microsoft.graph.group", "id": "nested-group"})
                listed.append(listed[0])
            last = index == len(chunks) - 1
            yield GraphPage(
                items=({"id": group_id, "members@delta": listed},),
                next_link=None if last else f"page:{index + 1}",
                delta_link=f"delta:{group_id}:{self.version}" if last else None,
            )

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        self.writes.append((method, path))
        if method == "POST" and path == "/subscriptions":
            if self.create_error is not None:
                raise self.create_error
            assert body is not None
            sid = f"sub-{next(self._ids)}"
            self.subscriptions[sid] = {"id": sid, **body}
            return self.subscriptions[sid]
        sid = path.rsplit("/", 1)[-1]
        if sid not in self.subscriptions:
            raise NotFound(f"{method} {path}: 404")
        if method == "PATCH":
            assert body is not None
            self.subscriptions[sid].update(body)
            return self.subscriptions[sid]
        if method == "DELETE":
            del self.subscriptions[sid]
        return None

    def listed(self) -> list[dict[str, Any]]:
        return list(self.subscriptions.values())

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        raise NotFound(path)

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        return []

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        return MemberAddResult()

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        return False

    async def granted_roles(self) -> frozenset[str]:
        return frozenset()

    def counters(self) -> Mapping[str, OperationCount]:
        return {}
