"""The versioned message envelope every queue carries, and the deterministic message id rule.

`message_id = hash(kind, subject, causal version)`: duplicates collapse, and a later re-check (a new due
time or attempt) is never mistaken for a duplicate. A timer's tick is part of the version of what it emits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

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


@dataclass(frozen=True)
class Message:
    """One unit of work on one queue. `payload` is JSON-compatible and validated per `kind`."""

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
