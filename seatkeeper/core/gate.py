"""The license gate: one pure `decide()` that every path (events, reconciliation, CLIs) calls before a person
enters a Copilot licensing group. It returns the outcome, machine-readable reasons, one human sentence and
the commands that carry it out; it performs nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from seatkeeper.core.base_licenses import BaseLicenseCheck, check_base_license
from seatkeeper.core.commands import (
    TENANT_WRITES,
    AddToGroup,
    ClearPending,
    Command,
    JoinWaitlist,
    RaiseAlert,
    RecordPending,
    ReserveSeat,
    ScheduleRecheck,
    SetUsageLocation,
)
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import Fact
from seatkeeper.core.license_alerts import finding_alert, seat_shortage_alert
from seatkeeper.core.license_errors import entry_for
from seatkeeper.core.people import AssignmentState, LicenseAssignment, Person
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import WaitSource
from seatkeeper.core.skus import SkuCatalogue
from seatkeeper.core.usage_locations import usable_fix
from seatkeeper.core.verification import next_check_at


class Outcome(StrEnum):
    """What the gate decided."""

    ELIGIBLE = "eligible"
    BLOCKED = "blocked"
    ALREADY_LICENSED = "already_licensed"
    ALREADY_MEMBER = "already_member"


@dataclass(frozen=True)
class Decision:
    """The gate's answer: outcome, reasons (blockers or notes), warnings, commands and one sentence."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...]
    commands: tuple[Command, ...]
    summary: str
    evidence: tuple[Fact, ...] = ()

    @property
    def writes_tenant(self) -> bool:
        """True when carrying out the decision changes the tenant (adds, usage location)."""
        return any(isinstance(c, TENANT_WRITES) for c in self.commands)


@dataclass(frozen=True)
class _Gate:
    person: Person
    group: GroupSnapshot
    policy: Policy
    catalogue: SkuCatalogue
    free_seats: int
    now: datetime
    why: str

    @property
    def label(self) -> str:
        return self.person.user_principal_name or self.person.id

    @property
    def group_label(self) -> str:
        return self.group.display_name or self.group.id

    def alert(self, reason: Reason, sentence: str, *, sku_id: str | None = None) -> tuple[Command, ...]:
        signal = finding_alert(
            reason, person=self.person, now=self.now, sentence=sentence, group_id=self.group.id, sku_id=sku_id
        )
        return (RaiseAlert(signal),) if signal is not None else ()


_PROPER_NOUNS = ("Copilot", "Exchange")


def _phrase(reason: Reason) -> str:
    """The catalogue title as a phrase inside a sentence (proper nouns keep their capital)."""
    title = entry_for(reason).title
    return title if title.startswith(_PROPER_NOUNS) else title[0].lower() + title[1:]


def _sentence(label: str, group: str, reasons: tuple[Reason, ...]) -> str:
    because = "; ".join(_phrase(r) for r in reasons)
    return f"{label} is not added to {group}: {because}."


def _copilot_sku_ids(
    person: Person, catalogue: SkuCatalogue, policy: Policy, group: LicensingGroup
) -> frozenset[str]:
    """The SKUs the person holds or is being assigned that are Copilot SKUs (policy list or service plan)."""
    found = {s.lower() for s in group.copilot_sku_ids} & person.held_sku_ids()
    for sku_id in person.held_sku_ids():
        sku = catalogue.get(sku_id)
        plan_ids = tuple(p.service_plan_id for p in sku.service_plans) if sku is not None else ()
        plan_names = tuple(p.service_plan_name for p in sku.service_plans) if sku is not None else ()
        if policy.copilot_skus.matches(sku_id, plan_ids, plan_names):
            found.add(sku_id)
    return frozenset(found)


def _active_copilot(person: Person, copilot: frozenset[str]) -> tuple[LicenseAssignment, ...]:
    active = tuple(a for a in person.assignments_for(copilot) if a.is_active)
    if active or person.assignments_for(copilot):
        return active
    # No state entries: an `assignedLicenses` entry alone is an applied license, treated as direct.
    return tuple(
        LicenseAssignment(sku_id=lic.sku_id, state=AssignmentState.ACTIVE)
        for lic in person.assigned_licenses
        if lic.sku_id in copilot
    )


def decide(
    person: Person,
    *,
    group: GroupSnapshot,
    policy: Policy,
    catalogue: SkuCatalogue,
    free_seats: int,
    now: datetime,
    why: str = "admit",
) -> Decision:
    """Decide whether `person` may enter `group` now, and what to do about it.

    `free_seats` is the group's seat headroom (enabled - consumed - open reservations, see
    `seats.group_headroom`); `why` is recorded with the add. Observe-only groups get the same decision
    with every command but alerts removed.
    """
    licensing = policy.group(group.id)
    gate = _Gate(person, group, policy, catalogue, free_seats, now, why)
    if licensing is None:
        reasons = (Reason.NOT_A_LICENSING_GROUP,)
        sentence = _sentence(gate.label, gate.group_label, reasons)
        return Decision(Outcome.BLOCKED, reasons, (), gate.alert(reasons[0], sentence), sentence)
    decision = _decide(gate, licensing)
    if not licensing.observe_only:
        return decision
    return replace(
        decision,
        reasons=(*decision.reasons, Reason.OBSERVE_ONLY),
        commands=tuple(c for c in decision.commands if isinstance(c, RaiseAlert)),
        summary=f"Observe-only, nothing written: {decision.summary}",
    )


def _decide(gate: _Gate, licensing: LicensingGroup) -> Decision:
    person, now = gate.person, gate.now
    if gate.policy.is_protected(person.id, person.user_principal_name):
        reasons = (Reason.PROTECTED_USER,)
        return Decision(
            Outcome.BLOCKED,
            reasons,
            (),
            (RecordPending(person.id, gate.group.id, reasons, now),),
            _sentence(gate.label, gate.group_label, reasons),
        )
    copilot = _copilot_sku_ids(person, gate.catalogue, gate.policy, licensing)
    active = _active_copilot(person, copilot)
    if active:
        direct = any(a.is_direct for a in active)
        reasons = (Reason.ALREADY_LICENSED, *((Reason.COPILOT_ASSIGNED_DIRECTLY,) if direct else ()))
        how = "directly (reported, not touched)" if direct else "through a group"
        return Decision(
            Outcome.ALREADY_LICENSED,
            reasons,
            (),
            (ClearPending(person.id, gate.group.id),),
            f"{gate.label} already holds a Copilot license {how}; nothing to do.",
        )
    group_id = gate.group.id.lower()
    if any(a.assigned_by_group == group_id for a in person.license_assignments):
        return Decision(
            Outcome.ALREADY_MEMBER,
            (Reason.ALREADY_MEMBER,),
            (),
            (),
            f"{gate.label} is already a member of {gate.group_label}; verification follows the license.",
        )
    return _gate_person(gate, licensing)


def _location_blockers(gate: _Gate) -> tuple[tuple[Reason, ...], str | None]:
    """Usage-location blockers, and the location Seatkeeper may set first (if the policy allows one)."""
    person, policy = gate.person, gate.policy
    location, fix = person.usage_location, None
    if location is None:
        fix = usable_fix(person, policy)
        location = fix
    if location is None:
        return ((Reason.NO_USAGE_LOCATION,) if policy.require_usage_location else ()), None
    if not policy.copilot_sold_in(location):
        return (Reason.USAGE_LOCATION_NOT_SOLD,), None
    return (), fix


def _gate_person(gate: _Gate, licensing: LicensingGroup) -> Decision:
    person, group = gate.person, gate.group
    blockers: list[Reason] = []
    if person.account_enabled is False:
        blockers.append(Reason.ACCOUNT_DISABLED)
    location_blockers, fix = _location_blockers(gate)
    blockers += location_blockers
    base = check_base_license(person, gate.catalogue, gate.policy)
    blockers += base.blockers
    if gate.free_seats <= 0:
        blockers.append(Reason.NO_SEAT)
    evidence = (*base.evidence, *_facts(gate, licensing))
    if not group.membership_writable:
        reasons = (Reason.GROUP_NOT_WRITABLE, *blockers)
        kind = "dynamic" if group.is_dynamic else "mail-enabled security"
        sentence = (
            f"{gate.label} cannot be added to {gate.group_label}: "
            f"it is a {kind} group, which Seatkeeper only watches."
        )
        return Decision(
            Outcome.BLOCKED, reasons, (), gate.alert(Reason.GROUP_NOT_WRITABLE, sentence), sentence, evidence
        )
    if blockers:
        return _blocked(gate, licensing, tuple(blockers), base, evidence)
    return _eligible(gate, licensing, base, fix, evidence)


def _facts(gate: _Gate, licensing: LicensingGroup) -> tuple[Fact, ...]:
    return (
        Fact("Usage location", gate.person.usage_location or "(none)"),
        Fact("Free seats", str(max(gate.free_seats, 0))),
        Fact("Copilot SKU", ", ".join(licensing.copilot_sku_ids) or "(none configured)"),
    )


def _blocked(
    gate: _Gate,
    licensing: LicensingGroup,
    blockers: tuple[Reason, ...],
    base: BaseLicenseCheck,
    evidence: tuple[Fact, ...],
) -> Decision:
    person, now = gate.person, gate.now
    sentence = _sentence(gate.label, gate.group_label, blockers)
    commands: list[Command] = [RecordPending(person.id, gate.group.id, blockers, now)]
    if blockers == (Reason.NO_SEAT,):
        commands.append(JoinWaitlist(person.id, gate.group.id, now, WaitSource.PENDING))
    for reason in blockers:
        if reason is Reason.NO_SEAT:
            commands += [
                RaiseAlert(
                    seat_shortage_alert(
                        sku_id=sku_id.lower(),
                        sku_label=_sku_label(gate.catalogue, sku_id),
                        free=max(gate.free_seats, 0),
                        now=now,
                        sentence=f"No free seat of {_sku_label(gate.catalogue, sku_id)}: {sentence}",
                    )
                )
                for sku_id in licensing.copilot_sku_ids
            ]
        elif reason is Reason.BASE_SKU_SUSPENDED:
            for sku_id in base.suspended_sku_ids:
                commands += gate.alert(reason, sentence, sku_id=sku_id)
        else:
            commands += gate.alert(reason, sentence)
    return Decision(Outcome.BLOCKED, blockers, base.warnings, tuple(commands), sentence, evidence)


def _eligible(
    gate: _Gate,
    licensing: LicensingGroup,
    base: BaseLicenseCheck,
    fix: str | None,
    evidence: tuple[Fact, ...],
) -> Decision:
    person, now, group_id = gate.person, gate.now, gate.group.id
    commands: list[Command] = []
    if fix is not None:
        commands.append(SetUsageLocation(person.id, fix))
    commands += [
        ReserveSeat(person.id, group_id, tuple(s.lower() for s in licensing.copilot_sku_ids)),
        AddToGroup(person.id, group_id, gate.why),
        ClearPending(person.id, group_id),
    ]
    due = next_check_at(now, now, gate.policy.verification_deadline)
    if due is not None:
        commands.append(ScheduleRecheck(person.id, group_id, due, now))
    summary = f"{gate.label} may join {gate.group_label} ({gate.free_seats} seat(s) free)"
    if fix is not None:
        summary += f", after setting usage location {fix}"
    for warning in base.warnings:
        sentence = f"{gate.label} is admitted to {gate.group_label}, but: {_phrase(warning)}."
        if warning is Reason.BASE_SKU_IN_WARNING:
            for sku_id in base.warning_sku_ids:
                commands += gate.alert(warning, sentence, sku_id=sku_id)
        else:
            commands += gate.alert(warning, sentence)
    if base.warnings:
        summary += "; warnings: " + ", ".join(_phrase(w) for w in base.warnings)
    return Decision(Outcome.ELIGIBLE, (), base.warnings, tuple(commands), summary + ".", evidence)


def _sku_label(catalogue: SkuCatalogue, sku_id: str) -> str:
    sku = catalogue.get(sku_id)
    return sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id
