"""The message envelope, the id rule and the registry of kinds with their JSON Schemas."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import seatkeeper.core
from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.messages import (
    ALERTS,
    LICENSE_CHECKS,
    MESSAGE_KINDS,
    Message,
    MessageKind,
    message_id_for,
    register_kind,
    resubmitted_id,
    validate,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "messages.md"

PROBE = MessageKind(
    name="test.probe",
    queue=LICENSE_CHECKS,
    description="a kind used by these tests only",
    schema={
        "type": "object",
        "required": ["user"],
        "additionalProperties": False,
        "properties": {"user": {"type": "string"}, "attempt": {"type": "integer", "minimum": 1}},
    },
)


@pytest.fixture
def probe_kind() -> Iterator[MessageKind]:
    register_kind(PROBE)
    yield PROBE
    MESSAGE_KINDS.pop(PROBE.name)


def probe(payload: dict[str, object], queue: str = LICENSE_CHECKS) -> Message:
    return Message(
        queue=queue, kind="test.probe", subject="u1", version="1", correlation_id="c", payload=payload
    )


def test_the_id_depends_on_kind_subject_and_version_only() -> None:
    """Same (kind, subject, version) → same id; a new version → a new id; resubmits differ by n."""
    a = Message(queue=LICENSE_CHECKS, kind="k", subject="u1", version="due:1", correlation_id="x")
    b = Message(
        queue=LICENSE_CHECKS, kind="k", subject="u1", version="due:1", correlation_id="y", payload={"z": 1}
    )
    c = Message(queue=LICENSE_CHECKS, kind="k", subject="u1", version="due:2", correlation_id="x")
    assert (a.message_id == b.message_id, a.message_id == c.message_id) == (True, False)
    assert a.message_id == message_id_for("k", "u1", "due:1")
    assert resubmitted_id(a.message_id, 1) not in {a.message_id, resubmitted_id(a.message_id, 2)}


def test_body_round_trips_through_from_body() -> None:
    """What travels is what is parsed back, transport fields supplied by the receiver."""
    sent = Message(
        queue=ALERTS,
        kind="alert",
        subject="s",
        version="v",
        correlation_id="c",
        payload={"a": [1]},
        session_id="s",
    )
    assert Message.from_body(ALERTS, sent.body(), message_id=sent.message_id, session_id="s") == sent


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"envelope": 2, "kind": "k", "subject": "s", "version": "v", "correlation_id": "c"}', "envelope"),
        (b'{"envelope": 1, "kind": 3, "subject": "s", "version": "v", "correlation_id": "c"}', "kind"),
    ],
    ids=["not-json", "not-object", "wrong-envelope", "kind-not-string"],
)
def test_a_bad_envelope_is_invalid_input(body: bytes, problem: str) -> None:
    """A malformed envelope is a permanent InvalidInput that names the problem."""
    with pytest.raises(InvalidInput) as caught:
        Message.from_body(LICENSE_CHECKS, body)
    assert problem in f"{caught.value} {caught.value.errors}"


def test_a_valid_payload_passes(probe_kind: MessageKind) -> None:
    """A payload matching its kind's schema validates."""
    validate(probe({"user": "u1", "attempt": 2}))


def test_schema_violations_are_listed_by_field(probe_kind: MessageKind) -> None:
    """Every violation is named, with its field path."""
    with pytest.raises(InvalidInput) as caught:
        validate(probe({"attempt": 0, "extra": True}))
    assert caught.value.errors == (
        "payload: 'user' is a required property",
        "payload: Additional properties are not allowed ('extra' was unexpected)",
        "payload['attempt']: 0 is less than the minimum of 1",
    )


def test_unknown_kind_or_wrong_queue_is_invalid(probe_kind: MessageKind) -> None:
    """A kind nobody registered, or a registered kind on another queue, is refused."""
    with pytest.raises(InvalidInput, match="unknown message kind"):
        validate(Message(queue=LICENSE_CHECKS, kind="nobody", subject="s", version="v", correlation_id="c"))
    with pytest.raises(InvalidInput, match="does not travel on"):
        validate(probe({"user": "u1"}, queue=ALERTS))


def test_a_kind_cannot_be_registered_twice_differently(probe_kind: MessageKind) -> None:
    """Registering the same name with another schema is a programming error."""
    with pytest.raises(ValueError, match="already registered"):
        register_kind(MessageKind(name="test.probe", queue=ALERTS, schema={}, description="other"))


def _register_every_core_kind() -> None:
    """Import every core module, so the registry holds every kind the service can send."""
    for module in pkgutil.iter_modules(seatkeeper.core.__path__, "seatkeeper.core."):
        importlib.import_module(module.name)


def _documented_kinds() -> dict[str, str]:
    """The `## Kinds` table of docs/messages.md: kind name → queue."""
    table = DOCS.read_text(encoding="utf-8").split("## Kinds", 1)[1].split("\n\n", 2)[1]
    cells = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `")]
    return {kind.strip().strip("`"): queue.strip().strip("`") for kind, queue in cells}


def test_documented_and_registered_kinds_are_the_same() -> None:
    """With every core module imported, the docs' table of kinds is the registry: names and queues."""
    _register_every_core_kind()
    registered = {name: kind.queue for name, kind in MESSAGE_KINDS.items() if name != PROBE.name}
    assert _documented_kinds() == registered


def test_every_registered_kind_is_documented() -> None:
    """docs/messages.md has a section for each kind in the registry."""
    text = DOCS.read_text(encoding="utf-8")
    assert [name for name in MESSAGE_KINDS if name != PROBE.name and f"`{name}`" not in text] == []
