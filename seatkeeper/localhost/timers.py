"""Timer triggers on their NCRONTAB schedules in business time (the Clock port).

On the sandbox, business time can jump forward; each timer then fires once for the occurrences it
missed, with `past_due` set, as the Functions host does after downtime. A timer never overlaps itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from seatkeeper.core.ports import Clock
from seatkeeper.localhost.bindings import timer_request
from seatkeeper.localhost.catalog import TimerFunction
from seatkeeper.localhost.invoker import Invoker
from seatkeeper.localhost.ncrontab import Schedule

log = structlog.get_logger(__name__)

# An occurrence fired later than this (business time) is reported as past due.
PAST_DUE_AFTER = timedelta(seconds=5)


@dataclass
class _TimerState:
    function: TimerFunction
    schedule: Schedule
    next_due: datetime
    last: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TimerRunner:
    """Fires timer functions when they fall due in business time; answers whether any is due."""

    def __init__(
        self, timers: Sequence[TimerFunction], clock: Clock, invoker: Invoker, *, tick_seconds: float = 0.2
    ) -> None:
        self._clock = clock
        self._invoker = invoker
        self._tick = tick_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        now = clock.now()
        self._timers = {
            t.name: _TimerState(t, schedule, schedule.next_after(now))
            for t in timers
            for schedule in (Schedule(t.schedule),)
        }

    def next_due(self) -> dict[str, datetime]:
        """Each timer's next occurrence (business time)."""
        return {name: state.next_due for name, state in self._timers.items()}

    def busy(self) -> bool:
        """Whether a timer is due in business time or running."""
        now = self._clock.now()
        return any(state.next_due <= now or state.lock.locked() for state in self._timers.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Fire `run_on_startup` timers, then every timer as it falls due, until `stop` is set."""
        startup = [s for s in self._timers.values() if s.function.run_on_startup]
        await asyncio.gather(*(self._fire(s, scheduled=None) for s in startup))
        while not stop.is_set():
            now = self._clock.now()
            due = [s for s in self._timers.values() if s.next_due <= now and not s.lock.locked()]
            for state in due:
                # Scheduled fires run as tasks so one slow timer does not hold the others back.
                task = asyncio.get_running_loop().create_task(self._fire(state, scheduled=state.next_due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._tick)
            except TimeoutError:
                continue
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def run_now(self, name: str) -> None:
        """Run one timer function on demand (admin API); its schedule is left as it was."""
        state = self._timers[name]
        await self._fire(state, scheduled=None)

    async def _fire(self, state: _TimerState, *, scheduled: datetime | None) -> None:
        async with state.lock:
            now = self._clock.now()
            if scheduled is not None:
                if state.next_due != scheduled:  # another path already fired this occurrence
                    return
                state.next_due = state.schedule.next_after(now)
            past_due = scheduled is not None and now - scheduled > PAST_DUE_AFTER
            request = timer_request(past_due=past_due, last=state.last, next_due=state.next_due, now=now)
            name = state.function.name
            log.info("localhost.timer_fired", function=name, past_due=past_due)
            try:
                await self._invoker.invoke(state.function, request)
            except Exception as exc:  # a failing timer is logged; the host keeps running
                log.exception("localhost.timer_failed", function=name, error=type(exc).__name__)
            finally:
                state.last = now
