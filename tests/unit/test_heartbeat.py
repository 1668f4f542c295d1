"""Heartbeats with recording fakes: a missed run opens one service incident, a run again resolves it,
and the health probe fails while a timer is overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handlers.alerts import handle_alert
from handlers.heartbeat import (
    HEARTBEAT_PROBLEM,
    OVERDUE_AFTER,
    RECONCILE,
    UPKEEP,
    heartbeat_probes,
    heartbeats,
    record_heartbeat,
    watch_heartbeats,
)
from seatkeeper.core.errors import Unavailable
from seatkeeper.core.incidents import Cause, Decision, parse_alert
from seatkeeper.core.policy import Alerts
from tests.unit.sweep_fakes import MemoryStore, MovableClock, RecordingSender

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_fresh_install_is_not_overdue_until_the_allowance_passes() -> None:
    """A timer that never ran counts from when watching began, so a new install is quiet at first."""
    store, clock, sender = MemoryStore(), MovableClock(T0), RecordingSender()
    first = await watch_heartbeats(store=store, sender=sender, clock=clock, correlation_id="c")
    clock.advance(OVERDUE_AFTER + timedelta(minutes=1))
    later = await watch_heartbeats(store=store, sender=sender, clock=clock, correlation_id="c")
    assert [b.overdue for b in first] == [False, False]
    assert {b.name for b in later if b.overdue} == {UPKEEP, RECONCILE}


async def test_a_missed_heartbeat_opens_one_incident_and_a_run_resolves_it() -> None:
    """Overdue → one present alert per tick (incidents dedupe); running again → one gone alert."""
    store, clock, sender = MemoryStore(), MovableClock(T0), RecordingSender()
    await record_heartbeat(store, UPKEEP, clock)
    await record_heartbeat(store, RECONCILE, clock)
    clock.advance(timedelta(hours=1))
    await record_heartbeat(store, UPKEEP, clock)
    clock.advance(timedelta(hours=1, minutes=30))
    await watch_heartbeats(store=store, sender=sender, clock=clock, correlation_id="c")
    overdue = [parse_alert(m.payload) for m in sender.sent]
    decisions = [
        (await handle_alert(m.body(), store=store, channels={}, alerts=Alerts(), clock=clock)).decision
        for m in sender.sent
    ]
    sender.sent.clear()
    clock.advance(timedelta(minutes=5))
    await record_heartbeat(store, RECONCILE, clock)
    await watch_heartbeats(store=store, sender=sender, clock=clock, correlation_id="c")
    resolved = [parse_alert(m.payload) for m in sender.sent]
    assert [(s.key.subject, s.key.problem, s.cause) for s in overdue] == [
        (RECONCILE, HEARTBEAT_PROBLEM, Cause.PRESENT)
    ]
    assert decisions == [Decision.OPENED]
    assert [(s.key.subject, s.cause) for s in resolved] == [(RECONCILE, Cause.GONE)]


async def test_fresh_heartbeats_send_nothing() -> None:
    """Timers that ran on time cause no alert traffic at all."""
    store, clock, sender = MemoryStore(), MovableClock(T0), RecordingSender()
    await record_heartbeat(store, UPKEEP, clock)
    await record_heartbeat(store, RECONCILE, clock)
    clock.advance(timedelta(minutes=30))
    beats = await watch_heartbeats(store=store, sender=sender, clock=clock, correlation_id="c")
    assert sender.sent == []
    assert all(b.last_run == T0 for b in beats)


async def test_health_probe_fails_only_for_the_overdue_timer() -> None:
    """`health` names the timer whose heartbeat is missed."""
    store, clock = MemoryStore(), MovableClock(T0)
    await heartbeats(store, clock, remember=True)
    await record_heartbeat(store, UPKEEP, clock)
    clock.advance(OVERDUE_AFTER + timedelta(minutes=1))
    await record_heartbeat(store, UPKEEP, clock)
    probes = heartbeat_probes(store, clock)
    await probes[f"heartbeat.{UPKEEP}"].check()
    with pytest.raises(Unavailable):
        await probes[f"heartbeat.{RECONCILE}"].check()
