"""One SQLite file shared by threads and processes: a connection per thread, WAL, immediate transactions.

The embedded queue and the embedded state store both sit on this. A commit survives the death of the
process (`kill -9`); `synchronous = NORMAL` in WAL mode only risks the last commits on power loss.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from seatkeeper.core.errors import Unavailable


class SqliteFile:
    """Hands each thread its own connection to one database file and wraps writes in transactions."""

    def __init__(self, path: Path | str, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        if str(path) == ":memory:":
            raise ValueError("a file path is needed: every thread opens its own connection to it")
        self._path = str(path)
        self._busy_ms = int(busy_timeout.total_seconds() * 1000)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use `transaction()` for writes)."""
        if self._closed:
            raise RuntimeError(f"{self._path} is closed")
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
            )
            db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    def _wal(self, db: sqlite3.Connection) -> None:
        """Switch to WAL. SQLite answers "locked" at once, without the busy handler, while another process
        is creating or converting the same file, so wait for it here, up to the busy timeout."""
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    db.close()
                    raise Unavailable(f"sqlite file busy: {exc}") from exc
                time.sleep(0.01)
            else:
                return

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the file's write lock at once (no upgrade deadlocks)."""
        db = self.connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"sqlite file busy: {exc}") from exc
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def create(self, schema: str) -> None:
        """Run `;`-separated DDL statements in one transaction (idempotent `IF NOT EXISTS` DDL)."""
        with self.transaction() as db:
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        """Close every connection opened through this object."""
        self._closed = True
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
