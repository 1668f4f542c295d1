"""The embedded durable queue: Service Bus semantics on one SQLite file (WAL), for running without Azure.

Producer side: `send` (the MessageSender port). Consumer side, for the local host:

- `receive(queue, max_messages, lock_duration)` peek-locks up to `max_messages` messages, oldest first.
  A message is visible once its `scheduled_for` has come by the injected business `Clock`; its lock
  expires on wall time (the `wall` clock), after which it is delivered again. Each receive counts one
  delivery. Sessions: at most one message of a session is locked at any time, and a session's messages
  are delivered in the order they were sent (an abandoned one is delivered again before its successors).
- `complete`, `abandon` (optionally held back for a wall-time `delay`), `dead_letter(reason, description)`
  and `renew_lock` settle a received message; each returns False when its lock was lost (expired and
  taken again, or settled already), as Service Bus raises MessageLockLostError.
- Past `max_deliveries` a message is dead-lettered with reason `MaxDeliveryCountExceeded`.
- Duplicate detection: a `message_id` sent again to the same queue within `duplicate_window` (wall time)
  is dropped silently, as Service Bus does.
- `activity()` says how many messages are due, in flight or scheduled, for the local host's idle answer.
- Dead letters (the DeadLetterStore port): `list`, `peek`, `resubmit`. A dead letter gets the next number
  of its queue's dead-letter sequence, which is also the `n` of its resubmitted id.

Safe from several threads and tasks (one connection per thread) and across processes on one file (every
write is one `BEGIN IMMEDIATE` transaction). Every committed change survives `kill -9` of the process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog

from seatkeeper.adapters.clocks import WallClock
from seatkeeper.adapters.sqlite_file import SqliteFile
from seatkeeper.core.errors import NotFound, Unavailable
from seatkeeper.core.messages import QUEUES, Message, resubmitted_id
from seatkeeper.core.ports import Clock, DeadLetter

_log = structlog.get_logger(__name__)
_T = TypeVar("_T")

MAX_DELIVERY_COUNT_EXCEEDED: Final = "MaxDeliveryCountExceeded"
# The file name in the data directory, shared by the app (bootstrap) and the local host.
EMBEDDED_QUEUE_FILE: Final = "queue.sqlite3"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    session_id TEXT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at REAL NOT NULL,            -- wall time, epoch seconds
    visible_at REAL NOT NULL,             -- business time, epoch seconds (0: at once)
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    locked_until REAL,                    -- wall time, epoch seconds
    dead_seq INTEGER,                     -- set once dead-lettered: the dead-letter queue's sequence
    dead_reason TEXT,
    dead_description TEXT,
    dead_at REAL                          -- business time, epoch seconds
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, dead_seq, visible_at, seq);
CREATE INDEX IF NOT EXISTS messages_session ON messages (queue, session_id, dead_seq, seq);
CREATE INDEX IF NOT EXISTS messages_dead ON messages (queue, dead_seq);
-- Receive reads only locked rows (lock expiry, busy sessions) and the waiting ones in order: with these
-- partial indexes a receive stops at the first due messages instead of scanning and sorting a whole backlog.
CREATE INDEX IF NOT EXISTS messages_locked ON messages (queue, locked_until, session_id)
    WHERE lock_token IS NOT NULL AND dead_seq IS NULL;
CREATE INDEX IF NOT EXISTS messages_waiting ON messages (queue, seq, visible_at)
    WHERE lock_token IS NULL AND dead_seq IS NULL;
CREATE TABLE IF NOT EXISTS seen_ids (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,             -- wall time, epoch seconds
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX IF NOT EXISTS seen_ids_expiry ON seen_ids (expires_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_IDS_PER_QUERY: Final = 500  # below SQLite's smallest host-parameter limit (999)
_COLUMNS: Final = (
    "seq, queue, message_id, correlation_id, session_id, kind, subject, body, enqueued_at, visible_at, "
    "delivery_count, lock_token, locked_until, dead_seq, dead_reason, dead_description, dead_at"
)


@dataclass(frozen=True)
class ReceivedMessage:
    """A peek-locked message: settle it with its `lock_token` before `locked_until` (wall time)."""

    queue: str
    message_id: str
    correlation_id: str
    session_id: str | None
    kind: str
    subject: str
    body: bytes
    delivery_count: int
    sequence_number: int
    enqueued_at: datetime
    scheduled_for: datetime | None
    lock_token: str
    locked_until: datetime


@dataclass(frozen=True)
class QueueActivity:
    """What a queue (or all of them) holds: `idle` when nothing is due or in flight.

    `due` counts visible messages not locked (including expired locks, about to be delivered again),
    `in_flight` locked ones (including those held back after an abandon with a delay), `scheduled` the
    ones not yet visible by business time, the earliest of which becomes visible at `next_due`.
    """

    due: int
    in_flight: int
    scheduled: int
    next_due: datetime | None

    @property
    def idle(self) -> bool:
        """Nothing to deliver and nothing being processed."""
        return self.due == 0 and self.in_flight == 0


def _epoch(when: datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.timestamp()


def _datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _row(message: Message, wall: float) -> tuple[object, ...]:
    """The `messages` columns of a new message, enqueued at `wall`."""
    visible_at = _epoch(message.scheduled_for) if message.scheduled_for else 0.0
    return (
        message.queue,
        message.message_id,
        message.correlation_id,
        message.session_id,
        message.kind,
        message.subject,
        message.body(),
        wall,
        visible_at,
    )


def _seen(db: sqlite3.Connection, messages: Sequence[Message]) -> set[tuple[str, str]]:
    """The (queue, message id) pairs of `messages` already in `seen_ids` (by its primary key)."""
    by_queue: dict[str, list[str]] = {}
    for message in messages:
        by_queue.setdefault(message.queue, []).append(message.message_id)
    seen: set[tuple[str, str]] = set()
    for queue, ids in by_queue.items():
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _IDS_PER_QUERY):
            chunk = unique[start : start + _IDS_PER_QUERY]
            rows = db.execute(
                "SELECT message_id FROM seen_ids WHERE queue = ? AND message_id IN "  # noqa: S608 -- placeholders only
                f"({', '.join('?' * len(chunk))})",
                (queue, *chunk),
            )
            seen.update((queue, str(found)) for (found,) in rows)
    return seen


class EmbeddedQueue:
    """Every queue of design §3 in one SQLite file; see the module docstring for the semantics."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Clock,
        wall: Clock | None = None,
        max_deliveries: int = 10,
        duplicate_window: timedelta = timedelta(minutes=10),
        busy_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self._clock = clock
        self._wall = wall or WallClock()
        self.max_deliveries = max_deliveries
        self._window = duplicate_window.total_seconds()
        self._file = SqliteFile(path, busy_timeout=busy_timeout)
        self._file.create(_SCHEMA)
        self._connection = self._file.connection
        self._transaction = self._file.transaction

    # -- connections -------------------------------------------------------------------------------

    async def _run(self, func: Callable[[], _T]) -> _T:
        return await asyncio.to_thread(func)

    def close(self) -> None:
        """Close every connection this object opened (call once, at shutdown)."""
        self._file.close()

    # -- producer ----------------------------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> None:
        """Enqueue messages atomically (all or none); duplicates within the window are dropped."""
        await self._run(lambda: self.send_sync(messages))

    def send_sync(self, messages: Sequence[Message]) -> list[str]:
        """`send` for synchronous callers; returns the ids actually enqueued (duplicates left out)."""
        wall = _epoch(self._wall.now())
        expires_at = wall + self._window
        rows = [_row(m, wall) for m in messages]  # bodies serialised before the write lock is taken
        with self._transaction() as db:
            db.execute("DELETE FROM seen_ids WHERE expires_at <= ?", (wall,))
            # Every row left is inside the window: one look-up per queue, then two bulk inserts.
            seen = _seen(db, messages)
            fresh: list[tuple[object, ...]] = []
            for message, row in zip(messages, rows, strict=True):
                mark = (message.queue, message.message_id)
                if mark not in seen:
                    seen.add(mark)
                    fresh.append(row)
            db.executemany(
                "INSERT OR REPLACE INTO seen_ids (queue, message_id, expires_at) VALUES (?, ?, ?)",
                [(row[0], row[1], expires_at) for row in fresh],
            )
            db.executemany(
                "INSERT INTO messages (queue, message_id, correlation_id, session_id, kind, subject, body, "
                "enqueued_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                fresh,
            )
        if len(fresh) < len(messages):
            # Debug only: redeliveries are routine (Graph, HR retries) and this is the webhook's hot path.
            _log.debug("queue.duplicates_dropped", dropped=len(messages) - len(fresh), sent=len(messages))
        return [str(row[1]) for row in fresh]

    # -- consumer ----------------------------------------------------------------------------------

    async def receive(
        self, queue: str, max_messages: int = 1, lock_duration: timedelta = timedelta(seconds=60)
    ) -> list[ReceivedMessage]:
        """Peek-lock up to `max_messages` due messages of `queue` (oldest first, sessions honoured)."""
        return await self._run(lambda: self.receive_sync(queue, max_messages, lock_duration))

    def receive_sync(
        self, queue: str, max_messages: int = 1, lock_duration: timedelta = timedelta(seconds=60)
    ) -> list[ReceivedMessage]:
        """`receive` for synchronous callers."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        wall = _epoch(self._wall.now())
        business = _epoch(self._clock.now())
        locked_until = wall + lock_duration.total_seconds()
        received: list[ReceivedMessage] = []
        with self._transaction() as db:
            self._expire_locks(db, queue, wall, business)
            busy = {
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT session_id FROM messages INDEXED BY messages_locked "
                    "WHERE queue = ? AND dead_seq IS NULL "
                    "AND lock_token IS NOT NULL AND session_id IS NOT NULL",
                    (queue,),
                )
            }
            picked: list[Any] = []
            cursor = db.execute(
                f"SELECT {_COLUMNS} FROM messages INDEXED BY messages_waiting "  # noqa: S608 -- constant column list
                "WHERE queue = ? AND dead_seq IS NULL AND lock_token IS NULL AND visible_at <= ? "
                "ORDER BY seq",
                (queue, business),
            )
            for row in cursor:
                session_id = row[4]
                if session_id is not None:
                    # The first visible message met of a session is its head; a session is taken once.
                    if session_id in busy:
                        continue
                    busy.add(session_id)
                picked.append(tuple(row))
                if len(picked) >= max_messages:
                    break
            cursor.close()
            for row in picked:
                token = uuid.uuid4().hex
                db.execute(
                    "UPDATE messages SET lock_token = ?, locked_until = ?, "
                    "delivery_count = delivery_count + 1 WHERE seq = ?",
                    (token, locked_until, row[0]),
                )
                received.append(self._received(row, token, locked_until))
        return received

    @staticmethod
    def _received(row: Any, token: str, locked_until: float) -> ReceivedMessage:
        visible_at = float(row[9])
        return ReceivedMessage(
            queue=str(row[1]),
            message_id=str(row[2]),
            correlation_id=str(row[3]),
            session_id=None if row[4] is None else str(row[4]),
            kind=str(row[5]),
            subject=str(row[6]),
            body=bytes(row[7]),
            delivery_count=int(row[10]) + 1,
            sequence_number=int(row[0]),
            enqueued_at=_datetime(float(row[8])),
            scheduled_for=_datetime(visible_at) if visible_at else None,
            lock_token=token,
            locked_until=_datetime(locked_until),
        )

    def _expire_locks(self, db: sqlite3.Connection, queue: str | None, wall: float, business: float) -> None:
        query = (
            "SELECT seq, delivery_count FROM messages INDEXED BY messages_locked "
            "WHERE dead_seq IS NULL AND lock_token IS NOT NULL "
            "AND locked_until <= ?"
        )
        params: tuple[object, ...] = (wall,)
        if queue is not None:
            query += " AND queue = ?"
            params = (wall, queue)
        for seq, delivery_count in db.execute(query, params).fetchall():
            if delivery_count >= self.max_deliveries:
                self._move_to_dead_letters(
                    db,
                    seq,
                    MAX_DELIVERY_COUNT_EXCEEDED,
                    f"lock expired on delivery {delivery_count} of {self.max_deliveries}",
                    business,
                )
            else:
                db.execute("UPDATE messages SET lock_token = NULL, locked_until = NULL WHERE seq = ?", (seq,))

    def _move_to_dead_letters(
        self, db: sqlite3.Connection, seq: int, reason: str, description: str, business: float
    ) -> None:
        db.execute(
            "INSERT INTO counters (name, value) VALUES ('dead_seq', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1"
        )
        (dead_seq,) = db.execute("SELECT value FROM counters WHERE name = 'dead_seq'").fetchone()
        db.execute(
            "UPDATE messages SET dead_seq = ?, dead_reason = ?, dead_description = ?, dead_at = ?, "
            "lock_token = NULL, locked_until = NULL WHERE seq = ?",
            (dead_seq, reason, description, business, seq),
        )
        row = db.execute("SELECT queue, message_id FROM messages WHERE seq = ?", (seq,)).fetchone()
        _log.warning("queue.dead_lettered", queue=row[0], message_id=row[1], reason=reason)

    def _locked_row(
        self, db: sqlite3.Connection, message: ReceivedMessage, wall: float
    ) -> tuple[int, int] | None:
        row = db.execute(
            "SELECT seq, delivery_count FROM messages WHERE seq = ? AND lock_token = ? AND locked_until > ? "
            "AND dead_seq IS NULL",
            (message.sequence_number, message.lock_token, wall),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    async def complete(self, message: ReceivedMessage) -> bool:
        """Remove a processed message; False if its lock was lost (it will be delivered again)."""
        return await self._run(lambda: self._complete(message))

    def _complete(self, message: ReceivedMessage) -> bool:
        wall = _epoch(self._wall.now())
        with self._transaction() as db:
            row = self._locked_row(db, message, wall)
            if row is None:
                return False
            db.execute("DELETE FROM messages WHERE seq = ?", (row[0],))
            return True

    async def abandon(self, message: ReceivedMessage, *, delay: timedelta | None = None) -> bool:
        """Give a message back for redelivery (after `delay` of wall time, if given).

        Past `max_deliveries` it is dead-lettered instead. False if the lock was lost.
        """
        return await self._run(lambda: self._abandon(message, delay))

    def _abandon(self, message: ReceivedMessage, delay: timedelta | None) -> bool:
        wall = _epoch(self._wall.now())
        with self._transaction() as db:
            row = self._locked_row(db, message, wall)
            if row is None:
                return False
            seq, delivery_count = row
            if delivery_count >= self.max_deliveries:
                self._move_to_dead_letters(
                    db,
                    seq,
                    MAX_DELIVERY_COUNT_EXCEEDED,
                    f"abandoned on delivery {delivery_count} of {self.max_deliveries}",
                    _epoch(self._clock.now()),
                )
            elif delay is not None and delay > timedelta(0):
                # Held under a token nobody has: invisible (and in flight) until the hold expires.
                db.execute(
                    "UPDATE messages SET lock_token = ?, locked_until = ? WHERE seq = ?",
                    (f"held:{uuid.uuid4().hex}", wall + delay.total_seconds(), seq),
                )
            else:
                db.execute("UPDATE messages SET lock_token = NULL, locked_until = NULL WHERE seq = ?", (seq,))
            return True

    async def dead_letter(self, message: ReceivedMessage, reason: str, description: str = "") -> bool:
        """Move a received message to its queue's dead-letter queue; False if the lock was lost."""
        return await self._run(lambda: self._dead_letter(message, reason, description))

    def _dead_letter(self, message: ReceivedMessage, reason: str, description: str) -> bool:
        wall = _epoch(self._wall.now())
        with self._transaction() as db:
            row = self._locked_row(db, message, wall)
            if row is None:
                return False
            self._move_to_dead_letters(db, row[0], reason, description, _epoch(self._clock.now()))
            return True

    async def renew_lock(self, message: ReceivedMessage, lock_duration: timedelta) -> ReceivedMessage | None:
        """Extend a lock from now; returns the message with its new `locked_until`, None if lost."""
        return await self._run(lambda: self._renew(message, lock_duration))

    def _renew(self, message: ReceivedMessage, lock_duration: timedelta) -> ReceivedMessage | None:
        wall = _epoch(self._wall.now())
        until = wall + lock_duration.total_seconds()
        with self._transaction() as db:
            if self._locked_row(db, message, wall) is None:
                return None
            db.execute("UPDATE messages SET locked_until = ? WHERE seq = ?", (until, message.sequence_number))
        return replace(message, locked_until=_datetime(until))

    async def activity(self, queue: str | None = None) -> QueueActivity:
        """Due, in-flight and scheduled counts of one queue (or all): the local host's idle answer."""
        return await self._run(lambda: self.activity_sync(queue))

    def activity_sync(self, queue: str | None = None) -> QueueActivity:
        """`activity` for synchronous callers."""
        wall = _epoch(self._wall.now())
        business = _epoch(self._clock.now())
        where = "dead_seq IS NULL" + (" AND queue = ?" if queue is not None else "")
        params: tuple[object, ...] = (queue,) if queue is not None else ()
        db = self._connection()
        row = db.execute(
            "SELECT "
            "COALESCE(SUM(CASE WHEN visible_at <= ? AND (lock_token IS NULL OR locked_until <= ?) "
            "THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN lock_token IS NOT NULL AND locked_until > ? THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN visible_at > ? AND lock_token IS NULL THEN 1 ELSE 0 END), 0), "
            "MIN(CASE WHEN visible_at > ? AND lock_token IS NULL THEN visible_at END) "
            "FROM messages WHERE " + where,
            (business, wall, wall, business, business, *params),
        ).fetchone()
        return QueueActivity(
            due=int(row[0]),
            in_flight=int(row[1]),
            scheduled=int(row[2]),
            next_due=None if row[3] is None else _datetime(float(row[3])),
        )

    # -- dead letters (DeadLetterStore) --------------------------------------------------------------

    @staticmethod
    def _dead_letter_of(row: Any) -> DeadLetter:
        return DeadLetter(
            queue=str(row[1]),
            message_id=str(row[2]),
            kind=str(row[5]),
            subject=str(row[6]),
            reason=str(row[14] or ""),
            description=str(row[15] or ""),
            delivery_count=int(row[10]),
            dead_lettered_at=_datetime(float(row[16])),
            body=bytes(row[7]),
            session_id=None if row[4] is None else str(row[4]),
            correlation_id=str(row[3]),
            sequence_number=int(row[13]),
        )

    async def list(self, queue: str, *, limit: int = 100, after_sequence: int = 0) -> Sequence[DeadLetter]:
        """Dead letters of `queue`, oldest first, those numbered above `after_sequence` only."""
        return await self._run(lambda: self._list(queue, limit, after_sequence))

    def _list(self, queue: str, limit: int, after_sequence: int) -> Sequence[DeadLetter]:
        rows = (
            self._connection()
            .execute(
                f"SELECT {_COLUMNS} FROM messages WHERE queue = ? AND dead_seq > ? "  # noqa: S608 -- constant column list
                "ORDER BY dead_seq LIMIT ?",
                (queue, after_sequence, limit),
            )
            .fetchall()
        )
        return [self._dead_letter_of(row) for row in rows]

    async def peek(self, queue: str, message_id: str) -> DeadLetter | None:
        """The oldest dead letter of `queue` with this message id, if any."""
        return await self._run(lambda: self._peek(queue, message_id))

    def _peek(self, queue: str, message_id: str) -> DeadLetter | None:
        row = (
            self._connection()
            .execute(
                f"SELECT {_COLUMNS} FROM messages WHERE queue = ? AND message_id = ? "  # noqa: S608 -- constant column list
                "AND dead_seq IS NOT NULL ORDER BY dead_seq LIMIT 1",
                (queue, message_id),
            )
            .fetchone()
        )
        return None if row is None else self._dead_letter_of(row)

    async def resubmit(self, queue: str, message_id: str) -> str:
        """Send the oldest such dead letter again under a new id and drop it from the DLQ, atomically."""
        return await self._run(lambda: self._resubmit(queue, message_id))

    def _resubmit(self, queue: str, message_id: str) -> str:
        wall = _epoch(self._wall.now())
        with self._transaction() as db:
            row = db.execute(
                "SELECT seq, dead_seq FROM messages WHERE queue = ? AND message_id = ? "
                "AND dead_seq IS NOT NULL ORDER BY dead_seq LIMIT 1",
                (queue, message_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no dead letter {message_id} in {queue}")
            seq, dead_seq = int(row[0]), int(row[1])
            new_id = resubmitted_id(message_id, dead_seq)
            db.execute(
                "INSERT OR REPLACE INTO seen_ids (queue, message_id, expires_at) VALUES (?, ?, ?)",
                (queue, new_id, wall + self._window),
            )
            db.execute(
                "INSERT INTO messages (queue, message_id, correlation_id, session_id, kind, subject, body, "
                "enqueued_at, visible_at) SELECT queue, ?, correlation_id, session_id, kind, subject, body, "
                "?, 0 FROM messages WHERE seq = ?",
                (new_id, wall, seq),
            )
            db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
        _log.info("queue.dead_letter_resubmitted", queue=queue, message_id=message_id, new_message_id=new_id)
        return new_id

    async def check(self) -> None:
        """Probe for health: the file opens and answers a read."""

        def probe() -> None:
            try:
                self._connection().execute("SELECT COUNT(*) FROM counters").fetchone()
            except sqlite3.Error as exc:
                raise Unavailable(f"embedded queue unreadable: {type(exc).__name__}") from exc

        await self._run(probe)
