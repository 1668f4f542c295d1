"""The SQLite file under the embedded queue and state store: processes that open a new file at the same
moment (the local host and a CLI, or a test reading the host's state) all get it, none fails on the race."""

from __future__ import annotations

import threading
from pathlib import Path

from seatkeeper.adapters.sqlite_file import SqliteFile


def test_openers_racing_on_a_fresh_file_all_get_it(tmp_path: Path) -> None:
    """SQLite answers "database is locked" at once, without waiting, to a connection switching a file to
    WAL while another creates it; every opener here must still end with the schema."""
    failures: list[BaseException] = []
    for round_ in range(30):
        path = tmp_path / f"{round_}.sqlite3"
        start = threading.Barrier(4)

        def open_it(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            file = SqliteFile(path)
            try:
                file.create("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
                file.connection().execute("SELECT count(*) FROM t").fetchall()
            except BaseException as exc:  # noqa: BLE001 -- collected and asserted below
                failures.append(exc)
            finally:
                file.close()

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
