"""The idempotency record: which messages were handled, kept in the state store beyond the queue's window.

Service Bus forgets message ids after its duplicate-detection window; a redelivery or a late duplicate
must still not run a handler twice. A message is marked done only once its handler returned: a handler that
raised leaves no mark, so the redelivery runs it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final, TypeVar

from seatkeeper.core.ports import StateStore

IDEMPOTENCY_TABLE: Final = "idempotency"
DEFAULT_RETENTION: Final = timedelta(days=14)

_T = TypeVar("_T")


class IdempotencyRecord:
    """Done-marks per (queue, message id), each kept for `retention` of business time."""

    def __init__(self, store: StateStore, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._store = store
        self._retention = retention

    async def is_done(self, queue: str, message_id: str, *, now: datetime) -> bool:
        """Whether this message was handled successfully (and the mark has not expired)."""
        entity = await self._store.get(IDEMPOTENCY_TABLE, queue, message_id)
        if entity is None:
            return False
        return datetime.fromisoformat(str(entity.data["expires_at"])) > now

    async def mark_done(self, queue: str, message_id: str, *, kind: str, now: datetime) -> None:
        """Record that the handler of this message succeeded."""
        await self._store.upsert(
            IDEMPOTENCY_TABLE,
            queue,
            message_id,
            {"kind": kind, "done_at": now.isoformat(), "expires_at": (now + self._retention).isoformat()},
        )

    async def run_once(
        self,
        queue: str,
        message_id: str,
        *,
        kind: str,
        now: datetime,
        handler: Callable[[], Awaitable[_T]],
    ) -> tuple[bool, _T | None]:
        """Run `handler` unless the message is done; mark it done only if the handler returned.

        Returns (ran, result): (False, None) for a message handled before. Errors propagate unmarked.
        """
        if await self.is_done(queue, message_id, now=now):
            return False, None
        result = await handler()
        await self.mark_done(queue, message_id, kind=kind, now=now)
        return True, result

    async def purge(self, *, now: datetime) -> int:
        """Delete expired marks (a housekeeping timer calls this); returns how many were removed."""
        expired = [
            entity
            async for entity in self._store.query(IDEMPOTENCY_TABLE)
            if datetime.fromisoformat(str(entity.data["expires_at"])) <= now
        ]
        for entity in expired:
            await self._store.delete(IDEMPOTENCY_TABLE, entity.partition, entity.row, etag=entity.etag)
        return len(expired)
