"""The Graph webhook (notification and lifecycle URLs): answer the validation handshake, check each item's
clientState, persist accepted items as `group-changes` messages, then 202 — or 5xx when nothing could be
persisted, so that Graph retries. No Graph call and no license work happen inside the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

import structlog

from seatkeeper.core.client_state import client_state_matches
from seatkeeper.core.errors import TransientError
from seatkeeper.core.messages import Message
from seatkeeper.core.notifications import (
    LIFECYCLE_EVENTS,
    MAX_VALIDATION_TOKEN,
    NotificationItem,
    Refusal,
    group_changes_message,
    lifecycle_message,
    parse_batch,
)
from seatkeeper.core.ports import MessageSender
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_records import SubscriptionKey

TEXT: Final = "text/plain; charset=utf-8"
_NO_SNIFF: Final = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_SAMPLE_IDS: Final = 10
_log = structlog.get_logger(__name__)


class Drop(StrEnum):
    """Why an item of a delivery was dropped (counted and logged, nothing enqueued)."""

    MALFORMED = "malformed"
    UNKNOWN_SUBSCRIPTION = "unknown_subscription"
    FOREIGN = "foreign"
    UNKNOWN_EVENT = "unknown_lifecycle_event"


class SubscriptionKeys(Protocol):
    """Group and generation of a subscription id we created (None when it is not ours, or no longer)."""

    async def key(self, subscription_id: str) -> SubscriptionKey | None: ...


@dataclass(frozen=True)
class WebhookRequest:
    """What the webhook needs of an HTTP request: decoded query parameters, content type, raw body."""

    params: Mapping[str, str]
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class WebhookResponse:
    """Status, plain-text body and headers to answer with."""

    status: int
    body: str = ""
    content_type: str = TEXT
    headers: Mapping[str, str] = field(default_factory=lambda: dict(_NO_SNIFF))


@dataclass(frozen=True)
class WebhookDeps:
    """The ports and the key the webhook works with (from the composition root)."""

    sender: MessageSender
    keys: SubscriptionKeys
    client_state_key: Secret


@dataclass
class _Tally:
    accepted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    subscriptions: set[str] = field(default_factory=set)

    def drop(self, reason: Drop, n: int = 1, subscription_id: str | None = None) -> None:
        self.dropped[reason.value] = self.dropped.get(reason.value, 0) + n
        if subscription_id is not None and len(self.subscriptions) < _SAMPLE_IDS:
            self.subscriptions.add(subscription_id)


def handshake(params: Mapping[str, str]) -> WebhookResponse | None:
    """Graph's validation handshake: 200 text/plain with the decoded token; None when it is no handshake."""
    token = params.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        return WebhookResponse(400, "validationToken is empty or too long")
    # Plain text with nosniff: the token is opaque caller input and must never be rendered as HTML.
    return WebhookResponse(200, token)


async def receive(request: WebhookRequest, deps: WebhookDeps, *, correlation_id: str) -> WebhookResponse:
    """Handle one POST to the notification or lifecycle URL."""
    answered = handshake(request.params)
    if answered is not None:
        _log.info("graph.webhook_validated", status=answered.status)
        return answered
    parsed = parse_batch(request.body, request.content_type)
    if isinstance(parsed, Refusal):
        _log.warning("graph.webhook_refused", status=parsed.status, reason=parsed.reason)
        return WebhookResponse(parsed.status, parsed.reason)
    tally = _Tally()
    if parsed.malformed:
        tally.drop(Drop.MALFORMED, len(parsed.malformed))
    # One look-up per subscription, however many of its items the delivery carries.
    keys = {sid: await deps.keys.key(sid) for sid in dict.fromkeys(i.subscription_id for i in parsed.items)}
    messages: dict[str, Message] = {}
    changes: dict[tuple[str, str], list[NotificationItem]] = {}
    for item in parsed.items:
        accepted = _accept(item, keys[item.subscription_id], deps, correlation_id, tally)
        tally.accepted += accepted is not None
        if isinstance(accepted, str):
            changes.setdefault((item.subscription_id, accepted), []).append(item)
        elif accepted is not None:
            messages.setdefault(accepted.message_id, accepted)
    # One catch-up per group and delivery, whatever number of its notifications the delivery carries.
    for (_, group_id), items in changes.items():
        message = group_changes_message(items, group_id, correlation_id)
        messages.setdefault(message.message_id, message)
    if messages:
        try:
            await deps.sender.send(list(messages.values()))
        except TransientError as error:
            _log.error("graph.webhook_not_persisted", messages=len(messages), error=type(error).__name__)
            return WebhookResponse(503, "could not persist the notifications; retry later")
    if tally.dropped:
        _log.warning(
            "graph.notifications_received",
            accepted=tally.accepted,
            dropped_subscriptions=sorted(tally.subscriptions),
            **tally.dropped,
        )
    else:
        # The happy path is the hot path: its line costs as much as the rest of the request (debug only).
        _log.debug("graph.notifications_received", accepted=tally.accepted)
    return WebhookResponse(202)


def _accept(
    item: NotificationItem, key: SubscriptionKey | None, deps: WebhookDeps, correlation_id: str, tally: _Tally
) -> Message | str | None:
    """For an item whose clientState matches its subscription's: the lifecycle message, or the group id of a
    change; else None (dropped, counted)."""
    if key is None:
        tally.drop(Drop.UNKNOWN_SUBSCRIPTION, subscription_id=item.subscription_id)
        return None
    same_group = item.group_id is None or item.group_id == key.group_id
    if not same_group or not client_state_matches(
        item.client_state, deps.client_state_key, key.group_id, key.generation
    ):
        tally.drop(Drop.FOREIGN, subscription_id=item.subscription_id)
        return None
    if item.lifecycle_event is not None:
        if item.lifecycle_event not in LIFECYCLE_EVENTS:
            # Acknowledged (Graph must not retry it) and logged; there is nothing to do with it.
            _log.warning(
                "graph.lifecycle_event_unknown",
                subscription_id=item.subscription_id,
                lifecycle_event=item.lifecycle_event[:64],
            )
            tally.drop(Drop.UNKNOWN_EVENT)
            return None
        return lifecycle_message(item, key.group_id, correlation_id)
    return key.group_id
