"""The ports of Seatkeeper as typing.Protocols; adapters implement them and bootstrap injects them.

All I/O ports are async (Graph, queues and state share one event loop in a Functions worker); the clock
is synchronous and is the only source of business time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from seatkeeper.core.messages import Message


class Clock(Protocol):
    """Business time: wall clock in Azure, the sandbox clock in sandbox mode; timezone-aware UTC."""

    def now(self) -> datetime: ...


class MessageSender(Protocol):
    """Sends messages to their queues. Raises TransientError when nothing could be persisted."""

    async def send(self, messages: Sequence[Message]) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be processed, kept in its queue's dead-letter queue for inspection."""

    queue: str
    message_id: str
    kind: str
    subject: str
    reason: str
    description: str
    delivery_count: int
    dead_lettered_at: datetime
    body: bytes
    session_id: str | None
    correlation_id: str = ""
    # The transport's sequence number: unique per dead-letter occurrence, the `n` of a resubmitted id.
    sequence_number: int = 0


class DeadLetterStore(Protocol):
    """Inspect and resubmit dead letters (the same operations on Service Bus and the embedded queue).

    `list` returns the oldest first, only those numbered above `after_sequence` (a watcher's mark of
    what it has seen). `peek` returns the oldest dead letter with that message id. `resubmit` sends a
    copy under `resubmitted_id(message_id, n)` (n = the dead letter's sequence number), removes the dead
    letter only once the copy is sent, and returns the new id; NotFound when there is no such dead letter.
    """

    async def list(
        self, queue: str, *, limit: int = 100, after_sequence: int = 0
    ) -> Sequence[DeadLetter]: ...

    async def peek(self, queue: str, message_id: str) -> DeadLetter | None: ...

    async def resubmit(self, queue: str, message_id: str) -> str: ...


class Probe(Protocol):
    """A cheap reachability check for health: returns when reachable, raises TransientError if not."""

    async def check(self) -> None: ...


@dataclass(frozen=True)
class Entity:
    """One stored row: (table, partition, row) is the key; `etag` guards optimistic concurrency."""

    table: str
    partition: str
    row: str
    data: Mapping[str, Any]
    etag: str


# Table Storage's entity-group-transaction limit: one `commit` writes at most this many rows.
MAX_COMMIT_WRITES: Final = 100


@dataclass(frozen=True)
class RowWrite:
    """One row of an atomic `commit`: `etag` None inserts (the row must not exist), otherwise replaces
    the row only if its etag still matches."""

    row: str
    data: Mapping[str, Any]
    etag: str | None = None


class StateStore(Protocol):
    """Tables of JSON-compatible entities with ETag optimistic concurrency (no lost update).

    `insert` raises ConcurrencyConflict if the row exists; `replace` raises it if the etag no longer
    matches; `upsert` writes unconditionally. `delete` with an etag is conditional, without is not.
    `commit` writes up to MAX_COMMIT_WRITES distinct rows of ONE partition all or nothing, each under its
    RowWrite condition; ConcurrencyConflict (and nothing written) when any condition fails. It returns the
    written entities (with their new etags) in the order of `writes`.
    """

    async def get(self, table: str, partition: str, row: str) -> Entity | None: ...

    async def insert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity: ...

    async def replace(self, entity: Entity, data: Mapping[str, Any]) -> Entity: ...

    async def upsert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity: ...

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None: ...

    def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]: ...

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]: ...
