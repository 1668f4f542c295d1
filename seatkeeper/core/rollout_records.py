"""Recorded rollouts in the state store: one header row and one progress row per listed person, so a run
resumes where it stopped and the service can read every rollout back as a named rule (`RolloutRule`).

Table `rollouts`, partition = rollout name; row `_rollout` = the header (group, who, when, source file);
rows `p-<hash>` = one person each (`PersonPlan`). Partition `_users` (no rollout name starts with `_`)
indexes the people a rollout keeps by object id, so one point read answers "which rollout keeps this user"
(`rollout_of`, `target_with_rollouts`) for a mover or reconciliation decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from seatkeeper.core.errors import PolicyConflict
from seatkeeper.core.hr_rules import RuleChoice
from seatkeeper.core.people import Person
from seatkeeper.core.policy import Policy
from seatkeeper.core.ports import Entity, StateStore
from seatkeeper.core.rollout import (
    IdKind,
    ListedPerson,
    PersonPlan,
    Planned,
    RolloutRule,
    check_name,
    choose_target,
)

ROLLOUTS_TABLE: Final = "rollouts"
_HEADER_ROW: Final = "_rollout"
_USERS: Final = "_users"
# The people a recorded rollout keeps: everyone found, except those Graph or the write guard refused.
_KEPT: Final = frozenset(set(Planned) - {Planned.NOT_FOUND, Planned.REFUSED})


@dataclass(frozen=True)
class RolloutHeader:
    """What a recorded rollout is: its name, group, who started it, when, and from which file."""

    name: str
    group_id: str
    requested_by: str
    created_at: datetime
    source: str


def _person_data(plan: PersonPlan, now: datetime) -> dict[str, Any]:
    return {
        "line": plan.listed.line,
        "kind": plan.listed.kind.value,
        "value": plan.listed.value,
        "user_id": plan.user_id,
        "upn": plan.upn,
        "state": plan.state.value,
        "reasons": list(plan.reasons),
        "summary": plan.summary,
        "updated_at": now.isoformat(),
    }


def _plan_of(entity: Entity) -> PersonPlan:
    data = entity.data
    listed = ListedPerson(int(data["line"]), IdKind(str(data["kind"])), str(data["value"]))
    return PersonPlan(
        listed,
        str(data["user_id"]) if data.get("user_id") else None,
        str(data["upn"]) if data.get("upn") else None,
        Planned(str(data["state"])),
        tuple(str(r) for r in data.get("reasons") or ()),
        str(data.get("summary") or ""),
    )


def _header_of(entity: Entity) -> RolloutHeader:
    data = entity.data
    return RolloutHeader(
        entity.partition,
        str(data["group_id"]),
        str(data["requested_by"]),
        datetime.fromisoformat(str(data["created_at"])),
        str(data.get("source") or ""),
    )


class RolloutRecords:
    """Read and write recorded rollouts through the StateStore port."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def header(self, name: str) -> RolloutHeader | None:
        """The rollout's header, or None when no rollout has this name."""
        entity = await self._store.get(ROLLOUTS_TABLE, check_name(name), _HEADER_ROW)
        return _header_of(entity) if entity is not None else None

    async def start(self, header: RolloutHeader) -> RolloutHeader:
        """Record a new rollout, or return the existing one to resume (PolicyConflict for another group)."""
        existing = await self.header(header.name)
        if existing is not None:
            if existing.group_id.lower() != header.group_id.lower():
                raise PolicyConflict(
                    f"rollout {header.name!r} targets group {existing.group_id}; "
                    "use another name or remove it first"
                )
            return existing
        await self._store.upsert(
            ROLLOUTS_TABLE,
            check_name(header.name),
            _HEADER_ROW,
            {
                "group_id": header.group_id.lower(),
                "requested_by": header.requested_by,
                "created_at": header.created_at.isoformat(),
                "source": header.source,
            },
        )
        return header

    async def plans(self, name: str) -> dict[str, PersonPlan]:
        """Every recorded person of the rollout, by progress row key."""
        found: dict[str, PersonPlan] = {}
        async for entity in self._store.query(ROLLOUTS_TABLE, check_name(name)):
            if entity.row != _HEADER_ROW:
                found[entity.row] = _plan_of(entity)
        return found

    async def save(self, name: str, plans: Sequence[PersonPlan], *, now: datetime) -> None:
        """Record these people's state (a row each; rewriting one is harmless)."""
        header = await self.header(name)
        for plan in plans:
            await self._store.upsert(ROLLOUTS_TABLE, check_name(name), plan.row_key, _person_data(plan, now))
            if header is None or not plan.user_id:
                continue
            if plan.state in _KEPT:
                await self._store.upsert(
                    ROLLOUTS_TABLE, _USERS, plan.user_id.lower(), {"name": name, "group_id": header.group_id}
                )
            else:
                await self._unindex(name, plan.user_id)

    async def _unindex(self, name: str, user_id: str) -> None:
        index = await self._store.get(ROLLOUTS_TABLE, _USERS, user_id.lower())
        if index is not None and index.data.get("name") == name:
            await self._store.delete(ROLLOUTS_TABLE, _USERS, index.row, etag=index.etag)

    async def rollout_of(self, user_id: str) -> RolloutRule | None:
        """The recorded rollout that keeps this user (one point read), or None."""
        entity = await self._store.get(ROLLOUTS_TABLE, _USERS, user_id.strip().lower())
        if entity is None:
            return None
        group_id = str(entity.data["group_id"]).lower()
        return RolloutRule(str(entity.data["name"]), group_id, frozenset({entity.row}))

    async def names(self) -> tuple[RolloutHeader, ...]:
        """Every recorded rollout's header, by name."""
        headers = [
            _header_of(entity)
            async for entity in self._store.query(ROLLOUTS_TABLE)
            if entity.row == _HEADER_ROW
        ]
        return tuple(sorted(headers, key=lambda h: h.name))

    async def rules(self) -> tuple[RolloutRule, ...]:
        """Every recorded rollout as the named rule the policy carries (`Policy.rollouts`)."""
        groups: dict[str, str] = {}
        members: dict[str, set[str]] = {}
        async for entity in self._store.query(ROLLOUTS_TABLE):
            if entity.partition == _USERS:
                continue
            if entity.row == _HEADER_ROW:
                groups[entity.partition] = str(entity.data["group_id"]).lower()
                continue
            plan = _plan_of(entity)
            if plan.user_id and plan.state in _KEPT:
                members.setdefault(entity.partition, set()).add(plan.user_id.lower())
        return tuple(
            RolloutRule(name, group, frozenset(members.get(name, ())))
            for name, group in sorted(groups.items())
        )

    async def remove(self, name: str) -> int:
        """Forget a rollout (its rule and progress); returns the rows deleted (0: there was none)."""
        rows = [entity async for entity in self._store.query(ROLLOUTS_TABLE, check_name(name))]
        for entity in rows:
            user = entity.data.get("user_id") if entity.row != _HEADER_ROW else None
            if user:
                await self._unindex(name, str(user))
            await self._store.delete(ROLLOUTS_TABLE, name, entity.row)
        return len(rows)


async def with_rollouts(policy: Policy, records: RolloutRecords) -> Policy:
    """The policy carrying every recorded rollout (what-if and other whole-tenant reads)."""
    return replace(policy, rollouts=await records.rules())


async def target_with_rollouts(policy: Policy, person: Person, records: RolloutRecords) -> RuleChoice:
    """The group a person belongs in for a mover or reconciliation decision: the rollout that keeps them
    (one point read), else the HR rules — `choose_target` over the policy plus that one rollout."""
    rollout = await records.rollout_of(person.id)
    kept = (*policy.rollouts, rollout) if rollout is not None else policy.rollouts
    return choose_target(replace(policy, rollouts=kept), person)
