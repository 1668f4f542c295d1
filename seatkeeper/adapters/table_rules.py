"""Azure Table Storage's naming and size rules, enforced by both state adapters alike.

An entity's data travels as ASCII JSON split into string properties of at most 32,000 characters (a
string property holds 64 KiB of UTF-16); an entity holds at most 1 MiB, so data is capped at 15 chunks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

CHUNK_CHARS: Final = 32_000
MAX_CHUNKS: Final = 15
MAX_DATA_CHARS: Final = CHUNK_CHARS * MAX_CHUNKS

_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_FORBIDDEN_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def check_table(table: str) -> None:
    """Table names: a letter, then 2 to 62 letters or digits."""
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"invalid table name {table!r}: a letter then 2-62 letters or digits")


def check_key(partition: str, row: str) -> None:
    """Partition and row keys: at most 1 KiB, none of / \\ # ? or control characters."""
    for name, key in (("partition", partition), ("row", row)):
        if len(key.encode("utf-8")) > 1024 or _FORBIDDEN_KEY.search(key):
            raise ValueError(f"invalid {name} key: at most 1 KiB, none of / \\ # ? or control characters")


def encode_data(data: Mapping[str, Any]) -> str:
    """The entity data as compact ASCII JSON; ValueError past Table Storage's entity size."""
    text = json.dumps(dict(data), separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    if len(text) > MAX_DATA_CHARS:
        raise ValueError(
            f"entity data of {len(text)} characters exceeds {MAX_DATA_CHARS}: shard it over rows"
        )
    return text


def chunks(text: str) -> dict[str, str]:
    """The data text as properties d00, d01, ... (Table Storage's per-property limit)."""
    return {
        f"d{i:02d}": text[start : start + CHUNK_CHARS]
        for i, start in enumerate(range(0, len(text) or 1, CHUNK_CHARS))
    }


def join_chunks(properties: Mapping[str, Any]) -> str:
    """The data text back from its chunk properties."""
    names = sorted(name for name in properties if re.fullmatch(r"d\d\d", name))
    return "".join(str(properties[name]) for name in names)


def check_commit(partition: str, rows: Sequence[str], limit: int) -> None:
    """An entity group transaction: 1 to `limit` distinct rows of one partition, with valid keys."""
    if not 0 < len(rows) <= limit:
        raise ValueError(f"a commit writes 1 to {limit} rows, not {len(rows)}")
    if len(set(rows)) != len(rows):
        raise ValueError("a commit writes each row at most once")
    for row in rows:
        check_key(partition, row)
