"""Timers fire on their schedules in business time; a jump of the clock fires each once, past due."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import azure.functions as func

from seatkeeper.adapters.clocks import FixedClock
from seatkeeper.localhost.catalog import index
from seatkeeper.localhost.invoker import Invoker
from seatkeeper.localhost.timers import TimerRunner

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


def _hourly_app(seen: list[bool], *, run_on_startup: bool = False) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=run_on_startup)
    def hourly(timer: func.TimerRequest) -> None:
        seen.append(timer.past_due)

    return app


async def _run_until(runner: TimerRunner, seen: list[bool], count: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    try:
        for _ in range(1000):  # bounded: about ten seconds
            if len(seen) >= count:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


def test_nothing_due_before_the_first_occurrence() -> None:
    """Right after start, an hourly timer is not due: the host may report idle."""
    runner = TimerRunner(index(_hourly_app([])).timers, FixedClock(T0), Invoker())
    assert runner.busy() is False


def test_clock_jump_makes_the_timer_due_and_it_fires_once_past_due() -> None:
    """Five hours of business time later the timer runs once, past due, and is scheduled after now."""
    seen: list[bool] = []
    clock = FixedClock(T0)
    runner = TimerRunner(index(_hourly_app(seen)).timers, clock, Invoker(), tick_seconds=0.01)
    clock.advance(timedelta(hours=5))
    assert runner.busy() is True
    asyncio.run(_run_until(runner, seen, 1))
    assert seen == [True]
    assert runner.next_due() == {"hourly": datetime(2026, 1, 1, 6, 0, tzinfo=UTC)}
    assert runner.busy() is False


def test_run_on_startup_fires_once_at_start_not_past_due() -> None:
    """`run_on_startup` runs the function as the host starts, without waiting for the schedule."""
    seen: list[bool] = []
    runner = TimerRunner(index(_hourly_app(seen, run_on_startup=True)).timers, FixedClock(T0), Invoker())
    asyncio.run(_run_until(runner, seen, 1))
    assert seen == [False]


def test_run_now_leaves_the_schedule_alone() -> None:
    """An on-demand run does not move the next scheduled occurrence."""
    seen: list[bool] = []
    runner = TimerRunner(index(_hourly_app(seen)).timers, FixedClock(T0), Invoker())
    before = runner.next_due()
    asyncio.run(runner.run_now("hourly"))
    assert (seen, runner.next_due()) == ([False], before)
