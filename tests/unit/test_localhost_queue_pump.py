"""The queue pump settles each delivery by the function's outcome: complete on success, abandon on error."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

import azure.functions as func

from seatkeeper.localhost.bindings import Delivery
from seatkeeper.localhost.catalog import index
from seatkeeper.localhost.invoker import Invoker
from seatkeeper.localhost.queue_pump import QueuePump


class InMemoryQueue:
    """A recording QueueSource: abandoned messages go back to the end with one more delivery."""

    def __init__(self, deliveries: list[Delivery]) -> None:
        self.pending = list(deliveries)
        self.locked: list[Delivery] = []
        self.completed: list[str] = []

    async def receive(self, queue: str) -> Delivery | None:
        if not self.pending:
            return None
        delivery = self.pending.pop(0)
        self.locked.append(delivery)
        return delivery

    async def renew(self, delivery: Delivery) -> bool:
        return delivery in self.locked

    async def complete(self, delivery: Delivery) -> bool:
        self.locked.remove(delivery)
        self.completed.append(delivery.message_id)
        return True

    async def abandon(self, delivery: Delivery, reason: str) -> None:
        self.locked.remove(delivery)
        self.pending.append(replace(delivery, delivery_count=delivery.delivery_count + 1))

    async def busy(self) -> bool:
        return bool(self.pending or self.locked)


def _delivery(message_id: str, fail_until: int = 0) -> Delivery:
    return Delivery(
        queue="license-checks",
        message_id=message_id,
        body=json.dumps({"fail_until": fail_until}).encode(),
        delivery_count=1,
        enqueued_time=datetime(2026, 1, 1, tzinfo=UTC),
        lock_token=f"lock-{message_id}",
        session_id="s",
        correlation_id="c",
    )


def _app(handled: list[tuple[str, int]]) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="license-checks", connection="SB")
    def work(msg: func.ServiceBusMessage) -> None:
        count = msg.delivery_count or 0
        if count <= json.loads(msg.get_body())["fail_until"]:
            raise RuntimeError("not yet")
        handled.append((msg.message_id, count))

    return app


def test_success_completes_the_message() -> None:
    """A function that returns completes its message."""
    handled: list[tuple[str, int]] = []
    queue = InMemoryQueue([_delivery("m1")])
    pump = QueuePump(index(_app(handled)).queues, queue, Invoker())
    (function,) = index(_app(handled)).queues
    completed = asyncio.run(pump.handle(function, asyncio.run(_receive(queue))))
    assert (completed, queue.completed, asyncio.run(queue.busy())) == (True, ["m1"], False)


async def _receive(queue: InMemoryQueue) -> Delivery:
    delivery = await queue.receive("license-checks")
    assert delivery is not None
    return delivery


def test_exception_abandons_and_the_redelivery_succeeds() -> None:
    """A raising function abandons; the redelivered message (count 2) is handled and completed."""
    handled: list[tuple[str, int]] = []
    queue = InMemoryQueue([_delivery("m1", fail_until=1), _delivery("m2")])
    catalog = index(_app(handled))
    pump = QueuePump(catalog.queues, queue, Invoker(), concurrency=1, poll_seconds=0.01)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pump.run(stop))
        for _ in range(1000):  # bounded: about ten seconds
            if len(queue.completed) >= 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    asyncio.run(run())
    assert handled == [("m2", 1), ("m1", 2)]
    assert queue.completed == ["m2", "m1"]
