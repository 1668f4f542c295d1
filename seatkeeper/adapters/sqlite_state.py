"""The embedded state store: the StateStore port on one SQLite file, with Table Storage's rules.

Keys and table names are checked as Azure Table Storage checks them, so what works here works there.
An etag changes on every write; conditional writes compare it inside one immediate transaction, so two
writers holding the same etag cannot both succeed (no lost update), across threads and processes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from seatkeeper.adapters.sqlite_file import SqliteFile
from seatkeeper.adapters.table_rules import check_commit, check_key, check_table, encode_data
from seatkeeper.core.errors import ConcurrencyConflict, Unavailable
from seatkeeper.core.ports import MAX_COMMIT_WRITES, Entity, RowWrite

_T = TypeVar("_T")

# The file name in the data directory (next to the embedded queue).
EMBEDDED_STATE_FILE: Final = "state.sqlite3"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entities (
    tbl TEXT NOT NULL,
    partition TEXT NOT NULL,
    row TEXT NOT NULL,
    data TEXT NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (tbl, partition, row)
)
"""


# A row's JSON is parsed once per etag (on its write or first read) when it is at least this long (a seat
# ledger shard, a member set), for at most PARSED_ROWS rows: re-parsing unchanged big rows on every read
# made CPU per reserve grow with the reservations held.
PARSE_ONCE_CHARS: Final = 2_048
PARSED_ROWS: Final = 1_024


def _etag() -> str:
    return f'W/"{uuid.uuid4().hex}"'


class SqliteStateStore:
    """Entities in one SQLite file; see the module docstring for the concurrency guarantee."""

    def __init__(self, path: Path | str, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        self._file = SqliteFile(path, busy_timeout=busy_timeout)
        self._file.create(_SCHEMA)
        # (table, partition, row) -> (etag, parsed data), shared read-only by the entities returned.
        self._parsed: OrderedDict[tuple[str, str, str], tuple[str, Mapping[str, Any]]] = OrderedDict()
        self._parsed_guard = threading.Lock()

    def _data(self, key: tuple[str, str, str], text: str, etag: str) -> Mapping[str, Any]:
        """The row's data, parsed once per etag for big rows (an etag changes on every write)."""
        if len(text) < PARSE_ONCE_CHARS:
            small: Mapping[str, Any] = json.loads(text)
            return small
        with self._parsed_guard:
            cached = self._parsed.get(key)
            if cached is not None and cached[0] == etag:
                self._parsed.move_to_end(key)
                return cached[1]
        data: Mapping[str, Any] = json.loads(text)
        with self._parsed_guard:
            self._parsed[key] = (etag, data)
            self._parsed.move_to_end(key)
            while len(self._parsed) > PARSED_ROWS:
                self._parsed.popitem(last=False)
        return data

    def close(self) -> None:
        """Close every connection (call once, at shutdown)."""
        self._file.close()

    async def _run(self, func: Callable[[], _T]) -> _T:
        return await asyncio.to_thread(func)

    async def get(self, table: str, partition: str, row: str) -> Entity | None:
        """The entity at this key, or None."""
        check_table(table)

        def read() -> Entity | None:
            found = (
                self._file.connection()
                .execute(
                    "SELECT data, etag FROM entities WHERE tbl = ? AND partition = ? AND row = ?",
                    (table, partition, row),
                )
                .fetchone()
            )
            if found is None:
                return None
            return Entity(
                table, partition, row, self._data((table, partition, row), found[0], found[1]), found[1]
            )

        return await self._run(read)

    async def insert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        """Create the entity; ConcurrencyConflict if it exists."""
        check_table(table)
        check_key(partition, row)
        text = encode_data(data)

        def write() -> Entity:
            etag = _etag()
            with self._file.transaction() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO entities (tbl, partition, row, data, etag) VALUES (?, ?, ?, ?, ?)",
                    (table, partition, row, text, etag),
                )
                if cursor.rowcount == 0:
                    raise ConcurrencyConflict(f"{table}/{partition}/{row} exists already")
            return Entity(table, partition, row, self._data((table, partition, row), text, etag), etag)

        return await self._run(write)

    async def replace(self, entity: Entity, data: Mapping[str, Any]) -> Entity:
        """Overwrite the entity if its etag still matches; ConcurrencyConflict if not (or gone)."""
        text = encode_data(data)

        def write() -> Entity:
            etag = _etag()
            with self._file.transaction() as db:
                cursor = db.execute(
                    "UPDATE entities SET data = ?, etag = ? WHERE tbl = ? AND partition = ? AND row = ? "
                    "AND etag = ?",
                    (text, etag, entity.table, entity.partition, entity.row, entity.etag),
                )
                if cursor.rowcount == 0:
                    raise ConcurrencyConflict(f"{entity.table}/{entity.partition}/{entity.row} changed")
            key = (entity.table, entity.partition, entity.row)
            return Entity(*key, self._data(key, text, etag), etag)

        return await self._run(write)

    async def upsert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        """Write the entity whatever is there."""
        check_table(table)
        check_key(partition, row)
        text = encode_data(data)

        def write() -> Entity:
            etag = _etag()
            with self._file.transaction() as db:
                db.execute(
                    "INSERT INTO entities (tbl, partition, row, data, etag) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (tbl, partition, row) "
                    "DO UPDATE SET data = excluded.data, etag = excluded.etag",
                    (table, partition, row, text, etag),
                )
            return Entity(table, partition, row, self._data((table, partition, row), text, etag), etag)

        return await self._run(write)

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        """Delete the entity (if `etag` is given, only if it still matches; ConcurrencyConflict if not).

        Deleting what is not there is not an error.
        """
        check_table(table)

        def write() -> None:
            with self._file.transaction() as db:
                current = db.execute(
                    "SELECT etag FROM entities WHERE tbl = ? AND partition = ? AND row = ?",
                    (table, partition, row),
                ).fetchone()
                if current is None:
                    return
                if etag is not None and current[0] != etag:
                    raise ConcurrencyConflict(f"{table}/{partition}/{row} changed")
                db.execute(
                    "DELETE FROM entities WHERE tbl = ? AND partition = ? AND row = ?",
                    (table, partition, row),
                )

        await self._run(write)

    async def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]:
        """Every entity of a table (or of one partition), ordered by partition and row."""
        check_table(table)

        def read() -> list[Entity]:
            sql = "SELECT partition, row, data, etag FROM entities WHERE tbl = ?"
            params: tuple[str, ...] = (table,)
            if partition is not None:
                sql += " AND partition = ?"
                params = (table, partition)
            rows = self._file.connection().execute(sql + " ORDER BY partition, row", params).fetchall()
            return [Entity(table, p, r, self._data((table, p, r), d, e), e) for p, r, d, e in rows]

        for entity in await self._run(read):
            yield entity

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]:
        """Write the rows of one partition in one transaction, all or nothing (see StateStore)."""
        check_table(table)
        check_commit(partition, [w.row for w in writes], MAX_COMMIT_WRITES)
        texts = [encode_data(w.data) for w in writes]

        def write() -> tuple[Entity, ...]:
            etags = [_etag() for _ in writes]
            with self._file.transaction() as db:
                for w, text, etag in zip(writes, texts, etags, strict=True):
                    if w.etag is None:
                        cursor = db.execute(
                            "INSERT OR IGNORE INTO entities (tbl, partition, row, data, etag) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (table, partition, w.row, text, etag),
                        )
                    else:
                        cursor = db.execute(
                            "UPDATE entities SET data = ?, etag = ? "
                            "WHERE tbl = ? AND partition = ? AND row = ? AND etag = ?",
                            (text, etag, table, partition, w.row, w.etag),
                        )
                    if cursor.rowcount == 0:  # the transaction rolls back: nothing is written
                        raise ConcurrencyConflict(f"{table}/{partition}/{w.row} exists or changed")
            return tuple(
                Entity(table, partition, w.row, self._data((table, partition, w.row), text, etag), etag)
                for w, text, etag in zip(writes, texts, etags, strict=True)
            )

        return await self._run(write)

    async def check(self) -> None:
        """Probe for health: the file answers a read."""

        def probe() -> None:
            try:
                self._file.connection().execute("SELECT 1 FROM entities LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise Unavailable(f"state store unreadable: {type(exc).__name__}") from exc

        await self._run(probe)
