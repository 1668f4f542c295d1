"""Heartbeats: the upkeep and reconciliation timers record each successful run in the state store; `health`
reports a timer whose last run is overdue, and the watch timer (run by the local host; in Azure an Azure
Monitor rule does the same) turns an overdue one into a `service` incident, resolved once it runs again.

A timer that never ran counts from when the watcher first looked, so a fresh install is not "overdue".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import structlog

from seatkeeper.core.errors import Unavailable
from seatkeeper.core.incidents import (
    INCIDENTS_TABLE,
    AlertSignal,
    Cause,
    Fact,
    IncidentKey,
    Scope,
    Status,
    alert_message,
)
from seatkeeper.core.policy import Severity
from seatkeeper.core.ports import Clock, MessageSender, StateStore

HEARTBEATS_TABLE: Final = "heartbeats"
RUNS_PARTITION: Final = "run"
WATCH_PARTITION: Final = "watch"
HEARTBEAT_PROBLEM: Final = "service.heartbeat_missed"
UPKEEP: Final = "subscription_upkeep"
RECONCILE: Final = "group_reconciliation"
# Same bound as the Azure Monitor rule (infra, docs/operations.md): no successful run in 2 hours.
OVERDUE_AFTER: Final = timedelta(hours=2)
WATCHED: Final[Mapping[str, timedelta]] = {UPKEEP: OVERDUE_AFTER, RECONCILE: OVERDUE_AFTER}
_REMEDIATION: Final = (
    "Check that the Function App is running and the timer is enabled; look for `localhost.timer_failed` "
    "or the function's failures in the logs (a run that raises records no heartbeat). A lapsed upkeep "
    "lets change-notification subscriptions expire; reconciliation catches up once it runs again."
)
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Heartbeat:
    """One watched timer: when it last succeeded, by when it must run again, and whether it is late."""

    name: str
    last_run: datetime | None
    due_by: datetime
    overdue: bool


async def record_heartbeat(store: StateStore, name: str, clock: Clock) -> datetime:
    """Record that the timer `name` just ran to completion; returns the time recorded (business time)."""
    now = clock.now()
    await store.upsert(HEARTBEATS_TABLE, RUNS_PARTITION, name, {"last_run": now.isoformat()})
    _log.info("heartbeat.recorded", timer=name)
    return now


def judge(
    name: str, last_run: datetime | None, since: datetime, allowed: timedelta, now: datetime
) -> Heartbeat:
    """Overdue once `allowed` has passed since the last run (or, never run, since the watch began)."""
    due_by = (last_run or since) + allowed
    return Heartbeat(name, last_run, due_by, overdue=now > due_by)


async def heartbeats(
    store: StateStore, clock: Clock, watched: Mapping[str, timedelta] = WATCHED, *, remember: bool = False
) -> tuple[Heartbeat, ...]:
    """The state of every watched timer. `remember` stores when watching began (the watch timer does)."""
    now = clock.now()
    found: list[Heartbeat] = []
    for name, allowed in watched.items():
        run = await store.get(HEARTBEATS_TABLE, RUNS_PARTITION, name)
        last = datetime.fromisoformat(str(run.data["last_run"])) if run is not None else None
        watch = await store.get(HEARTBEATS_TABLE, WATCH_PARTITION, name)
        if watch is not None:
            since = datetime.fromisoformat(str(watch.data["since"]))
        else:
            since = now
            if remember:
                await store.upsert(HEARTBEATS_TABLE, WATCH_PARTITION, name, {"since": now.isoformat()})
        found.append(judge(name, last, since, allowed, now))
    return tuple(found)


def missed_signal(beat: Heartbeat, now: datetime) -> AlertSignal:
    """The `service` incident of a timer that did not run in time."""
    last = beat.last_run.isoformat(timespec="minutes") if beat.last_run else "never"
    return AlertSignal(
        key=IncidentKey(Scope.SERVICE, beat.name, HEARTBEAT_PROBLEM),
        cause=Cause.PRESENT,
        severity=Severity.ERROR,
        title=f"Timer {beat.name} has not run",
        reason=f"The {beat.name} timer last completed {last}; it was due by "
        f"{beat.due_by.isoformat(timespec='minutes')}.",
        remediation=_REMEDIATION,
        subject_label=beat.name,
        observed_at=now,
        evidence=(Fact("Last run", last), Fact("Due by", beat.due_by.isoformat(timespec="minutes"))),
    )


def back_signal(beat: Heartbeat, now: datetime) -> AlertSignal:
    """The timer runs again: resolves its heartbeat incident."""
    return AlertSignal(
        key=IncidentKey(Scope.SERVICE, beat.name, HEARTBEAT_PROBLEM),
        cause=Cause.GONE,
        severity=Severity.ERROR,
        title=f"Timer {beat.name} has not run",
        reason=f"The {beat.name} timer runs again.",
        remediation="Nothing to do.",
        subject_label=beat.name,
        observed_at=now,
    )


async def open_incident_keys(store: StateStore, scope: Scope) -> frozenset[IncidentKey]:
    """The keys of the incidents of one scope that are open now (to send "gone" only where it matters)."""
    keys: set[IncidentKey] = set()
    async for entity in store.query(INCIDENTS_TABLE, scope.value):
        data = entity.data
        if data.get("status") == Status.OPEN.value:
            keys.add(IncidentKey(scope, str(data["subject"]), str(data["problem"])))
    return frozenset(keys)


async def watch_heartbeats(
    *,
    store: StateStore,
    sender: MessageSender,
    clock: Clock,
    correlation_id: str,
    watched: Mapping[str, timedelta] = WATCHED,
) -> tuple[Heartbeat, ...]:
    """The watch timer: an alert per overdue timer, a "gone" for each open heartbeat incident now fresh."""
    now = clock.now()
    beats = await heartbeats(store, clock, watched, remember=True)
    open_keys = await open_incident_keys(store, Scope.SERVICE)
    tick = now.isoformat(timespec="minutes")
    messages = []
    for beat in beats:
        if beat.overdue:
            messages.append(
                alert_message(missed_signal(beat, now), correlation_id=correlation_id, version=tick)
            )
        elif IncidentKey(Scope.SERVICE, beat.name, HEARTBEAT_PROBLEM) in open_keys:
            messages.append(
                alert_message(back_signal(beat, now), correlation_id=correlation_id, version=tick)
            )
    if messages:
        await sender.send(messages)
    _log.info("heartbeat.watched", overdue=[b.name for b in beats if b.overdue])
    return beats


@dataclass(frozen=True)
class HeartbeatProbe:
    """A health probe for one watched timer: raises Unavailable when its heartbeat is overdue."""

    store: StateStore
    clock: Clock
    name: str
    allowed: timedelta = OVERDUE_AFTER

    async def check(self) -> None:
        """Pass while the timer ran within its allowance (or watching began less than that ago)."""
        [beat] = await heartbeats(self.store, self.clock, {self.name: self.allowed})
        if beat.overdue:
            raise Unavailable(f"heartbeat of {self.name} missed")


def heartbeat_probes(
    store: StateStore, clock: Clock, watched: Mapping[str, timedelta] = WATCHED
) -> dict[str, HeartbeatProbe]:
    """One health probe per watched timer, named `heartbeat.<timer>` in the health report."""
    return {
        f"heartbeat.{name}": HeartbeatProbe(store, clock, name, allowed) for name, allowed in watched.items()
    }


def overdue_names(beats: Sequence[Heartbeat]) -> tuple[str, ...]:
    """The names of the overdue timers."""
    return tuple(b.name for b in beats if b.overdue)
