"""Directory change events: one `DirectoryEvent` for every change, whatever caused it.

Seam for part 2 (stable): `state.events.subscribe(callback)`; callbacks run synchronously, in order, for
every change (Graph write, control plane, dynamic-rule re-evaluation, licensing). `at` is business time.
Kinds: `member_added`, `member_removed` (group_id and user_id: the member, which may be a group),
`group_updated`, `group_deleted` (user_id None), `user_updated` (group_id None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

EventKind = Literal["member_added", "member_removed", "group_updated", "group_deleted", "user_updated"]


@dataclass(frozen=True, slots=True)
class DirectoryEvent:
    """One change in the directory."""

    kind: EventKind
    group_id: str | None
    user_id: str | None
    at: datetime


Subscriber = Callable[[DirectoryEvent], None]


class DirectoryEvents:
    """Synchronous fan-out of directory events to subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> None:
        """Call `callback` for every future event."""
        self._subscribers.append(callback)

    def emit(self, event: DirectoryEvent) -> None:
        """Deliver one event to every subscriber."""
        for callback in self._subscribers:
            callback(event)
