"""When and how long to wait before trying a Graph call again: Retry-After first, else capped
exponential back-off with full jitter, all inside a budget that fits in a message lock."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Statuses worth a retry when the request is idempotent (429 is always worth one: Graph did nothing).
RETRYABLE_5XX = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Limits of retrying. `budget_seconds` caps the waiting of one operation; past it the transient
    error propagates (and the queue redelivers later). `lag_delays` wait out directory replication lag."""

    budget_seconds: float = 60.0
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    lag_delays: tuple[float, ...] = (1.0, 2.0, 4.0)


def retry_after_seconds(
    value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """The server's Retry-After (seconds or an HTTP date) in seconds, or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now()).total_seconds())


class Attempts:
    """The retry state of one operation: how many attempts, how much budget is left."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.number = 0
        # A sent attempt's outcome is unknown (answer lost, or a 5xx): a later refusal may be its doing.
        self.uncertain = False
        self._rng = rng
        self._monotonic = monotonic
        self._start = monotonic()
        self._waited = 0.0

    def backoff(self) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**attempt)], never below a tenth of base."""
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2 ** max(self.number - 1, 0))
        jittered: float = ceiling * self._rng()
        return max(self.policy.base_delay / 10, jittered)

    def spent(self) -> float:
        """Time used so far: wall time, or the waits asked for when sleeping is simulated in tests."""
        return max(self._monotonic() - self._start, self._waited)

    def allows(self, delay: float) -> bool:
        """True when one more attempt after `delay` seconds stays within attempts and budget."""
        return self.number < self.policy.max_attempts and self.spent() + delay <= self.policy.budget_seconds

    def waited(self, delay: float) -> None:
        """Record a wait."""
        self._waited += delay
