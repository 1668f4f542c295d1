"""Real `azure.functions` binding objects, built as the Python worker builds them from the host's data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest


@dataclass(frozen=True)
class Delivery:
    """One peek-locked message as the local host hands it to a queue-triggered function."""

    queue: str
    message_id: str
    body: bytes
    delivery_count: int
    enqueued_time: datetime
    lock_token: str
    correlation_id: str | None = None
    session_id: str | None = None
    sequence_number: int | None = None
    locked_until: datetime | None = None
    scheduled_enqueue_time: datetime | None = None
    content_type: str | None = "application/json"


def service_bus_message(delivery: Delivery) -> ServiceBusMessage:
    """The `ServiceBusMessage` a `serviceBusTrigger` function receives for `delivery`."""
    metadata = {
        "MessageId": delivery.message_id,
        "DeliveryCount": delivery.delivery_count,
        "SessionId": delivery.session_id,
        "CorrelationId": delivery.correlation_id,
        "EnqueuedTimeUtc": delivery.enqueued_time.astimezone(UTC).isoformat(),
        "SequenceNumber": delivery.sequence_number,
        "LockToken": delivery.lock_token,
    }
    return ServiceBusMessage(
        body=delivery.body,
        trigger_metadata=metadata,
        application_properties={},
        content_type=delivery.content_type,
        correlation_id=delivery.correlation_id,
        delivery_count=delivery.delivery_count,
        enqueued_time_utc=delivery.enqueued_time.astimezone(UTC),
        locked_until=delivery.locked_until,
        lock_token=delivery.lock_token,
        message_id=delivery.message_id,
        scheduled_enqueue_time_utc=delivery.scheduled_enqueue_time,
        sequence_number=delivery.sequence_number,
        session_id=delivery.session_id,
        user_properties={},
    )


def timer_request(
    *, past_due: bool, last: datetime | None, next_due: datetime, now: datetime
) -> TimerRequest:
    """The `TimerRequest` a `timerTrigger` function receives; times are business time (ISO 8601, UTC)."""
    status = {
        "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
        "Next": next_due.isoformat(),
        "LastUpdated": now.isoformat(),
    }
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})


def http_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> func.HttpRequest:
    """The `HttpRequest` an `httpTrigger` function receives."""
    return func.HttpRequest(
        method=method,
        url=url,
        headers=dict(headers),
        params=dict(params),
        route_params=dict(route_params),
        body=body,
    )
