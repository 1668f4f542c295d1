"""Write pacing: writes wait only when this process's window of the write quota is full."""

from __future__ import annotations

import asyncio

from seatkeeper.adapters.graph.pacing import WRITE_QUOTA, WritePacer


class Clock:
    """A monotonic clock that moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_default_limit_stays_below_graphs_write_quota() -> None:
    """90 % of 3,000 writes per 150 s: room for other writers of the same app."""
    clock = Clock()
    pacer = WritePacer(monotonic=clock.monotonic, sleep=clock.sleep)

    async def writes(n: int) -> float:
        return sum([await pacer.acquire() for _ in range(n)])

    assert asyncio.run(writes(int(WRITE_QUOTA * 0.9))) == 0.0
    assert asyncio.run(writes(1)) == 150.0


def test_a_full_window_waits_for_its_oldest_write() -> None:
    """Three writes per 10 s: the fourth waits until the first leaves the window."""
    clock = Clock()
    pacer = WritePacer(limit=3, window=10.0, monotonic=clock.monotonic, sleep=clock.sleep)

    async def scenario() -> list[float]:
        waits = [await pacer.acquire()]
        clock.now += 4
        waits += [await pacer.acquire(2)]
        waits += [await pacer.acquire()]
        return waits

    assert asyncio.run(scenario()) == [0.0, 0.0, 6.0]


def test_a_batch_larger_than_the_limit_still_goes_when_the_window_is_empty() -> None:
    """A batch of 20 writes with a limit of 10 is not blocked forever."""
    clock = Clock()
    pacer = WritePacer(limit=10, window=10.0, monotonic=clock.monotonic, sleep=clock.sleep)
    assert asyncio.run(pacer.acquire(20)) == 0.0
