"""Subscription upkeep (a timer, and at start): exactly one healthy Graph subscription per licensing group.

Lists what Graph has, plans with `plan_upkeep`, then creates (lifecycle URL set at creation, derived
clientState, never logged), renews, recreates and deletes. A new subscription is followed by a catch-up of
its group, so changes made while it was missing are still processed. The 100-per-app quota is reported in
the log and as one alert, whether the plan found groups that do not fit or Graph refused a creation for its
quota (then the run tries no further creation); one group's failure never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol, runtime_checkable

import structlog

from seatkeeper.core.client_state import derive_client_state
from seatkeeper.core.errors import (
    ConcurrencyConflict,
    NotFound,
    PermanentError,
    SeatkeeperError,
)
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.incidents import AlertSignal, Cause, Fact, IncidentKey, Scope, alert_message, clip
from seatkeeper.core.notifications import Reason, catch_up_message
from seatkeeper.core.policy import Severity
from seatkeeper.core.ports import Clock, MessageSender
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_plan import (
    CHANGE_TYPE,
    LIFETIME,
    QUOTA_PER_TENANT,
    CreateSubscription,
    DeleteSubscription,
    ForgetRecord,
    ListedSubscription,
    Quota,
    RenewSubscription,
    SubscriptionRecord,
    UpkeepPlan,
    is_quota_refusal,
    plan_upkeep,
    refused_limit,
    same_endpoint,
)
from seatkeeper.core.subscription_records import SubscriptionRecords

QUOTA_PROBLEM: Final = "subscription.quota_exceeded"
UNHEALTHY_PROBLEM: Final = "subscription.unhealthy"
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SubscriptionTarget:
    """Where Graph delivers: the notification and lifecycle URLs, each carrying the webhook's function key."""

    notification_url: Secret
    lifecycle_url: Secret

    @property
    def endpoint(self) -> str:
        """The notification URL without its query (no key): what upkeep recognises its subscriptions by."""
        return self.notification_url.reveal().split("?", 1)[0]


@dataclass(frozen=True)
class UpkeepDeps:
    """Ports, records, key and target for upkeep and lifecycle handling."""

    graph: GraphPort
    records: SubscriptionRecords
    sender: MessageSender
    clock: Clock
    client_state_key: Secret
    target: SubscriptionTarget


@runtime_checkable
class RefreshableClock(Protocol):
    """A clock that can re-read business time at once (the sandbox's, which is otherwise followed lazily)."""

    async def refresh(self) -> object: ...


async def refresh_clock(clock: Clock) -> None:
    """Expiries are computed from now: make sure now is not a clock step behind (sandbox mode)."""
    if isinstance(clock, RefreshableClock):
        await clock.refresh()


@dataclass
class UpkeepReport:
    """What one upkeep run did, by group id. `quota` is the plan's, or, after Graph refused a creation for
    its quota, what Graph said and the groups left without a subscription (not in `failed`)."""

    created: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    quota: Quota | None = None
    healthy: tuple[str, ...] = ()
    foreign: int = 0


def graph_time(moment: datetime) -> str:
    """An ISO 8601 UTC timestamp as Graph writes them."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(raw: Any) -> datetime:
    moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def list_subscriptions(graph: GraphPort) -> list[ListedSubscription]:
    """Every subscription of this app, as `GET /subscriptions` lists them."""
    listed: list[ListedSubscription] = []
    async for page in graph.pages("/subscriptions"):
        for item in page.items:
            listed.append(
                ListedSubscription(
                    id=str(item.get("id", "")),
                    resource=str(item.get("resource") or ""),
                    expires_at=_parse_time(item.get("expirationDateTime")),
                    notification_url=str(item.get("notificationUrl") or ""),
                )
            )
    return listed


async def create_subscription(
    deps: UpkeepDeps, action: CreateSubscription, previous: SubscriptionRecord | None
) -> SubscriptionRecord:
    """Create the group's subscription, record it, and ask for a catch-up of the group."""
    client_state = derive_client_state(deps.client_state_key, action.group_id, action.generation)
    body = {
        "changeType": CHANGE_TYPE,
        "resource": f"/groups/{action.group_id}",
        "notificationUrl": deps.target.notification_url.reveal(),
        "lifecycleNotificationUrl": deps.target.lifecycle_url.reveal(),
        "expirationDateTime": graph_time(action.expires_at),
        "clientState": client_state.reveal(),
        "latestSupportedTlsVersion": "v1_2",
    }
    created = await deps.graph.send("POST", "/subscriptions", body)
    if not created or not created.get("id"):
        raise PermanentError("POST /subscriptions answered without an id")
    record = SubscriptionRecord(
        group_id=action.group_id,
        subscription_id=str(created["id"]).lower(),
        generation=action.generation,
        expires_at=_parse_time(created.get("expirationDateTime") or graph_time(action.expires_at)),
        created_at=deps.clock.now(),
    )
    try:
        await deps.records.save(record, replaces=previous)
    except ConcurrencyConflict:
        # Another upkeep recorded its own subscription first: ours would be a duplicate.
        await _delete_quietly(deps.graph, record.subscription_id)
        raise
    if previous is not None:
        await _delete_quietly(deps.graph, previous.subscription_id)
    _log.info(
        "subscription.created",
        group_id=action.group_id,
        subscription_id=record.subscription_id,
        generation=record.generation,
        recreated=previous is not None,
    )
    await deps.sender.send(
        [catch_up_message(action.group_id, Reason.SUBSCRIBED, record.subscription_id, record.subscription_id)]
    )
    return record


async def renew_subscription(deps: UpkeepDeps, record: SubscriptionRecord) -> SubscriptionRecord:
    """Extend the subscription (which also reauthorizes it); NotFound when Graph no longer has it."""
    expires = deps.clock.now() + LIFETIME
    answer = await deps.graph.send(
        "PATCH",
        f"/subscriptions/{record.subscription_id}",
        {"expirationDateTime": graph_time(expires)},
        idempotent=True,
    )
    renewed = SubscriptionRecord(
        group_id=record.group_id,
        subscription_id=record.subscription_id,
        generation=record.generation,
        expires_at=_parse_time((answer or {}).get("expirationDateTime") or graph_time(expires)),
        created_at=record.created_at,
    )
    await deps.records.save(renewed, replaces=record)
    _log.info("subscription.renewed", group_id=record.group_id, subscription_id=record.subscription_id)
    return renewed


async def _delete_quietly(graph: GraphPort, subscription_id: str) -> None:
    """Delete a subscription; one Graph no longer has is already gone."""
    try:
        await graph.send("DELETE", f"/subscriptions/{subscription_id}", idempotent=True)
    except NotFound:
        return


async def plan_for(
    group_ids: Sequence[str], deps: UpkeepDeps
) -> tuple[UpkeepPlan, dict[str, SubscriptionRecord]]:
    """The current plan and the records it was made from (upkeep acts on it; the CLI shows it)."""
    records = await deps.records.all()
    listed = await list_subscriptions(deps.graph)
    plan = plan_upkeep(group_ids, records, listed, deps.clock.now(), notification_url=deps.target.endpoint)
    return plan, records


async def run_upkeep(group_ids: Sequence[str], deps: UpkeepDeps, *, correlation_id: str) -> UpkeepReport:
    """Bring every licensing group to exactly one healthy subscription; returns what was done."""
    await refresh_clock(deps.clock)
    plan, records = await plan_for(group_ids, deps)
    report = UpkeepReport(quota=plan.quota, healthy=plan.healthy, foreign=plan.foreign)
    refusal = ""
    refused: list[str] = []
    for action in plan.actions:
        if refusal and isinstance(action, CreateSubscription):
            refused.append(action.group_id)  # Graph just said the quota is used up: it would say so again
            continue
        try:
            await _perform(action, records, deps, report)
        except SeatkeeperError as error:
            group = getattr(action, "group_id", None) or "?"
            if isinstance(action, CreateSubscription | RenewSubscription) and is_quota_refusal(error):
                refusal = refusal or str(error)
                refused.append(group)
                _log.warning("subscription.quota_refused", group_id=group, action=type(action).__name__)
                continue
            report.failed[group] = f"{type(error).__name__}: {error}"[:300]
            _log.error(
                "subscription.upkeep_failed",
                group_id=group,
                action=type(action).__name__,
                error=type(error).__name__,
            )
    if refused:
        report.quota = await _refused_quota(plan, refused, refusal, deps, report)
    await _report(plan, report, deps, correlation_id)
    return report


async def _refused_quota(
    plan: UpkeepPlan, refused: list[str], refusal: str, deps: UpkeepDeps, report: UpkeepReport
) -> Quota:
    """The quota as Graph's refusal shows it: the limit it names and what the app holds now (listed again:
    another instance may have subscribed meanwhile), with the refused groups among those left without."""
    try:
        listed = await list_subscriptions(deps.graph)
    except SeatkeeperError:
        held = plan.quota.in_use - len(refused)
    else:
        held = len(listed)
        report.foreign = sum(not same_endpoint(s.notification_url, deps.target.endpoint) for s in listed)
    return Quota(
        limit=refused_limit(refusal, plan.quota.limit),
        in_use=held,
        blocked_groups=(*refused, *plan.quota.blocked_groups),
        refusal=clip(refusal, 300),
    )


async def _perform(
    action: Any, records: dict[str, SubscriptionRecord], deps: UpkeepDeps, report: UpkeepReport
) -> None:
    if isinstance(action, DeleteSubscription):
        await _delete_quietly(deps.graph, action.subscription_id)
        if action.group_id is not None:
            record = records.get(action.group_id)
            if record is not None and record.subscription_id == action.subscription_id.lower():
                await deps.records.forget(action.group_id, action.subscription_id)
        _log.info(
            "subscription.deleted",
            group_id=action.group_id,
            subscription_id=action.subscription_id,
            reason=action.reason.value,
        )
        report.deleted.append(action.group_id or action.subscription_id)
    elif isinstance(action, ForgetRecord):
        await deps.records.forget(action.group_id)
    elif isinstance(action, RenewSubscription):
        record = records[action.group_id]
        try:
            await renew_subscription(deps, record)
            report.renewed.append(action.group_id)
        except NotFound:
            create = CreateSubscription(action.group_id, record.generation + 1, action.expires_at, True)
            await create_subscription(deps, create, record)
            report.recreated.append(action.group_id)
    elif isinstance(action, CreateSubscription):
        await create_subscription(deps, action, records.get(action.group_id))
        (report.recreated if action.recreate else report.created).append(action.group_id)


async def _report(plan: UpkeepPlan, report: UpkeepReport, deps: UpkeepDeps, correlation_id: str) -> None:
    """One log line for the run; quota and failed groups as alerts. The quota alert is `present` while a
    group goes without (the plan's count, or Graph's refusal) and `gone` once a run needs no creation or
    creates without refusal; a run with other failures says nothing of the quota (it cannot know)."""
    now = deps.clock.now()
    tick = now.strftime("%Y-%m-%dT%H")
    quota = report.quota or plan.quota
    _log.info(
        "subscription.upkeep_done",
        healthy=len(plan.healthy),
        created=len(report.created),
        recreated=len(report.recreated),
        renewed=len(report.renewed),
        deleted=len(report.deleted),
        failed=len(report.failed),
        quota_in_use=quota.in_use,
        quota_limit=quota.limit,
        quota_blocked=len(quota.blocked_groups),
        foreign=plan.foreign,
    )
    signals = [_quota_signal(quota, report.foreign, now)] if quota.exceeded or not report.failed else []
    signals += [_failure_signal(group, reason, now) for group, reason in sorted(report.failed.items())]
    # A failure is always followed by a create or renew: one that succeeds resolves it (`gone` with no open
    # incident changes nothing; steady healthy groups send nothing, to keep the alerts queue quiet).
    kept = {*report.created, *report.recreated, *report.renewed} - set(report.failed)
    signals += [_failure_signal(group, "", now, Cause.GONE) for group in sorted(kept)]
    if quota.exceeded:
        _log.error(
            "subscription.quota_exceeded",
            limit=quota.limit,
            in_use=quota.in_use,
            refused_by_graph=bool(quota.refusal),
            blocked_groups=list(quota.blocked_groups),
        )
    await deps.sender.send([alert_message(s, correlation_id=correlation_id, version=tick) for s in signals])


_QUOTA_FIX: Final = (
    "Graph's limit is per app registration and tenant ({limit} group subscriptions), whoever made them: "
    "another deployment or a tool using the same app registration counts too. Delete the stale ones "
    "(`GET /subscriptions` as this app lists them; `seatkeeper subscriptions list` shows how many are in use "
    "and how many go elsewhere), or give this deployment an app registration of its own, or take licensing "
    "groups out of the policy. If the app holds fewer than {limit}, the tenant's {tenant_limit:,} for all "
    "apps together are used up: delete stale subscriptions of other apps. Upkeep retries every hour and "
    "closes this alert once every group has its subscription; `seatkeeper subscriptions ensure` retries now."
)


def _quota_signal(quota: Quota, foreign: int, now: datetime) -> AlertSignal:
    """One incident for the quota, whoever found it used up: the plan's count or Graph's 403."""
    blocked = ", ".join(quota.blocked_groups[:10]) + (" …" if len(quota.blocked_groups) > 10 else "")
    without = f"{len(quota.blocked_groups)} licensing group(s) have no subscription ({blocked})"
    later = "They are still caught up by the reconciliation timer, only later."
    if not quota.exceeded:
        reason = "Every licensing group has its subscription again."
    elif quota.refusal:
        reason = (
            "Graph refused to create a subscription: its quota is used up. This app holds "
            f"{quota.in_use} subscription(s) in the tenant; Graph allows {quota.limit} per app and tenant. "
            f"{without}. {later}"
        )
    else:
        reason = (
            f"Graph allows {quota.limit} group subscriptions per app and tenant and this app holds "
            f"{quota.in_use}; {without}. {later}"
        )
    evidence = [
        Fact("Subscriptions held by the app", str(quota.in_use)),
        Fact("Of them, other endpoints", str(foreign)),
        Fact("Limit per app and tenant", str(quota.limit)),
        Fact("Groups without a subscription", str(len(quota.blocked_groups))),
    ]
    if quota.refusal:
        # Without the "POST /subscriptions: " the adapter puts first, Graph's own words fit in a fact.
        evidence.append(Fact("Graph's answer", clip(quota.refusal.split(": ", 1)[-1], 200)))
    return AlertSignal(
        key=IncidentKey(Scope.SUBSCRIPTION, "quota", QUOTA_PROBLEM),
        cause=Cause.PRESENT if quota.exceeded else Cause.GONE,
        severity=Severity.ERROR,
        title="Graph subscription quota reached: some licensing groups get no change notifications",
        reason=reason,
        remediation=_QUOTA_FIX.format(limit=quota.limit, tenant_limit=QUOTA_PER_TENANT),
        subject_label="Graph subscriptions",
        observed_at=now,
        evidence=tuple(evidence),
    )


def _failure_signal(group_id: str, reason: str, now: datetime, cause: Cause = Cause.PRESENT) -> AlertSignal:
    return AlertSignal(
        key=IncidentKey(Scope.GROUP, group_id, UNHEALTHY_PROBLEM),
        cause=cause,
        severity=Severity.WARNING,
        title="A licensing group's change-notification subscription could not be kept",
        reason=(
            f"Upkeep failed for group {group_id}: {reason}"
            if cause is Cause.PRESENT
            else f"Group {group_id} has a healthy subscription again."
        ),
        remediation=(
            "Check the app's Group.Read.All permission and that the webhook URL answers the validation "
            "handshake (`seatkeeper subscriptions list`); upkeep retries every hour and reconciliation keeps "
            "the group caught up meanwhile."
        ),
        subject_label=f"group {group_id}",
        observed_at=now,
        group_id=group_id,
    )
