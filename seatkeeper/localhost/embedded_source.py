"""The embedded durable queue seen through the local host's QueueSource port."""

from __future__ import annotations

from datetime import timedelta

from seatkeeper.adapters.embedded_queue import EmbeddedQueue, ReceivedMessage
from seatkeeper.localhost.bindings import Delivery

# Locks expire on wall time: after a `kill -9`, a message in flight is delivered again this much later.
DEFAULT_LOCK = timedelta(seconds=30)


class EmbeddedQueueSource:
    """Receives from and settles on an `EmbeddedQueue`; remembers each lock until it is settled."""

    def __init__(self, queue: EmbeddedQueue, *, lock_duration: timedelta = DEFAULT_LOCK) -> None:
        self._queue = queue
        self._lock = lock_duration
        self._locked: dict[str, ReceivedMessage] = {}

    @property
    def lock_duration(self) -> timedelta:
        """How long a received message stays locked without renewal."""
        return self._lock

    async def receive(self, queue: str) -> Delivery | None:
        """One due message of `queue`, peek-locked, or None."""
        received = await self._queue.receive(queue, 1, self._lock)
        if not received:
            return None
        message = received[0]
        self._locked[message.lock_token] = message
        return Delivery(
            queue=message.queue,
            message_id=message.message_id,
            body=message.body,
            delivery_count=message.delivery_count,
            enqueued_time=message.enqueued_at,
            lock_token=message.lock_token,
            correlation_id=message.correlation_id or None,
            session_id=message.session_id,
            sequence_number=message.sequence_number,
            locked_until=message.locked_until,
            scheduled_enqueue_time=message.scheduled_for,
        )

    async def renew(self, delivery: Delivery) -> bool:
        """Extend the lock by the lock duration from now."""
        message = self._locked.get(delivery.lock_token)
        if message is None:
            return False
        renewed = await self._queue.renew_lock(message, self._lock)
        if renewed is None:
            return False
        self._locked[delivery.lock_token] = renewed
        return True

    async def complete(self, delivery: Delivery) -> bool:
        """Remove the message; False if its lock was lost (it will be delivered again: at least once)."""
        message = self._locked.pop(delivery.lock_token, None)
        return message is not None and await self._queue.complete(message)

    async def abandon(self, delivery: Delivery, reason: str) -> None:
        """Give the message back at once; past max deliveries the queue dead-letters it."""
        message = self._locked.pop(delivery.lock_token, None)
        if message is not None:
            await self._queue.abandon(message)

    async def busy(self) -> bool:
        """Whether any queue holds a due or in-flight message."""
        return not (await self._queue.activity()).idle
