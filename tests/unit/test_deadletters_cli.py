"""`seatkeeper deadletters list|peek|resubmit` on the embedded queue and on the Service Bus adapter."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seatkeeper.adapters.clocks import FixedClock
from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE, EmbeddedQueue
from seatkeeper.adapters.servicebus_queue import ServiceBusQueues
from seatkeeper.cli import build_parser, main
from seatkeeper.cli.deadletters import run
from seatkeeper.core.messages import LICENSE_CHECKS, Message, resubmitted_id
from seatkeeper.core.ports import DeadLetterStore
from tests.contract.test_servicebus_seam import FakeDeadLetterQueues, FakeReceived, RecordingTransport

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
MESSAGE = Message(
    queue=LICENSE_CHECKS,
    kind="license.check",
    subject="u1",
    version="1",
    correlation_id="corr-1",
    payload={"user": "u1"},
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose embedded queue holds one dead letter (MESSAGE, reason InvalidInput)."""
    queue = EmbeddedQueue(tmp_path / EMBEDDED_QUEUE_FILE, clock=FixedClock(NOW))
    queue.send_sync([MESSAGE])
    [got] = queue.receive_sync(LICENSE_CHECKS, 1, timedelta(seconds=30))
    assert asyncio.run(queue.dead_letter(got, "InvalidInput", "payload.user: unknown"))
    queue.close()
    return tmp_path


def test_list_shows_id_kind_and_reason(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The listing names each dead letter's id, kind and reason."""
    code = main(["deadletters", "--data-dir", str(data_dir), "list", LICENSE_CHECKS, "--json"])
    [line] = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert (code, row["message_id"], row["kind"], row["reason"]) == (
        0,
        MESSAGE.message_id,
        "license.check",
        "InvalidInput",
    )


def test_peek_shows_the_body(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Peek prints the dead letter with its decoded envelope."""
    code = main(["deadletters", "--data-dir", str(data_dir), "peek", LICENSE_CHECKS, MESSAGE.message_id])
    shown = json.loads(capsys.readouterr().out)
    assert (code, shown["body"]["payload"], shown["description"]) == (
        0,
        {"user": "u1"},
        "payload.user: unknown",
    )


def test_resubmit_sends_it_again_under_a_new_id(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After resubmit the DLQ is empty and the message is on its queue again under hash(id, resubmit, n)."""
    code = main(["deadletters", "--data-dir", str(data_dir), "resubmit", LICENSE_CHECKS, MESSAGE.message_id])
    expected = resubmitted_id(MESSAGE.message_id, 1)
    assert (code, expected in capsys.readouterr().out) == (0, True)
    queue = EmbeddedQueue(data_dir / EMBEDDED_QUEUE_FILE, clock=FixedClock(NOW))
    [again] = queue.receive_sync(LICENSE_CHECKS, 1, timedelta(seconds=30))
    queue.close()
    assert (again.message_id, again.body) == (expected, MESSAGE.body())
    assert main(["deadletters", "--data-dir", str(data_dir), "list", LICENSE_CHECKS]) == 0
    assert "no dead letters" in capsys.readouterr().out


def test_an_unknown_dead_letter_exits_1(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Peek or resubmit of what is not there says so and exits 1."""
    assert main(["deadletters", "--data-dir", str(data_dir), "resubmit", LICENSE_CHECKS, "nope"]) == 1
    assert "not found" in capsys.readouterr().out


@pytest.mark.anyio
async def test_the_same_commands_work_on_service_bus() -> None:
    """Over the Service Bus adapter, resubmit sends the copy and empties the DLQ."""
    transport = RecordingTransport()
    dlqs = FakeDeadLetterQueues()
    dlq = dlqs.put(LICENSE_CHECKS, FakeReceived("m1", 12))

    @asynccontextmanager
    async def factory() -> AsyncIterator[DeadLetterStore]:
        yield ServiceBusQueues(transport, dlqs)

    out = io.StringIO()
    args = build_parser().parse_args(["deadletters", "resubmit", LICENSE_CHECKS, "m1"])
    assert await run(args, factory, out) == 0
    assert ([m.message_id for _, m in transport.sent], dlq.messages) == ([resubmitted_id("m1", 12)], [])
