"""The HR event contract: CloudEvents parsed into models, field errors, dates, and the hr-events message."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import referencing

from handlers.hr_intake import event_schema
from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.hr_events import (
    HrEventType,
    HrRecord,
    HrWork,
    Stage,
    body_hash,
    hr_message,
    parse_event,
    parse_instant,
    parse_work,
)
from seatkeeper.core.messages import HR_EVENTS, Message, validate
from seatkeeper.settings import APP_ROOT

BERLIN = ZoneInfo("Europe/Berlin")


def event(kind: str = "joiner", **data: Any) -> dict[str, Any]:
    """A valid CloudEvent of the given kind, with `data` fields overridden (None removes one)."""
    dates = {"joiner": "hireDate", "mover": "effectiveDate", "leaver": "leaveDate"}
    body: dict[str, Any] = {
        "employeeId": "E1",
        "userPrincipalName": "ada@contoso.example",
        "department": "Sales",
        "country": "de",
        dates[kind]: "2027-01-04",
    }
    body.update(data)
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/hr/workday",
        "type": f"com.seatkeeper.hr.{kind}",
        "time": "2026-12-01T10:00:00+01:00",
        "data": {k: v for k, v in body.items() if v is not None},
    }


def parse(raw: object) -> Any:
    return parse_event(raw, schema=event_schema(), zone=BERLIN)


def errors_of(raw: object) -> tuple[str, ...]:
    with pytest.raises(InvalidInput) as caught:
        parse(raw)
    return caught.value.errors


@pytest.mark.parametrize("kind", ["joiner", "mover", "leaver"])
def test_each_type_parses(kind: str) -> None:
    """The three types parse; the date that says when to act is their own date field."""
    parsed = parse(event(kind))
    assert parsed.type is HrEventType(kind)
    assert parsed.effective_at == datetime(2027, 1, 3, 23, 0, tzinfo=UTC)
    assert parsed.recorded_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_person_fields_are_normalised() -> None:
    """Country in capitals, object id in lower case, blanks as None."""
    parsed = parse(event(objectId="AAAAAAAA-0000-4000-8000-000000000001", jobTitle="  ", country="fr"))
    assert parsed.person == HrRecord(
        employee_id="E1",
        object_id="aaaaaaaa-0000-4000-8000-000000000001",
        user_principal_name="ada@contoso.example",
        department="Sales",
        country="FR",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2027-01-04", datetime(2027, 1, 3, 23, 0, tzinfo=UTC), id="date-only-winter"),
        pytest.param("2027-07-01", datetime(2027, 6, 30, 22, 0, tzinfo=UTC), id="date-only-summer"),
        pytest.param("2027-01-04T09:30:00-05:00", datetime(2027, 1, 4, 14, 30, tzinfo=UTC), id="offset"),
        pytest.param("2027-01-04T09:30Z", datetime(2027, 1, 4, 9, 30, tzinfo=UTC), id="zulu-no-seconds"),
    ],
)
def test_dates(text: str, expected: datetime) -> None:
    """Date-only values are midnight in the configured zone; offsets are honoured."""
    assert parse_instant(text, BERLIN) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(event(employeeId=None), "data: 'employeeId' is a required property", id="no-employee"),
        pytest.param(event(hireDate=None), "data: 'hireDate' is a required property", id="joiner-no-hire"),
        pytest.param(
            event("leaver", hireDate="2027-01-01", leaveDate=None),
            "data: 'leaveDate' is a required property",
            id="leaver-no-leave",
        ),
        pytest.param(
            event(hireDate="2027-01-04T09:00:00"),
            "data.hireDate: '2027-01-04T09:00:00' is not an ISO 8601 date",
            id="no-offset",
        ),
        pytest.param(
            event(hireDate="2027-02-30"), "data.hireDate: '2027-02-30' is not a real date", id="feb30"
        ),
        pytest.param(event(country="Germany"), "data.country: 'Germany' is not", id="country"),
        pytest.param(event(shoeSize=42), "data: Additional properties are not allowed", id="unknown-field"),
        pytest.param({**event(), "type": "com.other"}, "type: 'com.other' is not one of", id="type"),
        pytest.param({**event(), "specversion": "0.3"}, "specversion: '1.0' was expected", id="specversion"),
        pytest.param({**event(), "time": "yesterday"}, "time: 'yesterday' is not an ISO 8601", id="time"),
    ],
)
def test_field_errors(raw: object, expected: str) -> None:
    """Each schema violation is named by its field."""
    assert any(e.startswith(expected) for e in errors_of(raw)), errors_of(raw)


def test_every_problem_at_once() -> None:
    """Two bad fields give two errors."""
    raw = event(employeeId="", country="xyz")
    assert len(errors_of(raw)) == 2


def test_body_hash_ignores_key_order() -> None:
    """The same event with keys reordered is the same body; another value is not."""
    raw = event()
    reordered = json.loads(json.dumps(dict(reversed(list(raw.items())))))
    assert body_hash(raw) == body_hash(reordered)
    assert body_hash(raw) != body_hash(event(department="Legal"))


def test_message_round_trip_and_session() -> None:
    """The hr-events message validates, travels in the employee's session and parses back."""
    parsed = parse(event())
    message = hr_message(HrWork(parsed, callback="/x/resume"), correlation_id="c1")
    validate(message)
    assert (message.queue, message.session_id, message.subject) == (HR_EVENTS, "E1", "E1")
    back = parse_work(Message.from_body(HR_EVENTS, message.body()))
    assert back == HrWork(parsed, Stage.RECEIVED, 0, "/x/resume")


def test_message_ids_collapse_repeats_but_not_stages() -> None:
    """The same event gives the same id; its scheduled stage gets another."""
    parsed = parse(event())
    first = hr_message(HrWork(parsed), correlation_id="a").message_id
    again = hr_message(HrWork(parsed), correlation_id="b").message_id
    due = hr_message(HrWork(parsed, Stage.DUE), correlation_id="a").message_id
    assert first == again != due


def test_batch_schema_file_refers_to_the_event_schema() -> None:
    """The shipped batch schema accepts a list of valid events and refuses more than 100."""
    batch: Mapping[str, Any] = json.loads(
        (APP_ROOT / "seatkeeper" / "schemas" / "hr-event-batch.schema.json").read_text("utf-8")
    )
    resource = referencing.Resource.from_contents(dict(event_schema()))
    registry = referencing.Registry().with_resource(str(event_schema()["$id"]), resource)
    validator = jsonschema.Draft202012Validator(batch, registry=registry)
    assert validator.is_valid([event(), event("leaver")])
    assert not validator.is_valid([event()] * 101)
    assert not validator.is_valid([event(employeeId=None)])
