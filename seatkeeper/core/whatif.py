"""What-if (`seatkeeper whatif`): the current and a new policy evaluated over the same people, person by
person, through the same `choose_target()` and `decide()` the service uses — who would gain a Copilot seat,
lose it or change group, and why, with the seat balance after the change. Pure: fed one Graph user at a
time, it keeps counters only, so a tenant of any size is previewed in flat memory.

Where a policy has neither HR rules nor recorded rollouts, Seatkeeper does not choose groups: people stay
in the licensing group they are in. Seats are not a per-person blocker here (the gate is asked with seats
not counted); they are reported once, as the balance per Copilot SKU.

A person who would lose their seat or change group leaves a group; whether Seatkeeper would take them out
is removal safety's answer under the new policy (`removal_safety.removal_refusal`: only members it added,
unless the group is authoritative; never protected users, observe-only or read-only groups). The caller
reads who Seatkeeper added (`SeatStore.addition`) and settles each such change (`WhatIf.settle`): the report
says who Seatkeeper would remove and who it would leave in place for an admin, with counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from seatkeeper.core.gate import Outcome, decide
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.membership_rule import Rule, matches
from seatkeeper.core.people import Person
from seatkeeper.core.person_mapping import PERSON_SELECT, person_from_entra
from seatkeeper.core.policy import Policy
from seatkeeper.core.reasons import Reason
from seatkeeper.core.removal_safety import removal_refusal
from seatkeeper.core.rollout import choose_target
from seatkeeper.core.skus import SkuCatalogue

WHATIF_SELECT: Final = (*PERSON_SELECT, "country")
"""Everything one page of `GET /users?$select=` must carry: the gate's fields, the rules' attributes and
the attributes a membershipRule preview reads."""

# The gate is asked as if seats were plentiful: seats are one balance, not 100,000 verdicts.
_SEATS_NOT_COUNTED: Final = 1_000_000_000


class Via(StrEnum):
    """What put a person in a group (or in none), besides a named rule or rollout."""

    MEMBER = "member"  # no rules: the licensing group the person is in
    NO_RULE = "no_rule"  # rules exist and none matched


class Change(StrEnum):
    """How a person's Copilot seat differs between the current and the new policy."""

    GAIN = "gain"
    LOSE = "lose"
    CHANGE_GROUP = "change_group"
    # The new policy puts the person in a group, but the gate blocks them (reasons say why).
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Placement:
    """Where one policy puts one person: the group (None: none), whether they hold or would get a seat
    through it, what chose the group (`rule:<name>`, `rollout:<name>`, member, no_rule), and the gate's
    reasons."""

    group_id: str | None
    seated: bool
    via: str
    reasons: tuple[str, ...] = ()


# Why a person who loses their seat keeps it although no group of Seatkeeper's is left: the license comes
# from a direct assignment or a group the policies do not manage (Seatkeeper removes nothing there).
NOT_IN_A_LICENSING_GROUP: Final = "licensed_outside_licensing_groups"


@dataclass(frozen=True)
class Removal:
    """Leaving one group: whether Seatkeeper would remove the member (`why_not` None) or leave them there
    for an admin (`why_not`: the removal-safety refusal)."""

    group_id: str
    why_not: str | None

    @property
    def seatkeeper_removes(self) -> bool:
        """True when Seatkeeper would take the member out of the group itself."""
        return self.why_not is None


@dataclass(frozen=True)
class PersonChange:
    """One person whose seat or group differs, with both placements; `leaving` the licensing groups the
    person is in and would leave, `removals` what Seatkeeper would do about each (once settled)."""

    user_id: str
    upn: str | None
    change: Change
    before: Placement
    after: Placement
    leaving: tuple[str, ...] = ()
    removals: tuple[Removal, ...] | None = None

    @property
    def seatkeeper_removes(self) -> bool | None:
        """For a settled lose or change of group: True when Seatkeeper would take the person out of every
        group they leave; False when at least one removal is left to an admin; None for other changes."""
        if self.removals is None:
            return None
        return bool(self.removals) and all(r.seatkeeper_removes for r in self.removals)

    def left_because(self) -> tuple[str, ...]:
        """Why the removals Seatkeeper would not do are left to an admin (empty: it removes them all)."""
        if self.removals is None:
            return ()
        if not self.removals:
            return (NOT_IN_A_LICENSING_GROUP,)
        return tuple(dict.fromkeys(r.why_not for r in self.removals if r.why_not is not None))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        removal = (
            None
            if self.removals is None
            else {
                "seatkeeper_removes": self.seatkeeper_removes,
                "left_because": list(self.left_because()),
                "groups": [
                    {"group_id": r.group_id, "seatkeeper_removes": r.seatkeeper_removes, "why_not": r.why_not}
                    for r in self.removals
                ],
            }
        )
        return {
            "user_id": self.user_id,
            "upn": self.upn,
            "change": self.change.value,
            "from_group": self.before.group_id,
            "to_group": self.after.group_id,
            "before": {
                "via": self.before.via,
                "seated": self.before.seated,
                "reasons": list(self.before.reasons),
            },
            "after": {
                "via": self.after.via,
                "seated": self.after.seated,
                "reasons": list(self.after.reasons),
            },
            "removal": removal,
        }


def member_groups(person: Person, policy: Policy) -> tuple[str, ...]:
    """The policy's licensing groups the person is a member of (seen in `licenseAssignmentStates`)."""
    found = dict.fromkeys(
        a.assigned_by_group for a in person.license_assignments if a.assigned_by_group is not None
    )
    return tuple(g for g in found if policy.group(g) is not None)


def place(
    person: Person,
    policy: Policy,
    *,
    groups: Mapping[str, GroupSnapshot],
    catalogue: SkuCatalogue,
    now: datetime,
) -> Placement:
    """Where `policy` puts `person`, gated by `decide()` (observe-only groups seat nobody new)."""
    if policy.hr_rules or policy.rollouts:
        choice = choose_target(policy, person)
        group_id = choice.group_id
        via = (
            (choice.rule if choice.rule.startswith("rollout:") else f"rule:{choice.rule}")
            if choice.rule
            else Via.NO_RULE.value
        )
    else:
        current = member_groups(person, policy)
        group_id = current[0] if current else None
        via = Via.MEMBER.value if current else Via.NO_RULE.value
    if group_id is None:
        return Placement(None, False, via)
    licensing = policy.group(group_id)
    snapshot = groups.get(group_id.lower()) or GroupSnapshot(id=group_id.lower())
    decision = decide(
        person,
        group=snapshot,
        policy=policy,
        catalogue=catalogue,
        free_seats=_SEATS_NOT_COUNTED,
        now=now,
        why="whatif",
    )
    observe_only = licensing is not None and licensing.observe_only
    seated = decision.outcome in (Outcome.ALREADY_LICENSED, Outcome.ALREADY_MEMBER) or (
        decision.outcome is Outcome.ELIGIBLE and not observe_only
    )
    return Placement(group_id.lower(), seated, via, tuple(r.value for r in decision.reasons))


def compare(before: Placement, after: Placement) -> Change | None:
    """The change from `before` to `after`, or None when the person keeps the same seat (or none)."""
    if after.seated and not before.seated:
        return Change.GAIN
    if before.seated and not after.seated:
        return Change.LOSE
    if before.group_id == after.group_id:
        return None
    if before.seated and after.seated:
        return Change.CHANGE_GROUP
    if after.group_id is not None and not after.seated:
        return Change.BLOCKED
    return None


@dataclass(frozen=True)
class SkuBalance:
    """One Copilot SKU: seats enabled, consumed now, and consumed after the new policy applies."""

    sku_id: str
    sku_part_number: str
    enabled: int
    consumed: int
    after: int

    @property
    def free_after(self) -> int:
        """Seats left after the change (negative: the new policy needs more seats than there are)."""
        return self.enabled - self.after


@dataclass
class RulePreview:
    """A dynamic group's membershipRule edit, previewed against current attributes."""

    group_id: str
    new: Rule
    old: Rule | None  # None: the current rule is absent or outside the previewable subset
    joins: int = 0
    leaves: int = 0
    matches_after: int = 0

    def observe(self, user: Mapping[str, Any]) -> str | None:
        """`join`, `leave` or None for one user; counted."""
        now_in = self.old is not None and matches(self.old, user)
        then_in = matches(self.new, user)
        self.matches_after += then_in
        if then_in and not now_in:
            self.joins += 1
            return "join"
        if now_in and not then_in:
            self.leaves += 1
            return "leave"
        return None


@dataclass
class WhatIf:
    """The comparison, fed one Graph user (selected with WHATIF_SELECT) at a time; counters only."""

    current: Policy
    new: Policy
    groups: Mapping[str, GroupSnapshot]
    catalogue: SkuCatalogue
    now: datetime
    rules: list[RulePreview] = field(default_factory=list)
    people: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    by_group: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (change, "removes" | "left") for settled loses and group changes; (change, why) for those left.
    removals: Counter[tuple[str, str]] = field(default_factory=Counter)
    left_because: Counter[tuple[str, str]] = field(default_factory=Counter)
    _seat_delta: Counter[str] = field(default_factory=Counter)

    def observe(self, user: Mapping[str, Any]) -> PersonChange | None:
        """Evaluate one user under both policies; the change, if any (also counted)."""
        self.people += 1
        person = person_from_entra(user)
        before = place(person, self.current, groups=self.groups, catalogue=self.catalogue, now=self.now)
        after = place(person, self.new, groups=self.groups, catalogue=self.catalogue, now=self.now)
        self._count_seats(person, after)
        change = compare(before, after)
        if change is None:
            return None
        self.changes[change.value] += 1
        if before.group_id and before.seated and change is not Change.GAIN:
            self.by_group[(before.group_id, "out")] += 1
        if after.group_id and after.seated:
            self.by_group[(after.group_id, "in")] += 1
        leaving = self._leaving(person, after) if change in (Change.LOSE, Change.CHANGE_GROUP) else ()
        return PersonChange(person.id, person.user_principal_name, change, before, after, leaving)

    def _leaving(self, person: Person, after: Placement) -> tuple[str, ...]:
        """The licensing groups (of either policy) the person is in that the new placement leaves."""
        managed = {g.id.lower() for p in (self.current, self.new) for g in p.licensing_groups}
        kept = after.group_id if after.seated else None
        groups = (a.assigned_by_group for a in person.license_assignments)
        return tuple(dict.fromkeys(g for g in groups if g is not None and g in managed and g != kept))

    def settle(self, change: PersonChange, *, added_by_seatkeeper: frozenset[str]) -> PersonChange:
        """A lose or change of group with removal safety's answer for each group left, under the new policy
        (`added_by_seatkeeper`: the groups among `leaving` Seatkeeper added this person to); counted.
        Other changes come back as they are."""
        if change.change not in (Change.LOSE, Change.CHANGE_GROUP):
            return change
        removals = tuple(
            Removal(group_id, self._refusal(change, group_id, group_id in added_by_seatkeeper))
            for group_id in change.leaving
        )
        settled = replace(change, removals=removals)
        self.removals[(change.change.value, "removes" if settled.seatkeeper_removes else "left")] += 1
        for why in settled.left_because():
            self.left_because[(change.change.value, why)] += 1
        return settled

    def _refusal(self, change: PersonChange, group_id: str, added: bool) -> str | None:
        refusal = removal_refusal(
            self.new,
            user_id=change.user_id,
            user_principal_name=change.upn,
            group=self.groups.get(group_id) or GroupSnapshot(id=group_id),
            added_by_seatkeeper=added,
        )
        return refusal.value if refusal is not None else None

    def _group_skus(self, group_id: str | None) -> frozenset[str]:
        found: set[str] = set()
        for policy in (self.current, self.new):
            licensing = policy.group(group_id) if group_id else None
            if licensing is not None:
                found |= {s.lower() for s in licensing.copilot_sku_ids}
        return frozenset(found)

    def _count_seats(self, person: Person, after: Placement) -> None:
        """Seats held now through a licensing group (active) versus seats the new placement needs."""
        held: set[str] = set()
        for assignment in person.license_assignments:
            group = assignment.assigned_by_group
            if group is not None and assignment.is_active and assignment.sku_id in self._group_skus(group):
                held.add(assignment.sku_id)
        needed: set[str] = set()
        if after.seated and Reason.COPILOT_ASSIGNED_DIRECTLY.value not in after.reasons:
            needed = set(self._group_skus(after.group_id))
            if Reason.ALREADY_LICENSED.value in after.reasons and not held:
                needed = set()  # licensed some other way Seatkeeper does not manage: no seat moves
        for sku in needed - held:
            self._seat_delta[sku] += 1
        for sku in held - needed:
            self._seat_delta[sku] -= 1

    def seat_balance(self) -> tuple[SkuBalance, ...]:
        """Per Copilot SKU of either policy's groups: enabled, consumed now, consumed after."""
        skus = sorted(
            {
                s.lower()
                for p in (self.current, self.new)
                for g in p.licensing_groups
                for s in g.copilot_sku_ids
            }
        )
        rows: list[SkuBalance] = []
        for sku_id in skus:
            sku = self.catalogue.get(sku_id)
            enabled = sku.prepaid_units.enabled if sku is not None else 0
            consumed = sku.consumed_units if sku is not None else 0
            part = sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id
            rows.append(SkuBalance(sku_id, part, enabled, consumed, consumed + self._seat_delta[sku_id]))
        return tuple(rows)

    def summary(self) -> dict[str, Any]:
        """The whole report's numbers, JSON-ready."""
        return {
            "people": self.people,
            "gain": self.changes[Change.GAIN.value],
            "lose": self.changes[Change.LOSE.value],
            "change_group": self.changes[Change.CHANGE_GROUP.value],
            "blocked": self.changes[Change.BLOCKED.value],
            "removals": {
                kind.value: {
                    "seatkeeper_removes": self.removals[(kind.value, "removes")],
                    "left_for_an_admin": self.removals[(kind.value, "left")],
                    "left_because": {
                        why: n
                        for (change, why), n in sorted(self.left_because.items())
                        if change == kind.value
                    },
                }
                for kind in (Change.LOSE, Change.CHANGE_GROUP)
            },
            "groups": {
                group: {"in": self.by_group[(group, "in")], "out": self.by_group[(group, "out")]}
                for group in sorted({g for g, _ in self.by_group})
            },
            "seats": [
                {
                    "sku_id": b.sku_id,
                    "sku_part_number": b.sku_part_number,
                    "enabled": b.enabled,
                    "consumed": b.consumed,
                    "after": b.after,
                    "free_after": b.free_after,
                }
                for b in self.seat_balance()
            ],
            "membership_rules": [
                {
                    "group_id": r.group_id,
                    "baseline": "current rule" if r.old is not None else "none (absent or not previewable)",
                    "joins": r.joins,
                    "leaves": r.leaves,
                    "members_after": r.matches_after,
                }
                for r in self.rules
            ],
        }
