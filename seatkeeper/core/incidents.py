"""Alerts as incidents: the alert signal every handler emits, and the pure incident lifecycle.

An incident is keyed by (scope, subject, problem). It is opened once, updated silently while open, closed
with one "resolved" notice when the cause goes away, and reopened later as a new occurrence. Each notice
carries one delivery per alert route, so a channel that failed is retried and one that succeeded is not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.messages import ALERTS, Message, MessageKind, register_kind
from seatkeeper.core.policy import AlertExclusions, AlertRoute, Alerts, Severity

_E = TypeVar("_E", bound=StrEnum)

ALERT_KIND: Final = "alert"
INCIDENTS_TABLE: Final = "incidents"
SEAT_HEADROOM_PROBLEM: Final = "sku.seat_headroom_low"
# Bounds on what one alert may carry: a Teams message must stay under 28 KB and an incident row under
# Table Storage's entity size, whatever an emitter puts in.
TEXT_LIMIT: Final = 2000  # reason, remediation
TITLE_LIMIT: Final = 200  # title, subject label, ids
FACT_LABEL_LIMIT: Final = 60
FACT_LIMIT: Final = 200
EVIDENCE_LIMIT: Final = 20
KEY_FIELDS: Final = ("subject", "problem")
KEY_FIELD_LIMIT: Final = 256
# Service Bus refuses session ids longer than this; a longer incident key travels as its hash.
SESSION_ID_LIMIT: Final = 128
# An incident keeps this many most recent notices on the incident; older fully delivered ones are dropped.
KEPT_NOTICES: Final = 4


class Scope(StrEnum):
    """What an incident is about: a user (and SKU), a group, a SKU's seats, a subscription, a queue."""

    USER = "user"
    GROUP = "group"
    SKU = "sku"
    SUBSCRIPTION = "subscription"
    QUEUE = "queue"
    SERVICE = "service"


class Cause(StrEnum):
    """Whether the emitter saw the problem (`present`) or saw it gone (`gone`)."""

    PRESENT = "present"
    GONE = "gone"


@dataclass(frozen=True)
class IncidentKey:
    """(scope, subject, problem): one incident per key at a time."""

    scope: Scope
    subject: str
    problem: str

    @property
    def text(self) -> str:
        """The key as one readable string: also the `alerts` message subject and session id."""
        return f"{self.scope.value}:{self.subject}:{self.problem}"

    @property
    def row(self) -> str:
        """A storage row key free of the characters Table Storage refuses (`/ \\ # ?`)."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class Fact:
    """One line of evidence shown to the admin, e.g. ("Error", "CountViolation")."""

    label: str
    value: str


@dataclass(frozen=True)
class AlertSignal:
    """What an emitter observed: the `alerts` message payload.

    `title` says what happened, `subject_label` to whom, `reason` why, `remediation` exactly what to do.
    `measure` is a number a threshold is applied to (free seats): with it, the incident manager decides the
    cause itself, with hysteresis. `user_id`, `user_principal_name`, `group_id`, `sku_id` drive exclusions.
    """

    key: IncidentKey
    cause: Cause
    severity: Severity
    title: str
    reason: str
    remediation: str
    subject_label: str
    observed_at: datetime
    evidence: tuple[Fact, ...] = ()
    user_id: str | None = None
    user_principal_name: str | None = None
    group_id: str | None = None
    sku_id: str | None = None
    measure: float | None = None


class Status(StrEnum):
    """An incident is open until its cause is seen gone."""

    OPEN = "open"
    CLOSED = "closed"


class NoticeKind(StrEnum):
    """The two things an admin is told about an incident occurrence."""

    OPENED = "opened"
    RESOLVED = "resolved"


class DeliveryState(StrEnum):
    """Where one notice stands on one route. `sending` is a claim with a lease, so concurrent deliveries
    of the same alert never send twice, and a crashed sender's claim expires."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    """One notice on one route (by the route's name in the policy)."""

    route: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    claim: str | None = None
    claimed_until: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Notice:
    """One notification of one occurrence, with its deliveries."""

    kind: NoticeKind
    occurrence: int
    created_at: datetime
    deliveries: tuple[Delivery, ...]

    @property
    def id(self) -> str:
        """Stable per (occurrence, kind): lets a receiver drop a repeat after an unrecorded success."""
        return f"{self.occurrence}-{self.kind.value}"

    @property
    def settled(self) -> bool:
        """True when no delivery is left to try."""
        return all(d.state in (DeliveryState.SENT, DeliveryState.FAILED) for d in self.deliveries)


@dataclass(frozen=True)
class Incident:
    """The stored incident: the latest observation, its lifecycle, and its outbox of notices."""

    key: IncidentKey
    status: Status
    occurrence: int
    severity: Severity
    title: str
    reason: str
    remediation: str
    subject_label: str
    evidence: tuple[Fact, ...]
    opened_at: datetime
    last_observed_at: datetime
    closed_at: datetime | None = None
    measure: float | None = None
    user_id: str | None = None
    user_principal_name: str | None = None
    group_id: str | None = None
    sku_id: str | None = None
    notices: tuple[Notice, ...] = ()
    closed_by: str | None = None
    close_note: str | None = None

    def notice(self, notice_id: str) -> Notice | None:
        """The notice with this id, if still kept."""
        return next((n for n in self.notices if n.id == notice_id), None)


class Decision(StrEnum):
    """What one signal did to its incident."""

    OPENED = "opened"
    REOPENED = "reopened"
    UPDATED = "updated"
    RESOLVED = "resolved"
    NOT_OPEN = "not_open"
    EXCLUDED = "excluded"
    STALE = "stale"


@dataclass(frozen=True)
class Transition:
    """The incident after one signal (None when nothing is stored), and what happened."""

    incident: Incident | None
    decision: Decision
    notice: Notice | None = None

    @property
    def changed(self) -> bool:
        """True when the stored incident must be written."""
        return self.decision in (Decision.OPENED, Decision.REOPENED, Decision.UPDATED, Decision.RESOLVED)


@dataclass(frozen=True)
class Threshold:
    """Hysteresis: the cause is present below `alert_below` and gone only at `clear_at` or above."""

    alert_below: float
    clear_at: float

    def cause(self, value: float, *, is_open: bool) -> Cause:
        """A value between the two bounds keeps whatever state the incident is in: no flapping."""
        if is_open:
            return Cause.GONE if value >= self.clear_at else Cause.PRESENT
        return Cause.PRESENT if value < self.alert_below else Cause.GONE


def thresholds(alerts: Alerts) -> Mapping[str, Threshold]:
    """The thresholds of the policy, by problem."""
    headroom = alerts.seat_headroom
    clear_at = max(headroom.clear_at, headroom.alert_below)
    return {SEAT_HEADROOM_PROBLEM: Threshold(headroom.alert_below, clear_at)}


def _norm(value: str | None) -> str | None:
    return value.strip().lower() if value is not None else None


def is_excluded(signal: AlertSignal, exclusions: AlertExclusions) -> bool:
    """True when the signal's SKU, group or user is excluded (ids and UPNs compare case-insensitively)."""
    skus = {_norm(s) for s in exclusions.sku_ids}
    groups = {_norm(g) for g in exclusions.group_ids}
    users = {_norm(u) for u in exclusions.users}
    return (
        (signal.sku_id is not None and _norm(signal.sku_id) in skus)
        or (signal.group_id is not None and _norm(signal.group_id) in groups)
        or any(u is not None and _norm(u) in users for u in (signal.user_id, signal.user_principal_name))
    )


def routes_for(severity: Severity, routes: Sequence[AlertRoute]) -> tuple[str, ...]:
    """Names of the routes that take an alert of this severity, in policy order."""
    return tuple(r.name for r in routes if r.accepts(severity))


def _new_notice(kind: NoticeKind, occurrence: int, now: datetime, route_names: Sequence[str]) -> Notice:
    return Notice(kind, occurrence, now, tuple(Delivery(name) for name in route_names))


def _with_notice(notices: tuple[Notice, ...], notice: Notice) -> tuple[Notice, ...]:
    kept = (*notices, notice)
    if len(kept) <= KEPT_NOTICES:
        return kept
    # Drop the oldest settled notices first; an unsettled one is never dropped.
    overflow = len(kept) - KEPT_NOTICES
    result: list[Notice] = []
    for n in kept:
        if overflow and n.settled and n is not notice:
            overflow -= 1
            continue
        result.append(n)
    return tuple(result)


def _observed(incident: Incident, signal: AlertSignal) -> Incident:
    return replace(
        incident,
        severity=signal.severity,
        title=signal.title,
        reason=signal.reason,
        remediation=signal.remediation,
        subject_label=signal.subject_label,
        evidence=signal.evidence,
        last_observed_at=signal.observed_at,
        measure=signal.measure,
        user_id=signal.user_id,
        user_principal_name=signal.user_principal_name,
        group_id=signal.group_id,
        sku_id=signal.sku_id,
    )


def effective_cause(signal: AlertSignal, stored: Incident | None, alerts: Alerts) -> Cause:
    """The signal's cause, or, for a measured problem with a threshold, the cause the threshold gives."""
    threshold = thresholds(alerts).get(signal.key.problem)
    if threshold is None or signal.measure is None:
        return signal.cause
    return threshold.cause(signal.measure, is_open=stored is not None and stored.status is Status.OPEN)


def transition(stored: Incident | None, signal: AlertSignal, alerts: Alerts, now: datetime) -> Transition:
    """Apply one signal to the stored incident: open, update silently, resolve, reopen, or ignore.

    Signals observed before the last one applied are stale (out-of-order delivery) and change nothing.
    Excluded subjects never open an incident; an already open one still resolves when its cause goes.
    """
    if stored is not None and signal.observed_at < stored.last_observed_at:
        return Transition(stored, Decision.STALE)
    cause = effective_cause(signal, stored, alerts)
    open_now = stored if stored is not None and stored.status is Status.OPEN else None
    if cause is Cause.PRESENT:
        if open_now is not None:
            return Transition(_observed(open_now, signal), Decision.UPDATED)
        if is_excluded(signal, alerts.exclusions):
            return Transition(stored, Decision.EXCLUDED)
        occurrence = 1 if stored is None else stored.occurrence + 1
        notice = _new_notice(NoticeKind.OPENED, occurrence, now, routes_for(signal.severity, alerts.routes))
        base = Incident(
            key=signal.key,
            status=Status.OPEN,
            occurrence=occurrence,
            severity=signal.severity,
            title=signal.title,
            reason=signal.reason,
            remediation=signal.remediation,
            subject_label=signal.subject_label,
            evidence=signal.evidence,
            opened_at=now,
            last_observed_at=signal.observed_at,
            notices=() if stored is None else stored.notices,
        )
        opened = replace(_observed(base, signal), notices=_with_notice(base.notices, notice))
        return Transition(opened, Decision.OPENED if stored is None else Decision.REOPENED, notice)
    if open_now is None:
        return Transition(stored, Decision.NOT_OPEN)
    # Whoever was told it opened is told it is resolved, even if the routes changed since.
    opened_notice = next(
        (n for n in open_now.notices if n.kind is NoticeKind.OPENED and n.occurrence == open_now.occurrence),
        None,
    )
    names = (
        tuple(d.route for d in opened_notice.deliveries)
        if opened_notice is not None
        else routes_for(open_now.severity, alerts.routes)
    )
    notice = _new_notice(NoticeKind.RESOLVED, open_now.occurrence, now, names)
    closed = replace(
        open_now,
        status=Status.CLOSED,
        closed_at=now,
        last_observed_at=signal.observed_at,
        measure=signal.measure if signal.measure is not None else open_now.measure,
        notices=_with_notice(open_now.notices, notice),
    )
    return Transition(closed, Decision.RESOLVED, notice)


def close_by_hand(incident: Incident, *, note: str, by: str, now: datetime) -> Incident | None:
    """An admin closes an open incident (e.g. its user or group is no longer watched, so no sweep will
    see it gone); None when it is not open. No channel is told; seen again, it reopens as a new occurrence
    and is told again."""
    if incident.status is not Status.OPEN:
        return None
    return replace(incident, status=Status.CLOSED, closed_at=now, closed_by=by, close_note=note)


# --- deliveries: claim, then record the outcome --------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """Deliveries this worker now owns (under `claim`), and whether another worker holds a live claim."""

    incident: Incident
    owned: tuple[tuple[Notice, Delivery], ...]
    busy_elsewhere: bool


def claim_deliveries(incident: Incident, claim: str, now: datetime, lease: timedelta) -> Claimed:
    """Claim every pending delivery, and every `sending` one whose lease ran out (its sender died)."""
    owned: list[tuple[Notice, Delivery]] = []
    busy = False
    notices: list[Notice] = []
    for notice in incident.notices:
        deliveries: list[Delivery] = []
        for d in notice.deliveries:
            expired = d.state is DeliveryState.SENDING and (d.claimed_until is None or d.claimed_until <= now)
            if d.state is DeliveryState.PENDING or expired:
                mine = replace(d, state=DeliveryState.SENDING, claim=claim, claimed_until=now + lease)
                owned.append((notice, mine))
                deliveries.append(mine)
                continue
            if d.state is DeliveryState.SENDING and d.claim != claim:
                busy = True
            deliveries.append(d)
        notices.append(replace(notice, deliveries=tuple(deliveries)))
    return Claimed(replace(incident, notices=tuple(notices)), tuple(owned), busy)


class Outcome(StrEnum):
    """How one send went: done, worth retrying, or never going to work."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


def record_delivery(
    incident: Incident,
    *,
    notice_id: str,
    route: str,
    claim: str,
    outcome: Outcome,
    now: datetime,
    error: str | None = None,
) -> Incident:
    """Record one send under our claim; a delivery someone else has since claimed is left alone."""
    notices: list[Notice] = []
    for notice in incident.notices:
        if notice.id != notice_id:
            notices.append(notice)
            continue
        deliveries: list[Delivery] = []
        for d in notice.deliveries:
            if d.route == route and d.claim == claim and d.state is DeliveryState.SENDING:
                state = {
                    Outcome.SENT: DeliveryState.SENT,
                    Outcome.RETRY: DeliveryState.PENDING,
                    Outcome.FAILED: DeliveryState.FAILED,
                }[outcome]
                deliveries.append(
                    replace(
                        d,
                        state=state,
                        attempts=d.attempts + 1,
                        claim=None,
                        claimed_until=None,
                        last_error=error,
                        sent_at=now if outcome is Outcome.SENT else d.sent_at,
                    )
                )
                continue
            deliveries.append(d)
        notices.append(replace(notice, deliveries=tuple(deliveries)))
    return replace(incident, notices=tuple(notices))


# --- daily digest ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """What is open at `generated_at`, most severe and oldest first."""

    generated_at: datetime
    incidents: tuple[Incident, ...]


def digest_due(now: datetime, at: time, last_sent_on: date | None) -> bool:
    """True once per UTC day, at or after the configured business time of day."""
    today = now.date()
    return now.time() >= at and (last_sent_on is None or last_sent_on < today)


def build_digest(incidents: Sequence[Incident], now: datetime) -> Digest:
    """The digest of the open incidents among these."""
    open_ones = [i for i in incidents if i.status is Status.OPEN]
    open_ones.sort(key=lambda i: (-i.severity.rank, i.opened_at, i.key.text))
    return Digest(now, tuple(open_ones))


# --- the `alerts` message payload -----------------------------------------------------------------------


def alert_payload(signal: AlertSignal) -> dict[str, Any]:
    """The signal as the JSON-compatible payload of an `alerts` message."""
    payload: dict[str, Any] = {
        "scope": signal.key.scope.value,
        "subject": signal.key.subject,
        "problem": signal.key.problem,
        "cause": signal.cause.value,
        "severity": signal.severity.value,
        "title": signal.title,
        "reason": signal.reason,
        "remediation": signal.remediation,
        "subject_label": signal.subject_label,
        "observed_at": signal.observed_at.isoformat(),
        "evidence": [[f.label, f.value] for f in signal.evidence],
    }
    for name in ("user_id", "user_principal_name", "group_id", "sku_id", "measure"):
        value = getattr(signal, name)
        if value is not None:
            payload[name] = value
    return payload


_TEXT: Final = {"type": "string", "minLength": 1}
_OPTIONAL_ID: Final = {"type": ["string", "null"]}
ALERT_SCHEMA: Final[Mapping[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": [
        "scope",
        "subject",
        "problem",
        "cause",
        "severity",
        "title",
        "reason",
        "remediation",
        "subject_label",
        "observed_at",
    ],
    "properties": {
        "scope": {"enum": [s.value for s in Scope]},
        "subject": {"type": "string", "minLength": 1, "maxLength": 256},
        "problem": {"type": "string", "minLength": 1, "maxLength": 256},
        "cause": {"enum": [c.value for c in Cause]},
        "severity": {"enum": [s.value for s in Severity]},
        "title": _TEXT,
        "reason": _TEXT,
        "remediation": _TEXT,
        "subject_label": _TEXT,
        "observed_at": {"type": "string"},
        "evidence": {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
                },
                {"type": "object", "additionalProperties": {"type": "string"}},
            ]
        },
        "user_id": _OPTIONAL_ID,
        "user_principal_name": _OPTIONAL_ID,
        "group_id": _OPTIONAL_ID,
        "sku_id": _OPTIONAL_ID,
        "measure": {"type": ["number", "null"]},
    },
}
ALERT_MESSAGE: Final = register_kind(
    MessageKind(
        name=ALERT_KIND,
        queue=ALERTS,
        schema=ALERT_SCHEMA,
        description="Something an admin may need to know: opens, updates or resolves the incident it keys.",
    )
)


def alert_message(signal: AlertSignal, *, correlation_id: str, version: str) -> Message:
    """An `alerts` message for this signal; `version` is the emitter's causal version (a check's attempt,
    a sweep's tick), so a repeat of the same observation collapses and a later one does not."""
    return Message(
        queue=ALERTS,
        kind=ALERT_KIND,
        subject=signal.key.text,
        version=f"{signal.cause.value}:{version}",
        correlation_id=correlation_id,
        payload=alert_payload(signal),
        session_id=signal.key.text if len(signal.key.text) <= SESSION_ID_LIMIT else signal.key.row,
    )


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(payload: Mapping[str, Any], name: str, errors: list[str], *, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        errors.append(f"{name}: a non-empty string is required")
        return None
    if name in KEY_FIELDS:
        # Part of the incident's identity: cutting it could merge two incidents, so refuse instead.
        if len(value) > KEY_FIELD_LIMIT:
            errors.append(f"{name}: at most {KEY_FIELD_LIMIT} characters")
            return None
        return value
    return clip(value, TEXT_LIMIT if name in ("reason", "remediation") else TITLE_LIMIT)


def _enum(kind: type[_E], payload: Mapping[str, Any], name: str, errors: list[str]) -> _E | None:
    value = payload.get(name)
    try:
        return kind(str(value))
    except ValueError:
        errors.append(f"{name}: one of {', '.join(m.value for m in kind)} is required")
        return None


def _instant(payload: Mapping[str, Any], name: str, errors: list[str]) -> datetime | None:
    value = payload.get(name)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    errors.append(f"{name}: an ISO 8601 time with a UTC offset is required")
    return None


def _evidence(payload: Mapping[str, Any], errors: list[str]) -> tuple[Fact, ...]:
    value = payload.get("evidence", [])
    if isinstance(value, Mapping):
        value = list(value.items())
    facts: list[Fact] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
                facts.append(Fact(clip(item[0], FACT_LABEL_LIMIT), clip(item[1], FACT_LIMIT)))
            else:
                errors.append("evidence: each item must be a [label, value] pair of strings")
                break
    else:
        errors.append("evidence: a list of [label, value] pairs is required")
    if len(facts) > EVIDENCE_LIMIT:
        dropped = len(facts) - EVIDENCE_LIMIT + 1
        facts = [*facts[: EVIDENCE_LIMIT - 1], Fact("…", f"{dropped} more facts left out")]
    return tuple(facts)


def parse_alert(payload: Mapping[str, Any]) -> AlertSignal:
    """The `alerts` message payload as a signal; InvalidInput names every field problem at once."""
    errors: list[str] = []
    scope = _enum(Scope, payload, "scope", errors)
    cause = _enum(Cause, payload, "cause", errors)
    severity = _enum(Severity, payload, "severity", errors)
    texts = {
        n: _text(payload, n, errors)
        for n in ("subject", "problem", "title", "reason", "remediation", "subject_label")
    }
    optional = {
        n: _text(payload, n, errors, required=False)
        for n in ("user_id", "user_principal_name", "group_id", "sku_id")
    }
    observed_at = _instant(payload, "observed_at", errors)
    evidence = _evidence(payload, errors)
    measure = payload.get("measure")
    if measure is not None and (isinstance(measure, bool) or not isinstance(measure, int | float)):
        errors.append("measure: a number is required")
    subject, problem = texts["subject"], texts["problem"]
    title, reason = texts["title"], texts["reason"]
    remediation, label = texts["remediation"], texts["subject_label"]
    if (
        errors
        or scope is None
        or cause is None
        or severity is None
        or observed_at is None
        or subject is None
        or problem is None
        or title is None
        or reason is None
        or remediation is None
        or label is None
    ):
        raise InvalidInput("invalid alert payload", errors)
    return AlertSignal(
        key=IncidentKey(scope, subject, problem),
        cause=cause,
        severity=severity,
        title=title,
        reason=reason,
        remediation=remediation,
        subject_label=label,
        observed_at=observed_at,
        evidence=evidence,
        user_id=optional["user_id"],
        user_principal_name=optional["user_principal_name"],
        group_id=optional["group_id"],
        sku_id=optional["sku_id"],
        measure=float(measure) if measure is not None else None,
    )


# --- storage form ---------------------------------------------------------------------------------------
# Nested parts are stored as JSON strings, so every state adapter (Table Storage included) holds them as is.


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _delivery_data(d: Delivery) -> dict[str, Any]:
    return {
        "route": d.route,
        "state": d.state.value,
        "attempts": d.attempts,
        "claim": d.claim,
        "claimed_until": _iso(d.claimed_until),
        "last_error": d.last_error,
        "sent_at": _iso(d.sent_at),
    }


def _notice_data(n: Notice) -> dict[str, Any]:
    return {
        "kind": n.kind.value,
        "occurrence": n.occurrence,
        "created_at": n.created_at.isoformat(),
        "deliveries": [_delivery_data(d) for d in n.deliveries],
    }


def incident_to_data(incident: Incident) -> dict[str, Any]:
    """The incident as a flat, JSON-compatible entity."""
    return {
        "scope": incident.key.scope.value,
        "subject": incident.key.subject,
        "problem": incident.key.problem,
        "status": incident.status.value,
        "occurrence": incident.occurrence,
        "severity": incident.severity.value,
        "title": incident.title,
        "reason": incident.reason,
        "remediation": incident.remediation,
        "subject_label": incident.subject_label,
        "evidence_json": json.dumps([[f.label, f.value] for f in incident.evidence]),
        "opened_at": incident.opened_at.isoformat(),
        "last_observed_at": incident.last_observed_at.isoformat(),
        "closed_at": _iso(incident.closed_at),
        "measure": incident.measure,
        "user_id": incident.user_id,
        "user_principal_name": incident.user_principal_name,
        "group_id": incident.group_id,
        "sku_id": incident.sku_id,
        "notices_json": json.dumps([_notice_data(n) for n in incident.notices]),
        "closed_by": incident.closed_by,
        "close_note": incident.close_note,
    }


def incident_from_data(data: Mapping[str, Any]) -> Incident:
    """Read back what `incident_to_data` wrote."""
    notices = tuple(
        Notice(
            kind=NoticeKind(n["kind"]),
            occurrence=int(n["occurrence"]),
            created_at=datetime.fromisoformat(n["created_at"]),
            deliveries=tuple(
                Delivery(
                    route=d["route"],
                    state=DeliveryState(d["state"]),
                    attempts=int(d["attempts"]),
                    claim=d["claim"],
                    claimed_until=_when(d["claimed_until"]),
                    last_error=d["last_error"],
                    sent_at=_when(d["sent_at"]),
                )
                for d in n["deliveries"]
            ),
        )
        for n in json.loads(data["notices_json"])
    )
    measure = data.get("measure")
    return Incident(
        key=IncidentKey(Scope(data["scope"]), data["subject"], data["problem"]),
        status=Status(data["status"]),
        occurrence=int(data["occurrence"]),
        severity=Severity(data["severity"]),
        title=data["title"],
        reason=data["reason"],
        remediation=data["remediation"],
        subject_label=data["subject_label"],
        evidence=tuple(Fact(label, value) for label, value in json.loads(data["evidence_json"])),
        opened_at=datetime.fromisoformat(data["opened_at"]),
        last_observed_at=datetime.fromisoformat(data["last_observed_at"]),
        closed_at=_when(data.get("closed_at")),
        measure=float(measure) if measure is not None else None,
        user_id=data.get("user_id"),
        user_principal_name=data.get("user_principal_name"),
        group_id=data.get("group_id"),
        sku_id=data.get("sku_id"),
        notices=notices,
        closed_by=data.get("closed_by"),
        close_note=data.get("close_note"),
    )
