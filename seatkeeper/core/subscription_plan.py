"""Subscription upkeep as a pure function of the policy's groups, stored records, Graph's list and now.

For every licensing group exactly one healthy subscription: created when missing, renewed well before its
expiry (at most 41,760 minutes for groups), recreated when Graph no longer knows it, deleted when its group
left the policy or it duplicates the recorded one. Graph allows 100 group subscriptions per app and tenant
(graph-facts §A1): creations beyond that are not attempted and the plan says which groups go without. Graph
may still refuse a creation for its quota (a 403 naming the limit: subscriptions another instance made
meanwhile, or the per-tenant and per-app limits the listing cannot show); `is_quota_refusal` tells that
refusal from a missing permission.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from seatkeeper.core.errors import Forbidden, SeatkeeperError

MAX_LIFETIME: Final = timedelta(minutes=41_760)
LIFETIME: Final = MAX_LIFETIME - timedelta(hours=1)
"""Asked for on create and renew: the maximum less a margin for clock skew between us and Graph."""
RENEW_BEFORE: Final = timedelta(days=14)
"""Renew once less than this remains: half the lifetime, so a missed upkeep run or two costs nothing."""
QUOTA_PER_APP: Final = 100
CHANGE_TYPE: Final = "updated,deleted"
QUOTA_PER_TENANT: Final = 1_000
"""Graph's limit of group subscriptions per tenant, all apps together (graph-facts §A1)."""
# Graph's quota refusal is a 403 whose message names the limit; seen worded as "Subscription limit of 100
# for this application and tenant has been reached" and "Maximum number of subscriptions has been reached".
_QUOTA_WORDS: Final = re.compile(r"\b(limit|maximum)\b", re.IGNORECASE)
_QUOTA_REACHED: Final = re.compile(r"\b(reached|exceeded)\b", re.IGNORECASE)
_QUOTA_LIMIT: Final = re.compile(r"limit of (\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class SubscriptionRecord:
    """What Seatkeeper stored about the subscription of one licensing group."""

    group_id: str
    subscription_id: str
    generation: int
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class ListedSubscription:
    """A subscription as `GET /subscriptions` lists it (the calling app's own)."""

    id: str
    resource: str
    expires_at: datetime
    notification_url: str

    @property
    def group_id(self) -> str | None:
        """The group of a `/groups/{id}` (or `/groups/{id}/members`) subscription."""
        parts = [p for p in self.resource.strip("/").split("/") if p]
        if len(parts) >= 2 and parts[0].lower() == "groups":
            return parts[1].lower()
        return None


class DeleteReason(StrEnum):
    """Why upkeep deletes a subscription of ours."""

    LEFT_POLICY = "left_policy"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class CreateSubscription:
    """Create the group's subscription at `generation` (a recreation bumps it, changing the clientState)."""

    group_id: str
    generation: int
    expires_at: datetime
    recreate: bool


@dataclass(frozen=True)
class RenewSubscription:
    """Extend the subscription's expiry (which also reauthorizes it)."""

    group_id: str
    subscription_id: str
    expires_at: datetime


@dataclass(frozen=True)
class DeleteSubscription:
    """Delete a subscription of ours that no licensing group needs (and forget its record)."""

    subscription_id: str
    group_id: str | None
    reason: DeleteReason


@dataclass(frozen=True)
class ForgetRecord:
    """Drop the record of a group that left the policy and whose subscription Graph no longer has."""

    group_id: str


Action = CreateSubscription | RenewSubscription | DeleteSubscription | ForgetRecord


@dataclass(frozen=True)
class Quota:
    """Graph's 100-per-app limit: how many are in use after the plan, and the groups left without one.

    `refusal` is Graph's own word when it refused a creation for its quota (empty when the plan alone
    found the groups that do not fit); then `blocked_groups` also holds the groups it refused.
    """

    limit: int
    in_use: int
    blocked_groups: tuple[str, ...] = ()
    refusal: str = ""

    @property
    def exceeded(self) -> bool:
        """Some licensing group cannot have a subscription."""
        return bool(self.blocked_groups)


@dataclass(frozen=True)
class UpkeepPlan:
    """The actions, in order (deletes first, to free quota), the healthy groups and the quota."""

    actions: tuple[Action, ...]
    healthy: tuple[str, ...]
    quota: Quota
    foreign: int = 0


def same_endpoint(url: str, base: str) -> bool:
    """Whether `url` is our notification endpoint: scheme, host and path equal; the query (key) ignored."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.netloc.lower(), a.path.rstrip("/")) == (
        b.scheme.lower(),
        b.netloc.lower(),
        b.path.rstrip("/"),
    )


def plan_upkeep(
    group_ids: Sequence[str],
    records: Mapping[str, SubscriptionRecord],
    listed: Sequence[ListedSubscription],
    now: datetime,
    *,
    notification_url: str,
    renew_before: timedelta = RENEW_BEFORE,
    lifetime: timedelta = LIFETIME,
    quota_limit: int = QUOTA_PER_APP,
) -> UpkeepPlan:
    """What upkeep must do now. Subscriptions to another endpoint are counted, never touched."""
    wanted = list(dict.fromkeys(g.lower() for g in group_ids))
    ours = [s for s in listed if same_endpoint(s.notification_url, notification_url) and s.group_id]
    foreign = len(listed) - len(ours)
    live = {s.id.lower(): s for s in ours}
    deletes: list[Action] = []
    renews: list[Action] = []
    creates: list[CreateSubscription] = []
    healthy: list[str] = []
    kept: set[str] = set()
    for group_id in wanted:
        record = records.get(group_id)
        current = live.get(record.subscription_id.lower()) if record is not None else None
        if record is not None and current is not None and current.group_id == group_id:
            kept.add(current.id.lower())
            healthy.append(group_id)
            if current.expires_at - now < renew_before:
                renews.append(RenewSubscription(group_id, current.id, now + lifetime))
            continue
        generation = record.generation + 1 if record is not None else 1
        creates.append(CreateSubscription(group_id, generation, now + lifetime, record is not None))
    wanted_set = set(wanted)
    for sub in ours:
        if sub.id.lower() in kept:
            continue
        reason = DeleteReason.DUPLICATE if sub.group_id in wanted_set else DeleteReason.LEFT_POLICY
        deletes.append(DeleteSubscription(sub.id, sub.group_id, reason))
    deleted_groups = {d.group_id for d in deletes if isinstance(d, DeleteSubscription)}
    for group_id in records:
        if group_id not in wanted_set and group_id not in deleted_groups:
            deletes.append(ForgetRecord(group_id))
    in_use = len(listed) - sum(isinstance(d, DeleteSubscription) for d in deletes)
    room = max(quota_limit - in_use, 0)
    allowed, blocked = creates[:room], creates[room:]
    return UpkeepPlan(
        actions=(*deletes, *renews, *allowed),
        healthy=tuple(healthy),
        quota=Quota(quota_limit, in_use + len(allowed), tuple(c.group_id for c in blocked)),
        foreign=foreign,
    )


def is_quota_refusal(error: SeatkeeperError) -> bool:
    """Whether Graph refused a creation because the subscription quota is used up (not a permission)."""
    text = str(error)
    return (
        isinstance(error, Forbidden)
        and "subscription" in text.lower()
        and _QUOTA_WORDS.search(text) is not None
        and _QUOTA_REACHED.search(text) is not None
    )


def refused_limit(refusal: str, default: int = QUOTA_PER_APP) -> int:
    """The limit Graph's quota refusal names ("limit of 100"), else the documented per-app one."""
    found = _QUOTA_LIMIT.search(refusal)
    return int(found.group(1)) if found else default
