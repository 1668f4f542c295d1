"""The sandbox's business clock and its scheduler.

Business time is wall time plus an offset that only ever grows. Everything that falls due in business
time (licensing delays, subscription expiry, lifecycle notifications, delta-token age) is scheduled here
and fired in order, whether time passes naturally or is advanced in steps. Access tokens stay on wall time.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

Callback = Callable[[], Awaitable[None] | None]


class SandboxClock:
    """Wall time shifted by a non-negative, growing offset."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """Current business time, timezone-aware UTC."""
        return datetime.now(UTC) + self.offset

    def move(self, delta: timedelta) -> None:
        """Move business time forward (never back)."""
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        self.offset += delta

    def reset(self) -> None:
        """Back to wall time (control-plane reset)."""
        self.offset = timedelta(0)


@dataclass(order=True)
class _Entry:
    due: datetime
    seq: int
    label: str = field(compare=False)
    callback: Callback = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Scheduler:
    """A heap of callbacks due at business times; `run_due` fires what is due, earliest first."""

    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self._heap: list[_Entry] = []
        self._seq = itertools.count()

    def call_at(self, due: datetime, callback: Callback, label: str = "") -> _Entry:
        """Schedule `callback` (plain or async) at business time `due`; returns a handle to cancel."""
        entry = _Entry(due, next(self._seq), label, callback)
        heapq.heappush(self._heap, entry)
        return entry

    def call_later(self, delay: timedelta, callback: Callback, label: str = "") -> _Entry:
        """Schedule `callback` after `delay` of business time."""
        return self.call_at(self.clock.now() + delay, callback, label)

    @staticmethod
    def cancel(entry: _Entry) -> None:
        """Cancel a scheduled callback (it stays in the heap, skipped when due)."""
        entry.cancelled = True

    def next_due(self) -> datetime | None:
        """When the next live callback falls due, if any."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    async def run_due(self, until: datetime | None = None) -> int:
        """Fire every callback due at or before `until` (default: now), in due order; returns how many."""
        limit = until or self.clock.now()
        fired = 0
        while self._heap and self._heap[0].due <= limit:
            entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            result = entry.callback()
            if inspect.isawaitable(result):
                await result
            fired += 1
        return fired

    def clear(self) -> None:
        """Drop everything scheduled (control-plane reset)."""
        self._heap.clear()


IdleWait = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class AdvanceReport:
    """What one stepped move of the clock did."""

    steps: int
    fired: int
    idle_timeouts: int


async def advance(
    scheduler: Scheduler,
    total: timedelta,
    max_step: timedelta,
    after_step: IdleWait | None = None,
) -> AdvanceReport:
    """Move business time forward by `total` in steps no longer than `max_step`.

    Within a step the clock stops at each due time and fires what falls due there, earliest first, so
    callbacks see the time they were scheduled for; after each step `after_step` (if any) waits for the
    service under test to be idle and answers False when its bounded wait ran out.
    """
    if total < timedelta(0):
        raise ValueError("the sandbox clock only moves forward")
    if max_step <= timedelta(0):
        raise ValueError("max_step must be positive")
    clock = scheduler.clock
    remaining = total
    steps = fired = idle_timeouts = 0
    while remaining > timedelta(0) or steps == 0:
        step = min(remaining, max_step)
        moved = timedelta(0)  # the offset grows by exactly `step`, however long the callbacks take
        while (due := scheduler.next_due()) is not None and due <= clock.now() + (step - moved):
            ahead = due - clock.now()
            if ahead > timedelta(0):
                clock.move(ahead)
                moved += ahead
            fired += await scheduler.run_due(until=due)
        clock.move(step - moved)
        fired += await scheduler.run_due()
        remaining -= step
        steps += 1
        if after_step is not None and not await after_step():
            idle_timeouts += 1
    return AdvanceReport(steps=steps, fired=fired, idle_timeouts=idle_timeouts)
