"""Verification after a member is added, as a pure function of the user's license states and the time.

Group-based licensing assigns asynchronously: read the `licenseAssignmentStates` the group gave for its
Copilot SKU(s) — `Active` is done; nothing yet is a re-check with growing delays up to the deadline
(default 24 h, Microsoft's own threshold), then "stuck"; `Error` is classified into the action of issue 7
item 5. Commands come back as data; the handler performs them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from seatkeeper.core.base_licenses import check_base_license
from seatkeeper.core.commands import (
    TENANT_WRITES,
    Command,
    JoinWaitlist,
    MarkSeatActive,
    RaiseAlert,
    ReleaseReservation,
    Reprocess,
    ScheduleRecheck,
    SetUsageLocation,
)
from seatkeeper.core.incidents import Fact
from seatkeeper.core.license_alerts import (
    finding_alert,
    license_active_signal,
    license_problem_alert,
    license_returned_signal,
    seat_shortage_alert,
)
from seatkeeper.core.license_errors import LicenseError, entry_for
from seatkeeper.core.people import AssignmentState, LicenseAssignment, Person
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import ReleaseReason, WaitSource
from seatkeeper.core.skus import SkuCatalogue
from seatkeeper.core.usage_locations import usable_fix

FIRST_RECHECK: Final = timedelta(minutes=2)
"""The first re-check after an add; each later one waits twice as long, the last is at the deadline."""

EARLY_DELIVERY: Final = timedelta(seconds=5)
"""How early, by the handler's clock, a scheduled re-check may arrive (skew between the queue and the
worker; the local host re-reads the sandbox's clock once a second). The next re-check is computed from now
plus this, so it never falls on the due time of the message being handled: that would give it the same
message id, drop it as a duplicate, and end the chain of re-checks."""


def recheck_offsets(deadline: timedelta) -> tuple[timedelta, ...]:
    """Offsets from the add at which verification looks again: 2, 4, 8, 16… minutes, then the deadline."""
    offsets: list[timedelta] = []
    step = FIRST_RECHECK
    while step < deadline:
        offsets.append(step)
        step *= 2
    offsets.append(deadline)
    return tuple(offsets)


def next_check_at(added_at: datetime, now: datetime, deadline: timedelta) -> datetime | None:
    """The next re-check strictly after `now`, or None once the deadline has passed.

    Derived from the add time, not from a counter, so a duplicate or late message lands on the same due
    time (and thus the same message id) as the original would.
    """
    elapsed = now - added_at
    for offset in recheck_offsets(deadline):
        if offset > elapsed:
            return added_at + offset
    return None


class Status(StrEnum):
    """Where the member's Copilot license stands (`removed`: a leaver's seat is back)."""

    DONE = "done"
    PENDING = "pending"
    STUCK = "stuck"
    ERROR = "error"
    REMOVED = "removed"


@dataclass(frozen=True)
class InferredConflict:
    """A license of the user whose service plans overlap those of the group's SKUs: a *probable* cause of
    a MutuallyExclusiveViolation. Graph does not say which plans conflict, so this is always inferred.
    `overlaps` names each plan, as "PLAN" when both hold it or "PLAN vs GROUP_PLAN" for one family."""

    sku_id: str
    sku_part_number: str
    overlaps: tuple[str, ...]
    inferred: bool = True


@dataclass(frozen=True)
class Verification:
    """The verdict, its reasons, the classified error if any, and the commands to carry it out."""

    status: Status
    reasons: tuple[Reason, ...]
    commands: tuple[Command, ...]
    summary: str
    error: LicenseError | None = None
    raw_error: str | None = None
    sku_id: str | None = None
    conflicts: tuple[InferredConflict, ...] = ()
    recheck_at: datetime | None = None


@dataclass(frozen=True)
class _Context:
    person: Person
    group: LicensingGroup
    policy: Policy
    catalogue: SkuCatalogue
    added_at: datetime
    now: datetime
    reprocesses: int

    @property
    def label(self) -> str:
        return self.person.user_principal_name or self.person.id

    @property
    def next_due(self) -> datetime | None:
        return next_check_at(self.added_at, self.now + EARLY_DELIVERY, self.policy.verification_deadline)

    def recheck(self, reprocesses: int | None = None) -> tuple[ScheduleRecheck, ...]:
        due = self.next_due
        if due is None:
            return ()
        count = self.reprocesses if reprocesses is None else reprocesses
        return (ScheduleRecheck(self.person.id, self.group.id, due, self.added_at, count),)

    def sku_label(self, sku_id: str) -> str:
        sku = self.catalogue.get(sku_id)
        return sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id


def _group_assignments(ctx: _Context) -> dict[str, LicenseAssignment | None]:
    """Per Copilot SKU of the group, the state the group's assignment is in (None: not there yet)."""
    group_id = ctx.group.id.lower()
    result: dict[str, LicenseAssignment | None] = {}
    for sku_id in (s.lower() for s in ctx.group.copilot_sku_ids):
        states = [
            a
            for a in ctx.person.assignments_for(frozenset({sku_id}))
            if a.assigned_by_group is not None and a.assigned_by_group == group_id
        ]
        result[sku_id] = states[0] if states else None
    return result


def _family(plan_name: str) -> str:
    """A plan's family: its name without the last `_` part (EXCHANGE_S_STANDARD and EXCHANGE_S_ENTERPRISE
    are both EXCHANGE_S); a name without `_` is its own family."""
    head, _, tail = plan_name.upper().rpartition("_")
    return head if head and tail else plan_name.upper()


def infer_conflicts(
    person: Person, group_id: str, copilot_sku_ids: tuple[str, ...], catalogue: SkuCatalogue
) -> tuple[InferredConflict, ...]:
    """The user's other licenses whose service plans overlap the group's: the same plan, or another plan
    of the same family (e.g. Exchange Online Plan 1 against Plan 2). Only a guess: Graph does not say."""
    group = group_id.lower()
    group_skus = {s.lower() for s in copilot_sku_ids} | {
        a.sku_id for a in person.license_assignments if a.assigned_by_group == group
    }
    by_id: dict[str, str] = {}
    by_family: dict[str, str] = {}
    for sku_id in sorted(group_skus):
        sku = catalogue.get(sku_id)
        for plan in sku.service_plans if sku is not None else ():
            name = plan.service_plan_name or plan.service_plan_id
            by_id.setdefault(plan.service_plan_id, name)
            if plan.service_plan_name:
                by_family.setdefault(_family(plan.service_plan_name), name)
    conflicts: list[InferredConflict] = []
    for sku_id in sorted(person.held_sku_ids() - group_skus):
        sku = catalogue.get(sku_id)
        if sku is None:
            continue
        overlaps: list[str] = []
        for plan in sku.service_plans:
            name = plan.service_plan_name or plan.service_plan_id
            twin = by_id.get(plan.service_plan_id)
            if twin is None and plan.service_plan_name:
                twin = by_family.get(_family(plan.service_plan_name))
            if twin is not None:
                overlaps.append(name if twin == name else f"{name} vs {twin}")
        if overlaps:
            conflicts.append(InferredConflict(sku_id, sku.sku_part_number, tuple(overlaps)))
    return tuple(conflicts)


def _error_of(state: LicenseAssignment) -> LicenseError:
    # An entry in Error without an error value is the catch-all case.
    return state.error if state.error is not None else LicenseError.OTHER


def _needs_human(
    ctx: _Context, sku_id: str, error: LicenseError, raw: str | None, extra: tuple[Fact, ...] = ()
) -> tuple[Command, ...]:
    evidence = (
        Fact("Copilot SKU", ctx.sku_label(sku_id)),
        Fact("Error", raw if error is LicenseError.UNKNOWN and raw else error.value),
        Fact("Group", ctx.group.display_name or ctx.group.id),
        *extra,
    )
    sentence = (
        f"Group-based licensing could not give {ctx.label} a Copilot license: {entry_for(error).title}."
    )
    alert = license_problem_alert(
        error,
        person=ctx.person,
        sku_id=sku_id,
        group_id=ctx.group.id,
        now=ctx.now,
        sentence=sentence,
        evidence=evidence,
    )
    return (
        RaiseAlert(alert),
        ReleaseReservation(ctx.person.id, ctx.group.id, ReleaseReason.ERRORED),
        *ctx.recheck(),
    )


def _classify(ctx: _Context, sku_id: str, state: LicenseAssignment) -> Verification:
    error = _error_of(state)
    raw = state.raw_error
    commands: tuple[Command, ...]
    conflicts: tuple[InferredConflict, ...] = ()
    if error is LicenseError.COUNT_VIOLATION:
        sku = ctx.catalogue.get(sku_id)
        free = max(0, sku.prepaid_units.enabled - sku.consumed_units) if sku is not None else 0
        commands = (
            ReleaseReservation(ctx.person.id, ctx.group.id, ReleaseReason.ERRORED),
            JoinWaitlist(ctx.person.id, ctx.group.id, ctx.added_at, WaitSource.COUNT_VIOLATION),
            RaiseAlert(
                seat_shortage_alert(
                    sku_id=sku_id,
                    sku_label=ctx.sku_label(sku_id),
                    free=free,
                    now=ctx.now,
                    sentence=f"{ctx.label} is in the Copilot group but no seat of "
                    f"{ctx.sku_label(sku_id)} was left (CountViolation).",
                )
            ),
        )
        summary = f"{ctx.label} waits for a Copilot seat (CountViolation); served in order when seats appear."
    elif error is LicenseError.MUTUALLY_EXCLUSIVE_VIOLATION:
        conflicts = infer_conflicts(ctx.person, ctx.group.id, ctx.group.copilot_sku_ids, ctx.catalogue)
        shown = "; ".join(f"{c.sku_part_number or c.sku_id}: {', '.join(c.overlaps)}" for c in conflicts)
        fact = Fact(
            "Conflicting plans (inferred)", shown or "no shared service plan found; see the audit log"
        )
        commands = _needs_human(ctx, sku_id, error, raw, (fact,))
        summary = f"{ctx.label} has conflicting service plans; inferred: {shown or 'none found'}."
    elif error is LicenseError.PROHIBITED_IN_USAGE_LOCATION_VIOLATION:
        fix = usable_fix(ctx.person, ctx.policy)
        if fix is not None and ctx.reprocesses == 0:
            commands = (
                SetUsageLocation(ctx.person.id, fix),
                Reprocess(ctx.person.id),
                *ctx.recheck(reprocesses=1),
            )
            summary = f"{ctx.label}'s usage location is not allowed; setting it to {fix} and reprocessing."
        else:
            location = Fact("Usage location", ctx.person.usage_location or "(none: the tenant's country)")
            commands = _needs_human(ctx, sku_id, error, raw, (location,))
            summary = f"{ctx.label}'s usage location does not allow Copilot; an admin must correct it."
    elif error in (LicenseError.OTHER, LicenseError.UNKNOWN) and ctx.reprocesses == 0:
        commands = (Reprocess(ctx.person.id), *ctx.recheck(reprocesses=1))
        summary = f"{ctx.label}'s Copilot license failed ({raw or error.value}); reprocessing once."
    else:
        commands = _needs_human(ctx, sku_id, error, raw)
        summary = f"{ctx.label}'s Copilot license failed: {entry_for(error).title}; an admin must act."
    recheck = next((c.due_at for c in commands if isinstance(c, ScheduleRecheck)), None)
    return Verification(
        status=Status.ERROR,
        reasons=(Reason.LICENSE_ERROR,),
        commands=commands,
        summary=summary,
        error=error,
        raw_error=raw,
        sku_id=sku_id,
        conflicts=conflicts,
        recheck_at=recheck,
    )


def _done(ctx: _Context, states: dict[str, LicenseAssignment]) -> Verification:
    stamps = [s.last_updated for s in states.values() if s.last_updated is not None]
    commands: list[Command] = [
        MarkSeatActive(ctx.person.id, ctx.group.id, max(stamps) if stamps else ctx.now)
    ]
    commands += [
        RaiseAlert(
            license_active_signal(person=ctx.person, sku_id=sku_id, group_id=ctx.group.id, now=ctx.now)
        )
        for sku_id in states
    ]
    reasons = [Reason.LICENSE_ACTIVE]
    summary = f"{ctx.label}'s Copilot license is active."
    base = check_base_license(ctx.person, ctx.catalogue, ctx.policy)
    if not base.qualifies:
        reasons.append(Reason.COPILOT_WILL_NOT_WORK)
        summary = f"{ctx.label} is licensed, but Copilot will not work: no active qualifying base license."
        alert = finding_alert(
            Reason.COPILOT_WILL_NOT_WORK,
            person=ctx.person,
            now=ctx.now,
            sentence=summary,
            group_id=ctx.group.id,
            evidence=(*base.evidence, Fact("Gate finding", ", ".join(b.value for b in base.blockers))),
        )
        if alert is not None:
            commands.append(RaiseAlert(alert))
    return Verification(Status.DONE, tuple(reasons), tuple(commands), summary)


def verify(
    person: Person,
    *,
    group: LicensingGroup,
    policy: Policy,
    catalogue: SkuCatalogue,
    added_at: datetime,
    now: datetime,
    reprocesses: int = 0,
) -> Verification:
    """Judge the member's Copilot license `now`, `added_at` being when Seatkeeper added the member.

    `reprocesses` counts the reprocesses already made for this add (Other/unknown errors and usage-location
    fixes are reprocessed once). Observe-only groups and protected users get no tenant write.
    """
    ctx = _Context(person, group, policy, catalogue, added_at, now, reprocesses)
    result = _judge(ctx)
    if group.observe_only or policy.is_protected(person.id, person.user_principal_name):
        return replace(result, commands=tuple(c for c in result.commands if not isinstance(c, TENANT_WRITES)))
    return result


def _state_text(state: LicenseAssignment | None) -> str:
    return state.state.value if state is not None else "not assigned yet"


def _judge(ctx: _Context) -> Verification:
    states = _group_assignments(ctx)
    for sku_id, state in states.items():
        if state is not None and not state.is_active and state.state is AssignmentState.ERROR:
            return _classify(ctx, sku_id, state)
    active = {sku_id: s for sku_id, s in states.items() if s is not None and s.is_active}
    if states and len(active) == len(states):
        return _done(ctx, active)
    due = ctx.next_due
    if due is not None:
        return Verification(
            Status.PENDING,
            (Reason.LICENSE_PENDING,),
            ctx.recheck(),
            f"{ctx.label}'s Copilot license is not active yet; looking again at {due.isoformat()}.",
            recheck_at=due,
        )
    waiting = [sku_id for sku_id, s in states.items() if s is None or not s.is_active] or list(states)
    sku_id = waiting[0] if waiting else (ctx.group.copilot_sku_ids[0] if ctx.group.copilot_sku_ids else "")
    hours = ctx.policy.verification_deadline.total_seconds() / 3600
    summary = f"{ctx.label}'s Copilot license is still not active {hours:g} h after the add: stuck."
    alert = license_problem_alert(
        Reason.LICENSE_STUCK,
        person=ctx.person,
        sku_id=sku_id,
        group_id=ctx.group.id,
        now=ctx.now,
        sentence=summary,
        evidence=(
            Fact("Copilot SKU", ctx.sku_label(sku_id)),
            Fact("Added at", ctx.added_at.isoformat()),
            Fact("State", _state_text(states.get(sku_id))),
        ),
    )
    return Verification(
        Status.STUCK,
        (Reason.LICENSE_STUCK,),
        (RaiseAlert(alert), ReleaseReservation(ctx.person.id, ctx.group.id, ReleaseReason.EXPIRED)),
        summary,
        sku_id=sku_id,
    )


def next_removal_check_at(removed_at: datetime, now: datetime, deadline: timedelta) -> datetime:
    """When to look again at a leaver whose seat did not come back: the usual growing delays up to the
    deadline, then once per deadline period (nobody else looks: the user is in no licensing group)."""
    due = next_check_at(removed_at, now + EARLY_DELIVERY, deadline)
    if due is not None:
        return due
    periods = (now + EARLY_DELIVERY - removed_at) // deadline + 1
    return removed_at + deadline * periods


def verify_removal(
    person: Person,
    *,
    group: LicensingGroup,
    policy: Policy,
    catalogue: SkuCatalogue,
    removed_at: datetime,
    now: datetime,
) -> Verification:
    """Judge a member who left `group`: did its Copilot seat come back?

    Entra keeps the group's entries (`DependencyViolation`, seat still consumed) when taking them away
    would remove a plan another product of the user depends on (Entra's "Other products depend on this
    license"). That needs an admin: alert and look again until it is gone. Otherwise the seat is back, and
    any `license.not_active` incident of the user for the SKU is resolved (the user is no longer watched).
    """
    ctx = _Context(person, group, policy, catalogue, removed_at, now, 0)
    kept = {
        sku_id: state
        for sku_id, state in _group_assignments(ctx).items()
        if state is not None and state.error is LicenseError.DEPENDENCY_VIOLATION
    }
    if not kept:
        in_error = {
            a.sku_id
            for a in person.license_assignments
            if a.state is AssignmentState.ERROR or a.error is not None
        }
        resolved = tuple(
            RaiseAlert(license_returned_signal(person=person, sku_id=s, group_id=group.id, now=now))
            for s in (s.lower() for s in group.copilot_sku_ids)
            if s not in in_error
        )
        summary = "The member left the group; its seat is free again."
        return Verification(Status.REMOVED, (), resolved, summary)
    sku_id, state = next(iter(kept.items()))
    others = sorted(
        ctx.sku_label(a.sku_id) for a in person.license_assignments if a.sku_id not in kept and a.is_active
    )
    sentence = (
        f"{ctx.label} left {group.display_name or group.id}, but group-based licensing kept its Copilot "
        "license (DependencyViolation): another product the user holds needs a plan it brings. The seat "
        "stays consumed until that is fixed."
    )
    alert = license_problem_alert(
        LicenseError.DEPENDENCY_VIOLATION,
        person=person,
        sku_id=sku_id,
        group_id=group.id,
        now=now,
        sentence=sentence,
        evidence=(
            Fact("Copilot SKU", ctx.sku_label(sku_id)),
            Fact("Error", state.raw_error or LicenseError.DEPENDENCY_VIOLATION.value),
            Fact("Group", group.display_name or group.id),
            Fact("Membership", f"left the group (seen {removed_at.isoformat()})"),
            Fact("State", state.state.value),
            Fact("Other licenses", ", ".join(others) or "none"),
        ),
    )
    due = next_removal_check_at(removed_at, now, policy.verification_deadline)
    return Verification(
        Status.ERROR,
        (Reason.LICENSE_ERROR,),
        (
            RaiseAlert(alert),
            ReleaseReservation(person.id, group.id, ReleaseReason.CANCELLED),
            ScheduleRecheck(person.id, group.id, due, removed_at, removed=True),
        ),
        f"{ctx.label} left the group but keeps its Copilot seat (DependencyViolation); an admin must act.",
        error=LicenseError.DEPENDENCY_VIOLATION,
        raw_error=state.raw_error,
        sku_id=sku_id,
        recheck_at=due,
    )
