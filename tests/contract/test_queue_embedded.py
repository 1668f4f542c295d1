"""The embedded durable queue keeps Service Bus semantics on SQLite: peek-lock, sessions, schedule, DLQ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seatkeeper.adapters.clocks import FixedClock
from seatkeeper.adapters.embedded_queue import MAX_DELIVERY_COUNT_EXCEEDED, EmbeddedQueue, QueueActivity
from seatkeeper.core.errors import NotFound
from seatkeeper.core.messages import LICENSE_CHECKS, Message, resubmitted_id

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LOCK = timedelta(seconds=30)


@pytest.fixture
def business() -> FixedClock:
    return FixedClock(START + timedelta(days=30))


@pytest.fixture
def wall() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def queue(tmp_path: Path, business: FixedClock, wall: FixedClock) -> Iterator[EmbeddedQueue]:
    q = EmbeddedQueue(tmp_path / "queue.db", clock=business, wall=wall, max_deliveries=3)
    yield q
    q.close()


def check(
    subject: str, version: str = "1", session: str | None = None, scheduled_for: datetime | None = None
) -> Message:
    return Message(
        queue=LICENSE_CHECKS,
        kind="license.check",
        subject=subject,
        version=version,
        correlation_id=f"corr-{subject}",
        payload={"user": subject},
        session_id=session,
        scheduled_for=scheduled_for,
    )


async def test_received_message_carries_the_envelope_and_completes(queue: EmbeddedQueue) -> None:
    """A sent message is delivered once with its ids and body, and is gone once completed."""
    sent = check("u1", session="u1")
    await queue.send([sent])
    [got] = await queue.receive(LICENSE_CHECKS, 10, LOCK)
    assert (got.message_id, got.correlation_id, got.session_id, got.delivery_count, got.body) == (
        sent.message_id,
        "corr-u1",
        "u1",
        1,
        sent.body(),
    )
    assert await queue.complete(got)
    assert await queue.receive(LICENSE_CHECKS, 10, LOCK) == []
    assert (await queue.activity()).idle


async def test_duplicate_ids_collapse_within_the_window_only(queue: EmbeddedQueue, wall: FixedClock) -> None:
    """The same message_id sent twice within the window is delivered once; after the window it is new."""
    await queue.send([check("u1"), check("u1")])
    first = await queue.receive(LICENSE_CHECKS, 10, LOCK)
    assert len(first) == 1
    await queue.complete(first[0])
    await queue.send([check("u1")])
    assert await queue.receive(LICENSE_CHECKS, 10, LOCK) == []
    wall.advance(timedelta(minutes=11))
    await queue.send([check("u1")])
    assert len(await queue.receive(LICENSE_CHECKS, 10, LOCK)) == 1


async def test_scheduled_message_waits_for_business_time(queue: EmbeddedQueue, business: FixedClock) -> None:
    """A scheduled message is invisible until the business clock reaches it; wall time does not matter."""
    due = business.now() + timedelta(days=2)
    await queue.send([check("u1", scheduled_for=due)])
    assert await queue.receive(LICENSE_CHECKS, 10, LOCK) == []
    assert await queue.activity() == QueueActivity(due=0, in_flight=0, scheduled=1, next_due=due)
    business.advance(timedelta(days=2))
    assert (await queue.activity(LICENSE_CHECKS)).due == 1
    [got] = await queue.receive(LICENSE_CHECKS, 10, LOCK)
    assert got.scheduled_for == due


async def test_expired_lock_redelivers_and_the_old_lock_is_lost(
    queue: EmbeddedQueue, wall: FixedClock
) -> None:
    """Past its wall-time lock a message is delivered again; the first consumer can no longer settle it."""
    await queue.send([check("u1")])
    [first] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    assert (await queue.activity()).in_flight == 1
    wall.advance(LOCK)
    [second] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    assert second.delivery_count == 2
    assert not await queue.complete(first)
    assert await queue.complete(second)


async def test_business_time_does_not_expire_locks(queue: EmbeddedQueue, business: FixedClock) -> None:
    """Moving the business clock by days leaves a message lock (wall time) in place."""
    await queue.send([check("u1")])
    [got] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    business.advance(timedelta(days=90))
    assert await queue.receive(LICENSE_CHECKS, 1, LOCK) == []
    assert await queue.complete(got)


async def test_abandon_past_max_deliveries_dead_letters(queue: EmbeddedQueue) -> None:
    """The third abandon of a message (max_deliveries=3) sends it to the dead-letter queue with a reason."""
    await queue.send([check("u1")])
    for _ in range(3):
        [got] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
        assert await queue.abandon(got)
    assert await queue.receive(LICENSE_CHECKS, 1, LOCK) == []
    [dead] = await queue.list(LICENSE_CHECKS)
    assert (dead.message_id, dead.reason, dead.delivery_count) == (
        check("u1").message_id,
        MAX_DELIVERY_COUNT_EXCEEDED,
        3,
    )


async def test_lock_expiry_past_max_deliveries_dead_letters(queue: EmbeddedQueue, wall: FixedClock) -> None:
    """A consumer that dies on every delivery (lock expires) still ends the message in the DLQ."""
    await queue.send([check("u1")])
    for _ in range(3):
        assert len(await queue.receive(LICENSE_CHECKS, 1, LOCK)) == 1
        wall.advance(LOCK)
    assert await queue.receive(LICENSE_CHECKS, 1, LOCK) == []
    assert [d.reason for d in await queue.list(LICENSE_CHECKS)] == [MAX_DELIVERY_COUNT_EXCEEDED]


async def test_abandon_with_delay_holds_the_message_back(queue: EmbeddedQueue, wall: FixedClock) -> None:
    """An abandon with a delay keeps the message invisible (and in flight) for that long of wall time."""
    await queue.send([check("u1")])
    [got] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    assert await queue.abandon(got, delay=timedelta(seconds=5))
    assert await queue.receive(LICENSE_CHECKS, 1, LOCK) == []
    assert not (await queue.activity()).idle
    wall.advance(timedelta(seconds=5))
    [again] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    assert again.delivery_count == 2


async def test_sessions_deliver_one_at_a_time_in_order(queue: EmbeddedQueue) -> None:
    """Within a session only the head is delivered, an abandoned head comes back first; others proceed."""
    await queue.send([check("a", "1", "s1"), check("a", "2", "s1"), check("b", "1", "s2")])
    batch = await queue.receive(LICENSE_CHECKS, 10, LOCK)
    assert [(m.session_id, m.subject, m.message_id) for m in batch] == [
        ("s1", "a", check("a", "1").message_id),
        ("s2", "b", check("b", "1").message_id),
    ]
    assert await queue.receive(LICENSE_CHECKS, 10, LOCK) == []
    await queue.abandon(batch[0])
    [again] = await queue.receive(LICENSE_CHECKS, 10, LOCK)
    assert again.message_id == check("a", "1").message_id
    await queue.complete(again)
    [next_one] = await queue.receive(LICENSE_CHECKS, 10, LOCK)
    assert next_one.message_id == check("a", "2").message_id


async def test_dead_letter_peek_and_resubmit_under_a_new_id(queue: EmbeddedQueue) -> None:
    """A dead letter keeps its reason; a resubmit sends it as hash(id, resubmit, n) and empties the DLQ."""
    original = check("u1")
    await queue.send([original])
    [got] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    assert await queue.dead_letter(got, "InvalidInput", "payload.user: missing")
    dead = await queue.peek(LICENSE_CHECKS, original.message_id)
    assert dead is not None
    assert (dead.reason, dead.description, dead.body) == (
        "InvalidInput",
        "payload.user: missing",
        original.body(),
    )
    new_id = await queue.resubmit(LICENSE_CHECKS, original.message_id)
    assert new_id == resubmitted_id(original.message_id, dead.sequence_number)
    assert await queue.list(LICENSE_CHECKS) == []
    [again] = await queue.receive(LICENSE_CHECKS, 1, LOCK)
    assert (again.message_id, again.body, again.delivery_count) == (new_id, original.body(), 1)


async def test_resubmit_of_an_unknown_dead_letter_is_not_found(queue: EmbeddedQueue) -> None:
    """Resubmitting what is not in the DLQ raises NotFound and sends nothing."""
    with pytest.raises(NotFound):
        await queue.resubmit(LICENSE_CHECKS, "nope")
    assert (await queue.activity()).idle


async def test_dead_letters_list_after_a_sequence(queue: EmbeddedQueue) -> None:
    """The DLQ numbers its entries, so a watcher can ask only for those it has not seen."""
    await queue.send([check("u1"), check("u2")])
    for got in await queue.receive(LICENSE_CHECKS, 2, LOCK):
        await queue.dead_letter(got, "Bad", "")
    first, second = await queue.list(LICENSE_CHECKS)
    assert await queue.list(LICENSE_CHECKS, after_sequence=first.sequence_number) == [second]


def test_threads_never_receive_the_same_message_twice(tmp_path: Path) -> None:
    """Four threads draining one queue see every message exactly once."""
    q = EmbeddedQueue(tmp_path / "q.db", clock=FixedClock(START))
    q.send_sync([check(f"u{i}") for i in range(120)])
    seen: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        while batch := q.receive_sync(LICENSE_CHECKS, 5, LOCK):
            with lock:
                seen.extend(m.message_id for m in batch)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.close()
    assert sorted(seen) == sorted(check(f"u{i}").message_id for i in range(120))


_CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from seatkeeper.adapters.clocks import FixedClock
    from seatkeeper.adapters.embedded_queue import EmbeddedQueue
    from seatkeeper.core.messages import LICENSE_CHECKS, Message

    q = EmbeddedQueue(sys.argv[1], clock=FixedClock(datetime(2026, 1, 5, tzinfo=UTC)))
    q.send_sync([Message(queue=LICENSE_CHECKS, kind="license.check", subject=f"u{i}", version="1",
                         correlation_id="c") for i in range(2)])
    got = q.receive_sync(LICENSE_CHECKS, 1, timedelta(seconds=30))
    print(got[0].message_id, flush=True)
    time.sleep(60)
    """
)


def test_a_killed_consumer_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of a process holding a lock: what it sent survives and its message is delivered again."""
    path = tmp_path / "q.db"
    child = subprocess.Popen(  # noqa: S603 -- our own interpreter and script
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        locked_id = child.stdout.readline().strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    wall = FixedClock(datetime.now(UTC) + timedelta(seconds=31))
    q = EmbeddedQueue(path, clock=FixedClock(START), wall=wall)
    got = q.receive_sync(LICENSE_CHECKS, 10, LOCK)
    q.close()
    assert sorted((m.message_id, m.delivery_count) for m in got) == sorted(
        [(locked_id, 2), *[(m, 1) for m in {check("u0").message_id, check("u1").message_id} - {locked_id}]]
    )


_DRAINER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from seatkeeper.adapters.clocks import FixedClock
    from seatkeeper.adapters.embedded_queue import EmbeddedQueue
    from seatkeeper.core.messages import LICENSE_CHECKS

    q = EmbeddedQueue(sys.argv[1], clock=FixedClock(datetime(2026, 1, 5, tzinfo=UTC)))
    while batch := q.receive_sync(LICENSE_CHECKS, 3, timedelta(seconds=60)):
        for m in batch:
            print(m.message_id, flush=True)
    q.close()
    """
)


def test_processes_sharing_one_file_never_receive_the_same_message_twice(tmp_path: Path) -> None:
    """Two processes draining one queue file see every message exactly once between them."""
    path = tmp_path / "q.db"
    q = EmbeddedQueue(path, clock=FixedClock(START))
    q.send_sync([check(f"u{i}") for i in range(90)])
    q.close()
    drainers = [
        subprocess.Popen(  # noqa: S603 -- our own interpreter and script
            [sys.executable, "-c", _DRAINER, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    seen = [line for child in drainers for line in child.communicate(timeout=120)[0].split()]
    assert sorted(seen) == sorted(check(f"u{i}").message_id for i in range(90))


@settings(max_examples=30, deadline=None)
@given(sessions=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=25), data=st.data())
def test_sessions_keep_order_whatever_consumers_do(sessions: list[int], data: st.DataObject) -> None:
    """Any mix of completes and abandons: each session's messages complete in the order sent, once each."""
    with tempfile.TemporaryDirectory() as directory:
        q = EmbeddedQueue(Path(directory) / "q.db", clock=FixedClock(START), max_deliveries=1000)
        sent = [check(f"m{i}", session=f"s{s}") for i, s in enumerate(sessions)]
        q.send_sync(sent)
        completed: list[Message] = []
        by_id = {m.message_id: m for m in sent}
        while batch := q.receive_sync(LICENSE_CHECKS, data.draw(st.integers(1, 5)), LOCK):
            assert len({m.session_id for m in batch}) == len(batch)
            for got in batch:
                # A third delivery always completes, so every example ends quickly.
                if got.delivery_count >= 3 or data.draw(st.booleans()):
                    assert asyncio.run(q.complete(got))
                    completed.append(by_id[got.message_id])
                else:
                    assert asyncio.run(q.abandon(got))
        q.close()
    for session in set(sessions):
        assert [m.subject for m in completed if m.session_id == f"s{session}"] == [
            m.subject for m in sent if m.session_id == f"s{session}"
        ]
