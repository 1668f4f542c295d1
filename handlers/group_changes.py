"""The group-change consumer (`group-changes`, one session per group): a notification is a signal, not the
truth, so the group's delta is read from its stored link and diffed against the stored member set.

An expired or lost delta token is recovered by a full delta read diffed against the stored set, so no
addition and no removal is lost. Each added or removed user becomes one `member.changed` message on
`license-checks` (session = user id). The first sync of a group records its members as the baseline and
emits nothing. The reconciliation timer sends the same catch-up for every licensing group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from handlers.graph_lifecycle import handle_lifecycle
from handlers.subscription_upkeep import UpkeepDeps
from seatkeeper.core.errors import InvalidInput, PermanentError, Rejected, Unavailable
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.member_changes import (
    DeltaFolder,
    DetectedBy,
    MembershipDiff,
    apply_fold,
    diff,
    member_messages,
)
from seatkeeper.core.member_sets import MemberSets
from seatkeeper.core.messages import GROUP_CHANGES, Message, validate
from seatkeeper.core.notifications import (
    GROUP_CHANGED,
    SUBSCRIPTION_LIFECYCLE,
    Reason,
    catch_up_message,
)
from seatkeeper.core.ports import Clock, MessageSender

DELTA_PATH: Final = "/groups/delta"
_LOST_CODES: Final = ("syncstate", "resync", "token")
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class GroupChangeDeps:
    """Ports and policy the consumer works with; `upkeep` handles lifecycle events."""

    graph: GraphPort
    members: MemberSets
    sender: MessageSender
    clock: Clock
    licensing_groups: frozenset[str]
    upkeep: UpkeepDeps | None = None


@dataclass(frozen=True)
class CatchUp:
    """What one catch-up found."""

    group_id: str
    detected_by: DetectedBy
    changes: MembershipDiff
    baseline: bool
    members: int


def token_lost(error: Rejected) -> bool:
    """Graph's answers for a delta token it no longer honours: 410 Gone, or 400 `syncStateNotFound` & co."""
    code = error.code.lower()
    return error.status == 410 or (error.status == 400 and any(c in code for c in _LOST_CODES))


async def _read_round(
    graph: GraphPort, path: str, params: Mapping[str, str] | None, folder: DeltaFolder
) -> str:
    """Fold every page of one delta round as it comes (none is kept); the deltaLink that ends it."""
    link: str | None = None
    async for page in graph.pages(path, params=params):
        folder.add(page.items)
        link = page.delta_link or link
    if link is None:
        raise Unavailable("groups/delta ended without a deltaLink")
    return link


async def catch_up(group_id: str, deps: GroupChangeDeps, *, correlation_id: str) -> CatchUp:
    """Bring the stored member set of `group_id` up to Graph's and emit one message per changed member."""
    stored = await deps.members.load(group_id)
    after: frozenset[str] | None = None
    link = ""
    detected_by = DetectedBy.FULL_SYNC
    if stored is not None and stored.delta_link:
        try:
            folder = DeltaFolder(group_id)
            link = await _read_round(deps.graph, stored.delta_link, None, folder)
            after = apply_fold(stored.members, folder.fold())
            detected_by = DetectedBy.DELTA
        except Rejected as error:
            if not token_lost(error):
                raise
            _log.warning("group.delta_token_lost", group_id=group_id, status=error.status, code=error.code)
    if after is None:
        params = {"$filter": f"id eq '{group_id}'", "$select": "members"}
        folder = DeltaFolder(group_id)
        link = await _read_round(deps.graph, DELTA_PATH, params, folder)
        after = apply_fold(frozenset(), folder.fold())
    changes = diff(stored.members, after) if stored is not None else MembershipDiff()
    generation = (stored.generation if stored is not None else 0) + (0 if changes.empty else 1)
    if not changes.empty:
        await deps.sender.send(
            member_messages(
                group_id,
                changes,
                generation=generation,
                detected_by=detected_by,
                correlation_id=correlation_id,
            )
        )
    await deps.members.save(
        stored, group_id=group_id, members=after, delta_link=link, generation=generation, now=deps.clock.now()
    )
    result = CatchUp(group_id, detected_by, changes, stored is None, len(after))
    _log.info(
        "group.caught_up",
        group_id=group_id,
        detected_by=detected_by.value,
        added=len(changes.added),
        removed=len(changes.removed),
        baseline=result.baseline,
        members=len(after),
    )
    return result


async def handle_message(
    body: bytes, deps: GroupChangeDeps, *, message_id: str = "", session_id: str | None = None
) -> CatchUp | None:
    """One `group-changes` message: lifecycle first when it is one, then the catch-up. None when ignored."""
    try:
        message = Message.from_body(GROUP_CHANGES, body, message_id=message_id, session_id=session_id)
        validate(message)
    except InvalidInput as error:
        _log.error("group.message_invalid", reason=str(error), errors=list(error.errors))
        return None
    group_id = str(message.payload["group_id"]).lower()
    if group_id not in deps.licensing_groups:
        _log.warning("group.not_licensing_group", group_id=group_id, kind=message.kind)
        return None
    if message.kind not in (GROUP_CHANGED.name, SUBSCRIPTION_LIFECYCLE.name):
        _log.error("group.message_kind_unexpected", kind=message.kind)
        return None
    try:
        if message.kind == SUBSCRIPTION_LIFECYCLE.name:
            if deps.upkeep is None:
                raise RuntimeError("lifecycle events need the upkeep dependencies")
            await handle_lifecycle(
                group_id,
                str(message.payload["subscription_id"]),
                str(message.payload["lifecycle_event"]),
                deps.upkeep,
            )
        return await catch_up(group_id, deps, correlation_id=message.correlation_id)
    except PermanentError as error:
        # Retrying will not help (a permission, a refused request): complete, and let reconciliation retry.
        _log.error(
            "group.catch_up_failed", group_id=group_id, error=type(error).__name__, reason=str(error)[:300]
        )
        return None


def reconciliation_messages(group_ids: Iterable[str], tick: str, correlation_id: str) -> list[Message]:
    """One catch-up per licensing group for a reconciliation tick (the tick is part of each id)."""
    return [catch_up_message(g.lower(), Reason.RECONCILE, tick, correlation_id) for g in group_ids]


async def reconcile(
    group_ids: Sequence[str], sender: MessageSender, clock: Clock, *, correlation_id: str
) -> int:
    """The reconciliation timer: queue a catch-up of every licensing group; returns how many."""
    tick = clock.now().isoformat(timespec="minutes")
    messages = reconciliation_messages(group_ids, tick, correlation_id)
    if messages:
        await sender.send(messages)
    _log.info("group.reconciliation_queued", groups=len(messages))
    return len(messages)
