"""The queue ports on Azure Service Bus (azure-servicebus, async): sending, and the dead-letter queues.

Each Message becomes a real `ServiceBusMessage`: our `message_id` (duplicate detection), `correlation_id`,
`session_id` (every queue of design §3 is session-enabled, so a message without one travels in the session
of its subject), `scheduled_enqueue_time_utc`, the envelope as a JSON body, and `kind`/`subject` as
application properties. The SDK sits behind two small seams — `Transport` (sends) and `DeadLetterQueues`
(opens a dead-letter receiver) — so tests inject recording fakes that receive the real SDK objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import structlog
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    ServiceBusError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
)

from seatkeeper.core.errors import NotFound, Throttled, Unavailable
from seatkeeper.core.messages import ENVELOPE_VERSION, Message, resubmitted_id
from seatkeeper.core.ports import DeadLetter

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

_log = structlog.get_logger(__name__)

KIND_PROPERTY: Final = "kind"
SUBJECT_PROPERTY: Final = "subject"
ENVELOPE_PROPERTY: Final = "envelope"
RESUBMITTED_FROM_PROPERTY: Final = "resubmitted_from"
# Properties Service Bus adds to a dead letter; a resubmitted copy must not carry them.
_DEAD_LETTER_PROPERTIES: Final = frozenset({"DeadLetterReason", "DeadLetterErrorDescription"})
# How many dead letters a resubmit may hold locked while it looks for the one asked for.
RESUBMIT_SCAN_LIMIT: Final = 500


class ReceivedLike(Protocol):
    """What we read from a received Service Bus message (ServiceBusReceivedMessage has all of it)."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def application_properties(self) -> Mapping[Any, Any] | None: ...
    @property
    def dead_letter_reason(self) -> str | None: ...
    @property
    def dead_letter_error_description(self) -> str | None: ...
    @property
    def delivery_count(self) -> int | None: ...
    @property
    def sequence_number(self) -> int | None: ...
    @property
    def enqueued_time_utc(self) -> datetime | None: ...
    @property
    def body(self) -> Any: ...


class Transport(Protocol):
    """Sends real ServiceBusMessage objects to a queue (the seam tests record at)."""

    async def send(self, queue: str, messages: Sequence[ServiceBusMessage]) -> None: ...


class DeadLetterReceiver(Protocol):
    """An open peek-lock receiver on one queue's dead-letter subqueue."""

    async def peek(self, max_count: int, from_sequence: int) -> Sequence[ReceivedLike]: ...

    async def receive(self, max_count: int, max_wait: float) -> Sequence[ReceivedLike]: ...

    async def complete(self, message: ReceivedLike) -> None: ...

    async def abandon(self, message: ReceivedLike) -> None: ...


class DeadLetterQueues(Protocol):
    """Opens dead-letter receivers."""

    def open(self, queue: str) -> AbstractAsyncContextManager[DeadLetterReceiver]: ...


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _properties(message: ReceivedLike) -> dict[str, Any]:
    """Application properties with str keys and text values (the SDK may surface bytes)."""
    return {
        _text(k): _text(v) if isinstance(v, bytes) else v
        for k, v in (message.application_properties or {}).items()
    }


def _body(message: ReceivedLike) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(bytes(part) for part in body)


def to_service_bus(message: Message) -> ServiceBusMessage:
    """The SDK message for one of ours: ids, session, schedule, envelope body, kind and subject."""
    scheduled = message.scheduled_for.astimezone(UTC) if message.scheduled_for else None
    return ServiceBusMessage(
        message.body(),
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        session_id=message.session_id or message.subject,
        scheduled_enqueue_time_utc=scheduled,
        content_type="application/json",
        subject=message.kind,
        application_properties={
            ENVELOPE_PROPERTY: ENVELOPE_VERSION,
            KIND_PROPERTY: message.kind,
            SUBJECT_PROPERTY: message.subject,
        },
    )


def to_dead_letter(queue: str, message: ReceivedLike) -> DeadLetter:
    """A received dead-letter message as the port's DeadLetter."""
    properties = _properties(message)
    return DeadLetter(
        queue=queue,
        message_id=message.message_id or "",
        kind=_text(properties.get(KIND_PROPERTY, message.subject or "")),
        subject=_text(properties.get(SUBJECT_PROPERTY, "")),
        reason=message.dead_letter_reason or "",
        description=message.dead_letter_error_description or "",
        delivery_count=message.delivery_count or 0,
        dead_lettered_at=message.enqueued_time_utc or datetime.now(UTC),
        body=_body(message),
        session_id=message.session_id,
        correlation_id=message.correlation_id or "",
        sequence_number=message.sequence_number or 0,
    )


def resubmission(dead: ReceivedLike, new_id: str) -> ServiceBusMessage:
    """A fresh copy of a dead letter under `new_id`, without the dead-letter properties."""
    properties: dict[str | bytes, Any] = {
        k: v for k, v in _properties(dead).items() if k not in _DEAD_LETTER_PROPERTIES
    }
    properties[RESUBMITTED_FROM_PROPERTY] = dead.message_id or ""
    return ServiceBusMessage(
        _body(dead),
        message_id=new_id,
        correlation_id=dead.correlation_id,
        session_id=dead.session_id,
        content_type=dead.content_type,
        subject=dead.subject,
        application_properties=properties,
    )


async def _find(
    receiver: DeadLetterReceiver, message_id: str, held: list[ReceivedLike]
) -> ReceivedLike | None:
    """Receive (lock) dead letters until `message_id` turns up; the others go to `held`."""
    while len(held) < RESUBMIT_SCAN_LIMIT:
        batch = await receiver.receive(50, 5.0)
        if not batch:
            return None
        for index, m in enumerate(batch):
            if m.message_id == message_id:
                held.extend(batch[index + 1 :])
                return m
            held.append(m)
    return None


class ServiceBusQueues:
    """MessageSender, DeadLetterStore and Probe on Service Bus, over the two seams."""

    def __init__(self, transport: Transport, dead_letters: DeadLetterQueues) -> None:
        self._transport = transport
        self._dead_letters = dead_letters

    async def send(self, messages: Sequence[Message]) -> None:
        """Send each queue's messages in order; errors map onto the tree (busy → Throttled)."""
        by_queue: dict[str, list[ServiceBusMessage]] = {}
        for message in messages:
            by_queue.setdefault(message.queue, []).append(to_service_bus(message))
        for queue, batch in by_queue.items():
            await self._transport.send(queue, batch)

    async def list(self, queue: str, *, limit: int = 100, after_sequence: int = 0) -> Sequence[DeadLetter]:
        """Peek (no lock) at the dead letters of `queue` numbered above `after_sequence`."""
        async with self._dead_letters.open(queue) as receiver:
            peeked = await receiver.peek(limit, after_sequence + 1)
        return [to_dead_letter(queue, m) for m in peeked if (m.sequence_number or 0) > after_sequence]

    async def peek(self, queue: str, message_id: str) -> DeadLetter | None:
        """The oldest dead letter of `queue` with this message id (scans by peeking, no lock)."""
        after = 0
        async with self._dead_letters.open(queue) as receiver:
            while batch := await receiver.peek(100, after + 1):
                for m in batch:
                    if m.message_id == message_id:
                        return to_dead_letter(queue, m)
                after = max(m.sequence_number or 0 for m in batch)
        return None

    async def resubmit(self, queue: str, message_id: str) -> str:
        """Send the oldest such dead letter again under a new id, then complete it in the DLQ.

        Others received while looking are abandoned (they stay). If the send fails, nothing is completed;
        a retry computes the same new id, so duplicate detection keeps a half-done resubmit from doubling.
        """
        async with self._dead_letters.open(queue) as receiver:
            held: list[ReceivedLike] = []
            try:
                found = await _find(receiver, message_id, held)
                if found is not None:
                    new_id = resubmitted_id(message_id, found.sequence_number or 0)
                    try:
                        await self._transport.send(queue, [resubmission(found, new_id)])
                    except BaseException:
                        held.append(found)
                        raise
                    await receiver.complete(found)
            finally:
                for m in held:
                    await receiver.abandon(m)
        if found is None:
            raise NotFound(f"no dead letter {message_id} in {queue}")
        _log.info("queue.dead_letter_resubmitted", queue=queue, message_id=message_id, new_message_id=new_id)
        return new_id

    async def check(self) -> None:
        """Probe for health: peek one dead letter of the alerts queue (needs a live connection)."""
        async with self._dead_letters.open("alerts") as receiver:
            await receiver.peek(1, 1)


# -- the real SDK behind the seams ------------------------------------------------------------------


def _map_errors(exc: ServiceBusError, what: str) -> Exception:
    if isinstance(exc, ServiceBusServerBusyError | ServiceBusQuotaExceededError):
        return Throttled(f"service bus busy during {what}", retry_after=10.0)
    return Unavailable(f"service bus failed during {what}: {type(exc).__name__}")


class SdkTransport:
    """The Transport and DeadLetterQueues seams on one ServiceBusClient (one per process)."""

    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client
        self._senders: dict[str, ServiceBusSender] = {}

    @classmethod
    def from_connection_string(cls, connection_string: str) -> SdkTransport:
        """From a namespace connection string (SAS)."""
        return cls(ServiceBusClient.from_connection_string(connection_string))

    @classmethod
    def from_namespace(cls, fully_qualified_namespace: str, credential: AsyncTokenCredential) -> SdkTransport:
        """From `NAMESPACE.servicebus.windows.net` and a managed identity."""
        return cls(ServiceBusClient(fully_qualified_namespace, credential))

    async def close(self) -> None:
        """Close every sender and the client (once, at shutdown)."""
        for sender in self._senders.values():
            await sender.close()
        self._senders.clear()
        await self._client.close()

    async def send(self, queue: str, messages: Sequence[ServiceBusMessage]) -> None:
        """Send in as few batches as fit the namespace's size limit, in order."""
        sender = self._senders.get(queue)
        if sender is None:
            sender = self._senders[queue] = self._client.get_queue_sender(queue)
        try:
            batch = await sender.create_message_batch()
            for message in messages:
                try:
                    batch.add_message(message)
                except MessageSizeExceededError:
                    await sender.send_messages(batch)
                    batch = await sender.create_message_batch()
                    batch.add_message(message)
            if len(batch):
                await sender.send_messages(batch)
        except ServiceBusError as exc:
            raise _map_errors(exc, f"send to {queue}") from exc

    @asynccontextmanager
    async def open(self, queue: str) -> AsyncIterator[DeadLetterReceiver]:
        """A peek-lock receiver on the dead-letter subqueue of `queue`."""
        receiver = self._client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
        try:
            async with receiver:
                yield _SdkDeadLetterReceiver(receiver)
        except ServiceBusError as exc:
            raise _map_errors(exc, f"dead letters of {queue}") from exc


class _SdkDeadLetterReceiver:
    """DeadLetterReceiver over the SDK's ServiceBusReceiver."""

    def __init__(self, receiver: Any) -> None:
        self._receiver = receiver

    async def peek(self, max_count: int, from_sequence: int) -> Sequence[ReceivedLike]:
        return cast(
            Sequence[ReceivedLike],
            await self._receiver.peek_messages(max_message_count=max_count, sequence_number=from_sequence),
        )

    async def receive(self, max_count: int, max_wait: float) -> Sequence[ReceivedLike]:
        return cast(
            Sequence[ReceivedLike],
            await self._receiver.receive_messages(max_message_count=max_count, max_wait_time=max_wait),
        )

    async def complete(self, message: ReceivedLike) -> None:
        await self._receiver.complete_message(cast(ServiceBusReceivedMessage, message))

    async def abandon(self, message: ReceivedLike) -> None:
        await self._receiver.abandon_message(cast(ServiceBusReceivedMessage, message))
