"""Onboarding, the `hr-events` consumer: joiner, mover and leaver, per person in the order HR recorded them.

Each event passes stages, each a message scheduled by the one before (business time): received → due (at
the effective time) → find the account (joiners, until the deadline) → admit / plan removals → remove
(after the settle time, behind the blast-radius guard) → verify (a mover's new license is Active before
the old group is left; a leaver's seat came back, then the waitlist is served). A stage of an event that is
no longer the person's newest does nothing: that is how a rescinded hire is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from urllib.parse import quote

import structlog

from handlers.admission import Result, admit
from handlers.hr_people import Held, PeopleBook, usable_key
from handlers.hr_removals import RemovalBook
from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import TenantReads
from handlers.verification import serve_waiting
from seatkeeper.core.errors import InvalidInput, NotFound, PermanentError
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.hr_events import HrEvent, HrEventType, HrWork, Stage, hr_message, parse_work
from seatkeeper.core.hr_ordering import Order, PersonRecord, is_current, order, record_for
from seatkeeper.core.idempotency import IdempotencyRecord
from seatkeeper.core.incidents import AlertSignal, Cause, Fact, IncidentKey, Scope, alert_message
from seatkeeper.core.license_messages import AdmitRequest
from seatkeeper.core.messages import HR_EVENTS, Message, validate
from seatkeeper.core.people import Person
from seatkeeper.core.person_mapping import PERSON_SELECT, person_from_entra, person_from_hr
from seatkeeper.core.policy import Severity
from seatkeeper.core.ports import StateStore
from seatkeeper.core.reasons import Reason
from seatkeeper.core.removal_safety import SETTLE, PlannedRemoval, removal_refusal
from seatkeeper.core.rollout_records import RolloutRecords, target_with_rollouts
from seatkeeper.core.seat_ports import Addition, PendingPerson, SeatStore
from seatkeeper.core.seats import ReleaseReason, Reservation, WaitlistEntry
from seatkeeper.core.skus import SkuCatalogue

MAX_VERIFY_ATTEMPTS: Final = 36
ACCOUNT_MISSING: Final = "hr.account_missing"
MOVE_STUCK: Final = "hr.move_stuck"
SEAT_NOT_RETURNED: Final = "hr.seat_not_returned"
log = structlog.get_logger("seatkeeper.hr")


class Step(StrEnum):
    """What onboarding did with one message (logged, and returned for tests)."""

    INVALID = "invalid"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    STALE = "stale"
    SUPERSEDED = "superseded"
    SCHEDULED = "scheduled"
    WAITING_FOR_ACCOUNT = "waiting_for_account"
    ACCOUNT_MISSING = "account_missing"
    NO_GROUP = "no_group"
    ADMITTED = "admitted"
    UNCHANGED = "unchanged"
    MOVING = "moving"
    MOVE_STUCK = "move_stuck"
    REMOVALS_PLANNED = "removals_planned"
    NOTHING_TO_REMOVE = "nothing_to_remove"
    REMOVED = "removed"
    HELD = "held"
    SEAT_RETURNED = "seat_returned"
    WAITING = "waiting"


@dataclass(frozen=True)
class Handled:
    """The outcome of one `hr-events` message: the step taken, and the admission result if any."""

    step: Step
    result: Result | None = None
    group_id: str | None = None


@dataclass
class OnboardingDeps:
    """The license handlers' dependencies plus the state store for person records and removals."""

    license: LicenseDeps
    state: StateStore


class _Superseded(Exception):
    """Finding the user linked the person's keys, and the human's one record names a newer event."""


class _Run:
    """One message's work: the deps, the event, the human's record and the ids of what it sends."""

    def __init__(self, deps: OnboardingDeps, work: HrWork, message: Message) -> None:
        self.deps = deps
        self.work = work
        self.event: HrEvent = work.event
        self.message = message
        self.ld = deps.license
        self.now = self.ld.clock.now()
        self.removals = RemovalBook(deps.state)
        self.people = PeopleBook(deps.state)
        self.held = Held(work.event.person.employee_id, None, None)

    async def next(self, stage: Stage, at: datetime, *, attempt: int = 0) -> None:
        """Schedule the event's next stage (a new message id per stage and attempt)."""
        work = HrWork(self.event, stage, attempt, self.work.callback)
        await self.ld.sender.send([hr_message(work, correlation_id=self.message.correlation_id, due_at=at)])

    async def alert(self, problem: str, cause: Cause, title: str, reason: str, remediation: str) -> None:
        """An incident about this person (subject: the employeeId)."""
        person = self.event.person
        signal = AlertSignal(
            key=IncidentKey(Scope.USER, person.employee_id, problem),
            cause=cause,
            severity=Severity.WARNING,
            title=title,
            reason=reason,
            remediation=remediation,
            subject_label=person.user_principal_name or person.employee_id,
            observed_at=self.now,
            evidence=(Fact("Employee id", person.employee_id), Fact("HR event", self.event.id)),
            user_id=person.object_id,
            user_principal_name=person.user_principal_name,
        )
        await self.ld.sender.send(
            [alert_message(signal, correlation_id=self.message.correlation_id, version=self.message.version)]
        )

    async def resume(self, completed: bool) -> None:
        """Tell the Lifecycle Workflow the decision (only for events that came from one)."""
        if self.work.callback is None:
            return
        status = "Completed" if completed else "Failed"
        body = {
            "data": {"operationStatus": status},
            "source": "urn:seatkeeper:onboarding",
            "type": "lifecycleEvent",
        }
        await self.ld.graph.send("POST", self.work.callback, body, idempotent=True)
        log.info("hr.workflow_resumed", event_id=self.event.id, status=status)

    async def find(self) -> Person | None:
        """The Entra user of the event's person: by object id, else UPN, else employeeId."""
        person = self.event.person
        for key in (person.object_id, person.user_principal_name):
            if key:
                try:
                    body = await self.ld.graph.get(
                        f"/users/{quote(key, safe='@')}", params={"$select": ",".join(PERSON_SELECT)}
                    )
                except NotFound:
                    continue
                return await self.link(person_from_entra(body))
        escaped = person.employee_id.replace("'", "''")
        body = await self.ld.graph.get(
            "/users",
            params={"$filter": f"employeeId eq '{escaped}'", "$select": ",".join(PERSON_SELECT)},
        )
        found = body.get("value", [])
        if isinstance(found, list) and len(found) == 1:
            return await self.link(person_from_entra(found[0]))
        if isinstance(found, list) and len(found) > 1:
            log.warning("hr.account_ambiguous", employee_id=person.employee_id, matches=len(found))
        return None

    async def link(self, entra: Person) -> Person:
        """One record per human: now that the user is known, the event's key and Entra's employeeId lead to
        the object id's record. _Superseded when that record names a newer event (from the other door)."""
        candidates = (self.event.person.employee_id, entra.employee_id)
        keys = {k for k in candidates if k is not None and usable_key(k)} - {entra.id.lower()}
        for key in sorted(keys):
            self.held = await self.people.link(key, entra.id)
        if keys and not is_current(self.held.record, self.event):
            raise _Superseded
        return entra


def _copilot_groups(person: Person, ld: LicenseDeps) -> dict[str, bool]:
    """The policy's licensing groups the person holds a Copilot assignment through (id -> active)."""
    held: dict[str, bool] = {}
    for group in ld.policy.licensing_groups:
        skus = frozenset(s.lower() for s in group.copilot_sku_ids)
        for assignment in person.assignments_for(skus):
            if assignment.assigned_by_group == group.id.lower():
                held[group.id.lower()] = held.get(group.id.lower(), False) or assignment.is_active
    return held


async def handle_hr_message(
    body: bytes, deps: OnboardingDeps, *, message_id: str, idempotency: IdempotencyRecord
) -> Handled:
    """Handle one message of the `hr-events` queue (run once per message id)."""
    try:
        message = Message.from_body(HR_EVENTS, body, message_id=message_id)
        validate(message)
        work = parse_work(message)
    except InvalidInput as error:
        log.warning("hr.message_invalid", message_id=message_id, problems=list(error.errors))
        return Handled(Step.INVALID)

    async def run() -> Handled:
        return await handle_work(work, message, deps)

    try:
        ran, outcome = await idempotency.run_once(
            HR_EVENTS,
            message_id or message.message_id,
            kind=message.kind,
            now=deps.license.clock.now(),
            handler=run,
        )
    except PermanentError as error:
        # Retrying cannot help (a refused write, a callback Graph rejects): completed, with the reason.
        log.error(  # noqa: TRY400 - the error is named; its traceback adds nothing
            "hr.event_failed",
            message_id=message_id,
            employee_id=work.event.person.employee_id,
            event_id=work.event.id,
            error=type(error).__name__,
        )
        return Handled(Step.FAILED)
    if not ran or outcome is None:
        log.info("hr.message_duplicate", message_id=message_id)
        return Handled(Step.DUPLICATE)
    return outcome


async def handle_work(work: HrWork, message: Message, deps: OnboardingDeps) -> Handled:
    """Order the event against the human's one record, then carry out its stage."""
    run = _Run(deps, work, message)
    try:
        return await _ordered(run)
    except _Superseded:
        return await _superseded(run)


async def _superseded(run: _Run) -> Handled:
    """The event is no longer the human's newest: its remaining stages do nothing."""
    event, stage = run.event, run.work.stage
    employee = event.person.employee_id
    log.info("hr.event_superseded", employee_id=employee, event_id=event.id, stage=stage.value)
    if stage in (Stage.RECEIVED, Stage.DUE, Stage.FIND_USER):
        await run.resume(completed=True)  # undecided until now: nothing is left to do for it
    return Handled(Step.SUPERSEDED)


async def _ordered(run: _Run) -> Handled:
    work, event = run.work, run.event
    employee = event.person.employee_id
    run.held = await run.people.for_event(event.person)
    record = run.held.record
    if work.stage is Stage.RECEIVED:
        verdict = order(record, event)
        # A duplicate whose first delivery failed before it was taken in (not `applied`) is taken in now.
        retry = verdict is Order.DUPLICATE and record is not None and not record.applied
        if verdict is not Order.APPLY and not retry:
            step = Step.DUPLICATE if verdict is Order.DUPLICATE else Step.STALE
            log.info("hr.event_ignored", employee_id=employee, event_id=event.id, why=verdict.value)
            if verdict is Order.STALE:
                await run.resume(completed=True)
            return Handled(step)
        if retry and record is not None:
            current = record
        else:
            current = record_for(event, record, run.now)
            run.held = await run.people.write(run.held, current)
        handled = await _take_in(run, current)
        # Finding the user may have moved the record under the object id (run.held follows it).
        if run.held.record is not None and is_current(run.held.record, event):
            run.held = await run.people.write(run.held, run.held.record.applied_now())
        return handled
    if record is None or not is_current(record, event):
        raise _Superseded
    return await _act_logged(run, record)


def _act_at(run: _Run) -> datetime:
    """When the event is due: its effective time (a joiner's hire date less the policy's lead days)."""
    event = run.event
    if event.type is HrEventType.JOINER:
        return event.effective_at - timedelta(days=run.ld.policy.hr.hire_lead_days)
    return event.effective_at


async def _take_in(run: _Run, record: PersonRecord) -> Handled:
    """A newly received event: scheduled for its effective time, or acted on now."""
    event = run.event
    act_at = _act_at(run)
    if act_at > run.now:
        await run.next(Stage.DUE, act_at)
        log.info(
            "hr.event_scheduled",
            employee_id=event.person.employee_id,
            event_id=event.id,
            at=act_at.isoformat(),
        )
        return Handled(Step.SCHEDULED)
    return await _act_logged(run, record)


async def _act_logged(run: _Run, record: PersonRecord) -> Handled:
    """Carry out the event's stage and write the one canonical log line of it."""
    event, work = run.event, run.work
    handled = await _act(run, record)
    log.info(
        "hr.event_handled",
        employee_id=event.person.employee_id,
        event_id=event.id,
        type=event.type.value,
        stage=work.stage.value,
        step=handled.step.value,
        result=handled.result.value if handled.result else None,
        group_id=handled.group_id,
    )
    return handled


async def _act(run: _Run, record: PersonRecord) -> Handled:
    stage, kind = run.work.stage, run.event.type
    if stage is Stage.REMOVE:
        return await _remove(run)
    if stage is Stage.VERIFY:
        return await _verify(run)
    if kind is HrEventType.LEAVER:
        return await _leaver(run)
    entra = await run.find()
    if entra is None:
        return await _wait_for_account(run, record)
    if run.work.stage is Stage.FIND_USER and run.work.attempt > 0:
        await run.alert(
            ACCOUNT_MISSING,
            Cause.GONE,
            "HR person found in Entra",
            "The account HR's event was waiting for exists now.",
            "Nothing to do.",
        )
    person = person_from_hr(run.event.person, entra)
    if kind is HrEventType.JOINER:
        return await _joiner(run, person)
    return await _mover(run, person)


async def _wait_for_account(run: _Run, record: PersonRecord) -> Handled:
    hr = run.ld.policy.hr
    # The wait counts from when the event is due, not from its arrival: HR often posts a hire weeks ahead,
    # and the account is usually created only days before the start.
    if run.now - max(record.first_seen, _act_at(run)) < hr.user_wait:
        await run.next(Stage.FIND_USER, run.now + hr.user_recheck, attempt=run.work.attempt + 1)
        return Handled(Step.WAITING_FOR_ACCOUNT)
    hours = int(hr.user_wait.total_seconds() // 3600)
    await run.alert(
        ACCOUNT_MISSING,
        Cause.PRESENT,
        "HR person has no Entra account",
        f"HR sent a {run.event.type.value} event, but no Entra user with this object id, UPN or employeeId "
        f"appeared within {hours} hours.",
        "Create the account (or fix the employeeId / UPN in HR or Entra), then resend the HR event.",
    )
    await run.resume(completed=False)
    return Handled(Step.ACCOUNT_MISSING)


@dataclass
class _PersonReads(TenantReads):
    """The reads admission makes for one HR person: the person onboarding has just read is not read again,
    and for a mover the tenant reads as if the move had happened, so the Copilot license held through the
    old group is not "already licensed" (one SKU is one seat either way). Catalogue and group reads go to
    the process's shared reads, with their caches."""

    shared: TenantReads | None = None
    known: Mapping[str, Person] = field(default_factory=dict)
    leaving: frozenset[str] = frozenset()

    async def catalogue(self, *, fresh: bool = False) -> SkuCatalogue:
        return await self._shared.catalogue(fresh=fresh)

    async def group(self, group_id: str) -> GroupSnapshot:
        return await self._shared.group(group_id)

    async def people(self, users: Sequence[str]) -> dict[str, Person | None]:
        unknown = [u for u in users if u.strip() not in self.known]
        found = await self._shared.people(unknown) if unknown else {}
        found.update({u.strip(): self.known[u.strip()] for u in users if u.strip() in self.known})
        return {key: self._moved(person) if person else None for key, person in found.items()}

    @property
    def _shared(self) -> TenantReads:
        return self.shared if self.shared is not None else TenantReads(self.graph, self.clock)

    def _moved(self, person: Person) -> Person:
        kept = tuple(a for a in person.license_assignments if a.assigned_by_group not in self.leaving)
        dropped = {a.sku_id for a in person.license_assignments} - {a.sku_id for a in kept}
        # `assignedLicenses` lists group-inherited SKUs too: those held only through the old group go.
        licenses = tuple(lic for lic in person.assigned_licenses if lic.sku_id not in dropped)
        return replace(person, license_assignments=kept, assigned_licenses=licenses)


class _MoverSeats:
    """The seat store for a mover who already holds the new group's Copilot SKUs through the old group:
    a user in several groups assigning one product uses one license of it (Entra, licensing-group-advanced),
    so the overlap needs no free seat and nothing is reserved for it. All else goes to the real store."""

    def __init__(self, inner: SeatStore) -> None:
        self.inner = inner

    async def headroom(
        self,
        catalogue: SkuCatalogue,
        sku_ids: tuple[str, ...],
        *,
        now: datetime,
        holder: tuple[str, str] | None = None,
    ) -> int:
        return max(1, await self.inner.headroom(catalogue, sku_ids, now=now, holder=holder))

    async def reserve(
        self, catalogue: SkuCatalogue, *, user_id: str, group_id: str, sku_ids: tuple[str, ...], now: datetime
    ) -> bool:
        return True

    async def mark_active(self, user_id: str, group_id: str, active_since: datetime) -> None:
        await self.inner.mark_active(user_id, group_id, active_since)

    async def release(self, user_id: str, group_id: str, reason: ReleaseReason) -> None:
        await self.inner.release(user_id, group_id, reason)

    async def reservations(self) -> tuple[Reservation, ...]:
        return await self.inner.reservations()

    async def join_waitlist(self, entry: WaitlistEntry) -> None:
        await self.inner.join_waitlist(entry)

    async def leave_waitlist(self, user_id: str, group_id: str) -> None:
        await self.inner.leave_waitlist(user_id, group_id)

    async def waitlist(self, group_id: str | None = None) -> tuple[WaitlistEntry, ...]:
        return await self.inner.waitlist(group_id)

    async def claim_waitlist(
        self, user_id: str, group_id: str, *, claimant: str, until: datetime, now: datetime
    ) -> bool:
        return await self.inner.claim_waitlist(user_id, group_id, claimant=claimant, until=until, now=now)

    async def unclaim_waitlist(self, user_id: str, group_id: str, *, claimant: str) -> None:
        await self.inner.unclaim_waitlist(user_id, group_id, claimant=claimant)

    async def record_pending(
        self, user_id: str, group_id: str, reasons: tuple[Reason, ...], since: datetime, *, now: datetime
    ) -> None:
        await self.inner.record_pending(user_id, group_id, reasons, since, now=now)

    async def clear_pending(self, user_id: str, group_id: str) -> None:
        await self.inner.clear_pending(user_id, group_id)

    async def pending(self, group_id: str | None = None) -> tuple[PendingPerson, ...]:
        return await self.inner.pending(group_id)

    async def record_addition(self, addition: Addition) -> None:
        await self.inner.record_addition(addition)

    async def forget_addition(self, user_id: str, group_id: str) -> None:
        await self.inner.forget_addition(user_id, group_id)

    async def addition(self, user_id: str, group_id: str) -> Addition | None:
        return await self.inner.addition(user_id, group_id)


def _seat_carried_over(person: Person, ld: LicenseDeps, group_id: str, leaving: Sequence[str]) -> bool:
    """True when the person holds every Copilot SKU of the new group, active, through the groups left."""
    licensing = ld.policy.group(group_id)
    if licensing is None or not leaving:
        return False
    wanted = frozenset(s.lower() for s in licensing.copilot_sku_ids)
    held = {
        a.sku_id
        for a in person.assignments_for(wanted)
        if a.is_active and a.assigned_by_group in {g.lower() for g in leaving}
    }
    return held == set(wanted)


async def _admit(
    run: _Run, person: Person, group_id: str, rule: str | None, *, leaving: Sequence[str] = ()
) -> Result:
    reads = _PersonReads(
        run.ld.graph,
        run.ld.clock,
        shared=run.ld.reads,
        known={person.id: person},
        leaving=frozenset(g.lower() for g in leaving),
    )
    ld = replace(run.ld, reads=reads)
    if _seat_carried_over(person, run.ld, group_id, leaving):
        ld = replace(ld, seats=_MoverSeats(run.ld.seats))
    request = AdmitRequest(
        person.id,
        group_id,
        f"HR {run.event.type.value} (rule {rule})",
        f"hr:{run.event.source}"[:256],
        hr_country=person.hr_country,
    )
    [admission] = await admit(
        [request], ld, correlation_id=run.message.correlation_id, version=run.message.version
    )
    return admission.result


async def _joiner(run: _Run, person: Person) -> Handled:
    choice = await target_with_rollouts(run.ld.policy, person, RolloutRecords(run.deps.state))
    if choice.group_id is None:
        await run.resume(completed=True)
        return Handled(Step.NO_GROUP)
    result = await _admit(run, person, choice.group_id, choice.rule)
    await run.resume(completed=result not in (Result.NOT_FOUND, Result.REFUSED))
    return Handled(Step.ADMITTED, result, choice.group_id)


async def _mover(run: _Run, person: Person) -> Handled:
    """New group first; the old ones are left only once the new license is Active (no gap)."""
    choice = await target_with_rollouts(run.ld.policy, person, RolloutRecords(run.deps.state))
    current = _copilot_groups(person, run.ld)
    old = [g for g in current if g != choice.group_id]
    # A place the person waited in for a group the rules no longer choose is given up, so that a seat
    # freed there later does not add them to the old group as well; so is a seat held there for an add
    # that never came to an assignment.
    others = [g.id.lower() for g in run.ld.policy.licensing_groups if g.id.lower() != choice.group_id]
    await _stop_waiting(run.ld, person.id, others, holding=set(current))
    if choice.group_id is not None and choice.group_id not in current:
        result = await _admit(run, person, choice.group_id, choice.rule, leaving=old)
        if old:
            await run.next(Stage.VERIFY, run.now + run.ld.policy.hr.move_recheck, attempt=1)
        return Handled(Step.MOVING if old else Step.ADMITTED, result, choice.group_id)
    if not old:
        return Handled(Step.UNCHANGED, group_id=choice.group_id)
    if choice.group_id is not None and not current.get(choice.group_id, False):
        await run.next(Stage.VERIFY, run.now + run.ld.policy.hr.move_recheck, attempt=1)
        return Handled(Step.MOVING, group_id=choice.group_id)
    return await _plan(run, person, old, why=f"HR mover ({choice.rule or 'no rule'})")


async def _plan(run: _Run, person: Person, group_ids: list[str], *, why: str) -> Handled:
    """Plan the removals removal safety allows; they are carried out after the settle time."""
    planned = 0
    for group_id in group_ids:
        try:
            snapshot = await run.ld.reads.group(group_id)
        except NotFound:
            continue
        added = await run.ld.seats.addition(person.id, group_id) is not None
        refused = removal_refusal(
            run.ld.policy,
            user_id=person.id,
            user_principal_name=person.user_principal_name,
            group=snapshot,
            added_by_seatkeeper=added,
        )
        if refused is not None:
            log.warning("hr.removal_refused", user_id=person.id, group_id=group_id, why=refused.value)
            continue
        await run.removals.plan(
            PlannedRemoval(person.id, group_id, run.event.person.employee_id, why, run.now)
        )
        planned += 1
    if not planned:
        return Handled(Step.NOTHING_TO_REMOVE)
    await run.next(Stage.REMOVE, run.now + SETTLE)
    return Handled(Step.REMOVALS_PLANNED)


async def _stop_waiting(
    ld: LicenseDeps, user_id: str, group_ids: Sequence[str], *, holding: set[str]
) -> None:
    """Give up the person's pending record and waitlist place in these groups, and the seat reserved in
    those it holds no assignment through: an admission a kill or a failed add left there would otherwise
    keep the seat from the waitlist until the reservation times out."""
    for group_id in group_ids:
        await ld.seats.clear_pending(user_id, group_id)
        await ld.seats.leave_waitlist(user_id, group_id)
        if group_id not in holding:
            await ld.seats.release(user_id, group_id, ReleaseReason.CANCELLED)


async def _leaver(run: _Run) -> Handled:
    """At the effective time: leave every Copilot group Seatkeeper may write; stop waiting for seats."""
    entra = await run.find()
    if entra is None:
        await run.resume(completed=True)
        return Handled(Step.NOTHING_TO_REMOVE)
    groups = [g.id.lower() for g in run.ld.policy.licensing_groups]
    held = set(_copilot_groups(entra, run.ld))
    ours = {g for g in groups if await run.ld.seats.addition(entra.id, g) is not None}
    # Seats of the groups planned for removal go back with the removal.
    await _stop_waiting(run.ld, entra.id, groups, holding=held | ours)
    handled = await _plan(run, entra, sorted(held | ours), why="HR leaver")
    await run.resume(completed=True)
    return handled


async def _remove(run: _Run) -> Handled:
    planned = await run.removals.planned_for(run.event.person.employee_id)
    carried = await run.removals.carry_out(
        planned, run.ld, correlation_id=run.message.correlation_id, version=run.message.version
    )
    if carried.held:
        return Handled(Step.HELD)
    await run.next(Stage.VERIFY, run.now + run.ld.policy.hr.move_recheck, attempt=1)
    return Handled(Step.REMOVED)


async def _verify(run: _Run) -> Handled:
    """A mover's new license (or, no longer qualifying, the seat given back) or a leaver's seat."""
    if run.event.type is HrEventType.MOVER:
        return await _verify_move(run)
    return await _verify_leave(run, await run.find())


async def _verify_move(run: _Run) -> Handled:
    entra = await run.find()
    if entra is None:
        return Handled(Step.ACCOUNT_MISSING)
    person = person_from_hr(run.event.person, entra)
    choice = await target_with_rollouts(run.ld.policy, person, RolloutRecords(run.deps.state))
    if choice.group_id is None:  # no longer qualifying: removed like a leaver, the seat goes to the next
        return await _verify_leave(run, entra)
    current = _copilot_groups(person, run.ld)
    if current.get(choice.group_id, False):
        old = [g for g in current if g != choice.group_id]
        return (
            await _plan(run, person, old, why=f"HR mover ({choice.rule})") if old else Handled(Step.UNCHANGED)
        )
    if run.work.attempt < MAX_VERIFY_ATTEMPTS:
        await run.next(Stage.VERIFY, run.now + run.ld.policy.hr.move_recheck, attempt=run.work.attempt + 1)
        return Handled(Step.WAITING, group_id=choice.group_id)
    await run.alert(
        MOVE_STUCK,
        Cause.PRESENT,
        "Moved person's new Copilot license is not active",
        "The person was admitted to the new group but its license never became Active; the old group "
        "was kept so that Copilot does not stop.",
        "Look at the person's pending reasons (`seatkeeper pending`) and the new group's license errors.",
    )
    return Handled(Step.MOVE_STUCK, group_id=choice.group_id)


async def _verify_leave(run: _Run, entra: Person | None) -> Handled:
    """The seat came back (no Copilot group left): the waitlist is served; else looked at again."""
    if entra is None or not _copilot_groups(entra, run.ld):
        await serve_waiting(run.ld, correlation_id=run.message.correlation_id, version=run.message.version)
        return Handled(Step.SEAT_RETURNED)
    if run.work.attempt < MAX_VERIFY_ATTEMPTS:
        await run.next(Stage.VERIFY, run.now + run.ld.policy.hr.move_recheck, attempt=run.work.attempt + 1)
        return Handled(Step.WAITING)
    await run.alert(
        SEAT_NOT_RETURNED,
        Cause.PRESENT,
        "A leaver still holds a Copilot license",
        "The person left every Copilot group Seatkeeper may write, yet still holds a Copilot assignment.",
        "Check for a direct assignment or a group Seatkeeper does not manage, and remove it.",
    )
    return Handled(Step.WAITING)
