"""The Service Bus adapter at the SDK seam: recording fakes receive the real ServiceBusMessage objects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from seatkeeper.adapters.servicebus_queue import (
    DeadLetterReceiver,
    ReceivedLike,
    SdkTransport,
    ServiceBusQueues,
)
from seatkeeper.core.errors import NotFound, Unavailable
from seatkeeper.core.messages import HR_EVENTS, LICENSE_CHECKS, Message, resubmitted_id

pytestmark = pytest.mark.anyio

DUE = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)


def body_of(message: ServiceBusMessage) -> bytes:
    return b"".join(message.body)


class RecordingTransport:
    """Keeps every (queue, ServiceBusMessage) it is asked to send; can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ServiceBusMessage]] = []
        self.fail = False

    async def send(self, queue: str, messages: Sequence[ServiceBusMessage]) -> None:
        if self.fail:
            raise Unavailable("service bus down")
        self.sent.extend((queue, m) for m in messages)


@dataclass
class FakeReceived:
    """A dead-lettered message as the broker would hand it out."""

    message_id: str | None
    sequence_number: int | None
    body: Any = b'{"envelope":1}'
    correlation_id: str | None = "corr"
    session_id: str | None = "u1"
    subject: str | None = "license.check"
    content_type: str | None = "application/json"
    application_properties: Mapping[Any, Any] | None = field(
        default_factory=lambda: {
            b"kind": b"license.check",
            b"subject": b"u1",
            b"DeadLetterReason": b"MaxDeliveryCountExceeded",
        }
    )
    dead_letter_reason: str | None = "MaxDeliveryCountExceeded"
    dead_letter_error_description: str | None = "10 deliveries"
    delivery_count: int | None = 10
    enqueued_time_utc: datetime | None = DUE


class FakeDeadLetterQueue:
    """One queue's dead-letter subqueue: peek, receive with lock, complete, abandon."""

    def __init__(self, messages: list[FakeReceived]) -> None:
        self.messages = messages
        self.locked: list[FakeReceived] = []

    async def peek(self, max_count: int, from_sequence: int) -> Sequence[ReceivedLike]:
        return [m for m in self.messages if (m.sequence_number or 0) >= from_sequence][:max_count]

    async def receive(self, max_count: int, max_wait: float) -> Sequence[ReceivedLike]:
        free = [m for m in self.messages if m not in self.locked][:max_count]
        self.locked.extend(free)
        return free

    async def complete(self, message: ReceivedLike) -> None:
        assert isinstance(message, FakeReceived)
        self.locked.remove(message)
        self.messages.remove(message)

    async def abandon(self, message: ReceivedLike) -> None:
        assert isinstance(message, FakeReceived)
        self.locked.remove(message)


class FakeDeadLetterQueues:
    def __init__(self) -> None:
        self.queues: dict[str, FakeDeadLetterQueue] = {}

    def put(self, queue: str, *messages: FakeReceived) -> FakeDeadLetterQueue:
        self.queues[queue] = FakeDeadLetterQueue(list(messages))
        return self.queues[queue]

    @asynccontextmanager
    async def open(self, queue: str) -> AsyncIterator[DeadLetterReceiver]:
        dlq = self.queues.setdefault(queue, FakeDeadLetterQueue([]))
        yield dlq
        assert dlq.locked == [], "every lock is settled when the receiver closes"


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def dlqs() -> FakeDeadLetterQueues:
    return FakeDeadLetterQueues()


@pytest.fixture
def bus(transport: RecordingTransport, dlqs: FakeDeadLetterQueues) -> ServiceBusQueues:
    return ServiceBusQueues(transport, dlqs)


async def test_a_message_becomes_a_service_bus_message_with_every_id(
    bus: ServiceBusQueues, transport: RecordingTransport
) -> None:
    """message_id, correlation_id, session_id, schedule, envelope body and kind reach the SDK message."""
    message = Message(
        queue=LICENSE_CHECKS,
        kind="license.check",
        subject="u1",
        version="attempt-2",
        correlation_id="corr-9",
        payload={"user": "u1"},
        session_id="u1",
        scheduled_for=DUE,
    )
    await bus.send([message])
    [(queue, sent)] = transport.sent
    assert (
        queue,
        sent.message_id,
        sent.correlation_id,
        sent.session_id,
        sent.scheduled_enqueue_time_utc,
        sent.subject,
        body_of(sent),
        sent.application_properties,
    ) == (
        LICENSE_CHECKS,
        message.message_id,
        "corr-9",
        "u1",
        DUE,
        "license.check",
        message.body(),
        {"envelope": 1, "kind": "license.check", "subject": "u1"},
    )


async def test_messages_go_to_their_queues_in_order_and_always_with_a_session(
    bus: ServiceBusQueues, transport: RecordingTransport
) -> None:
    """Each queue gets its own messages in order; one without a session id takes its subject's."""
    messages = [
        Message(queue=HR_EVENTS, kind="hr.joiner", subject="e1", version="1", correlation_id="c"),
        Message(queue=LICENSE_CHECKS, kind="license.check", subject="u1", version="1", correlation_id="c"),
        Message(queue=HR_EVENTS, kind="hr.leaver", subject="e2", version="1", correlation_id="c"),
    ]
    await bus.send(messages)
    assert [(q, m.message_id, m.session_id) for q, m in transport.sent] == [
        (HR_EVENTS, messages[0].message_id, "e1"),
        (HR_EVENTS, messages[2].message_id, "e2"),
        (LICENSE_CHECKS, messages[1].message_id, "u1"),
    ]


async def test_dead_letters_list_with_reason_after_a_sequence(
    bus: ServiceBusQueues, dlqs: FakeDeadLetterQueues
) -> None:
    """Listing maps the broker's dead letters (reason, description, kind, body) and honours the mark."""
    dlqs.put(LICENSE_CHECKS, FakeReceived("m1", 7), FakeReceived("m2", 9, body=[b'{"a"', b":1}"]))
    listed = await bus.list(LICENSE_CHECKS, after_sequence=7)
    assert [
        (d.message_id, d.kind, d.subject, d.reason, d.description, d.body, d.sequence_number) for d in listed
    ] == [("m2", "license.check", "u1", "MaxDeliveryCountExceeded", "10 deliveries", b'{"a":1}', 9)]
    peeked = await bus.peek(LICENSE_CHECKS, "m1")
    assert peeked is not None
    assert peeked.sequence_number == 7


async def test_resubmit_sends_a_clean_copy_under_a_new_id_then_completes(
    bus: ServiceBusQueues, transport: RecordingTransport, dlqs: FakeDeadLetterQueues
) -> None:
    """The copy keeps body, session and correlation, drops the dead-letter properties; the others stay."""
    dlq = dlqs.put(LICENSE_CHECKS, FakeReceived("m0", 3), FakeReceived("m1", 4))
    new_id = await bus.resubmit(LICENSE_CHECKS, "m1")
    assert new_id == resubmitted_id("m1", 4)
    [(queue, copy)] = transport.sent
    assert (queue, copy.message_id, copy.session_id, copy.correlation_id, body_of(copy)) == (
        LICENSE_CHECKS,
        new_id,
        "u1",
        "corr",
        b'{"envelope":1}',
    )
    assert copy.application_properties == {"kind": "license.check", "subject": "u1", "resubmitted_from": "m1"}
    assert [m.message_id for m in dlq.messages] == ["m0"]


async def test_a_failed_send_leaves_the_dead_letter_in_place(
    bus: ServiceBusQueues, transport: RecordingTransport, dlqs: FakeDeadLetterQueues
) -> None:
    """A dead letter leaves the DLQ only once its copy is sent."""
    dlq = dlqs.put(LICENSE_CHECKS, FakeReceived("m1", 4))
    transport.fail = True
    with pytest.raises(Unavailable):
        await bus.resubmit(LICENSE_CHECKS, "m1")
    assert [m.message_id for m in dlq.messages] == ["m1"]


async def test_resubmit_of_an_unknown_dead_letter_is_not_found(
    bus: ServiceBusQueues, transport: RecordingTransport, dlqs: FakeDeadLetterQueues
) -> None:
    """Nothing is sent and every dead letter looked at stays."""
    dlq = dlqs.put(LICENSE_CHECKS, FakeReceived("m0", 3))
    with pytest.raises(NotFound):
        await bus.resubmit(LICENSE_CHECKS, "nope")
    assert (transport.sent, [m.message_id for m in dlq.messages]) == ([], ["m0"])


async def test_an_unreachable_namespace_is_unavailable_not_a_crash() -> None:
    """The real SDK transport maps a refused connection (loopback, nothing listening) onto Unavailable."""
    client = ServiceBusClient.from_connection_string(
        "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=test;SharedAccessKey=dGVzdA==", retry_total=0
    )
    transport = SdkTransport(client)
    bus = ServiceBusQueues(transport, transport)
    try:
        with pytest.raises(Unavailable):
            await bus.send(
                [Message(queue=LICENSE_CHECKS, kind="k", subject="s", version="1", correlation_id="c")]
            )
        with pytest.raises(Unavailable):
            await bus.list(LICENSE_CHECKS)
    finally:
        await transport.close()
