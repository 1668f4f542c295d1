"""The `alerts` queue consumer: one alert signal → its incident (ETag-guarded) → notices to its routes.

Delivery is claim, send, record: a channel that failed transiently makes the message redeliver, a channel
that already succeeded is never sent to again, and concurrent deliveries of one alert notify once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import structlog

from seatkeeper.core.alert_ports import NoticeChannel
from seatkeeper.core.errors import (
    ConcurrencyConflict,
    InvalidInput,
    PermanentError,
    Throttled,
    TransientError,
    Unavailable,
)
from seatkeeper.core.incidents import (
    ALERT_KIND,
    INCIDENTS_TABLE,
    Decision,
    Incident,
    IncidentKey,
    Outcome,
    build_digest,
    claim_deliveries,
    close_by_hand,
    digest_due,
    incident_from_data,
    incident_to_data,
    parse_alert,
    record_delivery,
    routes_for,
    transition,
)
from seatkeeper.core.messages import ALERTS, Message
from seatkeeper.core.policy import Alerts
from seatkeeper.core.ports import Clock, Entity, StateStore

log = structlog.get_logger(__name__)

# Optimistic-concurrency rounds before giving up with ConcurrencyConflict (the message is then retried).
WRITE_ATTEMPTS: Final = 8
# How long a claimed delivery is ours before another worker may take it over (a crashed sender).
DEFAULT_LEASE: Final = timedelta(minutes=2)
DIGEST_PARTITION: Final = "_digest"
# Waits (seconds) before delivering again, in the handler, when a channel asked for a retry or another worker
# holds the delivery: the queue redelivers a failed message at once, so without them ten deliveries are spent
# in milliseconds while a crashed worker's claim runs out (DEFAULT_LEASE), and the alert is dead-lettered.
# Ten deliveries of these waits (15.5 s each) outlast the lease. A channel's Retry-After lengthens a wait
# up to MAX_WAIT; past the last wait the message goes back to the queue.
RETRY_WAITS: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
MAX_WAIT: Final = 8.0


@dataclass(frozen=True)
class AlertResult:
    """What handling one alert did: the decision, and each delivery by `notice id/route`."""

    key: IncidentKey
    decision: Decision
    sent: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    retrying: tuple[str, ...] = ()


def parse_body(body: bytes) -> Mapping[str, Any]:
    """The payload of an `alerts` envelope; InvalidInput when it is not one."""
    message = Message.from_body(ALERTS, body)
    if message.kind != ALERT_KIND:
        raise InvalidInput("not an alert message", [f"kind: expected {ALERT_KIND!r}"])
    return message.payload


async def _update(
    store: StateStore,
    key: IncidentKey,
    change: Callable[[Incident | None], Incident | None],
) -> Incident | None:
    """Read, change, write back under the ETag; re-read and re-apply on a conflict."""
    for _ in range(WRITE_ATTEMPTS):
        entity = await store.get(INCIDENTS_TABLE, key.scope.value, key.row)
        stored = incident_from_data(entity.data) if entity is not None else None
        changed = change(stored)
        if changed is None or changed == stored:
            return stored
        data = incident_to_data(changed)
        try:
            if entity is None:
                await store.insert(INCIDENTS_TABLE, key.scope.value, key.row, data)
            else:
                await store.replace(entity, data)
        except ConcurrencyConflict:
            continue
        return changed
    raise ConcurrencyConflict(f"incident {key.row} kept changing under us")


async def close_incident(
    store: StateStore, key: IncidentKey, *, note: str, by: str, now: datetime
) -> Incident | None:
    """Close an open incident by hand (who and why are kept on it); None when it is not open."""
    closed: list[Incident] = []

    def change(stored: Incident | None) -> Incident | None:
        done = close_by_hand(stored, note=note, by=by, now=now) if stored is not None else None
        closed[:] = [done] if done is not None else []
        return done if done is not None else stored

    await _update(store, key, change)
    if closed:
        log.info("alerts.closed_by_hand", incident=key.row, scope=key.scope.value, problem=key.problem)
    return closed[0] if closed else None


async def _send(
    channel: NoticeChannel | None, incident: Incident, notice_id: str
) -> tuple[Outcome, str | None, float | None]:
    notice = incident.notice(notice_id)
    if channel is None or notice is None:
        return Outcome.FAILED, "route has no configured channel", None
    try:
        await channel.send_notice(incident, notice)
    except TransientError as exc:
        return Outcome.RETRY, type(exc).__name__, exc.retry_after
    except PermanentError as exc:
        return Outcome.FAILED, type(exc).__name__, None
    return Outcome.SENT, None, None


async def deliver(
    key: IncidentKey,
    *,
    store: StateStore,
    channels: Mapping[str, NoticeChannel],
    clock: Clock,
    claim: str,
    lease: timedelta = DEFAULT_LEASE,
) -> tuple[dict[str, list[str]], bool, float | None]:
    """Claim the incident's undelivered notices, send them, record each outcome.

    Returns the deliveries by outcome, whether another worker still holds a live claim, and the longest
    `retry_after` a channel asked for.
    """
    owned: list[tuple[str, str]] = []
    busy = False

    def take(stored: Incident | None) -> Incident | None:
        nonlocal owned, busy
        owned, busy = [], False
        if stored is None:
            return None
        claimed = claim_deliveries(stored, claim, clock.now(), lease)
        owned = [(n.id, d.route) for n, d in claimed.owned]
        busy = claimed.busy_elsewhere
        return claimed.incident

    incident = await _update(store, key, take)
    results: dict[str, list[str]] = {o.value: [] for o in Outcome}
    if incident is None or not owned:
        return results, busy, None
    outcomes: list[tuple[str, str, Outcome, str | None]] = []
    retry_after: float | None = None
    for notice_id, route in owned:
        outcome, error, wait = await _send(channels.get(route), incident, notice_id)
        outcomes.append((notice_id, route, outcome, error))
        results[outcome.value].append(f"{notice_id}/{route}")
        if wait is not None:
            retry_after = max(wait, retry_after or 0.0)
        event = {
            Outcome.SENT: "alerts.notice_sent",
            Outcome.RETRY: "alerts.notice_retry",
            Outcome.FAILED: "alerts.notice_failed",
        }[outcome]
        log.info(event, incident=key.row, problem=key.problem, notice=notice_id, route=route, error=error)

    def record(stored: Incident | None) -> Incident | None:
        if stored is None:
            return None
        now = clock.now()
        for notice_id, route, outcome, error in outcomes:
            stored = record_delivery(
                stored, notice_id=notice_id, route=route, claim=claim, outcome=outcome, now=now, error=error
            )
        return stored

    await _update(store, key, record)
    return results, busy, retry_after


async def handle_alert(
    body: bytes,
    *,
    store: StateStore,
    channels: Mapping[str, NoticeChannel],
    alerts: Alerts,
    clock: Clock,
    claim: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    waits: Sequence[float] = RETRY_WAITS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AlertResult:
    """Apply one `alerts` message to its incident and deliver what is owed.

    `channels` maps policy route names to channels. Raises InvalidInput for a malformed message, and a
    TransientError when a delivery must still be retried after `waits` (so the message is redelivered).
    """
    signal = parse_alert(parse_body(body))
    key = signal.key
    now = clock.now()
    decision = Decision.STALE

    def apply(stored: Incident | None) -> Incident | None:
        nonlocal decision
        step = transition(stored, signal, alerts, now)
        decision = step.decision
        return step.incident if step.changed else stored

    await _update(store, key, apply)
    claim = claim or uuid.uuid4().hex
    results, busy, retry_after = await deliver(
        key, store=store, channels=channels, clock=clock, claim=claim, lease=lease
    )
    for wait in waits:
        if not (busy or results[Outcome.RETRY.value]):
            break
        await sleep(min(max(wait, retry_after or 0.0), MAX_WAIT))
        again, busy, retry_after = await deliver(
            key, store=store, channels=channels, clock=clock, claim=claim, lease=lease
        )
        # Sent and failed add up over the rounds; what is still to retry is the last round's word.
        again[Outcome.SENT.value][:0] = results[Outcome.SENT.value]
        again[Outcome.FAILED.value][:0] = results[Outcome.FAILED.value]
        results = again
    result = AlertResult(
        key=key,
        decision=decision,
        sent=tuple(results[Outcome.SENT.value]),
        failed=tuple(results[Outcome.FAILED.value]),
        retrying=tuple(results[Outcome.RETRY.value]),
    )
    log.info(
        "alerts.handled",
        incident=key.row,
        scope=key.scope.value,
        problem=key.problem,
        decision=decision.value,
        sent=list(result.sent),
        failed=list(result.failed),
        retrying=list(result.retrying),
        busy_elsewhere=busy,
    )
    if result.retrying:
        error: TransientError = (
            Throttled("alert deliveries throttled", retry_after=retry_after)
            if retry_after is not None
            else Unavailable("alert deliveries to retry")
        )
        raise error
    if busy:
        raise Unavailable("another worker is delivering this incident's notices")
    return result


# --- daily digest -----------------------------------------------------------------------------------------


async def _open_incidents(store: StateStore) -> list[Incident]:
    found: list[Incident] = []
    async for entity in store.query(INCIDENTS_TABLE):
        if entity.partition != DIGEST_PARTITION:
            found.append(incident_from_data(entity.data))
    return found


async def send_digest(
    *,
    store: StateStore,
    channels: Mapping[str, NoticeChannel],
    alerts: Alerts,
    clock: Clock,
) -> tuple[str, ...]:
    """Send the daily digest of open incidents once a day at the policy's time; quiet when nothing is open.

    Returns the routes it went to. A route that failed transiently raises after the others were tried; the
    routes that succeeded are recorded and not sent to again that day.
    """
    now = clock.now()
    day_row = now.date().isoformat()
    last = await store.get(INCIDENTS_TABLE, DIGEST_PARTITION, "last")
    last_sent_on = date.fromisoformat(last.data["day"]) if last is not None else None
    if not alerts.daily_digest or not digest_due(now, alerts.digest_time, last_sent_on):
        return ()
    digest = build_digest(await _open_incidents(store), now)
    if not digest.incidents:
        return ()
    top = max((i.severity for i in digest.incidents), key=lambda s: s.rank)
    marker = await store.get(INCIDENTS_TABLE, DIGEST_PARTITION, day_row)
    done: set[str] = set(marker.data.get("routes", [])) if marker is not None else set()
    sent: list[str] = []
    retry = False
    for route in routes_for(top, alerts.routes):
        channel = channels.get(route)
        if route in done or channel is None:
            continue
        try:
            await channel.send_digest(digest)
        except TransientError:
            retry = True
            log.info("alerts.digest_retry", route=route)
            continue
        except PermanentError as exc:
            log.info("alerts.digest_failed", route=route, error=type(exc).__name__)
            continue
        sent.append(route)
        done.add(route)
        marker = await _mark(store, day_row, marker, sorted(done))
    log.info("alerts.digest_sent", routes=sent, open=len(digest.incidents))
    if retry:
        raise Unavailable("digest deliveries to retry")
    await store.upsert(INCIDENTS_TABLE, DIGEST_PARTITION, "last", {"day": day_row})
    return tuple(sent)


async def _mark(store: StateStore, row: str, marker: Entity | None, routes: list[str]) -> Entity:
    """Record the routes today's digest went to (a conflict means a second sender: retry the timer)."""
    data = {"routes": routes}
    if marker is None:
        return await store.insert(INCIDENTS_TABLE, DIGEST_PARTITION, row, data)
    return await store.replace(marker, data)
