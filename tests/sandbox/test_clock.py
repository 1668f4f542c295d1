"""The business clock moved in steps: what falls due fires in order, at its own time, step by step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from sandbox.clock import SandboxClock, Scheduler, advance


def test_a_long_move_is_cut_into_steps_no_longer_than_the_maximum() -> None:
    """90 days with a 1-day maximum step is 90 steps, each followed by the idle wait."""
    scheduler = Scheduler(SandboxClock())
    waits: list[datetime] = []

    async def idle() -> bool:
        waits.append(scheduler.clock.now())
        return True

    start = scheduler.clock.now()
    report = asyncio.run(advance(scheduler, timedelta(days=90), timedelta(days=1), idle))
    assert (report.steps, report.idle_timeouts, len(waits)) == (90, 0, 90)
    assert scheduler.clock.offset == timedelta(days=90)
    assert all(
        timedelta(days=1) <= b - a < timedelta(days=1, minutes=1)
        for a, b in zip([start, *waits], waits, strict=False)
    )


def _recorder(
    scheduler: Scheduler, seen: list[tuple[str, timedelta]], label: str, due: datetime
) -> Callable[[], None]:
    return lambda: seen.append((label, scheduler.clock.now() - due))


def test_due_work_fires_in_order_and_sees_its_own_due_time() -> None:
    """Callbacks fire earliest first, each with the clock stopped at (or just past) its due time."""
    scheduler = Scheduler(SandboxClock())
    start = scheduler.clock.now()
    seen: list[tuple[str, timedelta]] = []
    for label, hours in (("c", 30), ("a", 5), ("b", 29)):
        due = start + timedelta(hours=hours)
        scheduler.call_at(due, _recorder(scheduler, seen, label, due), label)
    report = asyncio.run(advance(scheduler, timedelta(days=2), timedelta(hours=24)))
    assert [label for label, _ in seen] == ["a", "b", "c"]
    assert all(timedelta(0) <= late < timedelta(minutes=1) for _, late in seen)
    assert (report.steps, report.fired) == (2, 3)


def test_work_scheduled_by_a_callback_within_the_move_also_fires() -> None:
    """Work scheduled by a callback inside the same move fires too (a lifecycle, then an expiry)."""
    scheduler = Scheduler(SandboxClock())
    fired: list[str] = []

    def first() -> None:
        fired.append("first")
        scheduler.call_later(timedelta(hours=1), lambda: fired.append("second"))

    scheduler.call_later(timedelta(hours=1), first)
    asyncio.run(advance(scheduler, timedelta(hours=3), timedelta(hours=3)))
    assert fired == ["first", "second"]


def test_idle_timeouts_are_counted_not_fatal() -> None:
    """A step whose idle wait ran out is reported, and the move goes on."""
    scheduler = Scheduler(SandboxClock())

    async def never_idle() -> bool:
        return False

    report = asyncio.run(advance(scheduler, timedelta(hours=2), timedelta(hours=1), never_idle))
    assert (report.steps, report.idle_timeouts) == (2, 2)


def test_async_callbacks_are_awaited() -> None:
    """A coroutine callback completes before the move returns."""
    scheduler = Scheduler(SandboxClock())
    done: list[bool] = []

    async def work() -> None:
        await asyncio.sleep(0)
        done.append(True)

    scheduler.call_later(timedelta(minutes=5), work)
    asyncio.run(advance(scheduler, timedelta(hours=1), timedelta(hours=1)))
    assert done == [True]


@pytest.mark.parametrize(
    ("total", "step"), [(timedelta(seconds=-1), timedelta(hours=1)), (timedelta(hours=1), timedelta(0))]
)
def test_backwards_moves_and_empty_steps_are_refused(total: timedelta, step: timedelta) -> None:
    """The clock never moves back, and a step must be positive."""
    with pytest.raises(ValueError, match=r"forward|positive"):
        asyncio.run(advance(Scheduler(SandboxClock()), total, step))
