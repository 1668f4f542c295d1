"""The seat store decodes a SKU's ledger once per ETag: a change made by another worker (another store over
the same state) is still seen at once, so the cache never hides a taken seat."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.seats import ReleaseReason
from tests.unit.test_gate_builders import NOW, catalogue, sku
from tests.unit.test_seat_ledger_shards import GROUP, SKU, anyio_backend  # noqa: F401 -- the fixture

pytestmark = pytest.mark.anyio


async def test_a_reservation_by_another_worker_is_seen_after_a_cached_read(tmp_path: Path) -> None:
    """Worker A reads (and caches) the ledger; B takes the last seats and frees one; A sees each change."""
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        a = StateSeatStore(state, timeout=timedelta(hours=24))
        b = StateSeatStore(state, timeout=timedelta(hours=24))
        snapshot = catalogue(sku(SKU, "Microsoft_365_Copilot", enabled=10, consumed=8))
        assert await a.reserve(snapshot, user_id="u1", group_id=GROUP, sku_ids=(SKU,), now=NOW)
        assert await a.headroom(snapshot, (SKU,), now=NOW) == 1
        assert await a.headroom(snapshot, (SKU,), now=NOW) == 1
        assert await b.reserve(snapshot, user_id="u2", group_id=GROUP, sku_ids=(SKU,), now=NOW)
        assert await a.headroom(snapshot, (SKU,), now=NOW) == 0
        assert not await a.reserve(snapshot, user_id="u3", group_id=GROUP, sku_ids=(SKU,), now=NOW)
        await b.release("u1", GROUP, ReleaseReason.CANCELLED)
        assert {r.user_id for r in await a.reservations()} == {"u2"}
        assert await a.headroom(snapshot, (SKU,), now=NOW) == 1
    finally:
        state.close()
