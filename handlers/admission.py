"""Admission (the `admit` message and `seatkeeper admit`): gate, reserve a seat, add, record the addition,
hand over to verification (issue 7 item 3). HR events and rollouts admit through this same path.

Many requests are one unit of work: people are read in `$batch`es, the gate runs person by person in
request order (first come, first served for the last seats), and members are added 20 a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog

from handlers.license_commands import LicenseDeps, UnitOfWork, refusal
from handlers.tenant_reads import with_hr_country
from seatkeeper.core.commands import AddToGroup, Command
from seatkeeper.core.errors import NotFound, PermanentError
from seatkeeper.core.gate import Decision, Outcome, decide
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.license_messages import AdmitRequest, parse_admit
from seatkeeper.core.messages import Message
from seatkeeper.core.people import Person
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seat_ports import Addition
from seatkeeper.core.seats import ReleaseReason
from seatkeeper.core.skus import SkuCatalogue

log = structlog.get_logger("seatkeeper.license")


class Result(StrEnum):
    """What admission did for one request."""

    ADDED = "added"
    ALREADY_MEMBER = "already_member"
    ALREADY_LICENSED = "already_licensed"
    PENDING = "pending"
    OBSERVED = "observed"
    NOT_FOUND = "not_found"
    REFUSED = "refused"


@dataclass(frozen=True)
class Admission:
    """The outcome of one admit request: what happened, why (machine-readable) and one sentence."""

    request: AdmitRequest
    result: Result
    reasons: tuple[Reason, ...] = ()
    summary: str = ""
    user_id: str | None = None


@dataclass
class _Waiting:
    index: int
    request: AdmitRequest
    person: Person
    group: GroupSnapshot
    tail: tuple[Command, ...]


def _split(commands: Sequence[Command]) -> tuple[tuple[Command, ...], tuple[Command, ...]] | None:
    """The commands before the add and from the add on; None when there is no add."""
    for i, command in enumerate(commands):
        if isinstance(command, AddToGroup):
            return tuple(commands[:i]), tuple(commands[i:])
    return None


def _result_of(decision: Decision, observe_only: bool) -> Result:
    if observe_only:
        return Result.OBSERVED
    return {
        Outcome.ALREADY_LICENSED: Result.ALREADY_LICENSED,
        Outcome.ALREADY_MEMBER: Result.ALREADY_MEMBER,
    }.get(decision.outcome, Result.PENDING)


async def _groups(deps: LicenseDeps, requests: Sequence[AdmitRequest]) -> dict[str, GroupSnapshot | None]:
    found: dict[str, GroupSnapshot | None] = {}
    for group_id in dict.fromkeys(r.group_id.strip().lower() for r in requests):
        try:
            found[group_id] = await deps.reads.group(group_id)
        except NotFound:
            found[group_id] = None
    return found


async def admit(
    requests: Sequence[AdmitRequest], deps: LicenseDeps, *, correlation_id: str, version: str
) -> tuple[Admission, ...]:
    """Admit each request in order; returns one Admission per request (same order).

    Transient errors propagate (every step converges, so a rerun is safe); a group Graph refuses to
    write releases the reservations made for it and reports the requests as refused.
    """
    unit = UnitOfWork(deps, correlation_id, version)
    now = deps.clock.now()
    catalogue = await deps.reads.catalogue()
    people = await deps.reads.people([r.person for r in requests])
    groups = await _groups(deps, requests)
    results: list[Admission | None] = []
    waiting: dict[str, list[_Waiting]] = {}
    for index, request in enumerate(requests):
        person = people.get(request.person.strip())
        group = groups.get(request.group_id.strip().lower())
        if person is None or group is None:
            what = "user" if person is None else "group"
            results.append(Admission(request, Result.NOT_FOUND, summary=f"No such {what}."))
            continue
        person = with_hr_country(person, request.hr_country)
        admission, tail = await _gate(unit, request, person, group=group, catalogue=catalogue, now=now)
        results.append(admission)
        if tail is not None:
            waiting.setdefault(group.id, []).append(_Waiting(index, request, person, group, tail))
    for group_id, items in waiting.items():
        for item, admission in zip(items, await _add(unit, group_id, items, catalogue, now), strict=True):
            results[item.index] = admission
    await unit.finish()
    done = tuple(a for a in results if a is not None)
    for admission in done:
        log.info(
            "license.admission",
            user_id=admission.user_id,
            group_id=admission.request.group_id,
            result=admission.result.value,
            reasons=[r.value for r in admission.reasons],
        )
    return done


async def _gate(
    unit: UnitOfWork,
    request: AdmitRequest,
    person: Person,
    *,
    group: GroupSnapshot,
    catalogue: SkuCatalogue,
    now: datetime,
) -> tuple[Admission | None, tuple[Command, ...] | None]:
    """Decide and carry out everything before the add; the commands from the add on when one is due."""
    deps = unit.deps
    licensing = deps.policy.group(group.id)
    sku_ids = tuple(licensing.copilot_sku_ids) if licensing is not None else ()
    # An admission retried after a kill or a failed add still holds its seat: that seat is free for it.
    holder = (person.id, group.id)
    free = await deps.seats.headroom(catalogue, sku_ids, now=now, holder=holder) if sku_ids else 0
    decision = decide(
        person,
        group=group,
        policy=deps.policy,
        catalogue=catalogue,
        free_seats=free,
        now=now,
        why=request.reason,
    )
    parts = _split(decision.commands)
    if parts is None:
        await unit.perform(decision.commands, person=person, group=group, catalogue=catalogue, now=now)
        observed = licensing is not None and licensing.observe_only
        return Admission(
            request, _result_of(decision, observed), decision.reasons, decision.summary, person.id
        ), None
    why = refusal(deps.policy, person, group, adding=True)
    if why is not None:
        log.error("license.write_refused", user_id=person.id, group_id=group.id, write="add_member", why=why)
        return Admission(request, Result.REFUSED, (), f"Refused by the write guard: {why}.", person.id), None
    head, tail = parts
    if not await unit.perform(head, person=person, group=group, catalogue=catalogue, now=now):
        # The store gave the last seat to someone else: the gate's answer with no seat left.
        full = decide(
            person,
            group=group,
            policy=deps.policy,
            catalogue=catalogue,
            free_seats=0,
            now=now,
            why=request.reason,
        )
        await unit.perform(full.commands, person=person, group=group, catalogue=catalogue, now=now)
        return Admission(request, Result.PENDING, full.reasons, full.summary, person.id), None
    return None, tail


async def _add(
    unit: UnitOfWork, group_id: str, items: list[_Waiting], catalogue: SkuCatalogue, now: datetime
) -> list[Admission]:
    """Add the group's admitted people in bulk, each addition recorded before the write; carry out what
    follows the add.

    The record comes first because an add can happen without its answer reaching us (the process killed,
    the retries spent) or land first from a concurrent admission of the same person: the attempt that
    follows finds the user a member, and only a record written before the write still says the membership
    is Seatkeeper's (removals on a leaver or a mover depend on it). So a member found present counts as
    Seatkeeper's: the gate has just read them as not holding the group's license and decided they belong.
    Members from before whose license the engine has processed are seen by the gate and never reach here.
    """
    deps = unit.deps
    earlier: set[str] = set()
    for item in items:
        user = item.person.id
        if _recent(await deps.seats.addition(user, group_id), deps, now):
            earlier.add(user)
        await deps.seats.record_addition(
            Addition(user, group_id, now, item.request.reason, item.request.requested_by)
        )
    try:
        answer = await deps.graph.add_members(group_id, [item.person.id for item in items])
    except PermanentError as error:
        for item in items:
            if item.person.id not in earlier:  # an earlier attempt's add may have landed: keep its record
                await deps.seats.forget_addition(item.person.id, group_id)
            await deps.seats.release(item.person.id, group_id, ReleaseReason.CANCELLED)
        log.error(  # noqa: TRY400 - the error is named; its traceback adds nothing
            "license.add_failed", group_id=group_id, users=len(items), error=type(error).__name__
        )
        return [
            Admission(
                item.request,
                Result.REFUSED,
                (),
                f"Graph refused the add: {type(error).__name__}.",
                item.person.id,
            )
            for item in items
        ]
    added, already = set(answer.added), set(answer.already_members)
    admissions: list[Admission] = []
    for item in items:
        user = item.person.id
        if user not in added and user not in already:
            await deps.seats.forget_addition(user, group_id)
            await deps.seats.release(user, group_id, ReleaseReason.CANCELLED)
            admissions.append(Admission(item.request, Result.NOT_FOUND, (), "No such user.", user))
            continue
        await unit.perform(item.tail, person=item.person, group=item.group, catalogue=catalogue, now=now)
        label = item.person.user_principal_name or user
        name = item.group.display_name or group_id
        if user in added:
            admissions.append(
                Admission(item.request, Result.ADDED, (), f"{label} was added to {name}.", user)
            )
        else:
            sentence = f"{label} already was a member of {name}."
            admissions.append(
                Admission(item.request, Result.ALREADY_MEMBER, (Reason.ALREADY_MEMBER,), sentence, user)
            )
    return admissions


def _recent(addition: Addition | None, deps: LicenseDeps, now: datetime) -> bool:
    """True for a record of an add written within the verification deadline: an earlier attempt's."""
    return addition is not None and now - addition.added_at <= deps.policy.verification_deadline


async def handle_admit(message: Message, deps: LicenseDeps) -> Admission:
    """One validated `admit` message."""
    [admission] = await admit(
        [parse_admit(message.payload)], deps, correlation_id=message.correlation_id, version=message.version
    )
    return admission
