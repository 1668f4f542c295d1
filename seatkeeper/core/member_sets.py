"""The last known member set and delta link of each licensing group, in the state store.

Table `groupmembers`, partition = group id: row `head` holds the delta link, the generation (one more per
catch-up that changed something; part of the ids of the messages it emitted) and the count; rows `m-0` …
`m-f` hold the members, sharded by a hash of the user id so a group of 100,000 stays within Table Storage's
entity size. Shards are written before the head: a crash in between replays the round from the old link,
which the diff against the already-written shards turns into no new message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from seatkeeper.core.ports import Entity, StateStore

MEMBERS_TABLE: Final = "groupmembers"
HEAD: Final = "head"
SHARDS: Final = tuple(f"m-{i:x}" for i in range(16))


def shard_of(user_id: str) -> str:
    """The shard row a member is kept in."""
    return f"m-{hashlib.sha256(user_id.lower().encode('utf-8')).hexdigest()[0]}"


@dataclass(frozen=True)
class GroupSync:
    """A group's stored sync state: where delta continues, which generation, who the members are."""

    group_id: str
    delta_link: str | None
    generation: int
    members: frozenset[str]
    synced_at: datetime | None
    head_etag: str | None = None


class MemberSets:
    """Each licensing group's sync state; the head is replaced with its etag (no lost update)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def load(self, group_id: str) -> GroupSync | None:
        """The group's state, or None before its first sync."""
        head = await self._store.get(MEMBERS_TABLE, group_id, HEAD)
        if head is None:
            return None
        members: set[str] = set()
        async for entity in self._store.query(MEMBERS_TABLE, group_id):
            if entity.row != HEAD:
                members.update(str(m) for m in entity.data.get("members", ()))
        synced = head.data.get("synced_at")
        return GroupSync(
            group_id=group_id,
            delta_link=head.data.get("delta_link") or None,
            generation=int(head.data.get("generation", 0)),
            members=frozenset(members),
            synced_at=datetime.fromisoformat(str(synced)) if synced else None,
            head_etag=head.etag,
        )

    async def save(
        self,
        previous: GroupSync | None,
        *,
        group_id: str,
        members: frozenset[str],
        delta_link: str,
        generation: int,
        now: datetime,
    ) -> None:
        """Write changed shards, then the head (conditional on the etag read with `previous`)."""
        before = previous.members if previous is not None else frozenset()
        changed = _changed_shards(before, members)
        # One hash per member, not one per member and changed shard (16 on a first sync of 100,000).
        shards: dict[str, list[str]] = {row: [] for row in changed}
        if changed:
            for member in members:
                rows = shards.get(shard_of(member))
                if rows is not None:
                    rows.append(member)
        for row in changed:
            shard = sorted(shards[row])
            if shard:
                await self._store.upsert(MEMBERS_TABLE, group_id, row, {"members": shard})
            else:
                await self._store.delete(MEMBERS_TABLE, group_id, row)
        head = {
            "delta_link": delta_link,
            "generation": generation,
            "count": len(members),
            "synced_at": now.isoformat(),
        }
        current = await self._store.get(MEMBERS_TABLE, group_id, HEAD)
        if previous is None or current is None:
            await self._store.upsert(MEMBERS_TABLE, group_id, HEAD, head)
            return
        await self._store.replace(
            Entity(MEMBERS_TABLE, group_id, HEAD, current.data, previous.head_etag or ""), head
        )


def _changed_shards(before: frozenset[str], after: frozenset[str]) -> list[str]:
    touched = {shard_of(m) for m in before ^ after}
    return sorted(touched)
