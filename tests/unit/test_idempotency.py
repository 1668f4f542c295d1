"""The idempotency record marks a message done only when its handler succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import Unavailable
from seatkeeper.core.idempotency import IdempotencyRecord

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    s.close()


async def test_a_handled_message_does_not_run_again(store: SqliteStateStore) -> None:
    """The second delivery of a handled message skips the handler."""
    record = IdempotencyRecord(store)
    runs: list[str] = []

    async def handler() -> str:
        runs.append("ran")
        return "ok"

    first = await record.run_once("hr-events", "m1", kind="hr.joiner", now=NOW, handler=handler)
    second = await record.run_once("hr-events", "m1", kind="hr.joiner", now=NOW, handler=handler)
    assert (first, second, runs) == ((True, "ok"), (False, None), ["ran"])


async def test_a_failed_handler_leaves_no_mark(store: SqliteStateStore) -> None:
    """A handler that raised is run again on redelivery: nothing was marked."""
    record = IdempotencyRecord(store)

    async def failing() -> None:
        raise Unavailable("graph down")

    with pytest.raises(Unavailable):
        await record.run_once("hr-events", "m1", kind="hr.joiner", now=NOW, handler=failing)
    assert not await record.is_done("hr-events", "m1", now=NOW)


async def test_marks_expire_after_retention_and_are_purged(store: SqliteStateStore) -> None:
    """Past the retention a mark no longer counts, and purge removes it (and only it)."""
    record = IdempotencyRecord(store, retention=timedelta(days=7))
    await record.mark_done("alerts", "old", kind="alert", now=NOW)
    await record.mark_done("alerts", "new", kind="alert", now=NOW + timedelta(days=5))
    later = NOW + timedelta(days=8)
    assert (
        await record.is_done("alerts", "old", now=later),
        await record.is_done("alerts", "new", now=later),
    ) == (
        False,
        True,
    )
    assert await record.purge(now=later) == 1
    assert [e.row async for e in store.query("idempotency")] == ["new"]
