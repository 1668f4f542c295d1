"""Lifecycle notifications of a group's subscription, handled off the request (from `group-changes`).

`reauthorizationRequired` → renew (a renewal also reauthorizes; graph-facts §A5), recreating it if Graph no
longer has it; `subscriptionRemoved` → recreate; `missed` → nothing more. The caller then catches the group
up, since notifications may have been lost meanwhile — also when Graph refuses the renewal or recreation
for good (a permission, the quota): that is logged, upkeep retries it within the hour and alerts, and the
catch-up still runs. Unknown events never get this far (the webhook logs and acknowledges them).
"""

from __future__ import annotations

from typing import Final

import structlog

from handlers.subscription_upkeep import UpkeepDeps, create_subscription, refresh_clock, renew_subscription
from seatkeeper.core.errors import NotFound, PermanentError
from seatkeeper.core.subscription_plan import LIFETIME, CreateSubscription

REAUTHORIZATION_REQUIRED: Final = "reauthorizationRequired"
SUBSCRIPTION_REMOVED: Final = "subscriptionRemoved"
MISSED: Final = "missed"
_log = structlog.get_logger(__name__)


async def handle_lifecycle(group_id: str, subscription_id: str, event: str, deps: UpkeepDeps) -> str:
    """Act on one lifecycle event; returns what was done (`renewed`, `recreated`, `none`, `stale`,
    `failed`)."""
    await refresh_clock(deps.clock)
    record = await deps.records.for_group(group_id)
    if record is None or record.subscription_id != subscription_id.lower():
        # A subscription we no longer keep: upkeep deletes it if Graph still has it.
        _log.info(
            "subscription.lifecycle_stale",
            group_id=group_id,
            subscription_id=subscription_id,
            lifecycle_event=event,
        )
        return "stale"
    recreate = CreateSubscription(group_id, record.generation + 1, deps.clock.now() + LIFETIME, True)
    outcome = "none"
    try:
        if event == REAUTHORIZATION_REQUIRED:
            try:
                await renew_subscription(deps, record)
                outcome = "renewed"
            except NotFound:
                await create_subscription(deps, recreate, record)
                outcome = "recreated"
        elif event == SUBSCRIPTION_REMOVED:
            await create_subscription(deps, recreate, record)
            outcome = "recreated"
    except PermanentError as error:
        # Retrying the message cannot help, and the group's catch-up must not wait for the subscription.
        _log.error(
            "subscription.lifecycle_failed",
            group_id=group_id,
            subscription_id=subscription_id,
            lifecycle_event=event,
            error=type(error).__name__,
        )
        outcome = "failed"
    _log.info(
        "subscription.lifecycle_handled",
        group_id=group_id,
        subscription_id=subscription_id,
        lifecycle_event=event,
        outcome=outcome,
    )
    return outcome
