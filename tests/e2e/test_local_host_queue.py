"""Queue-triggered functions run from the embedded queue: completed, abandoned, dead-lettered, redelivered."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx

from seatkeeper.core.messages import Message
from tests.e2e.host_process import E2E_QUEUE, RunningHost, start_host, wait_for


def _send(host: RunningHost, mode: str, *, session: str | None = None, subject: str | None = None) -> str:
    message = Message(
        queue=E2E_QUEUE,
        kind="e2e.work",
        subject=subject or str(uuid.uuid4()),
        version="1",
        correlation_id="corr-e2e",
        payload={"mode": mode},
        session_id=session,
    )
    queue = host.queue()
    try:
        queue.send_sync([message])
    finally:
        queue.close()
    return message.message_id


def _records(host: RunningHost, message_id: str) -> list[dict[str, Any]]:
    return [r for r in host.journal_records() if r.get("message_id") == message_id]


def test_message_is_delivered_as_a_service_bus_message_and_completed(basic_host: RunningHost) -> None:
    """The function receives a real ServiceBusMessage with its ids; success removes the message."""
    message_id = _send(basic_host, "ok", session="session-a")
    (record,) = wait_for("the message to be handled", lambda: _records(basic_host, message_id))
    assert {k: record[k] for k in ("delivery_count", "session_id", "correlation_id", "type", "outcome")} == {
        "delivery_count": 1,
        "session_id": "session-a",
        "correlation_id": "corr-e2e",
        "type": "azure.functions.servicebus",
        "outcome": "done",
    }
    assert record["enqueued"] is not None
    queue = basic_host.queue()
    try:
        wait_for("the queue to be empty", lambda: queue.activity_sync(E2E_QUEUE).idle)
    finally:
        queue.close()


def test_failing_message_is_redelivered_then_dead_lettered(basic_host: RunningHost) -> None:
    """An exception abandons the message; past max deliveries (3 here) it lands in the dead-letter queue."""
    message_id = _send(basic_host, "fail")
    queue = basic_host.queue()
    try:
        dead = wait_for(
            "the dead letter",
            lambda: [d for d in asyncio.run(queue.list(E2E_QUEUE)) if d.message_id == message_id],
        )
    finally:
        queue.close()
    assert [r["delivery_count"] for r in _records(basic_host, message_id)] == [1, 2, 3]
    assert (dead[0].reason, dead[0].delivery_count) == ("MaxDeliveryCountExceeded", 3)


def test_lock_is_renewed_while_a_slow_function_runs(basic_host: RunningHost) -> None:
    """A function running three times the lock duration (1 s here) keeps its message: one delivery."""
    message_id = _send(basic_host, "slow")
    wait_for(
        "the slow message to complete",
        lambda: [r for r in _records(basic_host, message_id) if r["outcome"] == "done"],
    )
    assert [(r["delivery_count"], r["outcome"]) for r in _records(basic_host, message_id)] == [
        (1, "started"),
        (1, "done"),
    ]


def test_session_messages_are_handled_in_order(basic_host: RunningHost) -> None:
    """Messages of one session reach the function one at a time, in the order they were sent."""
    session = str(uuid.uuid4())
    sent = [_send(basic_host, "ok", session=session, subject=f"{session}-{n}") for n in range(4)]
    wait_for(
        "all four messages",
        lambda: len([r for r in basic_host.journal_records() if r.get("session_id") == session]) == 4,
    )
    handled = [r["message_id"] for r in basic_host.journal_records() if r.get("session_id") == session]
    assert handled == sent


def test_host_is_busy_while_a_message_is_in_flight(tmp_path: Path) -> None:
    """The idle answer is false while a function holds a message, true once it is settled."""
    host = start_host(tmp_path / "state", lock_seconds=1.0)
    try:
        message_id = _send(host, "block_first")
        wait_for("the handler to block", lambda: _records(host, message_id))
        assert httpx.get(f"{host.base_url}/admin/idle").json() == {"idle": False}
    finally:
        host.stop()


def test_kill_9_mid_message_then_restart_redelivers(tmp_path: Path) -> None:
    """A host killed with SIGKILL while handling a message loses nothing: the next host gets it again."""
    state = tmp_path / "state"
    first = start_host(state, lock_seconds=1.0)
    try:
        message_id = _send(first, "block_first")
        wait_for("the first delivery to block", lambda: _records(first, message_id))
    finally:
        first.kill9()

    second = start_host(state, lock_seconds=1.0)
    try:
        records = wait_for(
            "the redelivery to complete",
            lambda: [r for r in _records(second, message_id) if r["outcome"] == "done"],
        )
        assert [(r["delivery_count"], r["outcome"]) for r in _records(second, message_id)] == [
            (1, "blocking"),
            (2, "done"),
        ]
        assert records[0]["delivery_count"] == 2
        wait_for("the host to be idle", lambda: httpx.get(f"{second.base_url}/admin/idle").json()["idle"])
    finally:
        second.stop()
