"""Clock adapters: the wall clock (Azure, message locks, back-off) and the sandbox's business clock.

The sandbox clock is wall time plus an offset that only the sandbox moves; we follow it by reading
`GET {control}/clock` at most once per `max_age` of wall time (and on demand with `refresh()`), so `now()`
stays cheap and never blocks the event loop for long.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from seatkeeper.core.errors import Unavailable

_log = structlog.get_logger(__name__)


class WallClock:
    """Real time, timezone-aware UTC."""

    def now(self) -> datetime:
        """The current wall time."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved: for tests and deterministic tools."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        """The time it was last set to."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move forward by `delta`."""
        self._now += delta

    def set(self, when: datetime) -> None:
        """Jump to `when`."""
        self._now = when


def _offset_from(document: Mapping[str, Any]) -> timedelta:
    offset = document.get("offset_seconds")
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise Unavailable("sandbox clock answered without a numeric offset_seconds")
    return timedelta(seconds=float(offset))


class SandboxBusinessClock:
    """Business time in sandbox mode: wall time plus the sandbox's offset, followed cheaply.

    `now()` uses the last known offset and re-reads it synchronously (one loopback GET) when it is older
    than `max_age`; when the sandbox cannot be reached the last known offset is kept and a warning is
    logged. Call `await refresh()` before a decision that must see an advance at once — the local host's
    idle answer, for one, or a just-advanced scheduled message would look not yet due.
    """

    def __init__(
        self,
        control_url: str,
        *,
        verify: ssl.SSLContext,
        max_age: timedelta = timedelta(seconds=1),
        timeout: float = 2.0,
    ) -> None:
        self._url = control_url.rstrip("/") + "/clock"
        self._verify = verify
        self._max_age = max_age.total_seconds()
        self._timeout = timeout
        self._offset = timedelta(0)
        self._read_at: float | None = None  # time.monotonic() of the last successful read
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        """The last known offset of business time over wall time."""
        return self._offset

    def now(self) -> datetime:
        """Business time: wall time plus the (possibly just refreshed) sandbox offset."""
        if self._read_at is None or time.monotonic() - self._read_at >= self._max_age:
            self._refresh_sync()
        return datetime.now(UTC) + self._offset

    def observe(self, offset: timedelta) -> None:
        """Take an offset learnt elsewhere (e.g. from an advance the local host watched) as current."""
        with self._lock:
            self._offset = offset
            self._read_at = time.monotonic()

    async def refresh(self) -> timedelta:
        """Read the sandbox's offset now; raises Unavailable when the sandbox does not answer."""
        try:
            async with httpx.AsyncClient(verify=self._verify, timeout=self._timeout) as client:
                response = await client.get(self._url)
                response.raise_for_status()
                offset = _offset_from(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"sandbox clock unreachable: {type(exc).__name__}") from exc
        self.observe(offset)
        return offset

    def _refresh_sync(self) -> None:
        with self._lock:
            try:
                response = httpx.get(self._url, verify=self._verify, timeout=self._timeout)
                response.raise_for_status()
                self._offset = _offset_from(response.json())
            except (httpx.HTTPError, ValueError, Unavailable) as exc:
                _log.warning("clock.sandbox_unreachable", error=type(exc).__name__)
            # Whether or not it answered, wait max_age before asking again: now() must stay cheap.
            self._read_at = time.monotonic()
