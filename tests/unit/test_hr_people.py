"""One ordering record per human: an employeeId linked to an Entra object id leads to the object id's
record, which holds the newer of the two; linking again changes nothing; a concurrent change is a conflict."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlers.hr_people import PeopleBook
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import ConcurrencyConflict
from seatkeeper.core.hr_events import HrRecord
from seatkeeper.core.hr_ordering import PersonRecord, newest, record_for
from tests.unit.test_hr_ordering import JOIN, LEAVE, T0

pytestmark = pytest.mark.anyio
OBJECT_ID = "a1b2c3d4-0000-4000-8000-000000000001"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[PeopleBook]:
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    yield PeopleBook(state)
    state.close()


def under(key: str, record: PersonRecord) -> PersonRecord:
    return PersonRecord.from_data(key, record.to_data())


@pytest.mark.parametrize("newer_under", ["employee", "object"])
async def test_linking_keeps_the_newer_record_under_the_object_id(book: PeopleBook, newer_under: str) -> None:
    """Whichever key held the newer event, both keys now read it, from the object id's row."""
    older, newer = record_for(JOIN, None, T0), record_for(LEAVE, None, T0)
    employee_record, object_record = (older, newer) if newer_under == "object" else (newer, older)
    await book.write(await book.held("E1"), employee_record)
    await book.write(await book.held(OBJECT_ID), object_record)
    linked = await book.link("E1", OBJECT_ID.upper())
    assert (linked.key, linked.record) == (OBJECT_ID, under(OBJECT_ID, newer))
    assert (await book.held("E1")).record == under(OBJECT_ID, newer)
    assert (await book.link("E1", OBJECT_ID)).record == under(OBJECT_ID, newer)  # again: no change


async def test_an_event_naming_the_object_id_reads_the_shared_record(book: PeopleBook) -> None:
    """An HR event with objectId orders against the object id's record without anyone looking the user up."""
    await book.write(await book.held(OBJECT_ID), record_for(LEAVE, None, T0))
    held = await book.for_event(HrRecord("E1", object_id=OBJECT_ID))
    assert (held.key, held.record and held.record.event_id) == (OBJECT_ID, LEAVE.id)


async def test_a_change_since_the_read_is_a_conflict(book: PeopleBook) -> None:
    """Two deliveries of one human under different keys at once: the second write is refused (retried)."""
    seen = await book.held(OBJECT_ID)
    await book.write(seen, record_for(JOIN, None, T0))
    with pytest.raises(ConcurrencyConflict):
        await book.write(seen, record_for(LEAVE, None, T0))


def test_newest_is_the_latest_recorded() -> None:
    """None without records; else the most recently recorded event, whatever the argument order."""
    joined, left = record_for(JOIN, None, T0), record_for(LEAVE, None, T0)  # LEAVE recorded an hour later
    assert newest(None, None) is None
    assert newest(left, None, joined) is left
    assert newest(joined, left) is left
