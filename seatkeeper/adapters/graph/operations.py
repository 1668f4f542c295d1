"""Names of Graph operations for counters and logs (`GET /users/{id}`), and the counters themselves."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Final
from urllib.parse import urlsplit

from seatkeeper.core.graph_port import OperationCount

# Path segments that are object ids, UPNs or opaque tokens become `{id}`, so one name covers one operation.
_ID_SEGMENT: Final = re.compile(
    r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}(_.*)?|[^/]*@[^/]*|[0-9]{6,})$"
)
# `servicePrincipals(appId='...')` keeps its name and key: `servicePrincipals(appId={id})`.
_KEY_SEGMENT: Final = re.compile(r"^([A-Za-z]+)\(([A-Za-z]+)=[^)]*\)$")
WRITE_METHODS: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def operation_name(method: str, url: str, version_path: str = "") -> str:
    """`GET /users/{id}` for `GET https://host/v1.0/users/0b6e...?$select=id`."""
    path = urlsplit(url).path
    if version_path and path.startswith(version_path):
        path = path[len(version_path) :]
    segments = [
        "{id}" if _ID_SEGMENT.match(s) else _KEY_SEGMENT.sub(r"\1(\2={id})", s) for s in path.split("/")
    ]
    return f"{method.upper()} {'/'.join(segments) or '/'}"


class OperationCounters:
    """Thread-safe counts of requests, inner requests and writes per operation."""

    def __init__(self) -> None:
        self._counts: dict[str, OperationCount] = {}
        self._lock = threading.Lock()

    def request(self, op: str, *, write: bool) -> None:
        """One HTTP request sent (a write if it changes something)."""
        self._add(op, requests=1, writes=int(write))

    def inner(self, op: str, *, write: bool) -> None:
        """One request inside a `$batch`."""
        self._add(op, inner_requests=1, writes=int(write))

    def _add(self, op: str, *, requests: int = 0, inner_requests: int = 0, writes: int = 0) -> None:
        with self._lock:
            count = self._counts.get(op, OperationCount())
            self._counts[op] = replace(
                count,
                requests=count.requests + requests,
                inner_requests=count.inner_requests + inner_requests,
                writes=count.writes + writes,
            )

    def snapshot(self) -> Mapping[str, OperationCount]:
        """The counts so far, by operation."""
        with self._lock:
            return dict(self._counts)
