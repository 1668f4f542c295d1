"""Feeds queue-triggered functions from the embedded queue, as the Service Bus extension does in Azure.

Each message is peek-locked, handed over as a real `ServiceBusMessage`, completed when the function
returns and abandoned when it raises (the queue redelivers it and dead-letters it past the limit).
Concurrency is bounded per function; sessions are kept by the queue (one consumer per session); locks
are renewed while a function runs (up to five minutes, the extension's default).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

import structlog

from seatkeeper.localhost.bindings import Delivery, service_bus_message
from seatkeeper.localhost.catalog import QueueFunction
from seatkeeper.localhost.invoker import Invoker

log = structlog.get_logger(__name__)


class QueueSource(Protocol):
    """What the local host needs of a durable queue: peek-lock receive, settle, and a busy check."""

    async def receive(self, queue: str) -> Delivery | None:
        """The next due message of `queue`, locked for this consumer (sessions kept), or None."""
        ...

    async def renew(self, delivery: Delivery) -> bool:
        """Extend the lock of a message still being handled; False when the lock was lost."""
        ...

    async def complete(self, delivery: Delivery) -> bool:
        """Remove a processed message; False when its lock was lost (it will be delivered again)."""
        ...

    async def abandon(self, delivery: Delivery, reason: str) -> None:
        """Release the lock so the message is redelivered (or dead-lettered past max deliveries)."""
        ...

    async def busy(self) -> bool:
        """Whether any message is due or in flight (locked) on any queue."""
        ...


class QueuePump:
    """Runs `concurrency` consumers per queue function until stopped."""

    def __init__(
        self,
        functions: Sequence[QueueFunction],
        source: QueueSource,
        invoker: Invoker,
        *,
        concurrency: int = 4,
        poll_seconds: float = 0.2,
        renew_every_seconds: float = 30.0,
        max_renewal_seconds: float = 300.0,
    ) -> None:
        self._functions = functions
        self._source = source
        self._invoker = invoker
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._handling = 0
        self._renew_every = renew_every_seconds
        self._max_renewal = max_renewal_seconds

    @property
    def handling(self) -> int:
        """Messages handed to a function and not settled yet."""
        return self._handling

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; a message being handled is finished and settled first."""
        consumers = [
            self._consume(function, stop) for function in self._functions for _ in range(self._concurrency)
        ]
        await asyncio.gather(*consumers)

    async def _consume(self, function: QueueFunction, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                delivery = await self._source.receive(function.queue)
            except Exception as exc:  # noqa: BLE001 - a queue hiccup must not end the consumer; retry later
                log.warning("localhost.queue_receive_failed", queue=function.queue, error=type(exc).__name__)
                delivery = None
            if delivery is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._poll)
                continue
            await self.handle(function, delivery)

    async def handle(self, function: QueueFunction, delivery: Delivery) -> bool:
        """Run `function` on one locked delivery and settle it; True when it completed."""
        self._handling += 1
        ids = {
            "function": function.name,
            "queue": delivery.queue,
            "message_id": delivery.message_id,
            "delivery_count": delivery.delivery_count,
        }
        renewer = asyncio.get_running_loop().create_task(self._keep_locked(delivery))
        try:
            try:
                await self._invoker.invoke(function, service_bus_message(delivery))
            except Exception as exc:  # noqa: BLE001 - any failure abandons; the queue redelivers or dead-letters
                log.warning("localhost.message_abandoned", error=type(exc).__name__, **ids)
                await self._source.abandon(delivery, reason=type(exc).__name__)
                return False
            if not await self._source.complete(delivery):
                log.warning("localhost.message_lock_lost", **ids)
                return False
            log.info("localhost.message_completed", **ids)
            return True
        finally:
            renewer.cancel()
            self._handling -= 1

    async def _keep_locked(self, delivery: Delivery) -> None:
        """Renew the lock while the function runs, up to a limit, as the Service Bus extension does."""
        elapsed = 0.0
        while elapsed + self._renew_every <= self._max_renewal:
            await asyncio.sleep(self._renew_every)
            elapsed += self._renew_every
            if not await self._source.renew(delivery):
                log.warning(
                    "localhost.message_lock_lost", queue=delivery.queue, message_id=delivery.message_id
                )
                return
