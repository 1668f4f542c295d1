"""The webhook's group-commit sender: concurrent sends share one persisted send, and share its failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from seatkeeper.adapters.coalescing_sender import CoalescingSender
from seatkeeper.core.errors import TransientError
from seatkeeper.core.messages import GROUP_CHANGES, Message


@dataclass
class SlowQueue:
    """Records each send as one batch; the first send waits so that others pile up behind it."""

    batches: list[list[str]] = field(default_factory=list)
    fail: bool = False

    async def send(self, messages: Sequence[Message]) -> None:
        await asyncio.sleep(0.01)
        if self.fail:
            raise TransientError("queue down")
        self.batches.append([m.subject for m in messages])


def message(subject: str) -> Message:
    return Message(
        queue=GROUP_CHANGES, kind="group.changed", subject=subject, version="1", correlation_id="c"
    )


async def _send_all(sender: CoalescingSender, n: int) -> list[BaseException | None]:
    return await asyncio.gather(*(sender.send([message(f"g{i}")]) for i in range(n)), return_exceptions=True)


def test_concurrent_sends_are_persisted_together_and_each_caller_returns_after() -> None:
    """Ten callers at once: every message persisted, in fewer sends than callers."""
    queue = SlowQueue()
    results = asyncio.run(_send_all(CoalescingSender(queue), 10))
    assert results == [None] * 10
    assert sorted(s for batch in queue.batches for s in batch) == sorted(f"g{i}" for i in range(10))
    assert len(queue.batches) < 10


def test_a_failed_send_fails_every_caller_it_carried() -> None:
    """Nobody is told "persisted" when the send failed: each caller gets the error."""
    results = asyncio.run(_send_all(CoalescingSender(SlowQueue(fail=True)), 5))
    assert all(isinstance(r, TransientError) for r in results)


def test_batches_respect_the_size_limit() -> None:
    """No joined send is larger than max_batch messages."""
    queue = SlowQueue()
    asyncio.run(_send_all(CoalescingSender(queue, max_batch=3), 10))
    assert max(len(b) for b in queue.batches) <= 3


def test_an_empty_send_persists_nothing() -> None:
    """Nothing to send: no send at all."""
    queue = SlowQueue()
    asyncio.run(CoalescingSender(queue).send([]))
    assert queue.batches == []
