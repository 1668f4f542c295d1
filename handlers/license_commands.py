"""Carrying out the commands of the gate and of verification through the ports, in order, with the write
path guarded a second time: whatever a decision says, nothing is written to a group that is not a
writable licensing group, to an observe-only group, or for a protected user (design §1).

Tenant writes other than member adds (usage location, reprocess) and outgoing messages (re-checks, alerts)
are collected and sent at the end of a unit of work: reprocesses in `$batch`es, messages in one send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from handlers.tenant_reads import TenantReads
from seatkeeper.core.commands import (
    AddToGroup,
    ClearPending,
    Command,
    JoinWaitlist,
    MarkSeatActive,
    RaiseAlert,
    RecordPending,
    ReleaseReservation,
    Reprocess,
    ReserveSeat,
    ScheduleRecheck,
    SetUsageLocation,
)
from seatkeeper.core.errors import Throttled
from seatkeeper.core.graph_port import GraphPort, GraphRequest
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import alert_message
from seatkeeper.core.license_messages import Change, LicenseCheck, check_message
from seatkeeper.core.messages import Message
from seatkeeper.core.people import Person
from seatkeeper.core.policy import Policy
from seatkeeper.core.ports import Clock, MessageSender
from seatkeeper.core.seat_ports import SeatStore
from seatkeeper.core.seats import WaitlistEntry
from seatkeeper.core.skus import SkuCatalogue

log = structlog.get_logger("seatkeeper.license")


@dataclass
class LicenseDeps:
    """What the admission, verification and reprocess handlers need, from the composition root."""

    graph: GraphPort
    reads: TenantReads
    seats: SeatStore
    sender: MessageSender
    clock: Clock
    policy: Policy


def refusal(policy: Policy, person: Person, group: GroupSnapshot | None, *, adding: bool) -> str | None:
    """Why a tenant write for this person (and group) must not happen, or None when it may.

    The second line of defence behind `decide()`/`verify()`: protected users are never touched; members
    are added only to writable licensing groups that are not observe-only.
    """
    if policy.is_protected(person.id, person.user_principal_name):
        return "protected_user"
    if group is None:
        return "no_group" if adding else None
    licensing = policy.group(group.id)
    if licensing is None:
        return "not_a_licensing_group"
    if licensing.observe_only:
        return "observe_only"
    if adding and not group.membership_writable:
        return "group_not_writable"
    return None


@dataclass
class UnitOfWork:
    """One handler run: its commands' side effects that are batched until `finish()`."""

    deps: LicenseDeps
    correlation_id: str
    version: str
    messages: list[Message] = field(default_factory=list)
    reprocess: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    # Places taken on the waitlist in this run: people gated in one run share its `now`, so this keeps
    # them first come, first served in the order they were gated (a bulk admission's request order).
    waitlisted: int = 0

    async def perform(
        self,
        commands: Sequence[Command],
        *,
        person: Person,
        group: GroupSnapshot | None,
        catalogue: SkuCatalogue,
        now: datetime,
    ) -> bool:
        """Run the commands in order, except AddToGroup (the caller adds members in bulk).

        Returns False when ReserveSeat was refused (the person is recorded pending "no seat" instead and
        the rest is skipped, as the gate's author asks).
        """
        for command in commands:
            if isinstance(command, ReserveSeat):
                if not await self.deps.seats.reserve(
                    catalogue,
                    user_id=command.user_id,
                    group_id=command.group_id,
                    sku_ids=command.sku_ids,
                    now=now,
                ):
                    return False
            elif isinstance(command, SetUsageLocation | Reprocess):
                await self._tenant_write(command, person, group)
            elif isinstance(command, ScheduleRecheck):
                self.schedule(command)
            elif isinstance(command, RaiseAlert):
                message = alert_message(
                    command.signal, correlation_id=self.correlation_id, version=self.version
                )
                self.messages.append(message)
            elif not isinstance(command, AddToGroup):
                await self._state_write(command, now)
        return True

    async def _tenant_write(
        self, command: SetUsageLocation | Reprocess, person: Person, group: GroupSnapshot | None
    ) -> None:
        if isinstance(command, SetUsageLocation):
            if self._allowed(person, group, "set_usage_location"):
                await self.deps.graph.send(
                    "PATCH",
                    f"/users/{command.user_id}",
                    {"usageLocation": command.usage_location},
                    idempotent=True,
                )
        elif self._allowed(person, group, "reprocess") and command.user_id not in self.reprocess:
            self.reprocess.append(command.user_id)

    async def _state_write(self, command: Command, now: datetime) -> None:
        """Seatkeeper's own state: pending people, the waitlist, reservations."""
        seats = self.deps.seats
        match command:
            case RecordPending(user_id=user, group_id=group_id, reasons=reasons, since=since):
                await seats.record_pending(user, group_id, reasons, since, now=now)
            case ClearPending(user_id=user, group_id=group_id):
                await seats.clear_pending(user, group_id)
                await seats.leave_waitlist(user, group_id)
            case JoinWaitlist(user_id=user, group_id=group_id, since=since, source=source):
                self.waitlisted += 1
                await seats.join_waitlist(WaitlistEntry(user, group_id, since, source, self.waitlisted))
            case MarkSeatActive(user_id=user, group_id=group_id, active_since=since):
                await seats.mark_active(user, group_id, since)
            case ReleaseReservation(user_id=user, group_id=group_id, reason=reason):
                await seats.release(user, group_id, reason)
            case _:
                raise TypeError(f"not a state command: {type(command).__name__}")

    def _allowed(self, person: Person, group: GroupSnapshot | None, write: str) -> bool:
        why = refusal(self.deps.policy, person, group, adding=False)
        if why is None:
            return True
        self.refused.append((person.id, why))
        log.error("license.write_refused", user_id=person.id, write=write, why=why)
        return False

    def schedule(self, recheck: ScheduleRecheck) -> None:
        """A `license.check` due at the re-check time (its id derives from the due time: repeats collapse)."""
        check = LicenseCheck(
            recheck.user_id,
            recheck.group_id,
            Change.REMOVED if recheck.removed else Change.RECHECK,
            recheck.added_at,
            recheck.reprocesses,
            source="recheck",
        )
        self.messages.append(
            check_message(
                check,
                version=recheck.due_at.isoformat(),
                correlation_id=self.correlation_id,
                due_at=recheck.due_at,
            )
        )

    async def finish(self) -> None:
        """Send the reprocesses (in `$batch`es of 20) and then every collected message in one send."""
        if self.reprocess:
            requests = [
                GraphRequest("POST", f"/users/{u}/reprocessLicenseAssignment") for u in self.reprocess
            ]
            answers = await self.deps.graph.batch(requests)
            throttled = False
            for user, answer in zip(self.reprocess, answers, strict=True):
                if not answer.ok:
                    throttled = throttled or answer.status == 429
                    log.warning("license.reprocess_failed", user_id=user, status=answer.status)
            if throttled:
                # 429 is the authority: the whole unit runs again later (its steps converge).
                raise Throttled("reprocess throttled past the retry budget")
            self.reprocess.clear()
        if self.messages:
            await self.deps.sender.send(self.messages)
            self.messages.clear()
