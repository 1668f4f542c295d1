"""The dead-letter watch timer in function_app.py, with a real TimerRequest over the embedded queue."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import function_app
from seatkeeper.adapters.clocks import FixedClock
from seatkeeper.adapters.embedded_queue import EmbeddedQueue
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.bootstrap import Services, install_services
from seatkeeper.core.messages import ALERTS, LICENSE_CHECKS, Message
from seatkeeper.core.policy import Alerts, Policy
from seatkeeper.core.sensitive import Secret
from seatkeeper.localhost.bindings import timer_request
from seatkeeper.localhost.invoker import LocalContext
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from tests.unit.graph_fakes import FakeGraph

NOW = datetime(2026, 7, 1, 12, 10, tzinfo=UTC)
LOCK = timedelta(seconds=30)


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[EmbeddedQueue]:
    """An embedded queue, with state and a fixed clock, installed as the process's services."""
    clock = FixedClock(NOW)
    q = EmbeddedQueue(tmp_path / "queue.sqlite3", clock=clock)
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    settings = Settings(
        mode=Mode.SANDBOX,
        graph=GraphSettings(
            tenant_id="t",
            graph_url="https://127.0.0.1:1/v1.0",
            authority="https://127.0.0.1:1/t",
            credential=CredentialKind.SECRET,
        ),
        policy_file=tmp_path / "policy.yaml",
        client_state_key=Secret("k"),
        hr_signing_secret=None,
        data_dir=tmp_path,
        log_format="json",
        log_level="INFO",
    )
    services = Services(
        settings=settings,
        policy=Policy(licensing_groups=(), alerts=Alerts(routes=())),
        graph=FakeGraph(),
        clock=clock,
        sender=q,
        dead_letters=q,
        state=state,
    )
    previous = install_services(services)
    try:
        yield q
    finally:
        install_services(previous)
        state.close()
        q.close()


def tick() -> None:
    request = timer_request(past_due=False, last=None, next_due=NOW + timedelta(minutes=5), now=NOW)
    asyncio.run(function_app.dead_letter_watch(request, LocalContext("inv-1", "dead_letter_watch")))


def test_a_dead_letter_becomes_one_alert_message(queue: EmbeddedQueue) -> None:
    """A dead letter on license-checks puts one `alert` on the alerts queue, however often the timer runs."""
    queue.send_sync(
        [Message(queue=LICENSE_CHECKS, kind="license.check", subject="u1", version="1", correlation_id="c")]
    )
    [got] = queue.receive_sync(LICENSE_CHECKS, 1, LOCK)
    assert asyncio.run(queue.dead_letter(got, "InvalidInput", "bad"))
    tick()
    tick()
    alerts = queue.receive_sync(ALERTS, 10, LOCK)
    assert [(m.kind, m.subject) for m in alerts] == [("alert", "queue:license-checks:queue.dead_letters")]
