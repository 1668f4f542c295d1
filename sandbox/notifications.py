"""Webhook deliveries as Graph makes them: the validation handshake, batched POSTs, retries, slow endpoints.

A delivery succeeds on a 2xx within 3 s; anything else is retried with exponential back-off for a bounded
time, then dropped. Per endpoint, Graph's slow-endpoint rule applies: once 100 deliveries were counted in
the current 10-minute window, 10 % slow replies (> 2.9 s) delay deliveries by 10 minutes and 15 % drop them.
Deliveries, retries and windows run on wall time (Graph's HTTP client does not follow business time).
The URL is used exactly as registered, so its query string (a function key) travels with every delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

log = logging.getLogger("sandbox.notifications")

EndpointState = Literal["normal", "delayed", "dropping"]


@dataclass(frozen=True)
class DeliveryLimits:
    """Graph's delivery timings; tests scale them down, the server uses the documented defaults."""

    timeout: float = 3.0
    slow_after: float = 2.9
    validation_timeout: float = 10.0
    first_retry: float = 1.0
    max_retry_interval: float = 60.0
    give_up_after: float = 4 * 3600.0
    slow_window: float = 600.0
    slow_minimum: int = 100
    delay_ratio: float = 0.10
    drop_ratio: float = 0.15
    slow_delay: float = 600.0
    coalesce: float = 0.02
    max_batch: int = 100


def with_query(url: str, **params: str) -> str:
    """`url` with `params` appended to whatever query string it already has."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _endpoint(url: str) -> str:
    """The endpoint key for slow-endpoint accounting: the URL without its query string."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


async def validate_endpoint(client: httpx.AsyncClient, url: str, limits: DeliveryLimits) -> str | None:
    """Run Graph's validation handshake on `url`; None when it passed, else why it failed."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    try:
        async with asyncio.timeout(limits.validation_timeout):
            response = await client.post(with_query(url, validationToken=token))
    except TimeoutError:
        return f"no answer within {limits.validation_timeout:g} seconds"
    except httpx.HTTPError as exc:
        return f"request failed ({type(exc).__name__})"
    if response.status_code != 200:
        return f"answered {response.status_code}, not 200"
    content_type = response.headers.get("content-type", "")
    if not content_type.lower().startswith("text/plain"):
        return "answered without Content-Type text/plain"
    if response.text != token:
        return "answered a body that is not the decoded validation token"
    return None


@dataclass
class SlowTracker:
    """Counts deliveries and slow replies per endpoint in windows flushed every `limits.slow_window`."""

    limits: DeliveryLimits
    now: Callable[[], float] = time.monotonic
    _windows: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    def record(self, endpoint: str, slow: bool) -> None:
        """Count one delivery attempt to `endpoint`."""
        started, total, slows = self._current(endpoint)
        self._windows[endpoint] = (started, total + 1, slows + int(slow))

    def state(self, endpoint: str) -> EndpointState:
        """What Graph does with the endpoint's next delivery."""
        _, total, slows = self._current(endpoint)
        if total < self.limits.slow_minimum:
            return "normal"
        ratio = slows / total
        if ratio >= self.limits.drop_ratio:
            return "dropping"
        if ratio >= self.limits.delay_ratio:
            return "delayed"
        return "normal"

    def _current(self, endpoint: str) -> tuple[float, int, int]:
        at = self.now()
        window = self._windows.get(endpoint)
        if window is None or at - window[0] >= self.limits.slow_window:
            window = (at, 0, 0)
            self._windows[endpoint] = window
        return window

    def clear(self) -> None:
        """Forget every endpoint."""
        self._windows.clear()


@dataclass
class EndpointStats:
    """What happened to deliveries for one notification URL (for tests and the control plane)."""

    posts: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    slow: int = 0
    dropped: int = 0


class Notifier:
    """Queues notifications per URL and delivers them in batches, with Graph's retry and slow rules."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: DeliveryLimits | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.limits = limits or DeliveryLimits()
        self.enabled = True
        self._now = now
        self.slow = SlowTracker(self.limits, now)
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._busy: set[str] = set()
        self.stats: dict[str, EndpointStats] = {}

    def enqueue(self, url: str, notification: dict[str, Any]) -> None:
        """Queue one notification for `url` (dropped at once when deliveries are switched off)."""
        if not self.enabled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no server loop (a change made while loading the tenant): nothing can be delivered
        self._pending.setdefault(url, []).append(notification)
        if url not in self._workers:
            self._busy.add(url)
            self._workers[url] = loop.create_task(self._work(url))

    async def drain(self, within: float = 10.0) -> bool:
        """Wait until nothing is queued or being posted (retries waiting out a back-off do not count)."""
        deadline = self._now() + within
        while self._busy:
            if self._now() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self) -> None:
        """Cancel every worker (server shutdown, control-plane reset)."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._pending.clear()
        self._busy.clear()

    def reset(self) -> None:
        """Drop queued work and every endpoint's history; deliveries back on (control-plane reset)."""
        for task in self._workers.values():
            task.cancel()
        self._workers.clear()
        self._pending.clear()
        self._busy.clear()
        self.slow.clear()
        self.stats.clear()
        self.enabled = True

    async def _work(self, url: str) -> None:
        try:
            while True:
                self._busy.add(url)
                await asyncio.sleep(self.limits.coalesce)  # let a burst of changes share one POST
                queue = self._pending.get(url, [])
                if not queue:
                    return
                batch = queue[: self.limits.max_batch]
                del queue[: self.limits.max_batch]
                await self._deliver(url, batch)
        finally:
            if self._workers.get(url) is asyncio.current_task():
                self._busy.discard(url)
                del self._workers[url]
                if self._pending.get(url) == []:
                    del self._pending[url]

    async def _deliver(self, url: str, batch: list[dict[str, Any]]) -> None:
        """Post one batch until it succeeds or the retry time runs out."""
        endpoint = _endpoint(url)
        stats = self.stats.setdefault(url, EndpointStats())
        first = self._now()
        interval = self.limits.first_retry
        while True:
            state = self.slow.state(endpoint)
            if state == "dropping":
                stats.dropped += len(batch)
                log.warning(
                    "sandbox.notification_dropped", extra={"reason": "slow_endpoint", "n": len(batch)}
                )
                return
            if state == "delayed":
                await self._idle_sleep(url, self.limits.slow_delay)
            if await self._post(url, endpoint, batch, stats):
                stats.delivered += len(batch)
                return
            if self._now() - first + interval > self.limits.give_up_after:
                stats.dropped += len(batch)
                log.warning(
                    "sandbox.notification_dropped", extra={"reason": "retries_exhausted", "n": len(batch)}
                )
                return
            await self._idle_sleep(url, interval)
            interval = min(interval * 2, self.limits.max_retry_interval)

    async def _idle_sleep(self, url: str, seconds: float) -> None:
        """Sleep without holding up `drain` (a back-off is not work in progress). Busy again only when the
        sleep ends: a worker cancelled in it (reset, close) must not leave its URL busy for good."""
        self._busy.discard(url)
        await asyncio.sleep(seconds)
        self._busy.add(url)

    async def _post(self, url: str, endpoint: str, batch: list[dict[str, Any]], stats: EndpointStats) -> bool:
        """One POST of `{"value": batch}`; True on a 2xx within the time limit."""
        stats.posts += 1
        started = self._now()
        ok = False
        try:
            async with asyncio.timeout(self.limits.timeout):
                response = await self.client.post(url, json={"value": batch})
            ok = 200 <= response.status_code < 300
        except TimeoutError:
            ok = False
        except httpx.HTTPError:
            ok = False
        elapsed = self._now() - started
        slow = elapsed > self.limits.slow_after
        self.slow.record(endpoint, slow)
        stats.slow += int(slow)
        if not ok:
            stats.failed_attempts += 1
        return ok
