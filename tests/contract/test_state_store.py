"""One contract for the StateStore port, run against the embedded SQLite store and Table Storage (Azurite)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.adapters.table_rules import MAX_DATA_CHARS
from seatkeeper.adapters.table_state import TableStateStore
from seatkeeper.core.errors import ConcurrencyConflict, Unavailable
from seatkeeper.core.ports import MAX_COMMIT_WRITES, Probe, RowWrite, StateStore

pytestmark = pytest.mark.anyio


class ProbedStore(StateStore, Probe, Protocol):
    """Both state adapters are also the health probe of the store."""


@pytest.fixture(params=["sqlite", "table"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProbedStore]:
    if request.param == "sqlite":
        sqlite = SqliteStateStore(tmp_path / "state.db")
        yield sqlite
        sqlite.close()
    else:
        connection_string: str = request.getfixturevalue("azurite")
        table = TableStateStore.from_connection_string(connection_string)
        yield table
        await table.close()


@pytest.fixture
def table() -> str:
    """A fresh table per test, so tests never see each other's rows on the shared Azurite."""
    return "t" + uuid.uuid4().hex[:20]


async def rows(store: StateStore, table: str, partition: str | None = None) -> list[tuple[str, str, object]]:
    return [(e.partition, e.row, e.data) async for e in store.query(table, partition)]


async def test_insert_then_get_returns_the_data_and_an_etag(store: StateStore, table: str) -> None:
    """What is inserted is read back as written, with the etag the insert returned."""
    inserted = await store.insert(table, "p", "r", {"n": 1, "tags": ["a", "b"], "nested": {"x": None}})
    got = await store.get(table, "p", "r")
    assert got == inserted
    assert got.data == {"n": 1, "tags": ["a", "b"], "nested": {"x": None}}


async def test_insert_of_an_existing_row_conflicts(store: StateStore, table: str) -> None:
    """A second insert of the same key is a ConcurrencyConflict and leaves the first in place."""
    await store.insert(table, "p", "r", {"v": 1})
    with pytest.raises(ConcurrencyConflict):
        await store.insert(table, "p", "r", {"v": 2})
    assert await rows(store, table) == [("p", "r", {"v": 1})]


async def test_replace_needs_the_current_etag(store: StateStore, table: str) -> None:
    """A replace with the current etag wins and changes the etag; one with the old etag conflicts."""
    first = await store.insert(table, "p", "r", {"v": 1})
    second = await store.replace(first, {"v": 2})
    assert second.etag != first.etag
    with pytest.raises(ConcurrencyConflict):
        await store.replace(first, {"v": 3})
    assert await rows(store, table) == [("p", "r", {"v": 2})]


async def test_replace_of_a_deleted_row_conflicts(store: StateStore, table: str) -> None:
    """Replacing what someone else deleted is a conflict, not a resurrection."""
    entity = await store.insert(table, "p", "r", {"v": 1})
    await store.delete(table, "p", "r")
    with pytest.raises(ConcurrencyConflict):
        await store.replace(entity, {"v": 2})
    assert await store.get(table, "p", "r") is None


async def test_upsert_writes_unconditionally(store: StateStore, table: str) -> None:
    """Upsert creates, then overwrites whatever is there, returning a usable etag."""
    await store.upsert(table, "p", "r", {"v": 1})
    written = await store.upsert(table, "p", "r", {"v": 2})
    assert await store.get(table, "p", "r") == written
    assert (await store.replace(written, {"v": 3})).data == {"v": 3}


async def test_conditional_delete(store: StateStore, table: str) -> None:
    """Delete with a stale etag conflicts and keeps the row; with the current one removes it."""
    first = await store.insert(table, "p", "r", {"v": 1})
    current = await store.replace(first, {"v": 2})
    with pytest.raises(ConcurrencyConflict):
        await store.delete(table, "p", "r", etag=first.etag)
    await store.delete(table, "p", "r", etag=current.etag)
    assert await store.get(table, "p", "r") is None


async def test_deleting_what_is_not_there_is_not_an_error(store: StateStore, table: str) -> None:
    """Deletes converge: a missing row (with or without etag) is already deleted."""
    await store.delete(table, "p", "missing")
    await store.delete(table, "p", "missing", etag='W/"whatever"')
    assert await rows(store, table) == []


async def test_query_by_partition_and_whole_table(store: StateStore, table: str) -> None:
    """A partition query returns that partition's rows; a table query all rows, by partition and row."""
    for partition, row in [("b", "2"), ("a", "1"), ("b", "1")]:
        await store.insert(table, partition, row, {"k": f"{partition}{row}"})
    assert await rows(store, table, "b") == [("b", "1", {"k": "b1"}), ("b", "2", {"k": "b2"})]
    assert [(p, r) for p, r, _ in await rows(store, table)] == [("a", "1"), ("b", "1"), ("b", "2")]


async def test_a_table_never_written_reads_empty(store: StateStore, table: str) -> None:
    """Reading an unknown table is not an error: nothing is there."""
    assert await store.get(table, "p", "r") is None
    assert await rows(store, table) == []


async def test_large_data_round_trips_and_too_large_is_refused(store: StateStore, table: str) -> None:
    """Data beyond one Table property (32,000 characters) is chunked; beyond an entity it is refused."""
    members = [f"{i:08d}-0000-0000-0000-000000000000" for i in range(3000)]
    await store.upsert(table, "g", "members", {"ids": members})
    got = await store.get(table, "g", "members")
    assert got is not None
    assert got.data == {"ids": members}
    with pytest.raises(ValueError, match="shard it over rows"):
        await store.upsert(table, "g", "huge", {"x": "y" * MAX_DATA_CHARS})


@pytest.mark.parametrize("key", ["a/b", "a#b", "a?b", "a\\b", "a\nb"])
async def test_keys_table_storage_refuses_are_refused_everywhere(
    store: StateStore, table: str, key: str
) -> None:
    """Keys with characters Table Storage refuses fail the same way on the embedded store."""
    with pytest.raises(ValueError, match="invalid row key"):
        await store.upsert(table, "p", key, {})


async def test_concurrent_writers_lose_no_update(store: StateStore, table: str) -> None:
    """Twenty writers incrementing one counter with read-modify-replace end at twenty."""
    await store.insert(table, "c", "counter", {"n": 0})

    async def increment() -> None:
        while True:
            current = await store.get(table, "c", "counter")
            assert current is not None
            try:
                await store.replace(current, {"n": current.data["n"] + 1})
            except ConcurrencyConflict:
                await asyncio.sleep(0)
                continue
            return

    await asyncio.gather(*(increment() for _ in range(20)))
    final = await store.get(table, "c", "counter")
    assert final is not None
    assert final.data == {"n": 20}


async def test_health_check_passes_when_reachable(store: ProbedStore, table: str) -> None:
    """The probe returns normally against a live store."""
    await store.check()


async def test_table_storage_refusing_access_is_unavailable(azurite: str, table: str) -> None:
    """A wrong key (or a missing role) is Unavailable naming the fix: health shows it, messages retry."""
    wrong = ";".join(
        "AccountKey=" + base64.b64encode(b"not-the-account-key").decode()
        if part.startswith("AccountKey=")
        else part
        for part in azurite.split(";")
    )
    store = TableStateStore.from_connection_string(wrong)
    try:
        with pytest.raises(Unavailable, match="refused access during health check"):
            await store.check()
        with pytest.raises(Unavailable, match="Storage Table Data Contributor"):
            await store.get(table, "p", "r")
    finally:
        await store.close()


async def test_a_commit_writes_every_row_of_a_partition(store: StateStore, table: str) -> None:
    """A commit inserts new rows and replaces current ones together, returning the etags now stored."""
    first = await store.insert(table, "p", "a", {"v": 1})
    written = await store.commit(table, "p", [RowWrite("a", {"v": 2}, first.etag), RowWrite("b", {"v": 1})])
    assert [await store.get(table, "p", row) for row in ("a", "b")] == list(written)
    assert await rows(store, table) == [("p", "a", {"v": 2}), ("p", "b", {"v": 1})]


async def test_a_commit_with_one_stale_etag_writes_nothing(store: StateStore, table: str) -> None:
    """One row changed since it was read: the commit conflicts and neither row is written."""
    a = await store.insert(table, "p", "a", {"v": 1})
    b = await store.insert(table, "p", "b", {"v": 1})
    await store.replace(b, {"v": 2})
    with pytest.raises(ConcurrencyConflict):
        await store.commit(table, "p", [RowWrite("a", {"v": 9}, a.etag), RowWrite("b", {"v": 9}, b.etag)])
    assert await rows(store, table) == [("p", "a", {"v": 1}), ("p", "b", {"v": 2})]


async def test_a_commit_inserting_an_existing_row_writes_nothing(store: StateStore, table: str) -> None:
    """Inserting a row that exists conflicts, and the other (new) row of the commit is not written."""
    await store.insert(table, "p", "b", {"v": 1})
    with pytest.raises(ConcurrencyConflict):
        await store.commit(table, "p", [RowWrite("a", {"v": 9}), RowWrite("b", {"v": 9})])
    assert await rows(store, table) == [("p", "b", {"v": 1})]


async def test_a_commit_replacing_a_deleted_row_writes_nothing(store: StateStore, table: str) -> None:
    """Replacing a row someone deleted conflicts rather than resurrecting it."""
    gone = await store.insert(table, "p", "a", {"v": 1})
    await store.delete(table, "p", "a")
    with pytest.raises(ConcurrencyConflict):
        await store.commit(table, "p", [RowWrite("a", {"v": 2}, gone.etag), RowWrite("b", {"v": 2})])
    assert await rows(store, table) == []


async def test_racing_commits_on_one_row_lose_no_update(store: StateStore, table: str) -> None:
    """Twenty writers each committing a counter row and a row of their own end at twenty."""
    await store.insert(table, "c", "counter", {"n": 0})

    async def increment(me: int) -> None:
        while True:
            current = await store.get(table, "c", "counter")
            assert current is not None
            writes = [RowWrite("counter", {"n": current.data["n"] + 1}, current.etag), RowWrite(f"w{me}", {})]
            try:
                await store.commit(table, "c", writes)
            except ConcurrencyConflict:
                await asyncio.sleep(0)
                continue
            return

    await asyncio.gather(*(increment(me) for me in range(20)))
    assert [(r, d) for _, r, d in await rows(store, table)] == [
        ("counter", {"n": 20}),
        *sorted((f"w{me}", {}) for me in range(20)),
    ]


async def test_a_commit_outside_the_batch_rules_is_refused(store: StateStore, table: str) -> None:
    """Table Storage's batch rules hold everywhere: 1 to 100 distinct rows."""
    with pytest.raises(ValueError, match="1 to 100 rows"):
        await store.commit(table, "p", [RowWrite(f"r{i}", {}) for i in range(MAX_COMMIT_WRITES + 1)])
    with pytest.raises(ValueError, match="at most once"):
        await store.commit(table, "p", [RowWrite("r", {}), RowWrite("r", {})])
    assert await rows(store, table) == []
