"""The versioned message envelope every queue carries, the registry of message kinds, and the id rule.

`message_id = hash(kind, subject, causal version)`: duplicates collapse, and a later re-check (a new due
time or attempt) is never mistaken for a duplicate. A timer's tick is part of the version of what it emits.
Each kind is registered once with its queue and the JSON Schema of its payload (see docs/messages.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from seatkeeper.core.errors import InvalidInput

ENVELOPE_VERSION: Final = 1

GROUP_CHANGES: Final = "group-changes"
HR_EVENTS: Final = "hr-events"
LICENSE_CHECKS: Final = "license-checks"
ALERTS: Final = "alerts"
QUEUES: Final = (GROUP_CHANGES, HR_EVENTS, LICENSE_CHECKS, ALERTS)


def message_id_for(kind: str, subject: str, version: str) -> str:
    """Deterministic transport id: the same (kind, subject, causal version) always gives the same id."""
    digest = hashlib.sha256("\x1f".join((kind, subject, version)).encode("utf-8")).hexdigest()
    return digest[:40]


def resubmitted_id(original_id: str, n: int) -> str:
    """Transport id of the n-th resubmission of a dead letter: new, so duplicate detection keeps it."""
    return message_id_for(original_id, "resubmit", str(n))


@dataclass(frozen=True)
class Message:
    """One unit of work on one queue. `payload` is JSON-compatible and validated per `kind`.

    `scheduled_for` is business time (the Clock port): the message stays invisible until then.
    """

    queue: str
    kind: str
    subject: str
    version: str
    correlation_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    scheduled_for: datetime | None = None
    message_id: str = ""

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"unknown queue {self.queue!r}")
        if not self.message_id:
            object.__setattr__(self, "message_id", message_id_for(self.kind, self.subject, self.version))

    def body(self) -> bytes:
        """The envelope as JSON bytes: what travels on the queue."""
        return json.dumps(
            {
                "envelope": ENVELOPE_VERSION,
                "kind": self.kind,
                "subject": self.subject,
                "version": self.version,
                "correlation_id": self.correlation_id,
                "payload": dict(self.payload),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_body(
        cls,
        queue: str,
        body: bytes,
        *,
        message_id: str = "",
        session_id: str | None = None,
        scheduled_for: datetime | None = None,
    ) -> Message:
        """Parse an envelope received on `queue`; raises InvalidInput naming what is wrong."""
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput("message body is not JSON", [str(exc)]) from exc
        if not isinstance(raw, dict):
            raise InvalidInput("message body is not a JSON object", ["$: expected an object"])
        errors: list[str] = []
        if raw.get("envelope") != ENVELOPE_VERSION:
            errors.append(f"envelope: expected {ENVELOPE_VERSION}, got {raw.get('envelope')!r}")
        for name in ("kind", "subject", "version", "correlation_id"):
            if not isinstance(raw.get(name), str):
                errors.append(f"{name}: expected a string")
        if not isinstance(raw.get("payload", {}), dict):
            errors.append("payload: expected an object")
        if errors:
            raise InvalidInput("message envelope is invalid", errors)
        return cls(
            queue=queue,
            kind=raw["kind"],
            subject=raw["subject"],
            version=raw["version"],
            correlation_id=raw["correlation_id"],
            payload=raw.get("payload", {}),
            session_id=session_id,
            scheduled_for=scheduled_for,
            message_id=message_id,
        )


@dataclass(frozen=True)
class MessageKind:
    """A registered kind of message: the queue it travels on and the JSON Schema of its payload."""

    name: str
    queue: str
    schema: Mapping[str, Any]
    description: str


MESSAGE_KINDS: dict[str, MessageKind] = {}


def register_kind(kind: MessageKind) -> MessageKind:
    """Add a kind to the registry (once); later issues register theirs next to their core models."""
    if kind.queue not in QUEUES:
        raise ValueError(f"kind {kind.name!r}: unknown queue {kind.queue!r}")
    existing = MESSAGE_KINDS.get(kind.name)
    if existing is not None and existing != kind:
        raise ValueError(f"kind {kind.name!r} is already registered differently")
    MESSAGE_KINDS[kind.name] = kind
    return kind


def validate(message: Message) -> None:
    """Check that the kind is registered for this queue and the payload matches its schema.

    Raises InvalidInput with one entry per problem (a permanent error: the message completes, logged).
    """
    kind = MESSAGE_KINDS.get(message.kind)
    if kind is None:
        raise InvalidInput(f"unknown message kind {message.kind!r}", [f"kind: {message.kind!r}"])
    if kind.queue != message.queue:
        raise InvalidInput(
            f"kind {message.kind!r} does not travel on {message.queue!r}",
            [f"queue: expected {kind.queue!r}"],
        )
    import jsonschema  # lazy: keeps function_app.py's import cheap

    validator = jsonschema.Draft202012Validator(kind.schema)
    problems = sorted(
        f"payload{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(dict(message.payload))
    )
    if problems:
        raise InvalidInput(f"payload of {message.kind!r} does not match its schema", problems)
