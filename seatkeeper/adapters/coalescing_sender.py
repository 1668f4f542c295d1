"""A MessageSender that joins concurrent sends into one (group commit), for the Graph webhook.

Each caller still returns only once its own messages are persisted, or raises what the send raised: a
burst of deliveries costs one queue transaction (embedded) or one batch (Service Bus) per round instead of
one per request, which keeps the webhook's answers far inside Graph's 3 seconds under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from seatkeeper.core.messages import Message
from seatkeeper.core.ports import MessageSender

MAX_BATCH: Final = 1_000
"""Messages per joined send at most (a Service Bus batch is split further by its adapter)."""


class CoalescingSender:
    """Wraps a MessageSender: sends arriving while one is in flight go together in the next one."""

    def __init__(self, inner: MessageSender, *, max_batch: int = MAX_BATCH) -> None:
        self._inner = inner
        self._max = max_batch
        self._pending: list[tuple[Sequence[Message], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def send(self, messages: Sequence[Message]) -> None:
        """Persist `messages` (with whatever else is waiting); raises the inner sender's error."""
        if not messages:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((messages, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch: list[tuple[Sequence[Message], asyncio.Future[None]]] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max):
                messages, done = self._pending.pop(0)
                batch.append((messages, done))
                size += len(messages)
            try:
                await self._inner.send([m for messages, _ in batch for m in messages])
            except Exception as error:  # noqa: BLE001 - handed to every caller of this round, who raises it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
