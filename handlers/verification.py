"""Verification (`license.check` messages): read each member's license states, act on `verify()` — done,
re-check later, reprocess, wait for a seat, alert — and serve the waitlist when seats may have appeared
(issue 7 items 2 and 5). A member who left frees its reservation and waitlist place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import structlog

from handlers.admission import Admission, admit
from handlers.license_commands import LicenseDeps, UnitOfWork
from seatkeeper.core.commands import ReleaseReservation, ScheduleRecheck
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.license_errors import LicenseError
from seatkeeper.core.license_messages import AdmitRequest, Change, LicenseCheck, parse_check
from seatkeeper.core.messages import Message
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import ReleaseReason, WaitlistEntry, WaitSource, serve_waitlist
from seatkeeper.core.skus import SkuCatalogue
from seatkeeper.core.verification import Status, next_check_at, verify, verify_removal

log = structlog.get_logger("seatkeeper.license")

WAITLIST_REASON = "a seat became free (waitlist)"
SEAT_BACK = "The member left the group; its seat is free again."
SEATKEEPER = "seatkeeper"
# How long a server holds the waitlist places it serves (business time); a hold left by a server that died
# runs out, and the person is served again.
CLAIM_HOLD: Final = timedelta(minutes=5)


@dataclass(frozen=True)
class Checked:
    """The outcome of one check: verification's status (or `removed`, `not_found`, `not_licensing`)."""

    check: LicenseCheck
    status: str
    reasons: tuple[Reason, ...] = ()
    summary: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Served:
    """Who the waitlist served: members in CountViolation reprocessed, pending people admitted."""

    reprocessed: tuple[str, ...] = ()
    admitted: tuple[Admission, ...] = ()


async def verify_members(
    checks: Sequence[LicenseCheck], deps: LicenseDeps, *, correlation_id: str, version: str
) -> tuple[tuple[Checked, ...], Served]:
    """Verify each check (users read in `$batch`es), then serve the waitlist if a seat may be free."""
    unit = UnitOfWork(deps, correlation_id, version)
    now = deps.clock.now()
    removed = [c for c in checks if c.change is Change.REMOVED]
    present = [c for c in checks if c.change is not Change.REMOVED]
    # A leaver's seat shows in consumedUnits only in a fresh snapshot.
    catalogue = await deps.reads.catalogue(fresh=bool(removed))
    results: list[Checked] = []
    freed = False
    people = await deps.reads.people([c.user_id for c in checks]) if checks else {}
    for check in removed:
        await _forget(deps, check.user_id, check.group_id, ReleaseReason.CANCELLED)
        leaver = people.get(check.user_id)
        licensing = deps.policy.group(check.group_id)
        if leaver is None or licensing is None:
            freed = True
            results.append(Checked(check, "removed", (), SEAT_BACK))
            continue
        verdict = verify_removal(
            leaver,
            group=licensing,
            policy=deps.policy,
            catalogue=catalogue,
            removed_at=check.added_at or now,
            now=_checked_at(check, now),
        )
        snapshot = GroupSnapshot(licensing.id, licensing.display_name)
        await unit.perform(verdict.commands, person=leaver, group=snapshot, catalogue=catalogue, now=now)
        # A seat kept by DependencyViolation is still consumed: nothing to hand out.
        freed = freed or verdict.status is Status.REMOVED
        error = verdict.raw_error or (verdict.error.value if verdict.error is not None else None)
        results.append(Checked(check, verdict.status.value, verdict.reasons, verdict.summary, error))
    for check in present:
        licensing = deps.policy.group(check.group_id)
        person = people.get(check.user_id)
        if licensing is None:
            results.append(Checked(check, "not_licensing", (Reason.NOT_A_LICENSING_GROUP,)))
            continue
        if person is None:
            await _forget(deps, check.user_id, check.group_id, ReleaseReason.CANCELLED)
            results.append(Checked(check, "not_found", (), "The user no longer exists."))
            freed = True
            continue
        added_at = check.added_at
        if added_at is None:
            addition = await deps.seats.addition(person.id, licensing.id)
            added_at = addition.added_at if addition is not None else now
        verdict = verify(
            person,
            group=licensing,
            policy=deps.policy,
            catalogue=catalogue,
            added_at=added_at,
            now=_checked_at(check, now),
            reprocesses=check.reprocesses,
        )
        snapshot = GroupSnapshot(licensing.id, licensing.display_name)
        await unit.perform(verdict.commands, person=person, group=snapshot, catalogue=catalogue, now=now)
        # A released reservation frees a seat, except after CountViolation: there was none to free.
        freed = freed or (
            verdict.error is not LicenseError.COUNT_VIOLATION
            and any(isinstance(c, ReleaseReservation) for c in verdict.commands)
        )
        error = verdict.raw_error or (verdict.error.value if verdict.error is not None else None)
        results.append(Checked(check, verdict.status.value, verdict.reasons, verdict.summary, error))
    await unit.finish()
    for checked in results:
        log.info(
            "license.verified",
            user_id=checked.check.user_id,
            group_id=checked.check.group_id,
            status=checked.status,
            reasons=[r.value for r in checked.reasons],
            error=checked.error,
        )
    # Seats appear when bought (seen in a snapshot at most SKU_TTL old) or freed (seen in a fresh one).
    served = await serve_waiting(deps, correlation_id=correlation_id, version=version, fresh=freed)
    return tuple(results), served


def _checked_at(check: LicenseCheck, now: datetime) -> datetime:
    """A scheduled check happens no earlier than its due time: the handler's clock may lag the queue's
    (clock skew; the local host follows the sandbox's clock with a delay), and a next re-check computed
    from an earlier time could fall on this message's own due time (same id: dropped, ending the chain)."""
    return max(now, check.due_at) if check.due_at is not None else now


async def _forget(deps: LicenseDeps, user_id: str, group_id: str, reason: ReleaseReason) -> None:
    await deps.seats.release(user_id, group_id, reason)
    await deps.seats.leave_waitlist(user_id, group_id)


async def serve_waiting(
    deps: LicenseDeps, *, correlation_id: str, version: str, fresh: bool = True
) -> Served:
    """Hand free seats to the waitlist in order: a member in CountViolation gets a seat reserved and is
    reprocessed; a pending person goes through admission again (its other blockers are re-gated).
    Reconciliation calls this too; `fresh` re-reads the SKUs (seats freed a moment ago)."""
    entries = await deps.seats.waitlist()
    if not entries:
        return Served()
    now = deps.clock.now()
    catalogue = await deps.reads.catalogue(fresh=fresh)
    skus_by_group = {
        g.id.lower(): tuple(s.lower() for s in g.copilot_sku_ids) for g in deps.policy.licensing_groups
    }
    free = {
        sku: await deps.seats.headroom(catalogue, (sku,), now=now)
        for sku in sorted({s for skus in skus_by_group.values() for s in skus})
    }
    serving = serve_waitlist(entries, free, skus_by_group)
    if not serving.served:
        log.info("license.waitlist_waits", waiting=len(entries), free=sum(free.values()))
        return Served()
    # Several triggers may serve at once (a burst of leavers): each place is claimed under its ETag first,
    # and a place another server holds is left to it (its seat too: that server reserves it).
    claimant, until = uuid.uuid4().hex, now + CLAIM_HOLD
    mine = [
        entry
        for entry in serving.served
        if await deps.seats.claim_waitlist(
            entry.user_id, entry.group_id, claimant=claimant, until=until, now=now
        )
    ]
    try:
        served = await _serve(
            deps,
            mine,
            catalogue=catalogue,
            skus_by_group=skus_by_group,
            now=now,
            correlation_id=correlation_id,
            version=version,
        )
    finally:
        # Whoever was not admitted keeps the place, free for the next serving at once.
        for entry in mine:
            await deps.seats.unclaim_waitlist(entry.user_id, entry.group_id, claimant=claimant)
    log.info(
        "license.waitlist_served",
        reprocessed=len(served.reprocessed),
        admitted=len(served.admitted),
        served_elsewhere=len(serving.served) - len(mine),
    )
    return served


async def _serve(
    deps: LicenseDeps,
    entries: Sequence[WaitlistEntry],
    *,
    catalogue: SkuCatalogue,
    skus_by_group: dict[str, tuple[str, ...]],
    now: datetime,
    correlation_id: str,
    version: str,
) -> Served:
    """Reserve and reprocess the members in CountViolation, then admit the pending people (in order)."""
    unit = UnitOfWork(deps, correlation_id, version)
    reprocessed = [
        entry.user_id
        for entry in entries
        if entry.source is WaitSource.COUNT_VIOLATION
        and await _reserve_and_reprocess(
            unit,
            catalogue,
            user_id=entry.user_id,
            group_id=entry.group_id,
            skus_by_group=skus_by_group,
            now=now,
        )
    ]
    await unit.finish()
    requests = [
        AdmitRequest(entry.user_id, entry.group_id, WAITLIST_REASON, SEATKEEPER)
        for entry in entries
        if entry.source is WaitSource.PENDING
    ]
    admitted = await admit(requests, deps, correlation_id=correlation_id, version=version) if requests else ()
    return Served(tuple(reprocessed), admitted)


async def _reserve_and_reprocess(
    unit: UnitOfWork,
    catalogue: SkuCatalogue,
    *,
    user_id: str,
    group_id: str,
    skus_by_group: dict[str, tuple[str, ...]],
    now: datetime,
) -> bool:
    deps = unit.deps
    licensing = deps.policy.group(group_id)
    if licensing is None or licensing.observe_only or deps.policy.is_protected(user_id):
        return False
    skus = skus_by_group.get(group_id.lower(), ())
    if not await deps.seats.reserve(catalogue, user_id=user_id, group_id=group_id, sku_ids=skus, now=now):
        return False
    await deps.seats.leave_waitlist(user_id, group_id)
    unit.reprocess.append(user_id)
    due = next_check_at(now, now, deps.policy.verification_deadline)
    if due is not None:
        unit.schedule(ScheduleRecheck(user_id, group_id, due, now))
    return True


async def handle_check(message: Message, deps: LicenseDeps) -> Checked:
    """One validated `license.check` message."""
    [checked], _ = await verify_members(
        [parse_check(message.payload)], deps, correlation_id=message.correlation_id, version=message.version
    )
    return checked
