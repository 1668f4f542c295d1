"""HR intake (HTTP): CloudEvents from an HR system, signed per Standard Webhooks on top of the function key,
checked, deduplicated by (source, id) and enqueued on `hr-events` with the employeeId as session.

Answers: 202 accepted or duplicate, 409 same id with another body, 400 with field errors, 401 bad or stale
signature, 413 too large, 415 other content types, 503 when nothing could be persisted. A batch answers
one outcome per event; invalid events enqueue nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from seatkeeper.core.errors import ConcurrencyConflict, InvalidInput, TransientError
from seatkeeper.core.hr_events import (
    BATCH_CONTENT_TYPE,
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    SINGLE_CONTENT_TYPE,
    HrEvent,
    HrWork,
    hr_message,
    parse_event,
)
from seatkeeper.core.ports import Clock, MessageSender, StateStore
from seatkeeper.core.sensitive import Secret

INTAKE_TABLE: Final = "hrintake"
JSON: Final = "application/json"
_log = structlog.get_logger("seatkeeper.hr")


@cache
def event_schema() -> Mapping[str, Any]:
    """The shipped JSON Schema of one HR event (`seatkeeper/schemas/hr-event.schema.json`)."""
    text = resources.files("seatkeeper").joinpath("schemas", "hr-event.schema.json").read_text("utf-8")
    schema: Mapping[str, Any] = json.loads(text)
    return schema


class Outcome(StrEnum):
    """What happened to one event of a request."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    INVALID = "invalid"

    @property
    def status(self) -> int:
        """The HTTP status this outcome answers alone."""
        return {"accepted": 202, "duplicate": 202, "conflict": 409, "invalid": 400}[self.value]


@dataclass(frozen=True)
class IntakeRequest:
    """What intake needs of an HTTP request: headers (any case), content type and the raw body."""

    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class IntakeResponse:
    """Status and JSON body to answer with."""

    status: int
    body: str


@dataclass(frozen=True)
class IntakeDeps:
    """Ports, the signing secret (None: refuse every call) and the zone of date-only values."""

    sender: MessageSender
    state: StateStore
    clock: Clock
    signing_secret: Secret | None
    zone: ZoneInfo


@dataclass(frozen=True)
class _Result:
    index: int
    outcome: Outcome
    event_id: str | None = None
    source: str | None = None
    errors: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"index": self.index, "status": self.outcome.status, "outcome": self.outcome}
        if self.event_id is not None:
            doc["id"] = self.event_id
            doc["source"] = self.source
        if self.errors:
            doc["errors"] = list(self.errors)
        return doc


def _answer(code: int, document: Mapping[str, Any]) -> IntakeResponse:
    return IntakeResponse(code, json.dumps(document, separators=(",", ":")))


def _refuse(status: int, reason: str) -> IntakeResponse:
    _log.warning("hr.intake_refused", status=status, reason=reason)
    return _answer(status, {"error": reason})


def _signature_problem(request: IntakeRequest, secret: Secret | None) -> str | None:
    """None when the Standard Webhooks signature is valid and fresh (5 minutes), else why not."""
    if secret is None or not secret:
        return "hr_signing_secret_not_configured"
    try:
        hook = Webhook(secret.reveal())
    except (ValueError, RuntimeError, EmptyWebhookSecretError) as error:
        _log.error("hr.signing_secret_invalid", error=type(error).__name__)
        return "hr_signing_secret_invalid"
    headers = {
        name: value
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        if (value := request.header(name)) is not None
    }
    try:
        hook.verify(request.body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError):
        return "bad_or_stale_signature"
    return None


def _dedupe_key(event: HrEvent) -> tuple[str, str]:
    """Table keys free of the characters Table Storage refuses: hashes of source and id."""
    source = hashlib.sha256(event.source.encode("utf-8")).hexdigest()[:32]
    return source, hashlib.sha256(event.id.encode("utf-8")).hexdigest()[:40]


async def receive(  # noqa: PLR0911 - one return per documented answer reads best
    request: IntakeRequest, deps: IntakeDeps, *, correlation_id: str
) -> IntakeResponse:
    """Handle one POST of HR events."""
    media = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media not in (SINGLE_CONTENT_TYPE, BATCH_CONTENT_TYPE):
        return _refuse(415, f"content type must be {SINGLE_CONTENT_TYPE} or {BATCH_CONTENT_TYPE}")
    if len(request.body) > MAX_BODY_BYTES:
        return _refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    problem = _signature_problem(request, deps.signing_secret)
    if problem is not None:
        return _refuse(401, problem)
    try:
        raw = json.loads(request.body)
    # ValueError: not JSON, not UTF-8 or an integer past 4,300 digits; RecursionError: nested too deep.
    except (ValueError, RecursionError):
        return _refuse(400, "the body is not JSON")
    batch = media == BATCH_CONTENT_TYPE
    if batch:
        if not isinstance(raw, list) or not raw:
            return _refuse(400, "a batch is a JSON array of one or more events")
        if len(raw) > MAX_BATCH_EVENTS:
            return _refuse(413, f"a batch holds at most {MAX_BATCH_EVENTS} events")
        items: Sequence[object] = raw
    else:
        items = [raw]
    results = await _intake(items, deps, correlation_id=correlation_id, batch=batch)
    if results is None:
        return _refuse(503, "could not persist the events; retry later")
    tally = {o.value: sum(1 for r in results if r.outcome is o) for o in Outcome}
    _log.info("hr.events_received", events=len(results), **tally)
    if not batch:
        [only] = results
        doc = only.document()
        doc.pop("index")
        return _answer(only.outcome.status, doc)
    statuses = {r.outcome.status for r in results}
    status = 400 if 400 in statuses else 409 if 409 in statuses else 202
    return _answer(status, {"results": [r.document() for r in results]})


async def _intake(
    items: Sequence[object], deps: IntakeDeps, *, correlation_id: str, batch: bool
) -> list[_Result] | None:
    """One result per item; the new events enqueued and then recorded. None when the send failed."""
    schema = event_schema()
    results: list[_Result] = []
    valid: list[tuple[int, HrEvent]] = []
    for index, item in enumerate(items):
        try:
            event = parse_event(item, schema=schema, zone=deps.zone, where=f"[{index}]" if batch else "")
        except InvalidInput as error:
            results.append(_Result(index, Outcome.INVALID, errors=error.errors))
            continue
        valid.append((index, event))
    outcomes = await enqueue([HrWork(event) for _, event in valid], deps, correlation_id=correlation_id)
    if outcomes is None:
        return None
    results += [
        _Result(index, outcome, event.id, event.source)
        for (index, event), outcome in zip(valid, outcomes, strict=True)
    ]
    return sorted(results, key=lambda r: r.index)


async def enqueue(works: Sequence[HrWork], deps: IntakeDeps, *, correlation_id: str) -> list[Outcome] | None:
    """Deduplicate by (source, id), send the new ones on `hr-events`, then record them; one outcome each.

    None when the send failed (nothing recorded, so a retry is not mistaken for a duplicate).
    """
    outcomes: list[Outcome] = []
    fresh: list[HrWork] = []
    seen: dict[tuple[str, str], str] = {}
    for work in works:
        event = work.event
        outcome = await _known(event, deps, seen)
        outcomes.append(outcome)
        if outcome is Outcome.ACCEPTED:
            fresh.append(work)
        seen.setdefault(event.dedupe_key, event.body_hash)
    if not fresh:
        return outcomes
    try:
        await deps.sender.send([hr_message(work, correlation_id=correlation_id) for work in fresh])
    except TransientError as error:
        _log.error("hr.events_not_persisted", events=len(fresh), error=type(error).__name__)
        return None
    now = deps.clock.now()
    for work in fresh:
        partition, row = _dedupe_key(work.event)
        data = {"body_hash": work.event.body_hash, "received_at": now.isoformat()}
        try:
            await deps.state.insert(INTAKE_TABLE, partition, row, data)
        except ConcurrencyConflict:
            # A concurrent delivery recorded it first; the message id is the same, so nothing doubles.
            _log.info("hr.event_recorded_concurrently", event_id=work.event.id)
    return outcomes


async def _known(event: HrEvent, deps: IntakeDeps, seen: Mapping[tuple[str, str], str]) -> Outcome:
    """ACCEPTED for an event never seen, DUPLICATE for the same body, CONFLICT for another body."""
    earlier = seen.get(event.dedupe_key)
    if earlier is None:
        entity = await deps.state.get(INTAKE_TABLE, *_dedupe_key(event))
        earlier = str(entity.data.get("body_hash")) if entity is not None else None
    if earlier is None:
        return Outcome.ACCEPTED
    if earlier == event.body_hash:
        return Outcome.DUPLICATE
    _log.warning("hr.event_conflict", event_id=event.id)
    return Outcome.CONFLICT
