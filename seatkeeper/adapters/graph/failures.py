"""Graph's error answers mapped onto the core error tree (transient or permanent), once, here."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from seatkeeper.core.errors import (
    ConcurrencyConflict,
    Forbidden,
    NotFound,
    Rejected,
    SeatkeeperError,
    Throttled,
    Unavailable,
)

ALREADY_MEMBER: Final = re.compile(r"already exist", re.IGNORECASE)
# "The source resource object or one of the objects being referenced do not exist" (replication lag).
REFERENCE_MISSING: Final = re.compile(r"(do|does) not exist|not present", re.IGNORECASE)


def graph_error(body: Any) -> tuple[str, str]:
    """Graph's `error.code` and `error.message` from a response body (dict, JSON text or nothing)."""
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return "", ""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", ""
    return str(error.get("code", "")), str(error.get("message", ""))


def error_for(status: int, body: Any, op: str, retry_after: float | None = None) -> SeatkeeperError:
    """The core error for a failed Graph answer. Messages carry the operation and code, never a token."""
    code, message = graph_error(body)
    text = f"{op}: {status} {code}".rstrip() + (f": {message}" if message else "")
    if status == 429:
        return Throttled(text, retry_after=retry_after)
    if status >= 500:
        return Unavailable(text, retry_after=retry_after)
    if status == 404:
        return NotFound(text)
    if status in (401, 403):
        return Forbidden(text)
    if status == 412:
        return ConcurrencyConflict(text)
    return Rejected(text, status=status, code=code)
