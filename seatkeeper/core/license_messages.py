"""The two message kinds of the license gate on the `license-checks` queue, their schemas and builders.

`admit` asks the gate to let a person into a Copilot group (HR events, rollouts and the CLI admit through
it); `license.check` asks verification to look at a member's Copilot license (after an add, on a scheduled
re-check, or when the group delta reader saw a member arrive or leave). Both travel in the user's session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.messages import LICENSE_CHECKS, Message, MessageKind, register_kind

ADMIT_KIND: Final = "admit"
LICENSE_CHECK_KIND: Final = "license.check"

_ID: Final = {"type": "string", "minLength": 1, "maxLength": 256}

ADMIT_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["person", "group_id", "reason", "requested_by"],
    "additionalProperties": False,
    "properties": {
        "person": _ID,
        "group_id": _ID,
        "reason": {"type": "string", "minLength": 1, "maxLength": 200},
        "requested_by": {"type": "string", "minLength": 1, "maxLength": 256},
        "hr_country": {"type": ["string", "null"], "pattern": "^[A-Za-z]{2}$"},
    },
}

LICENSE_CHECK_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["user_id", "group_id"],
    "additionalProperties": False,
    "properties": {
        "user_id": _ID,
        "group_id": _ID,
        "change": {"enum": ["added", "removed", "recheck"]},
        "added_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 40},
        "due_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 40},
        "reprocesses": {"type": "integer", "minimum": 0, "maximum": 10},
        "source": {"type": "string", "maxLength": 64},
    },
}

ADMIT_MESSAGE: Final = register_kind(
    MessageKind(
        name=ADMIT_KIND,
        queue=LICENSE_CHECKS,
        schema=ADMIT_SCHEMA,
        description="Gate, reserve a seat, add, verify. Subject: the person. Version: group and request id.",
    )
)
LICENSE_CHECK_MESSAGE: Final = register_kind(
    MessageKind(
        name=LICENSE_CHECK_KIND,
        queue=LICENSE_CHECKS,
        schema=LICENSE_CHECK_SCHEMA,
        description="Verify a member's Copilot license. Subject: user id. Version: group, change, due time.",
    )
)


class Change(StrEnum):
    """Why a `license.check` was sent: a member arrived, left, or a re-check fell due."""

    ADDED = "added"
    REMOVED = "removed"
    RECHECK = "recheck"


@dataclass(frozen=True)
class AdmitRequest:
    """Let `person` (object id or UPN) into `group_id`, because `reason`, as asked by `requested_by`."""

    person: str
    group_id: str
    reason: str
    requested_by: str
    hr_country: str | None = None


@dataclass(frozen=True)
class LicenseCheck:
    """Look at `user_id`'s Copilot license from `group_id`; `added_at` None means "since now". `due_at` is
    when a scheduled check fell due: the check happens no earlier, whatever the handler's clock says."""

    user_id: str
    group_id: str
    change: Change = Change.ADDED
    added_at: datetime | None = None
    reprocesses: int = 0
    source: str = ""
    due_at: datetime | None = None


def _lower(value: str) -> str:
    return value.strip().lower()


def admit_message(request: AdmitRequest, *, request_id: str, correlation_id: str) -> Message:
    """An `admit` message; `request_id` (an HR event id, a CLI run) makes repeats of one request collapse."""
    payload: dict[str, Any] = {
        "person": request.person.strip(),
        "group_id": _lower(request.group_id),
        "reason": request.reason,
        "requested_by": request.requested_by,
    }
    if request.hr_country is not None:
        payload["hr_country"] = request.hr_country.upper()
    subject = _lower(request.person)
    return Message(
        queue=LICENSE_CHECKS,
        kind=ADMIT_KIND,
        subject=subject,
        version=f"{_lower(request.group_id)}:{request_id}",
        correlation_id=correlation_id,
        payload=payload,
        session_id=subject,
    )


def check_message(
    check: LicenseCheck, *, version: str, correlation_id: str, due_at: datetime | None = None
) -> Message:
    """A `license.check` message; `version` is the due time (re-checks) or the delta version (signals)."""
    payload: dict[str, Any] = {
        "user_id": _lower(check.user_id),
        "group_id": _lower(check.group_id),
        "change": check.change.value,
        "reprocesses": check.reprocesses,
    }
    if check.added_at is not None:
        payload["added_at"] = check.added_at.astimezone(UTC).isoformat()
    if due_at is not None:
        payload["due_at"] = due_at.astimezone(UTC).isoformat()
    if check.source:
        payload["source"] = check.source
    return Message(
        queue=LICENSE_CHECKS,
        kind=LICENSE_CHECK_KIND,
        subject=_lower(check.user_id),
        version=f"{_lower(check.group_id)}:{check.change.value}:{version}",
        correlation_id=correlation_id,
        payload=payload,
        session_id=_lower(check.user_id),
        scheduled_for=due_at,
    )


def parse_admit(payload: Mapping[str, Any]) -> AdmitRequest:
    """The request of a validated `admit` payload."""
    country = payload.get("hr_country")
    return AdmitRequest(
        person=str(payload["person"]).strip(),
        group_id=_lower(str(payload["group_id"])),
        reason=str(payload["reason"]),
        requested_by=str(payload["requested_by"]),
        hr_country=str(country).upper() if country else None,
    )


def parse_check(payload: Mapping[str, Any]) -> LicenseCheck:
    """The check of a validated `license.check` payload; InvalidInput for an unreadable time."""
    return LicenseCheck(
        user_id=_lower(str(payload["user_id"])),
        group_id=_lower(str(payload["group_id"])),
        change=Change(str(payload.get("change", Change.ADDED.value))),
        added_at=_instant(payload, "added_at"),
        reprocesses=int(payload.get("reprocesses", 0)),
        source=str(payload.get("source", "")),
        due_at=_instant(payload, "due_at"),
    )


def _instant(payload: Mapping[str, Any], name: str) -> datetime | None:
    raw = payload.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise InvalidInput(f"license.check has a bad {name}", [f"payload['{name}']"]) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
