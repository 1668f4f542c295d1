"""A licensing group's membership from `groups/delta` pages, diffed against what was stored, as data.

Delta answers repeat themselves (a large group spans several items; a change can be replayed), so pages are
folded into a set, the last word on each member winning. A full delta read (no token, or an expired one)
lists every current member and is diffed against the stored set, so a removal made while the token was
lost is still found. Only user members count: group-based licensing does not pass down to nested groups.
Each added or removed member becomes one `member.changed` message on `license-checks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from seatkeeper.core.messages import LICENSE_CHECKS, Message, MessageKind, register_kind

_USER_TYPE: Final = "#microsoft.graph.user"


class Change(StrEnum):
    """What happened to a member."""

    ADDED = "added"
    REMOVED = "removed"


class DetectedBy(StrEnum):
    """How the change was found: an incremental delta round, or a full read diffed against the store."""

    DELTA = "delta"
    FULL_SYNC = "full_sync"


MEMBER_CHANGED: Final = register_kind(
    MessageKind(
        name="member.changed",
        queue=LICENSE_CHECKS,
        description=(
            "A user joined or left a licensing group (found by the group's delta): check the user's Copilot "
            "license. Subject: user id (also the session). Version: `<group>:<change>:<generation>`."
        ),
        schema={
            "type": "object",
            "required": ["user_id", "group_id", "change", "detected_by"],
            "additionalProperties": False,
            "properties": {
                "user_id": {"type": "string", "minLength": 1},
                "group_id": {"type": "string", "minLength": 1},
                "change": {"enum": [c.value for c in Change]},
                "detected_by": {"enum": [d.value for d in DetectedBy]},
            },
        },
    )
)


@dataclass(frozen=True)
class DeltaFold:
    """An incremental round folded: members now present, members now gone, and whether the group went."""

    present: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()
    group_removed: bool = False


@dataclass(frozen=True)
class MembershipDiff:
    """Members added and removed, sorted (stable message order)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not self.added and not self.removed


def _is_user(entry: Mapping[str, Any]) -> bool:
    kind = entry.get("@odata.type")
    return kind is None or (isinstance(kind, str) and kind.lower() == _USER_TYPE)


def _member_entries(item: Mapping[str, Any]) -> Iterable[tuple[str, bool]]:
    """(user id, removed?) for each user entry of an item's `members@delta`."""
    entries = item.get("members@delta")
    if not isinstance(entries, list):
        return
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and _is_user(entry):
            yield entry["id"].lower(), "@removed" in entry


def _for_group(items: Iterable[Mapping[str, Any]], group_id: str) -> Iterable[Mapping[str, Any]]:
    wanted = group_id.lower()
    return (i for i in items if isinstance(i.get("id"), str) and i["id"].lower() == wanted)


class DeltaFolder:
    """Folds a round page by page, so no page need be kept: a full read of a group of 100,000 holds its
    member ids, not 100,000 `members@delta` entries (issue 12 item 3). Later entries override earlier ones."""

    def __init__(self, group_id: str) -> None:
        self._group_id = group_id
        self._state: dict[str, bool] = {}
        self._group_removed = False

    def add(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Fold the next items of the round (those of other groups are ignored)."""
        for item in _for_group(items, self._group_id):
            if "@removed" in item:
                self._group_removed = True
                self._state.clear()
                continue
            self._group_removed = False
            for member, removed in _member_entries(item):
                self._state[member] = not removed

    def fold(self) -> DeltaFold:
        """The round so far: members present, members gone, whether the group went."""
        return DeltaFold(
            present=frozenset(m for m, here in self._state.items() if here),
            gone=frozenset(m for m, here in self._state.items() if not here),
            group_removed=self._group_removed,
        )


def fold_delta(items: Iterable[Mapping[str, Any]], group_id: str) -> DeltaFold:
    """Fold an incremental round's items for `group_id`; later entries override earlier ones."""
    folder = DeltaFolder(group_id)
    folder.add(items)
    return folder.fold()


def full_members(items: Iterable[Mapping[str, Any]], group_id: str) -> frozenset[str]:
    """Every current user member according to a full round (an absent or removed group has none)."""
    return apply_fold(frozenset(), fold_delta(items, group_id))


def apply_fold(stored: frozenset[str], fold: DeltaFold) -> frozenset[str]:
    """The member set after an incremental round."""
    if fold.group_removed:
        return frozenset()
    return (stored - fold.gone) | fold.present


def diff(before: frozenset[str], after: frozenset[str]) -> MembershipDiff:
    """Who joined and who left between two member sets."""
    return MembershipDiff(tuple(sorted(after - before)), tuple(sorted(before - after)))


def member_messages(
    group_id: str, changes: MembershipDiff, *, generation: int, detected_by: DetectedBy, correlation_id: str
) -> list[Message]:
    """One `member.changed` per added or removed member; ids fixed by (group, change, generation)."""
    messages: list[Message] = []
    for change, users in ((Change.ADDED, changes.added), (Change.REMOVED, changes.removed)):
        for user_id in users:
            messages.append(
                Message(
                    queue=LICENSE_CHECKS,
                    kind=MEMBER_CHANGED.name,
                    subject=user_id,
                    version=f"{group_id}:{change.value}:{generation}",
                    correlation_id=correlation_id,
                    payload={
                        "user_id": user_id,
                        "group_id": group_id,
                        "change": change.value,
                        "detected_by": detected_by.value,
                    },
                    session_id=user_id,
                )
            )
    return messages
