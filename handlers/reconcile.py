"""The reconciliation sweep (a timer): the safety net that finds what every event missed.

Per licensing group: the group delta catch-up (issue 6's, queued), `membersWithLicenseErrors` (each member
→ a `license.check` for verification), members licensed for Copilot without a working base license, and the
group's health. Then pending people whose blocker may have cleared (→ `admit`, the admission path), and seat
headroom per Copilot SKU (a measured alert: the incident manager applies the threshold with hysteresis).
Each finding is one `alerts` message; a "gone" is sent only where an incident is open. It ends by recording
its heartbeat. With change notifications off, these sweeps alone bring every user to the same end state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

import structlog

from handlers.group_changes import reconcile as queue_catch_ups
from handlers.heartbeat import RECONCILE, open_incident_keys, record_heartbeat
from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import TenantReads
from handlers.verification import serve_waiting
from seatkeeper.core.base_licenses import check_base_license
from seatkeeper.core.errors import InvalidInput, NotFound, PermanentError
from seatkeeper.core.gate import Outcome, decide
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.group_health import (
    DEFAULT_STUCK_AFTER,
    HEALTH_SELECT,
    Finding,
    GroupState,
    Member,
    Problem,
    check_group,
    health_members,
    health_signal,
    healthy_signal,
    is_copilot_sku,
    members_from_graph,
    missing_group,
    processing_since,
    state_from_graph,
)
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import (
    SEAT_HEADROOM_PROBLEM,
    AlertSignal,
    Cause,
    IncidentKey,
    Scope,
    alert_message,
)
from seatkeeper.core.license_alerts import finding_alert, seat_shortage_alert
from seatkeeper.core.license_messages import AdmitRequest, Change, LicenseCheck, admit_message, check_message
from seatkeeper.core.messages import Message
from seatkeeper.core.people import USER_SELECT, Person, person_from_graph
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.ports import Clock, MessageSender, StateStore
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seat_ports import PendingPerson, SeatStore
from seatkeeper.core.skus import SkuCatalogue

GROUP_HEALTH_TABLE: Final = "grouphealth"
_PROCESSING_PARTITION: Final = "processing"
MEMBER_SELECT: Final = ("displayName", *USER_SELECT)
WILL_NOT_WORK_PROBLEM: Final = f"gate.{Reason.COPILOT_WILL_NOT_WORK.value}"
REQUESTED_BY: Final = "seatkeeper-reconcile"
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileDeps:
    """The ports and policy the sweep works with, from the composition root."""

    graph: GraphPort
    reads: TenantReads
    seats: SeatStore
    state: StateStore
    sender: MessageSender
    clock: Clock
    policy: Policy
    stuck_after: timedelta = DEFAULT_STUCK_AFTER


@dataclass
class SweepReport:
    """What one sweep found and queued."""

    groups: int = 0
    catch_ups: int = 0
    findings: list[Finding] = field(default_factory=list)
    license_checks: list[str] = field(default_factory=list)
    without_base_license: list[str] = field(default_factory=list)
    admits: list[str] = field(default_factory=list)
    headroom: dict[str, int] = field(default_factory=dict)
    waitlist_served: int = 0
    alerts: int = 0
    failed_groups: list[str] = field(default_factory=list)


@dataclass
class _Sweep:
    deps: ReconcileDeps
    correlation_id: str
    now: datetime
    catalogue: SkuCatalogue
    open_keys: frozenset[IncidentKey]
    report: SweepReport = field(default_factory=SweepReport)
    messages: list[Message] = field(default_factory=list)
    snapshots: dict[str, GroupSnapshot] = field(default_factory=dict)

    @property
    def tick(self) -> str:
        # Seconds: a sweep run by hand right after the timer's must not collapse into its messages.
        return self.now.isoformat(timespec="seconds")

    def alert(self, signal: AlertSignal) -> None:
        self.messages.append(alert_message(signal, correlation_id=self.correlation_id, version=self.tick))
        self.report.alerts += 1

    def gone_if_open(self, signal: AlertSignal) -> None:
        if signal.key in self.open_keys:
            self.alert(replace(signal, cause=Cause.GONE))


async def run_reconciliation(deps: ReconcileDeps, *, correlation_id: str) -> SweepReport:
    """One sweep over every licensing group of the policy; transient errors propagate (the timer retries)."""
    now = deps.clock.now()
    catch_ups = await queue_catch_ups(
        [g.id for g in deps.policy.licensing_groups], deps.sender, deps.clock, correlation_id=correlation_id
    )
    catalogue = await deps.reads.catalogue(fresh=True)
    open_keys: set[IncidentKey] = set()
    for scope in (Scope.GROUP, Scope.USER, Scope.SKU):
        open_keys |= await open_incident_keys(deps.state, scope)
    sweep = _Sweep(deps, correlation_id, now, catalogue, frozenset(open_keys))
    sweep.report.catch_ups = catch_ups
    for licensing in deps.policy.licensing_groups:
        sweep.report.groups += 1
        try:
            await _sweep_group(sweep, licensing)
        except PermanentError as error:
            # One group's refusal (a permission, a malformed answer) never stops the others.
            sweep.report.failed_groups.append(licensing.id)
            _log.error("reconcile.group_failed", group_id=licensing.id, error=type(error).__name__)
    await _regate_pending(sweep)
    # Free seats go to the waitlist first come, first served (issue 7's serving, shared with verification).
    served = await serve_waiting(
        LicenseDeps(deps.graph, deps.reads, deps.seats, deps.sender, deps.clock, deps.policy),
        correlation_id=correlation_id,
        version=sweep.tick,
        fresh=False,
    )
    sweep.report.waitlist_served = len(served.reprocessed) + len(served.admitted)
    await _seat_headroom(sweep)
    if sweep.messages:
        await deps.sender.send(sweep.messages)
    await record_heartbeat(deps.state, RECONCILE, deps.clock)
    report = sweep.report
    _log.info(
        "reconcile.swept",
        groups=report.groups,
        findings=[f"{f.group_id}:{f.problem.value}" for f in report.findings],
        license_checks=len(report.license_checks),
        without_base_license=len(report.without_base_license),
        admits=len(report.admits),
        waitlist_served=report.waitlist_served,
        alerts=report.alerts,
        failed_groups=report.failed_groups,
    )
    return report


async def tracked_processing_since(
    store: StateStore, group_id: str, state: str | None, now: datetime, *, track: bool = True
) -> datetime | None:
    """When the group's unfinished `licenseProcessingState` was first seen (Graph gives no time); `track`
    records a new sighting (the sweep does; the CLI only reads)."""
    row = await store.get(GROUP_HEALTH_TABLE, _PROCESSING_PARTITION, group_id)
    previous = str(row.data["state"]) if row is not None and row.data.get("state") else None
    previous_since = (
        datetime.fromisoformat(str(row.data["since"])) if row is not None and row.data.get("since") else None
    )
    since = processing_since(state, previous, previous_since, now)
    if track and (state, since) != (previous, previous_since):
        data = {"state": state, "since": since.isoformat() if since is not None else None}
        await store.upsert(GROUP_HEALTH_TABLE, _PROCESSING_PARTITION, group_id, data)
    return since


async def collect(graph: GraphPort, path: str, params: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """Every item of a collection, all pages."""
    items: list[Mapping[str, Any]] = []
    async for page in graph.pages(path, params=params):
        items.extend(page.items)
    return items


PageReader = Callable[[Sequence[Mapping[str, Any]]], None]
"""Sees one page of a group's member items as it is read (the page is dropped afterwards)."""


@dataclass(frozen=True)
class GroupRead:
    """A licensing group as read for its health: the parsed state (holding only the members that are not
    users) and how many direct members it has."""

    state: GroupState
    member_count: int


async def read_group(
    graph: GraphPort,
    store: StateStore,
    group_id: str,
    now: datetime,
    *,
    track: bool = True,
    each_page: PageReader | None = None,
) -> GroupRead | None:
    """Read a group with HEALTH_SELECT and page through its direct members (with the user fields the gate
    reads), handing each page to `each_page`; None when the group does not exist. No page is kept: memory
    stays flat however large the group (issue 12 item 3)."""
    group_id = group_id.lower()
    try:
        body = await graph.get(f"/groups/{group_id}", params={"$select": ",".join(HEALTH_SELECT)})
    except NotFound:
        return None
    kept: list[Member] = []
    count = 0
    params = {"$select": ",".join(MEMBER_SELECT), "$top": "999"}
    async for page in graph.pages(f"/groups/{group_id}/members", params=params):
        count += len(page.items)
        kept.extend(health_members(members_from_graph(page.items)))
        if each_page is not None:
            each_page(page.items)
    raw_processing = body.get("licenseProcessingState")
    processing = raw_processing.get("state") if isinstance(raw_processing, Mapping) else None
    since = await tracked_processing_since(
        store, group_id, processing if isinstance(processing, str) else None, now, track=track
    )
    return GroupRead(state_from_graph(body, kept, processing_since=since), count)


async def _sweep_group(sweep: _Sweep, licensing: LicensingGroup) -> None:
    deps = sweep.deps
    group_id = licensing.id.lower()
    # Findings per member are gathered page by page (only those to act on) and acted on after the group's
    # own findings, so the order of messages is: group health, license errors, base licenses.
    base_findings: list[_BaseFinding] = []
    read = await read_group(
        deps.graph,
        deps.state,
        group_id,
        sweep.now,
        each_page=lambda items: base_findings.extend(_without_base_license(sweep, licensing, items)),
    )
    if read is None:
        finding = missing_group(licensing)
        sweep.report.findings.append(finding)
        sweep.alert(health_signal(finding, sweep.now))
        return
    sweep.gone_if_open(health_signal(missing_group(licensing), sweep.now))
    state = read.state
    sweep.snapshots[group_id] = state.group
    label = state.group.display_name or licensing.display_name or group_id
    findings = check_group(
        state,
        licensing=licensing,
        policy=deps.policy,
        catalogue=sweep.catalogue,
        now=sweep.now,
        stuck_after=deps.stuck_after,
    )
    sweep.report.findings.extend(findings)
    found = {f.problem for f in findings}
    for finding in findings:
        sweep.alert(health_signal(finding, sweep.now))
    for problem in Problem:
        if problem not in found and problem is not Problem.MISSING:
            sweep.gone_if_open(healthy_signal(group_id, label, problem, sweep.now))
    await _members_with_errors(sweep, group_id)
    for finding_ in base_findings:
        if finding_.qualifies:
            sweep.gone_if_open(finding_.signal)
        else:
            sweep.report.without_base_license.append(finding_.user_id)
            sweep.alert(finding_.signal)


async def _members_with_errors(sweep: _Sweep, group_id: str) -> None:
    """Each member in license error from this group goes through verification (which classifies and
    alerts); the tick makes the check a new message every sweep."""
    path = f"/groups/{group_id}/membersWithLicenseErrors"
    async for page in sweep.deps.graph.pages(path, params={"$select": "id", "$top": "999"}):
        for item in page.items:
            user_id = str(item.get("id") or "").lower()
            if not user_id:
                continue
            check = LicenseCheck(user_id, group_id, Change.RECHECK, source="reconcile")
            sweep.messages.append(
                check_message(check, version=sweep.tick, correlation_id=sweep.correlation_id)
            )
            sweep.report.license_checks.append(user_id)


def _holds_active_copilot(person: Person, group_id: str, sweep: _Sweep, licensing: LicensingGroup) -> bool:
    return any(
        a.is_active
        and a.assigned_by_group == group_id
        and is_copilot_sku(a.sku_id, sweep.deps.policy, licensing, sweep.catalogue)
        for a in person.license_assignments
    )


@dataclass(frozen=True)
class _BaseFinding:
    """A member licensed for Copilot by the group: without a working base license (alert), or with one
    while an incident about it is open (resolve it)."""

    user_id: str
    signal: AlertSignal
    qualifies: bool


def _without_base_license(
    sweep: _Sweep, licensing: LicensingGroup, items: Sequence[Mapping[str, Any]]
) -> list[_BaseFinding]:
    """Of one page of members, those this group licensed for Copilot who hold no working qualifying base
    license, and those who now do while their incident is open: nothing is kept of the others."""
    group_id = licensing.id.lower()
    found: list[_BaseFinding] = []
    for item in items:
        if str(item.get("@odata.type", "#microsoft.graph.user")).lower() != "#microsoft.graph.user":
            continue
        try:
            person = person_from_graph(item)
        except InvalidInput:
            continue
        if not _holds_active_copilot(person, group_id, sweep, licensing):
            continue
        base = check_base_license(person, sweep.catalogue, sweep.deps.policy)
        label = person.user_principal_name or person.id
        sentence = f"{label} is licensed, but Copilot will not work: no active qualifying base license."
        signal = finding_alert(
            Reason.COPILOT_WILL_NOT_WORK,
            person=person,
            now=sweep.now,
            sentence=sentence,
            group_id=group_id,
            evidence=base.evidence,
        )
        if signal is None or (base.qualifies and signal.key not in sweep.open_keys):
            continue
        found.append(_BaseFinding(person.id, signal, base.qualifies))
    return found


def _still_blocked(pending: PendingPerson, reasons: tuple[Reason, ...], outcome: Outcome) -> bool:
    """The gate blocks for the same reasons as when the person was parked: nothing has cleared."""
    if outcome is not Outcome.BLOCKED:
        return False
    return set(reasons) - {Reason.OBSERVE_ONLY} == set(pending.reasons)


async def _regate_pending(sweep: _Sweep) -> None:
    """Pending people whose blocker has cleared (by the same `decide()`) go back through admission."""
    deps = sweep.deps
    # Those waiting only for a seat are the waitlist's, served in order by `serve_waiting`.
    pending = sorted(
        (p for p in await deps.seats.pending() if set(p.reasons) != {Reason.NO_SEAT}),
        key=lambda p: (p.since, p.user_id),
    )
    if not pending:
        return
    people = await deps.reads.people([p.user_id for p in pending])
    for entry in pending:
        person = people.get(entry.user_id)
        group = sweep.snapshots.get(entry.group_id.lower())
        licensing = deps.policy.group(entry.group_id)
        if person is None or group is None or licensing is None:
            continue
        free = await deps.seats.headroom(sweep.catalogue, tuple(licensing.copilot_sku_ids), now=sweep.now)
        decision = decide(
            person,
            group=group,
            policy=deps.policy,
            catalogue=sweep.catalogue,
            free_seats=free,
            now=sweep.now,
            why="reconcile",
        )
        if _still_blocked(entry, decision.reasons, decision.outcome):
            continue
        # The gate's incident for each blocker that cleared is resolved here: nothing else ever closes it.
        for cleared in sorted(set(entry.reasons) - set(decision.reasons)):
            label = person.user_principal_name or person.id
            sentence = f"{label}: this no longer blocks them from {group.display_name or group.id}."
            signal = finding_alert(
                cleared, person=person, now=sweep.now, sentence=sentence, group_id=group.id
            )
            if signal is not None:
                sweep.gone_if_open(signal)
        request = AdmitRequest(entry.user_id, entry.group_id, "reconciliation: blocker cleared", REQUESTED_BY)
        sweep.messages.append(
            admit_message(request, request_id=sweep.tick, correlation_id=sweep.correlation_id)
        )
        sweep.report.admits.append(entry.user_id)


def copilot_sku_ids(policy: Policy, catalogue: SkuCatalogue) -> tuple[str, ...]:
    """Every Copilot SKU the sweep watches: those the groups name, and the tenant's Copilot SKUs."""
    found = {s.lower() for g in policy.licensing_groups for s in g.copilot_sku_ids}
    for sku in catalogue.skus:
        plans = tuple(p.service_plan_id for p in sku.service_plans)
        names = tuple(p.service_plan_name for p in sku.service_plans)
        if policy.copilot_skus.matches(sku.sku_id, plans, names):
            found.add(sku.sku_id)
    return tuple(sorted(found))


async def _seat_headroom(sweep: _Sweep) -> None:
    """Free seats per Copilot SKU as a measured alert, sent while low or while its incident is open."""
    deps = sweep.deps
    alert_below = deps.policy.alerts.seat_headroom.alert_below
    for sku_id in copilot_sku_ids(deps.policy, sweep.catalogue):
        free = await deps.seats.headroom(sweep.catalogue, (sku_id,), now=sweep.now)
        sweep.report.headroom[sku_id] = free
        key = IncidentKey(Scope.SKU, sku_id, SEAT_HEADROOM_PROBLEM)
        if free >= alert_below and key not in sweep.open_keys:
            continue
        sku = sweep.catalogue.get(sku_id)
        label = sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id
        enabled = sku.prepaid_units.enabled if sku is not None else 0
        consumed = sku.consumed_units if sku is not None else 0
        sweep.alert(
            seat_shortage_alert(
                sku_id=sku_id,
                sku_label=label,
                free=free,
                now=sweep.now,
                sentence=f"{free} seat(s) of {label} free ({enabled} enabled, {consumed} consumed, "
                "minus Seatkeeper's open reservations).",
            )
        )
