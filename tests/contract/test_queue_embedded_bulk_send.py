"""One send is one transaction: fresh messages kept in order, duplicates (earlier or within the send) dropped
per queue, and no line per duplicate at info level (the Graph webhook's hot path)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from seatkeeper.adapters.clocks import FixedClock
from seatkeeper.adapters.embedded_queue import EmbeddedQueue
from seatkeeper.core.messages import GROUP_CHANGES, LICENSE_CHECKS, Message

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LOCK = timedelta(seconds=30)


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[EmbeddedQueue]:
    q = EmbeddedQueue(tmp_path / "queue.db", clock=FixedClock(START), wall=FixedClock(START))
    yield q
    q.close()


def message(queue: str, subject: str) -> Message:
    return Message(queue=queue, kind="k", subject=subject, version="1", correlation_id="c", session_id=None)


def test_a_send_keeps_fresh_messages_in_order_and_drops_every_kind_of_duplicate(queue: EmbeddedQueue) -> None:
    """Sent before, repeated within the send: dropped; the same id on another queue is another message."""
    queue.send_sync([message(LICENSE_CHECKS, "a")])
    sent = [
        message(LICENSE_CHECKS, "b"),
        message(LICENSE_CHECKS, "a"),
        message(LICENSE_CHECKS, "c"),
        message(LICENSE_CHECKS, "b"),
        message(GROUP_CHANGES, "a"),
    ]
    accepted = queue.send_sync(sent)
    checks = [m.subject for m in queue.receive_sync(LICENSE_CHECKS, 10, LOCK)]
    groups = [m.subject for m in queue.receive_sync(GROUP_CHANGES, 10, LOCK)]
    assert (accepted, checks, groups) == (
        [sent[0].message_id, sent[2].message_id, sent[4].message_id],
        ["a", "b", "c"],
        ["a"],
    )


def test_a_send_larger_than_one_lookup_query_still_finds_its_duplicates(queue: EmbeddedQueue) -> None:
    """Past the per-query id limit, duplicates are still found (1,200 ids, half of them sent before)."""
    first = [message(LICENSE_CHECKS, f"u{i}") for i in range(0, 1_200, 2)]
    queue.send_sync(first)
    accepted = queue.send_sync([message(LICENSE_CHECKS, f"u{i}") for i in range(1_200)])
    assert len(accepted) == 600


def test_duplicates_are_not_logged_at_info_level(queue: EmbeddedQueue) -> None:
    """Redeliveries are routine: dropping them writes no info, warning or error line."""
    queue.send_sync([message(LICENSE_CHECKS, "a")])
    with capture_logs() as logs:
        queue.send_sync([message(LICENSE_CHECKS, "a")] * 10)
    assert [line for line in logs if line["log_level"] != "debug"] == []
