"""The one error tree of Seatkeeper, decided in one place.

TransientError propagates so that the queue redelivers (and dead-letters past the limit, which alerts);
PermanentError completes the message with a logged reason, and an alert when a human must act.
"""

from __future__ import annotations

from collections.abc import Sequence


class SeatkeeperError(Exception):
    """Root of every error Seatkeeper raises on purpose."""


class ConfigurationError(SeatkeeperError):
    """Settings or policy are missing or invalid; raised at start, listing every problem at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class TransientError(SeatkeeperError):
    """Worth retrying later: throttling, unavailability, timeouts, a busy or conflicting store."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(TransientError):
    """A 429 (or a throttled batch item); `retry_after` is the server's word when it gave one."""


class Unavailable(TransientError):
    """A 5xx, a timeout or a dropped connection."""


class ConcurrencyConflict(TransientError):
    """An optimistic-concurrency (ETag) check failed; re-read and try again."""


class DeadLettersWaiting(SeatkeeperError):
    """Dead letters wait in a queue whose dead letters are never alerted (`alerts`): health reports it."""


class PermanentError(SeatkeeperError):
    """Retrying will not help: the message completes and the reason is logged (and alerted if needed)."""


class InvalidInput(PermanentError):
    """A message or request that does not match its schema; `errors` names each field problem."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


class NotFound(PermanentError):
    """The user, group or subscription does not exist (after replication lag was waited out)."""


class Forbidden(PermanentError):
    """The app lacks a permission, or the target may not be written (dynamic, mail-enabled, not ours)."""


class PolicyConflict(PermanentError):
    """The policy asks for something contradictory for this subject."""


class Rejected(PermanentError):
    """An API refused the request itself (a 400 or other 4xx); `status` and `code` are its answer."""

    def __init__(self, message: str, *, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
