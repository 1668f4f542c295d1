"""Per-person ordering of HR events by when HR recorded them (CloudEvents `time`), not by arrival.

The newest recorded event of a person is the one that counts: an older one arriving late changes nothing,
a leaver recorded after a joiner whose start has not come rescinds the hire (the joiner's scheduled action
finds itself superseded), and a joiner recorded after a leaver is a rehire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from seatkeeper.core.hr_events import HrEvent, HrEventType


@dataclass(frozen=True)
class PersonRecord:
    """The newest HR event applied to a person; `first_seen` is when deadlines count from."""

    employee_id: str
    event_id: str
    source: str
    type: HrEventType
    recorded_at: datetime
    effective_at: datetime
    first_seen: datetime
    # True once the event was taken in (scheduled or acted on): a redelivery before that takes it in again.
    applied: bool = False

    def applied_now(self) -> PersonRecord:
        """The record once its event was taken in."""
        return replace(self, applied=True)

    def to_data(self) -> dict[str, Any]:
        """The record as a state-store row."""
        return {
            "applied": self.applied,
            "event_id": self.event_id,
            "source": self.source,
            "type": self.type.value,
            "recorded_at": self.recorded_at.isoformat(),
            "effective_at": self.effective_at.isoformat(),
            "first_seen": self.first_seen.isoformat(),
        }

    @classmethod
    def from_data(cls, employee_id: str, data: Mapping[str, Any]) -> PersonRecord:
        """A record read back from the state store."""
        return cls(
            employee_id=employee_id,
            event_id=str(data["event_id"]),
            source=str(data["source"]),
            type=HrEventType(str(data["type"])),
            recorded_at=datetime.fromisoformat(str(data["recorded_at"])),
            effective_at=datetime.fromisoformat(str(data["effective_at"])),
            first_seen=datetime.fromisoformat(str(data["first_seen"])),
            applied=bool(data.get("applied", False)),
        )


class Order(StrEnum):
    """How an arriving event relates to the person's record."""

    APPLY = "apply"
    DUPLICATE = "duplicate"
    STALE = "stale"


def order(record: PersonRecord | None, event: HrEvent) -> Order:
    """APPLY a newer event, ignore a repeat (DUPLICATE) or an older one (STALE).

    Equal times are broken by (source, id) so that every replica decides the same way.
    """
    if record is None:
        return Order.APPLY
    if (record.source, record.event_id) == event.dedupe_key:
        return Order.DUPLICATE
    mine = (event.recorded_at, event.source, event.id)
    return Order.APPLY if mine > _rank(record) else Order.STALE


def _rank(record: PersonRecord) -> tuple[datetime, str, str]:
    return (record.recorded_at, record.source, record.event_id)


def newest(*records: PersonRecord | None) -> PersonRecord | None:
    """The record of the most recently recorded event among several keys of one human (None: none)."""
    known = [r for r in records if r is not None]
    return max(known, key=_rank) if known else None


def record_for(event: HrEvent, previous: PersonRecord | None, now: datetime) -> PersonRecord:
    """The person's record once `event` applies (a rehire starts its account wait afresh)."""
    keep_first_seen = previous is not None and previous.type is event.type
    return PersonRecord(
        employee_id=event.person.employee_id,
        event_id=event.id,
        source=event.source,
        type=event.type,
        recorded_at=event.recorded_at,
        effective_at=event.effective_at,
        first_seen=previous.first_seen if keep_first_seen and previous is not None else now,
    )


def is_current(record: PersonRecord | None, event: HrEvent) -> bool:
    """True while `event` is still the person's newest: a scheduled action of a superseded event is void."""
    return record is not None and (record.source, record.event_id) == event.dedupe_key
