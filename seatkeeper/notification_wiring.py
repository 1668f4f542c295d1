"""Wiring of the change-notification handlers, built once per services container from its adapters.

Part of the composition root (next to `bootstrap.py`): the trigger bodies of `function_app.py` and the
`seatkeeper subscriptions` command ask here for the dependencies of the webhook, upkeep and group-change
consumer. The notification and lifecycle URLs carry the webhook's named function key; they are secrets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from handlers.graph_webhook import WebhookDeps
from handlers.group_changes import GroupChangeDeps
from handlers.subscription_upkeep import SubscriptionTarget, UpkeepDeps
from seatkeeper.adapters.coalescing_sender import CoalescingSender
from seatkeeper.bootstrap import Services
from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.member_sets import MemberSets
from seatkeeper.core.ports import Clock, MessageSender, StateStore
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_records import CachedSubscriptionKeys, SubscriptionRecords
from seatkeeper.settings import GRAPH_WEBHOOK_KEY, PUBLIC_BASE_URL, WEBSITE_HOSTNAME, Settings

NOTIFICATION_ROUTE: Final = "graph/notifications"
LIFECYCLE_ROUTE: Final = "graph/lifecycle"
ROUTE_PREFIX: Final = "api"


@dataclass(frozen=True)
class NotificationWiring:
    """The dependencies of every notification handler, for one services container."""

    webhook: WebhookDeps
    group_changes: GroupChangeDeps
    upkeep: UpkeepDeps | None
    group_ids: tuple[str, ...]


def subscription_target(settings: Settings) -> SubscriptionTarget:
    """Notification and lifecycle URLs (with the webhook key); ConfigurationError names what is missing."""
    problems = []
    if settings.public_base_url is None:
        problems.append(f"{PUBLIC_BASE_URL} (or {WEBSITE_HOSTNAME}) is needed for Graph's notificationUrl")
    if settings.graph_webhook_key is None:
        problems.append(f"{GRAPH_WEBHOOK_KEY} is needed: the named function key of the Graph webhook")
    if problems or settings.public_base_url is None or settings.graph_webhook_key is None:
        raise ConfigurationError(problems)
    code = quote(settings.graph_webhook_key.reveal(), safe="")
    base = f"{settings.public_base_url}/{ROUTE_PREFIX}"
    return SubscriptionTarget(
        notification_url=Secret(f"{base}/{NOTIFICATION_ROUTE}?code={code}"),
        lifecycle_url=Secret(f"{base}/{LIFECYCLE_ROUTE}?code={code}"),
    )


def _ports(services: Services) -> tuple[MessageSender, StateStore, Clock]:
    if services.sender is None or services.state is None or services.clock is None:
        raise RuntimeError("the queue, state and clock adapters are not built")
    return services.sender, services.state, services.clock


_wirings: dict[int, tuple[Services, NotificationWiring]] = {}


def wiring(services: Services) -> NotificationWiring:
    """The notification wiring of `services`, built on first use (upkeep None when its settings lack)."""
    cached = _wirings.get(id(services))
    if cached is not None and cached[0] is services:
        return cached[1]
    sender, state, clock = _ports(services)
    records = SubscriptionRecords(state)
    key = services.settings.client_state_key
    try:
        target: SubscriptionTarget | None = subscription_target(services.settings)
    except ConfigurationError:
        target = None
    upkeep = None if target is None else UpkeepDeps(services.graph, records, sender, clock, key, target)
    group_ids = tuple(g.id.lower() for g in services.policy.licensing_groups)
    built = NotificationWiring(
        webhook=WebhookDeps(
            CoalescingSender(sender), CachedSubscriptionKeys(records, monotonic=time.monotonic), key
        ),
        group_changes=GroupChangeDeps(
            services.graph, MemberSets(state), sender, clock, frozenset(group_ids), upkeep=upkeep
        ),
        upkeep=upkeep,
        group_ids=group_ids,
    )
    _wirings.clear()  # one container per process; a replaced one is not kept alive here
    _wirings[id(services)] = (services, built)
    return built


def upkeep_deps(services: Services) -> UpkeepDeps:
    """Upkeep's dependencies; ConfigurationError naming the missing settings when it cannot subscribe."""
    deps = wiring(services).upkeep
    if deps is None:
        subscription_target(services.settings)  # raises, naming what is missing
        raise ConfigurationError(["subscription upkeep is not configured"])
    return deps
