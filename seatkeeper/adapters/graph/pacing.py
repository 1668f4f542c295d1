"""Keeps this process's Graph writes below the per-app-and-tenant write quota (3,000 writes per 2.5 minutes,
graph-facts D): a sliding window that makes a write wait only when the window is full. With several
instances a 429 remains the authority; this only spares one instance from provoking it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

WRITE_QUOTA: Final = 3000
WRITE_WINDOW_SECONDS: Final = 150.0


class WritePacer:
    """At most `limit` writes in any `window` seconds; `acquire(n)` waits until n more fit."""

    def __init__(
        self,
        *,
        limit: int = int(WRITE_QUOTA * 0.9),
        window: float = WRITE_WINDOW_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limit = limit
        self._window = window
        self._monotonic = monotonic
        self._sleep = sleep
        self._stamps: deque[float] = deque()

    async def acquire(self, writes: int = 1) -> float:
        """Reserve room for `writes` writes, waiting if the window is full; returns the seconds waited.

        No lock is needed: between awaits the check and the reservation run without interruption.
        """
        started = self._monotonic()
        waited = 0.0
        while True:
            # Wall time, or the waits asked for when sleeping is simulated (tests).
            now = max(self._monotonic(), started + waited)
            while self._stamps and self._stamps[0] <= now - self._window:
                self._stamps.popleft()
            if len(self._stamps) + writes <= self._limit or not self._stamps:
                self._stamps.extend([now] * writes)
                return waited
            delay = self._stamps[0] + self._window - now
            waited += delay
            await self._sleep(delay)
