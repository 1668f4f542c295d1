"""The alerts handler with recording fakes: one notification per incident, retries that never re-send."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from handlers.alerts import MAX_WAIT, RETRY_WAITS, handle_alert, send_digest
from seatkeeper.core.alert_ports import NoticeChannel
from seatkeeper.core.errors import (
    ConcurrencyConflict,
    Forbidden,
    InvalidInput,
    Throttled,
    TransientError,
    Unavailable,
)
from seatkeeper.core.incidents import (
    INCIDENTS_TABLE,
    AlertSignal,
    Cause,
    Decision,
    Digest,
    Fact,
    Incident,
    IncidentKey,
    Notice,
    Scope,
    Status,
    alert_message,
    incident_from_data,
)
from seatkeeper.core.policy import AlertChannel, AlertRoute, Alerts, Severity
from seatkeeper.core.ports import Entity, RowWrite
from tests.unit.notification_fakes import check_commit_conditions

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KEY = IncidentKey(Scope.USER, "u-1/sku-1", "license.count_violation")
ROUTES = (
    AlertRoute("teams", AlertChannel.TEAMS, Severity.WARNING, url_setting="TEAMS_URL"),
    AlertRoute(
        "mail", AlertChannel.EMAIL, Severity.WARNING, sender="sk@contoso.com", recipients=("a@c.com",)
    ),
)
POLICY = Alerts(routes=ROUTES)


class FakeStore:
    """In-memory StateStore with real ETag semantics; yields to the loop on every call so that
    concurrent handlers interleave."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Entity] = {}
        self._etags = itertools.count(1)

    def _put(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        entity = Entity(table, partition, row, dict(data), f"W/{next(self._etags)}")
        self.rows[(table, partition, row)] = entity
        return entity

    async def get(self, table: str, partition: str, row: str) -> Entity | None:
        await asyncio.sleep(0)
        return self.rows.get((table, partition, row))

    async def insert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        await asyncio.sleep(0)
        if (table, partition, row) in self.rows:
            raise ConcurrencyConflict("exists")
        return self._put(table, partition, row, data)

    async def replace(self, entity: Entity, data: Mapping[str, Any]) -> Entity:
        await asyncio.sleep(0)
        current = self.rows.get((entity.table, entity.partition, entity.row))
        if current is None or current.etag != entity.etag:
            raise ConcurrencyConflict("etag")
        return self._put(entity.table, entity.partition, entity.row, data)

    async def upsert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        await asyncio.sleep(0)
        return self._put(table, partition, row, data)

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        await asyncio.sleep(0)
        self.rows.pop((table, partition, row), None)

    async def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]:
        for (t, p, _), entity in list(self.rows.items()):
            if t == table and (partition is None or p == partition):
                yield entity

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]:
        check_commit_conditions(self.rows, table, partition, writes)
        return tuple(self._put(table, partition, w.row, w.data) for w in writes)

    def incident(self, key: IncidentKey = KEY) -> Incident:
        return incident_from_data(self.rows[(INCIDENTS_TABLE, key.scope.value, key.row)].data)


@dataclass
class RecordingChannel:
    """A channel that records what it delivered, and fails with the queued errors first."""

    delivered: list[str] = field(default_factory=list)
    digests: list[Digest] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    async def send_notice(self, incident: Incident, notice: Notice) -> None:
        await asyncio.sleep(0)
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(f"{incident.key.problem}:{notice.id}")

    async def send_digest(self, digest: Digest) -> None:
        await asyncio.sleep(0)
        if self.failures:
            raise self.failures.pop(0)
        self.digests.append(digest)


class WorkerDied(BaseException):
    """Stands for the process dying mid-send: nothing after it runs."""


@dataclass
class FixedClock:
    at: datetime = T0

    def now(self) -> datetime:
        return self.at


def body(cause: Cause = Cause.PRESENT, *, at: datetime = T0, key: IncidentKey = KEY) -> bytes:
    signal = AlertSignal(
        key=key,
        cause=cause,
        severity=Severity.ERROR,
        title="Copilot license could not be assigned: no seat left",
        reason="CountViolation: every Copilot seat is in use.",
        remediation="Buy seats or free idle ones, then reprocess the user.",
        subject_label="adele@contoso.com",
        observed_at=at,
        evidence=(Fact("Error", "CountViolation"),),
        user_id="u-1",
        sku_id="sku-1",
    )
    return alert_message(signal, correlation_id="corr-1", version=at.isoformat()).body()


# The queues' maxDeliveryCount (infra/modules/servicebus.bicep, and the local host's default).
MAX_DELIVERIES = 10


@dataclass
class World:
    store: FakeStore = field(default_factory=FakeStore)
    teams: RecordingChannel = field(default_factory=RecordingChannel)
    mail: RecordingChannel = field(default_factory=RecordingChannel)
    clock: FixedClock = field(default_factory=FixedClock)
    policy: Alerts = POLICY
    # The handler's own waits before giving a message back (none: every retry goes back to the queue).
    waits: Sequence[float] = ()
    slept: list[float] = field(default_factory=list)

    @property
    def channels(self) -> dict[str, NoticeChannel]:
        return {"teams": self.teams, "mail": self.mail}

    async def sleep(self, seconds: float) -> None:
        """Time passes for the business clock too, as it does for a real worker."""
        self.slept.append(seconds)
        self.clock.at += timedelta(seconds=seconds)

    async def handle(self, message: bytes, claim: str | None = None) -> Decision:
        result = await handle_alert(
            message,
            store=self.store,
            channels=self.channels,
            alerts=self.policy,
            clock=self.clock,
            claim=claim,
            waits=self.waits,
            sleep=self.sleep,
        )
        return result.decision

    def run(self, message: bytes, claim: str | None = None) -> Decision:
        return asyncio.run(self.handle(message, claim))


def test_open_notifies_every_routed_channel_once() -> None:
    """The first sighting opens the incident and sends one notice per channel."""
    world = World()
    assert world.run(body()) is Decision.OPENED
    assert (world.teams.delivered, world.mail.delivered) == (
        ["license.count_violation:1-opened"],
        ["license.count_violation:1-opened"],
    )


def test_repeat_while_open_sends_nothing() -> None:
    """A repeat of the same failure while open updates the incident and notifies nobody."""
    world = World()
    world.run(body(at=T0))
    assert world.run(body(at=T0 + timedelta(hours=1))) is Decision.UPDATED
    assert len(world.teams.delivered) == 1


def test_duplicate_delivery_sends_nothing() -> None:
    """The same message delivered twice notifies once."""
    world = World()
    world.run(body())
    world.run(body())
    assert (len(world.teams.delivered), len(world.mail.delivered)) == (1, 1)


def test_gone_resolves_with_one_note_and_reopen_is_new() -> None:
    """Cause gone → one resolved note; back again → a new occurrence, notified again."""
    world = World()
    world.run(body(at=T0))
    assert world.run(body(Cause.GONE, at=T0 + timedelta(minutes=5))) is Decision.RESOLVED
    assert world.run(body(Cause.GONE, at=T0 + timedelta(minutes=6))) is Decision.NOT_OPEN
    assert world.run(body(at=T0 + timedelta(minutes=7))) is Decision.REOPENED
    assert world.teams.delivered == [
        "license.count_violation:1-opened",
        "license.count_violation:1-resolved",
        "license.count_violation:2-opened",
    ]


def test_incident_survives_a_restart() -> None:
    """The incident lives in the store: a fresh handler (new process) still knows it is open."""
    world = World()
    world.run(body(at=T0))
    restarted = World(store=world.store)
    assert restarted.run(body(at=T0 + timedelta(minutes=1))) is Decision.UPDATED
    assert restarted.teams.delivered == []


def test_transient_channel_failure_retries_only_that_channel() -> None:
    """Teams fails once: the message is retried; mail, which succeeded, is not sent again."""
    world = World()
    world.teams.failures.append(Unavailable("503"))
    with pytest.raises(TransientError):
        world.run(body())
    assert world.store.incident().status is Status.OPEN
    assert world.run(body()) is Decision.UPDATED
    assert (len(world.teams.delivered), len(world.mail.delivered)) == (1, 1)


def test_throttled_channel_passes_retry_after_on() -> None:
    """A throttled channel's Retry-After reaches the queue through the raised error."""
    world = World()
    world.teams.failures.append(Throttled("429", retry_after=30))
    with pytest.raises(Throttled) as raised:
        world.run(body())
    assert raised.value.retry_after == 30


def test_permanent_channel_failure_is_recorded_not_retried() -> None:
    """A channel that refuses for good is marked failed; the message completes; nothing is lost."""
    world = World()
    world.teams.failures.append(Forbidden("403"))
    with capture_logs() as logs:
        assert world.run(body()) is Decision.OPENED
    failed = [e for e in logs if e["event"] == "alerts.notice_failed"]
    assert [(e["route"], e["error"]) for e in failed] == [("teams", "Forbidden")]
    assert world.run(body()) is Decision.UPDATED
    assert (world.teams.delivered, len(world.mail.delivered)) == ([], 1)


def test_route_without_channel_is_failed_not_looped() -> None:
    """A route the policy names but bootstrap did not configure is marked failed, once."""
    world = World(policy=replace(POLICY, routes=(*ROUTES, AlertRoute("siem", AlertChannel.WEBHOOK))))
    world.run(body())
    notice = world.store.incident().notices[0]
    assert {d.route: d.state.value for d in notice.deliveries} == {
        "teams": "sent",
        "mail": "sent",
        "siem": "failed",
    }


def test_concurrent_deliveries_notify_once() -> None:
    """Ten concurrent deliveries of the same alert open one incident and send one notice per channel."""
    world = World()

    async def together() -> list[Decision | BaseException]:
        return await asyncio.gather(
            *(world.handle(body(), claim=f"worker-{i}") for i in range(10)), return_exceptions=True
        )

    results = asyncio.run(together())
    # Workers that found the notices in flight elsewhere ask to be retried; none may fail otherwise.
    assert all(r in (Decision.OPENED, Decision.UPDATED) or isinstance(r, Unavailable) for r in results)
    assert results.count(Decision.OPENED) == 1
    assert (len(world.teams.delivered), len(world.mail.delivered)) == (1, 1)


def test_crashed_sender_claim_is_taken_over_after_lease() -> None:
    """A delivery claimed by a worker that died is sent by the redelivery once the lease has run out."""
    world = World()
    world.teams.failures.append(WorkerDied())  # the worker dies mid-send, recording nothing
    with pytest.raises(WorkerDied):
        world.run(body(), claim="dead")
    with pytest.raises(Unavailable):
        world.run(body(), claim="too-early")
    world.clock.at = T0 + timedelta(minutes=3)
    world.run(body(), claim="later")
    assert (len(world.teams.delivered), len(world.mail.delivered)) == (1, 1)


def test_a_retry_a_channel_asks_for_is_waited_for_in_the_handler() -> None:
    """Teams fails once: the handler waits half a second and sends again, instead of spending a delivery."""
    world = World(waits=RETRY_WAITS)
    world.teams.failures.append(Unavailable("503"))
    assert world.run(body()) is Decision.OPENED
    assert (len(world.teams.delivered), len(world.mail.delivered), world.slept) == (1, 1, [0.5])


def test_a_channels_retry_after_lengthens_the_wait_up_to_the_cap() -> None:
    """Retry-After 30 s: the handler waits the cap (MAX_WAIT), then sends."""
    world = World(waits=RETRY_WAITS)
    world.teams.failures.append(Throttled("429", retry_after=30))
    world.run(body())
    assert (world.slept, len(world.teams.delivered)) == ([MAX_WAIT], 1)


def test_a_crashed_senders_claim_is_waited_out_within_the_queues_deliveries() -> None:
    """A worker died holding the delivery: each redelivery waits in the handler before giving the message
    back, so the lease runs out and the notice is sent before the queue's ten deliveries are spent (no dead
    letter, which the alerts queue could not alert about)."""
    world = World(waits=RETRY_WAITS)
    world.teams.failures.append(WorkerDied())
    with pytest.raises(WorkerDied):
        world.run(body(), claim="dead")
    deliveries = 1
    while deliveries < MAX_DELIVERIES:
        deliveries += 1
        try:
            world.run(body())
        except Unavailable:
            continue
        break
    assert deliveries < MAX_DELIVERIES
    assert (len(world.teams.delivered), len(world.mail.delivered)) == (1, 1)


def test_invalid_message_is_invalid_input() -> None:
    """A message that is not an alert is rejected as InvalidInput (completed, logged, not retried)."""
    with pytest.raises(InvalidInput):
        World().run(b'{"kind": "admit", "payload": {}}')


def test_log_line_carries_ids_not_names() -> None:
    """The canonical log line names the decision and the incident id, never the user's UPN."""
    world = World()
    with capture_logs() as logs:
        world.run(body())
    handled = [e for e in logs if e["event"] == "alerts.handled"]
    assert [(e["decision"], e["incident"]) for e in handled] == [("opened", KEY.row)]
    assert "adele@contoso.com" not in repr(logs)


def digest(world: World, policy: Alerts) -> tuple[str, ...]:
    return asyncio.run(
        send_digest(store=world.store, channels=world.channels, alerts=policy, clock=world.clock)
    )


# --- digest -----------------------------------------------------------------------------------------------

DIGEST_POLICY = replace(POLICY, daily_digest=True, digest_time=time(8, 0))


def test_digest_once_a_day_with_open_incidents() -> None:
    """At digest time the open incidents go out once; a second tick the same day sends nothing."""
    world = World(policy=DIGEST_POLICY)
    world.run(body())
    sent = digest(world, DIGEST_POLICY)
    again = digest(world, DIGEST_POLICY)
    assert (sent, again) == (("teams", "mail"), ())
    assert [[i.key for i in d.incidents] for d in world.teams.digests] == [[KEY]]


def test_digest_is_quiet_when_nothing_is_open() -> None:
    """No open incident, no digest."""
    world = World(policy=DIGEST_POLICY)
    world.run(body(at=T0))
    world.run(body(Cause.GONE, at=T0 + timedelta(minutes=1)))
    sent = digest(world, DIGEST_POLICY)
    assert (sent, world.teams.digests) == ((), [])


def test_digest_retry_does_not_resend_to_delivered_route() -> None:
    """Teams fails transiently: the retry sends the digest to Teams only, not to mail again."""
    world = World(policy=DIGEST_POLICY)
    world.run(body())
    world.teams.failures.append(Unavailable("503"))
    with pytest.raises(TransientError):
        digest(world, DIGEST_POLICY)
    digest(world, DIGEST_POLICY)
    assert (len(world.teams.digests), len(world.mail.digests)) == (1, 1)


def test_digest_off_sends_nothing() -> None:
    """Without `daily_digest` in the policy, nothing is sent."""
    world = World()
    world.run(body())
    sent = digest(world, POLICY)
    assert sent == ()
