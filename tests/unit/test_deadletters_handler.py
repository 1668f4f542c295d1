"""The dead-letter watcher turns new dead letters into one incident per queue and hour, never silence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from handlers.deadletters import AlertsDeadLettersProbe, watch_dead_letters
from seatkeeper.adapters.clocks import FixedClock
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import DeadLettersWaiting, NotFound
from seatkeeper.core.messages import ALERTS, LICENSE_CHECKS, Message
from seatkeeper.core.ports import DeadLetter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 4, 1, 10, 5, tzinfo=UTC)


class FakeDeadLetters:
    """An in-memory dead-letter store: letters are added by the test, removed by resubmit."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self._seq = 0

    def add(self, queue: str, message_id: str, reason: str = "MaxDeliveryCountExceeded") -> None:
        self._seq += 1
        self.letters.append(
            DeadLetter(
                queue=queue,
                message_id=message_id,
                kind="license.check",
                subject="u1",
                reason=reason,
                description="",
                delivery_count=10,
                dead_lettered_at=T0,
                body=b"{}",
                session_id=None,
                sequence_number=self._seq,
            )
        )

    async def list(self, queue: str, *, limit: int = 100, after_sequence: int = 0) -> Sequence[DeadLetter]:
        return [d for d in self.letters if d.queue == queue and d.sequence_number > after_sequence][:limit]

    async def peek(self, queue: str, message_id: str) -> DeadLetter | None:
        return next((d for d in self.letters if (d.queue, d.message_id) == (queue, message_id)), None)

    async def resubmit(self, queue: str, message_id: str) -> str:
        letter = await self.peek(queue, message_id)
        if letter is None:
            raise NotFound(message_id)
        self.letters.remove(letter)
        return f"re-{message_id}"


class RecordingSender:
    """Keeps every message it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, messages: Sequence[Message]) -> None:
        self.sent.extend(messages)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqliteStateStore]:
    store = SqliteStateStore(tmp_path / "state.db")
    yield store
    store.close()


class World:
    def __init__(self, state: SqliteStateStore) -> None:
        self.dead = FakeDeadLetters()
        self.sender = RecordingSender()
        self.clock = FixedClock(T0)
        self.state = state

    async def tick(self) -> None:
        await watch_dead_letters(
            dead_letters=self.dead,
            state=self.state,
            sender=self.sender,
            clock=self.clock,
            correlation_id="tick",
        )

    def alerts(self) -> list[tuple[str, str, str]]:
        return [(m.queue, m.subject, str(m.payload["cause"])) for m in self.sender.sent]


@pytest.fixture
def world(state: SqliteStateStore) -> World:
    return World(state)


async def test_new_dead_letters_raise_one_alert_per_queue_and_hour(world: World) -> None:
    """Two ticks in one hour with new dead letters each send one alert; the next hour reports the rest."""
    world.dead.add(LICENSE_CHECKS, "m1")
    await world.tick()
    world.dead.add(LICENSE_CHECKS, "m2")
    world.clock.advance(timedelta(minutes=30))
    await world.tick()
    assert world.alerts() == [(ALERTS, "queue:license-checks:queue.dead_letters", "present")]
    world.clock.advance(timedelta(minutes=30))
    await world.tick()
    assert len(world.sender.sent) == 2
    assert "m2" in str(world.sender.sent[1].payload["evidence"])
    assert world.sender.sent[0].message_id != world.sender.sent[1].message_id


async def test_nothing_new_sends_nothing(world: World) -> None:
    """Dead letters already reported are not reported again in a later hour."""
    world.dead.add(LICENSE_CHECKS, "m1")
    await world.tick()
    world.clock.advance(timedelta(hours=3))
    await world.tick()
    assert len(world.sender.sent) == 1


async def test_an_emptied_dead_letter_queue_resolves_the_incident_once(world: World) -> None:
    """Once every dead letter is resubmitted, one `gone` signal closes the incident."""
    world.dead.add(LICENSE_CHECKS, "m1")
    await world.tick()
    await world.dead.resubmit(LICENSE_CHECKS, "m1")
    await world.tick()
    await world.tick()
    assert [cause for _, _, cause in world.alerts()] == ["present", "gone"]


async def test_dead_letters_of_alerts_are_logged_never_fed_back(world: World) -> None:
    """A dead letter on `alerts` is logged as an error, and nothing is sent to `alerts`."""
    world.dead.add(ALERTS, "a1")
    with capture_logs() as logs:
        await world.tick()
    assert world.sender.sent == []
    assert [(e["event"], e["new"]) for e in logs if e["event"] == "deadletters.alerts_queue"] == [
        ("deadletters.alerts_queue", 1)
    ]


async def test_the_alert_names_the_fix(world: World) -> None:
    """The alert carries the CLI commands that inspect and resubmit."""
    world.dead.add(LICENSE_CHECKS, "m1", reason="InvalidInput")
    await world.tick()
    [message] = world.sender.sent
    assert "seatkeeper deadletters resubmit license-checks" in str(message.payload["remediation"])
    assert "InvalidInput" in str(message.payload["reason"])


async def test_health_fails_while_alerts_dead_letters_wait(world: World) -> None:
    """The alerts-dead-letters probe passes on an empty DLQ and names the problem once one waits."""
    probe = AlertsDeadLettersProbe(world.dead)
    await probe.check()
    world.dead.add(ALERTS, "a1")
    with pytest.raises(DeadLettersWaiting, match="1 dead letter"):
        await probe.check()
