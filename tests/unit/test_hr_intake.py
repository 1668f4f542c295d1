"""HR intake: signed CloudEvents in, one hr-events message per new event out, and every documented answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks.webhooks import Webhook

from handlers.hr_intake import IntakeDeps, IntakeRequest, IntakeResponse, receive
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import Unavailable
from seatkeeper.core.hr_events import MAX_BATCH_EVENTS
from seatkeeper.core.messages import HR_EVENTS, Message
from seatkeeper.core.sensitive import Secret
from tests.unit.license_world import FakeClock, RecordingSender
from tests.unit.test_hr_events import event

pytestmark = pytest.mark.anyio

SECRET = "whsec_" + base64.b64encode(b"sandbox-only-hr-signing-key-0001").decode()
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class FailingSender:
    """A queue that cannot persist anything."""

    sent: list[Message] = field(default_factory=list)

    async def send(self, messages: Sequence[Message]) -> None:
        raise Unavailable("queue down")


@dataclass
class Intake:
    deps: IntakeDeps
    sender: RecordingSender
    state: SqliteStateStore

    async def post(
        self,
        body: object,
        *,
        content_type: str = SINGLE,
        secret: str = SECRET,
        signed_at: datetime | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        at = signed_at or datetime.now(tz=UTC)
        signature = Webhook(secret).sign("msg_1", at, data.decode())
        sent = {
            "Content-Type": content_type,
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
            **(headers or {}),
        }
        answer: IntakeResponse = await receive(IntakeRequest(sent, data), self.deps, correlation_id="c1")
        return answer.status, json.loads(answer.body)


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    sender = RecordingSender()
    deps = IntakeDeps(sender, state, FakeClock(), Secret(SECRET), ZoneInfo("Europe/Berlin"))
    yield Intake(deps, sender, state)
    state.close()


async def test_a_signed_event_is_accepted_and_enqueued_in_its_persons_session(intake: Intake) -> None:
    """202, one hr.joiner message, session = employeeId."""
    status, body = await intake.post(event())
    assert (status, body["outcome"]) == (202, "accepted")
    [message] = intake.sender.sent
    assert (message.queue, message.kind, message.session_id) == (HR_EVENTS, "hr.joiner", "E1")


async def test_the_same_event_again_is_a_duplicate_and_enqueues_nothing(intake: Intake) -> None:
    """Same (source, id) and body: 202 duplicate, still one message."""
    await intake.post(event())
    status, body = await intake.post(event())
    assert (status, body["outcome"], len(intake.sender.sent)) == (202, "duplicate", 1)


async def test_the_same_id_with_another_body_is_a_conflict(intake: Intake) -> None:
    """409, nothing new enqueued."""
    await intake.post(event())
    status, body = await intake.post(event(department="Legal"))
    assert (status, body["outcome"], len(intake.sender.sent)) == (409, "conflict", 1)


async def test_the_same_id_from_another_source_is_another_event(intake: Intake) -> None:
    """Duplicates are recognised by (source, id), not id alone."""
    await intake.post(event())
    status, _ = await intake.post({**event(), "source": "/hr/other"})
    assert (status, len(intake.sender.sent)) == (202, 2)


async def test_schema_violations_answer_400_with_field_errors(intake: Intake) -> None:
    """400 names the field; nothing is enqueued."""
    status, body = await intake.post(event(employeeId=None))
    assert status == 400
    assert body["errors"] == ["data: 'employeeId' is a required property"]
    assert intake.sender.sent == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"secret": "whsec_" + base64.b64encode(b"another-key").decode()}, "bad", id="wrong-key"),
        pytest.param({"signed_at": -timedelta(minutes=6)}, "stale", id="stale"),
        pytest.param({"signed_at": timedelta(minutes=6)}, "future", id="future"),
        pytest.param({"headers": {"webhook-signature": ""}}, "missing", id="missing"),
        pytest.param({"headers": {"webhook-signature": "garbage"}}, "malformed", id="malformed"),
    ],
)
async def test_bad_missing_or_stale_signatures_answer_401(
    intake: Intake, change: dict[str, Any], reason: str
) -> None:
    """401 and nothing enqueued, whatever is wrong with the signature (times are taken from the run, not from
    collection: a long suite would age them)."""
    if "signed_at" in change:
        change = {"signed_at": datetime.now(tz=UTC) + change["signed_at"]}
    status, body = await intake.post(event(), **change)
    assert (status, body["error"], intake.sender.sent) == (401, "bad_or_stale_signature", []), reason


async def test_without_a_configured_secret_every_call_is_refused(intake: Intake) -> None:
    """No signing secret in settings: 401 for everyone."""
    intake.deps = IntakeDeps(intake.sender, intake.state, FakeClock(), None, ZoneInfo("UTC"))
    status, body = await intake.post(event())
    assert (status, body["error"]) == (401, "hr_signing_secret_not_configured")


async def test_a_signature_over_another_body_is_refused(intake: Intake) -> None:
    """The signature covers the exact bytes: a changed body fails."""
    data = json.dumps(event()).encode()
    at = datetime.now(tz=UTC)
    headers = {
        "content-type": SINGLE,
        "webhook-id": "m",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("m", at, data.decode()),
    }
    answer = await receive(IntakeRequest(headers, data + b" "), intake.deps, correlation_id="c")
    assert answer.status == 401


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
async def test_other_content_types_answer_415(intake: Intake, content_type: str) -> None:
    """Only the two CloudEvents JSON media types are accepted."""
    status, _ = await intake.post(event(), content_type=content_type)
    assert status == 415


async def test_charset_parameters_are_fine(intake: Intake) -> None:
    """`application/cloudevents+json; charset=utf-8` is the same media type."""
    status, _ = await intake.post(event(), content_type=SINGLE + "; charset=utf-8")
    assert status == 202


async def test_a_body_over_the_limit_answers_413(intake: Intake) -> None:
    """More than 1 MiB is refused before it is even verified."""
    status, _ = await intake.post(None, raw=b" " * (1_048_576 + 1))
    assert status == 413


async def test_a_batch_over_the_documented_size_answers_413(intake: Intake) -> None:
    """More than MAX_BATCH_EVENTS events in one batch is refused whole."""
    events = [{**event(), "id": f"e{i}"} for i in range(MAX_BATCH_EVENTS + 1)]
    status, _ = await intake.post(events, content_type=BATCH)
    assert (status, intake.sender.sent) == (413, [])


async def test_a_batch_answers_one_outcome_per_event(intake: Intake) -> None:
    """Accepted, duplicate (in the same batch), invalid and conflicting events side by side."""
    await intake.post({**event(), "id": "old"})
    events = [
        {**event(), "id": "new"},
        {**event(), "id": "new"},
        {**event(employeeId=None), "id": "bad"},
        {**event(department="Legal"), "id": "old"},
    ]
    status, body = await intake.post(events, content_type=BATCH)
    outcomes = [(r["index"], r["status"], r["outcome"]) for r in body["results"]]
    assert status == 400
    assert outcomes == [
        (0, 202, "accepted"),
        (1, 202, "duplicate"),
        (2, 400, "invalid"),
        (3, 409, "conflict"),
    ]
    assert body["results"][2]["errors"] == ["[2].data: 'employeeId' is a required property"]
    assert [m.payload["id"] for m in intake.sender.sent] == ["old", "new"]


async def test_a_clean_batch_answers_202(intake: Intake) -> None:
    """Every event new: 202 and one message each, each in its own person's session."""
    events = [{**event(employeeId=f"E{i}"), "id": f"e{i}"} for i in range(3)]
    status, _ = await intake.post(events, content_type=BATCH)
    assert status == 202
    assert [m.session_id for m in intake.sender.sent] == ["E0", "E1", "E2"]


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"{}"], ids=["not-json", "empty-batch", "object"])
async def test_malformed_batches_answer_400(intake: Intake, raw: bytes) -> None:
    """A batch must be a non-empty JSON array."""
    status, _ = await intake.post(None, raw=raw, content_type=BATCH)
    assert status == 400


async def test_when_the_queue_is_down_503_and_no_dedupe_mark(tmp_path: Path) -> None:
    """Nothing persisted: 503 so the HR system retries, and the retry is not mistaken for a duplicate."""
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    sender = RecordingSender()
    try:
        down = IntakeDeps(FailingSender(), state, FakeClock(), Secret(SECRET), ZoneInfo("UTC"))
        status, _ = await Intake(down, sender, state).post(event())
        up = IntakeDeps(sender, state, FakeClock(), Secret(SECRET), ZoneInfo("UTC"))
        retry_status, body = await Intake(up, sender, state).post(event())
    finally:
        state.close()
    assert (status, retry_status, body["outcome"], len(sender.sent)) == (503, 202, "accepted", 1)
