"""The HR event contract: CloudEvents 1.0 (structured JSON and batch) of three types, parsed into frozen
models with one error per bad field, and the `hr-events` messages that carry them to onboarding.

The JSON Schema (`seatkeeper/schemas/hr-event.schema.json`) is the contract; the caller hands it in (the
core reads no files). Date-only values are read as the start of that day in the configured time zone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.messages import HR_EVENTS, Message, MessageKind, register_kind

SINGLE_CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"
MAX_BATCH_EVENTS: Final = 100
"""The most events one batch request may carry (documented; more answers 413)."""
MAX_BODY_BYTES: Final = 1_048_576
"""The largest request body accepted (1 MiB; more answers 413)."""


class HrEventType(StrEnum):
    """What happened to the person."""

    JOINER = "joiner"
    MOVER = "mover"
    LEAVER = "leaver"

    @property
    def cloudevents_type(self) -> str:
        """The CloudEvents `type` attribute of this kind of event."""
        return f"com.seatkeeper.hr.{self.value}"

    @property
    def date_field(self) -> str:
        """The `data` field that says when to act."""
        return {"joiner": "hireDate", "mover": "effectiveDate", "leaver": "leaveDate"}[self.value]


_BY_CE_TYPE: Final = {t.cloudevents_type: t for t in HrEventType}


@dataclass(frozen=True)
class HrRecord:
    """The person as HR describes them in an event's `data` (employeeId is the key; the rest optional)."""

    employee_id: str
    object_id: str | None = None
    user_principal_name: str | None = None
    department: str | None = None
    job_title: str | None = None
    country: str | None = None
    employee_type: str | None = None
    company_name: str | None = None
    manager: str | None = None


@dataclass(frozen=True)
class HrEvent:
    """One validated HR event. `recorded_at` (CloudEvents `time`) orders a person's events;
    `effective_at` (hire, move or leave date) only says when to act."""

    id: str
    source: str
    type: HrEventType
    recorded_at: datetime
    effective_at: datetime
    person: HrRecord
    body_hash: str

    @property
    def dedupe_key(self) -> tuple[str, str]:
        """(source, id): what makes two deliveries the same event."""
        return (self.source, self.id)


def body_hash(raw: Mapping[str, Any]) -> str:
    """A hash of the event's JSON independent of key order and whitespace (same event, same hash)."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _field(path: Sequence[str | int], where: str) -> str:
    text = where
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "$"


def _schema_problems(raw: object, schema: Mapping[str, Any], where: str) -> list[str]:
    import jsonschema  # lazy: keeps function_app.py's import cheap

    validator = jsonschema.Draft202012Validator(schema)
    problems: list[str] = []
    for error in sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path]):
        sub = error.schema if isinstance(error.schema, Mapping) else {}
        if error.validator == "pattern" and "title" in sub:
            message = f"{error.instance!r} is not {sub['title']}"
        else:
            message = error.message
        problems.append(f"{_field(list(error.absolute_path), where)}: {message}")
    return problems


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 date and time with offset, or a date read as midnight in `zone`; always UTC.

    Raises ValueError for an impossible calendar value (the schema has already checked the shape).
    """
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone).astimezone(UTC)
    value = datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError("no offset")
    return value.astimezone(UTC)


def parse_event(raw: object, *, schema: Mapping[str, Any], zone: ZoneInfo, where: str = "") -> HrEvent:
    """One CloudEvent (already JSON-decoded) as an HrEvent; InvalidInput lists every bad field."""
    problems = _schema_problems(raw, schema, where)
    if problems or not isinstance(raw, Mapping):
        raise InvalidInput("the HR event does not match its schema", problems or [f"{where or '$'}: bad"])
    kind = _BY_CE_TYPE[str(raw["type"])]
    data: Mapping[str, Any] = raw["data"]
    instants: dict[str, datetime] = {}
    for path, value in ((("time",), raw["time"]), (("data", kind.date_field), data[kind.date_field])):
        try:
            instants[path[-1]] = parse_instant(str(value), zone)
        except ValueError:
            problems.append(f"{_field(path, where)}: {value!r} is not a real date")
    if problems:
        raise InvalidInput("the HR event does not match its schema", problems)

    def text(name: str) -> str | None:
        value = data.get(name)
        return value.strip() or None if isinstance(value, str) else None

    country = text("country")
    object_id = text("objectId")
    return HrEvent(
        id=str(raw["id"]),
        source=str(raw["source"]),
        type=kind,
        recorded_at=instants["time"],
        effective_at=instants[kind.date_field],
        person=HrRecord(
            employee_id=str(data["employeeId"]).strip(),
            object_id=object_id.lower() if object_id else None,
            user_principal_name=text("userPrincipalName"),
            department=text("department"),
            job_title=text("jobTitle"),
            country=country.upper() if country else None,
            employee_type=text("employeeType"),
            company_name=text("companyName"),
            manager=text("manager"),
        ),
        body_hash=body_hash(raw),
    )


# -- the `hr-events` messages ------------------------------------------------------------------------------

_OPTIONAL_TEXT: Final = {"type": ["string", "null"], "maxLength": 512}
HR_EVENT_PAYLOAD_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["id", "source", "recorded_at", "effective_at", "person", "stage"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "source": {"type": "string", "minLength": 1, "maxLength": 512},
        "recorded_at": {"type": "string", "maxLength": 40},
        "effective_at": {"type": "string", "maxLength": 40},
        "body_hash": {"type": "string", "maxLength": 64},
        # See Stage: where the event is in onboarding.
        "stage": {"enum": ["received", "due", "find_user", "remove", "verify"]},
        "attempt": {"type": "integer", "minimum": 0},
        "callback": _OPTIONAL_TEXT,
        "person": {
            "type": "object",
            "required": ["employee_id"],
            "additionalProperties": False,
            "properties": {
                "employee_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "object_id": _OPTIONAL_TEXT,
                "user_principal_name": _OPTIONAL_TEXT,
                "department": _OPTIONAL_TEXT,
                "job_title": _OPTIONAL_TEXT,
                "country": _OPTIONAL_TEXT,
                "employee_type": _OPTIONAL_TEXT,
                "company_name": _OPTIONAL_TEXT,
                "manager": _OPTIONAL_TEXT,
            },
        },
    },
}

HR_KINDS: Final = {
    t: register_kind(
        MessageKind(
            name=f"hr.{t.value}",
            queue=HR_EVENTS,
            schema=HR_EVENT_PAYLOAD_SCHEMA,
            description=f"An HR {t.value} event for onboarding. Subject and session: employeeId. "
            "Version: source, event id, stage and attempt.",
        )
    )
    for t in HrEventType
}


class Stage(StrEnum):
    """Where an event is in onboarding (each later stage is a message scheduled by the one before)."""

    RECEIVED = "received"  # just in from intake
    DUE = "due"  # its effective time came
    FIND_USER = "find_user"  # a joiner's or mover's account is looked for again
    REMOVE = "remove"  # planned removals are carried out (after the settle time)
    VERIFY = "verify"  # a mover's new license or a leaver's returned seat is looked at


@dataclass(frozen=True)
class HrWork:
    """An `hr-events` message's content: the event, its stage, the attempt of a follow-up, and the
    Lifecycle Workflows callback path to resume when the decision is made (None for HR webhooks)."""

    event: HrEvent
    stage: Stage = Stage.RECEIVED
    attempt: int = 0
    callback: str | None = None


def hr_message(work: HrWork, *, correlation_id: str, due_at: datetime | None = None) -> Message:
    """The `hr-events` message for this work: session and subject are the employeeId."""
    event = work.event
    person = {k: v for k, v in vars(event.person).items() if v is not None}
    payload: dict[str, Any] = {
        "id": event.id,
        "source": event.source,
        "recorded_at": event.recorded_at.isoformat(),
        "effective_at": event.effective_at.isoformat(),
        "body_hash": event.body_hash,
        "stage": work.stage.value,
        "attempt": work.attempt,
        "person": person,
    }
    if work.callback is not None:
        payload["callback"] = work.callback
    source_key = hashlib.sha256(event.source.encode("utf-8")).hexdigest()[:16]
    return Message(
        queue=HR_EVENTS,
        kind=HR_KINDS[event.type].name,
        subject=event.person.employee_id,
        version=f"{source_key}:{event.id}:{work.stage.value}:{work.attempt}",
        correlation_id=correlation_id,
        payload=payload,
        session_id=event.person.employee_id,
        scheduled_for=due_at,
    )


def parse_work(message: Message) -> HrWork:
    """The work of a validated `hr-events` message; InvalidInput for an unknown kind or bad instant."""
    kinds = {k.name: t for t, k in HR_KINDS.items()}
    if message.kind not in kinds:
        raise InvalidInput(f"not an HR event kind: {message.kind!r}", [f"kind: {message.kind!r}"])
    payload = message.payload
    try:
        recorded = datetime.fromisoformat(str(payload["recorded_at"]))
        effective = datetime.fromisoformat(str(payload["effective_at"]))
    except ValueError as exc:
        raise InvalidInput("bad instant in an HR event message", ["payload.recorded_at"]) from exc
    person: Mapping[str, Any] = payload["person"]
    event = HrEvent(
        id=str(payload["id"]),
        source=str(payload["source"]),
        type=kinds[message.kind],
        recorded_at=recorded.astimezone(UTC),
        effective_at=effective.astimezone(UTC),
        person=HrRecord(
            employee_id=str(person["employee_id"]),
            object_id=_opt(person, "object_id"),
            user_principal_name=_opt(person, "user_principal_name"),
            department=_opt(person, "department"),
            job_title=_opt(person, "job_title"),
            country=_opt(person, "country"),
            employee_type=_opt(person, "employee_type"),
            company_name=_opt(person, "company_name"),
            manager=_opt(person, "manager"),
        ),
        body_hash=str(payload.get("body_hash", "")),
    )
    callback = payload.get("callback")
    return HrWork(
        event=event,
        stage=Stage(str(payload["stage"])),
        attempt=int(payload.get("attempt", 0)),
        callback=str(callback) if callback else None,
    )


def _opt(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return str(value) if value is not None else None
