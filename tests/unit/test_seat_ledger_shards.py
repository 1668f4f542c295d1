"""The seat ledger's shards: a reservation's shard is a stable hash of (user, group), and a read that sees
the head's count of a reserve but not the reserve itself (a shard read before the head) is read again, so a
seat taken is never given twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from seatkeeper.adapters.seat_store import LEDGER_TABLE, SHARDS, StateSeatStore, shard_of
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.ports import Entity, RowWrite
from seatkeeper.core.seats import ReleaseReason
from tests.unit.test_gate_builders import NOW, catalogue, sku

SKU = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
GROUP = "0b6e0000-0000-4000-8000-00000000c0de"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_shard_is_the_same_in_every_process() -> None:
    """Pinned values: a salted `hash()` would move reservations between shards from process to process."""
    assert shard_of("u1", "g1") == "shard-34"
    assert shard_of("00000001-0000-4000-8000-000000000000", GROUP) == "shard-31"


def test_the_shard_ignores_case_and_spaces_as_ids_do() -> None:
    """Ids are compared lowercased and trimmed, so the shard is too."""
    assert shard_of(" U1 ", "G1") == shard_of("u1", "g1")


def test_reservations_spread_over_every_shard() -> None:
    """A thousand users of one group land in all shards (no shard holds a crowd)."""
    found = [shard_of(f"{n:08d}-0000-4000-8000-000000000000", GROUP) for n in range(1000)]
    assert len(set(found)) == SHARDS
    assert max(found.count(s) for s in set(found)) < 40


class LaggingStore:
    """A state store whose next read of a row in `hide` misses it, as a replica that has not yet seen a
    commit that the head row read showed."""

    def __init__(self, inner: SqliteStateStore) -> None:
        self.inner = inner
        self.hide: set[str] = set()
        self.reads: list[str] = []

    async def get(self, table: str, partition: str, row: str) -> Entity | None:
        self.reads.append(row)
        if row in self.hide:
            self.hide.discard(row)
            return None
        return await self.inner.get(table, partition, row)

    async def insert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        return await self.inner.insert(table, partition, row, data)

    async def replace(self, entity: Entity, data: Mapping[str, Any]) -> Entity:
        return await self.inner.replace(entity, data)

    async def upsert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        return await self.inner.upsert(table, partition, row, data)

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        await self.inner.delete(table, partition, row, etag=etag)

    async def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]:
        async for entity in self.inner.query(table, partition):
            yield entity

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]:
        return await self.inner.commit(table, partition, writes)


async def test_a_shard_read_older_than_the_head_is_read_again(tmp_path: Path) -> None:
    """Worker A takes the last seat; B's first read misses A's shard but sees the head A committed: B reads
    again, sees the seat taken and is refused (it would have overbooked on the stale read)."""
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        lagging = LaggingStore(state)
        a = StateSeatStore(state, timeout=timedelta(hours=24))
        b = StateSeatStore(lagging, timeout=timedelta(hours=24))
        snapshot = catalogue(sku(SKU, "Microsoft_365_Copilot", enabled=10, consumed=9))
        assert await a.reserve(snapshot, user_id="u1", group_id=GROUP, sku_ids=(SKU,), now=NOW)
        lagging.hide = {shard_of("u1", GROUP)}
        assert not await b.reserve(snapshot, user_id="u2", group_id=GROUP, sku_ids=(SKU,), now=NOW)
        assert lagging.reads.count(shard_of("u1", GROUP)) == 2
        assert [r.user_id for r in await a.reservations()] == ["u1"]
        assert [e.row async for e in state.query(LEDGER_TABLE, SKU)] == ["head", shard_of("u1", GROUP)]
    finally:
        state.close()


async def test_a_worker_reads_the_head_and_only_the_rows_changed_since(tmp_path: Path) -> None:
    """With 500 reservations held, a reserve reads the head and the shard rows another worker changed
    since, not the whole ledger; what the other worker changed (a release) is seen exactly."""
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        recording = LaggingStore(state)
        a = StateSeatStore(recording, timeout=timedelta(hours=24))
        b = StateSeatStore(state, timeout=timedelta(hours=24))
        snapshot = catalogue(sku(SKU, "Microsoft_365_Copilot", enabled=510, consumed=0))
        users = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(500)]
        for user in users:
            assert await b.reserve(snapshot, user_id=user, group_id=GROUP, sku_ids=(SKU,), now=NOW)
        assert await a.headroom(snapshot, (SKU,), now=NOW) == 10
        recording.reads.clear()
        assert await a.reserve(snapshot, user_id="late-1", group_id=GROUP, sku_ids=(SKU,), now=NOW)
        assert recording.reads == ["head"]
        await b.release(users[0], GROUP, ReleaseReason.ERRORED)
        recording.reads.clear()
        assert await a.headroom(snapshot, (SKU,), now=NOW) == 10
        assert recording.reads == ["head", shard_of(users[0], GROUP)]
    finally:
        state.close()
