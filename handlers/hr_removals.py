"""Planned and held removals in the state store, and carrying them out behind the blast-radius guard.

Rows of table `hrremovals`: partition `planned` (one row per user and group, planned or done, pruned after
the hour), `held` (what the guard stopped, until an admin releases or discards it), and `guard` (tripped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import structlog

from handlers.license_commands import LicenseDeps
from seatkeeper.core.errors import NotFound
from seatkeeper.core.incidents import Cause, alert_message
from seatkeeper.core.ports import Entity, StateStore
from seatkeeper.core.removal_safety import WINDOW, GuardVerdict, PlannedRemoval, blast_radius_alert, guard
from seatkeeper.core.seats import ReleaseReason

REMOVALS_TABLE: Final = "hrremovals"
PLANNED: Final = "planned"
HELD: Final = "held"
GUARD: Final = "guard"
_GUARD_ROW: Final = "state"
log = structlog.get_logger("seatkeeper.hr")


class Status(StrEnum):
    """Where a planned removal is."""

    PLANNED = "planned"
    DONE = "done"
    HELD = "held"


def _row(user_id: str, group_id: str) -> str:
    return f"{user_id.lower()}_{group_id.lower()}"


def _removal(entity: Entity) -> PlannedRemoval:
    data = entity.data
    return PlannedRemoval(
        user_id=str(data["user_id"]),
        group_id=str(data["group_id"]),
        employee_id=str(data.get("employee_id", "")),
        why=str(data.get("why", "")),
        planned_at=datetime.fromisoformat(str(data["planned_at"])),
    )


def _data(removal: PlannedRemoval, status: Status) -> dict[str, str]:
    return {
        "user_id": removal.user_id,
        "group_id": removal.group_id,
        "employee_id": removal.employee_id,
        "why": removal.why,
        "planned_at": removal.planned_at.isoformat(),
        "status": status.value,
    }


@dataclass(frozen=True)
class Carried:
    """What carrying out one person's planned removals did."""

    removed: tuple[str, ...] = ()
    held: tuple[str, ...] = ()


class RemovalBook:
    """The planned, done and held removals, over the StateStore."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    async def plan(self, removal: PlannedRemoval) -> None:
        """Record a removal to carry out after the settle time (counts against the hour's limit now)."""
        existing = await self._state.get(REMOVALS_TABLE, PLANNED, _row(removal.user_id, removal.group_id))
        if existing is not None and existing.data.get("status") == Status.PLANNED.value:
            return
        await self._state.upsert(
            REMOVALS_TABLE, PLANNED, _row(removal.user_id, removal.group_id), _data(removal, Status.PLANNED)
        )

    async def planned_for(self, employee_id: str) -> tuple[PlannedRemoval, ...]:
        """The removals still to carry out for this person (by employeeId)."""
        return tuple(
            [
                _removal(e)
                async for e in self._state.query(REMOVALS_TABLE, PLANNED)
                if e.data.get("employee_id") == employee_id and e.data.get("status") == Status.PLANNED.value
            ]
        )

    async def window(self, now: datetime) -> list[datetime]:
        """When each removal planned or done within the last hour was planned (older rows are pruned)."""
        times: list[datetime] = []
        async for entity in self._state.query(REMOVALS_TABLE, PLANNED):
            at = datetime.fromisoformat(str(entity.data["planned_at"]))
            if now - at >= WINDOW and entity.data.get("status") != Status.PLANNED.value:
                await self._state.delete(REMOVALS_TABLE, PLANNED, entity.row, etag=entity.etag)
            else:
                times.append(at)
        return times

    async def tripped(self) -> bool:
        """True while the guard holds every removal (until the held ones are released or discarded)."""
        entity = await self._state.get(REMOVALS_TABLE, GUARD, _GUARD_ROW)
        return entity is not None and bool(entity.data.get("tripped"))

    async def _set_tripped(self, tripped: bool, now: datetime) -> None:
        await self._state.upsert(
            REMOVALS_TABLE, GUARD, _GUARD_ROW, {"tripped": tripped, "since": now.isoformat()}
        )

    async def _mark(self, removal: PlannedRemoval, status: Status) -> None:
        row = _row(removal.user_id, removal.group_id)
        if status is Status.HELD:
            await self._state.upsert(REMOVALS_TABLE, HELD, row, _data(removal, status))
        await self._state.upsert(REMOVALS_TABLE, PLANNED, row, _data(removal, status))

    async def held(self) -> tuple[PlannedRemoval, ...]:
        """Every removal the guard holds, oldest plan first."""
        found = [_removal(e) async for e in self._state.query(REMOVALS_TABLE, HELD)]
        return tuple(sorted(found, key=lambda r: (r.planned_at, r.user_id, r.group_id)))

    async def forget_held(self, removal: PlannedRemoval) -> None:
        """Drop one held removal (released or discarded)."""
        await self._state.delete(REMOVALS_TABLE, HELD, _row(removal.user_id, removal.group_id))

    async def done(self, removal: PlannedRemoval) -> None:
        """The member was removed (it keeps counting against the hour's limit)."""
        await self._mark(removal, Status.DONE)

    async def carry_out(
        self, removals: Sequence[PlannedRemoval], deps: LicenseDeps, *, correlation_id: str, version: str
    ) -> Carried:
        """Remove each member unless the guard holds; a hold trips the guard and raises its one incident."""
        if not removals:
            return Carried()
        now = deps.clock.now()
        limit = deps.policy.blast_radius.max_removals_per_hour
        verdict = guard(tripped=await self.tripped(), planned_at=await self.window(now), now=now, limit=limit)
        if verdict is GuardVerdict.HOLD:
            await self._set_tripped(True, now)
            for removal in removals:
                await self._mark(removal, Status.HELD)
            held = len(await self.held())
            signal = blast_radius_alert(held=held, limit=limit, now=now)
            await deps.sender.send([alert_message(signal, correlation_id=correlation_id, version=version)])
            log.warning("hr.removals_held", user_id=removals[0].user_id, held=held, limit=limit)
            return Carried(held=tuple(r.group_id for r in removals))
        removed = [r.group_id for r in removals if await remove(r, deps)]
        for removal in removals:
            await self.done(removal)
        return Carried(removed=tuple(removed))

    async def settle(self, deps: LicenseDeps, *, correlation_id: str, version: str) -> None:
        """Once nothing is held any more: reset the guard and resolve its incident."""
        if await self.held() or not await self.tripped():
            return
        now = deps.clock.now()
        await self._set_tripped(False, now)
        signal = blast_radius_alert(
            held=0, limit=deps.policy.blast_radius.max_removals_per_hour, now=now, cause=Cause.GONE
        )
        await deps.sender.send([alert_message(signal, correlation_id=correlation_id, version=version)])
        log.info("hr.removal_guard_reset")

    async def release(
        self, chosen: Sequence[PlannedRemoval], deps: LicenseDeps, *, correlation_id: str
    ) -> int:
        """An admin lets held removals happen: each member is removed now (the guard was the question)."""
        done = 0
        for removal in chosen:
            await remove(removal, deps)
            await self.forget_held(removal)
            await self.done(removal)
            done += 1
        await self.settle(
            deps, correlation_id=correlation_id, version=f"release:{deps.clock.now().isoformat()}"
        )
        log.info("hr.held_released", removals=done)
        return done

    async def discard(
        self, chosen: Sequence[PlannedRemoval], deps: LicenseDeps, *, correlation_id: str
    ) -> int:
        """An admin drops held removals: the members stay."""
        for removal in chosen:
            await self.forget_held(removal)
            # A discarded removal never happened: it stops counting against the hour's limit.
            await self._state.delete(REMOVALS_TABLE, PLANNED, _row(removal.user_id, removal.group_id))
        await self.settle(
            deps, correlation_id=correlation_id, version=f"discard:{deps.clock.now().isoformat()}"
        )
        log.info("hr.held_discarded", removals=len(chosen))
        return len(chosen)


async def remove(removal: PlannedRemoval, deps: LicenseDeps) -> bool:
    """Remove the member, stop holding its seat and forget the add (a later member is not ours by it);
    False when it was no member (any more)."""
    try:
        removed = await deps.graph.remove_member(removal.group_id, removal.user_id)
    except NotFound:
        removed = False
    await deps.seats.release(removal.user_id, removal.group_id, ReleaseReason.CANCELLED)
    await deps.seats.forget_addition(removal.user_id, removal.group_id)
    log.info(
        "hr.member_removed" if removed else "hr.member_already_gone",
        user_id=removal.user_id,
        group_id=removal.group_id,
    )
    return removed
