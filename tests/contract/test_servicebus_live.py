"""Opt-in: the Service Bus adapter against a real namespace (SEATKEEPER_TEST_SERVICEBUS_CONNECTION).

Skipped unless the connection string is set; only this module skips, every seam test runs regardless.
The namespace needs the queues of design §3 with sessions and duplicate detection enabled.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.servicebus.aio import ServiceBusClient

from seatkeeper.adapters.servicebus_queue import SdkTransport, ServiceBusQueues
from seatkeeper.core.messages import LICENSE_CHECKS, Message

CONNECTION = os.environ.get("SEATKEEPER_TEST_SERVICEBUS_CONNECTION", "")

pytestmark = [
    pytest.mark.servicebus,
    pytest.mark.anyio,
    pytest.mark.skipif(not CONNECTION, reason="SEATKEEPER_TEST_SERVICEBUS_CONNECTION is not set"),
]


@pytest.fixture
async def client() -> AsyncIterator[ServiceBusClient]:
    sb = ServiceBusClient.from_connection_string(CONNECTION)
    yield sb
    await sb.close()


async def test_sent_message_arrives_with_ids_and_dead_letters_resubmit(client: ServiceBusClient) -> None:
    """Send, receive in its session, dead-letter, find it in the DLQ, resubmit, receive the copy."""
    transport = SdkTransport(client)
    bus = ServiceBusQueues(transport, transport)
    subject = f"live-{uuid.uuid4().hex}"
    message = Message(
        queue=LICENSE_CHECKS, kind="license.check", subject=subject, version="1", correlation_id="c"
    )
    await bus.send([message])
    async with client.get_queue_receiver(LICENSE_CHECKS, session_id=subject, max_wait_time=10) as receiver:
        [got] = await receiver.receive_messages(max_message_count=1, max_wait_time=10)
        assert (got.message_id, got.correlation_id, got.session_id) == (message.message_id, "c", subject)
        await receiver.dead_letter_message(got, reason="LiveTest", error_description="opt-in test")
    dead = await bus.peek(LICENSE_CHECKS, message.message_id)
    assert dead is not None
    assert dead.reason == "LiveTest"
    new_id = await bus.resubmit(LICENSE_CHECKS, message.message_id)
    async with client.get_queue_receiver(LICENSE_CHECKS, session_id=subject, max_wait_time=10) as receiver:
        [again] = await receiver.receive_messages(max_message_count=1, max_wait_time=10)
        assert again.message_id == new_id
        await receiver.complete_message(again)
