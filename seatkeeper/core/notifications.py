"""Graph change notifications for licensing groups, as data: a delivered batch parsed and checked, and the
`group-changes` messages it becomes (graph-facts §A3-§A5).

A notification is a signal that a group changed, never the truth: each accepted item becomes a `group.changed`
(or `subscription.lifecycle`) message whose id follows from the subscription and the item's sequence number,
so a redelivered batch collapses onto the messages it already produced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from seatkeeper.core.messages import GROUP_CHANGES, Message, MessageKind, register_kind

MAX_BODY_BYTES: Final = 1_000_000
"""A delivery larger than this is refused (413). Graph batches basic notifications far below it."""
MAX_ITEMS: Final = 1_000
MAX_VALIDATION_TOKEN: Final = 2_048
LIFECYCLE_EVENTS: Final = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
CHANGE_TYPES: Final = frozenset({"updated", "deleted", "created"})
_GROUP_RESOURCE: Final = re.compile(r"^/?groups/(?P<id>[^/?]+)", re.IGNORECASE)
_ID: Final = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class Reason(StrEnum):
    """Why the group's membership is read again."""

    NOTIFICATION = "notification"
    LIFECYCLE = "lifecycle"
    RECONCILE = "reconcile"
    SUBSCRIBED = "subscribed"
    MANUAL = "manual"


GROUP_CHANGED: Final = register_kind(
    MessageKind(
        name="group.changed",
        queue=GROUP_CHANGES,
        description=(
            "A licensing group may have changed: read its delta. Subject: group id (also the session). "
            "Version: `n:<subscription>:<sequence number>` for a notification, "
            "`n:<subscription>:b<n>:<digest>` for n of one delivery, `r:<tick>` for reconciliation."
        ),
        schema={
            "type": "object",
            "required": ["group_id", "reason"],
            "additionalProperties": False,
            "properties": {
                "group_id": {"type": "string", "minLength": 1},
                "reason": {"enum": [r.value for r in Reason]},
                "subscription_id": {"type": "string"},
                "change_type": {"type": "string"},
            },
        },
    )
)

SUBSCRIPTION_LIFECYCLE: Final = register_kind(
    MessageKind(
        name="subscription.lifecycle",
        queue=GROUP_CHANGES,
        description=(
            "A lifecycle notification for a group's subscription (reauthorizationRequired, "
            "subscriptionRemoved, missed). Subject: group id (also the session). "
            "Version: `l:<subscription>:<event>:<expiry>`."
        ),
        schema={
            "type": "object",
            "required": ["group_id", "subscription_id", "lifecycle_event"],
            "additionalProperties": False,
            "properties": {
                "group_id": {"type": "string", "minLength": 1},
                "subscription_id": {"type": "string", "minLength": 1},
                "lifecycle_event": {"type": "string", "minLength": 1},
                "subscription_expires_at": {"type": "string"},
            },
        },
    )
)


@dataclass(frozen=True)
class Refusal:
    """A delivery refused as a whole: the HTTP status and a reason safe to show the caller."""

    status: int
    reason: str


@dataclass(frozen=True)
class NotificationItem:
    """One delivered item: a change notification (`change_type`) or a lifecycle one (`lifecycle_event`)."""

    subscription_id: str
    client_state: str | None = field(repr=False)
    tenant_id: str
    change_type: str | None = None
    lifecycle_event: str | None = None
    group_id: str | None = None
    sequence_number: str | None = None
    subscription_expires_at: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """A stable digest of the item without its clientState: the version when Graph gives no sequence."""
        visible = {k: v for k, v in self.raw.items() if k != "clientState"}
        text = json.dumps(visible, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    @property
    def is_lifecycle(self) -> bool:
        """A lifecycle notification (`changeType` and `lifecycleEvent` exclude each other)."""
        return self.lifecycle_event is not None


@dataclass(frozen=True)
class NotificationBatch:
    """The items of a delivery that have the shape of a notification, and why the others were dropped."""

    items: tuple[NotificationItem, ...]
    malformed: tuple[str, ...] = ()


def is_json(content_type: str | None) -> bool:
    """`application/json`, with or without parameters (Graph sends `application/json; charset=utf-8`)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def parse_batch(body: bytes, content_type: str | None) -> NotificationBatch | Refusal:
    """A delivery's body as items; a Refusal (415, 413, 400) when the delivery as a whole is unusable."""
    if not is_json(content_type):
        return Refusal(415, "Content-Type must be application/json")
    if len(body) > MAX_BODY_BYTES:
        return Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    # ValueError: not JSON, not UTF-8 or an integer past 4,300 digits; RecursionError: nested too deep.
    except (ValueError, RecursionError):
        return Refusal(400, "body is not valid JSON")
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        return Refusal(400, 'body must be a JSON object with a "value" array')
    raw_items: list[Any] = document["value"]
    if len(raw_items) > MAX_ITEMS:
        return Refusal(413, f"more than {MAX_ITEMS} notifications in one delivery")
    items: list[NotificationItem] = []
    malformed: list[str] = []
    for index, raw in enumerate(raw_items):
        parsed = parse_item(raw)
        if isinstance(parsed, str):
            malformed.append(f"value[{index}]: {parsed}")
        else:
            items.append(parsed)
    return NotificationBatch(tuple(items), tuple(malformed))


def parse_item(raw: Any) -> NotificationItem | str:  # noqa: PLR0911 - one early return per shape rule
    """One notification, or the reason it does not have the shape of one."""
    # Written for the webhook's hot path: each check once, no intermediate mappings.
    if not isinstance(raw, dict):
        return "not an object"
    get = raw.get
    subscription_id = get("subscriptionId")
    if not isinstance(subscription_id, str) or not _ID.match(subscription_id):
        return "subscriptionId missing or not an id"
    client_state = get("clientState")
    if client_state is not None and not isinstance(client_state, str):
        return "clientState is not a string"
    change_type = get("changeType")
    lifecycle_event = get("lifecycleEvent")
    if (change_type is None) == (lifecycle_event is None):
        return "exactly one of changeType and lifecycleEvent is expected"
    tenant_id = get("tenantId")
    expires = get("subscriptionExpirationDateTime")
    if lifecycle_event is not None:
        if not isinstance(lifecycle_event, str) or not lifecycle_event:
            return "lifecycleEvent is not a string"
        return NotificationItem(
            subscription_id=subscription_id.lower(),
            client_state=client_state,
            tenant_id=tenant_id if isinstance(tenant_id, str) else "",
            lifecycle_event=lifecycle_event,
            subscription_expires_at=expires if isinstance(expires, str) else None,
            raw=raw,
        )
    if not isinstance(change_type, str) or not change_type:
        return "changeType is not a string"
    group_id = _group_id(raw)
    if group_id is None:
        return "resource is not a group"
    data = get("resourceData")
    sequence = data.get("sequenceNumber") if isinstance(data, dict) else None
    return NotificationItem(
        subscription_id=subscription_id.lower(),
        client_state=client_state,
        tenant_id=tenant_id if isinstance(tenant_id, str) else "",
        change_type=change_type,
        group_id=group_id,
        sequence_number=_sequence_text(sequence),
        subscription_expires_at=expires if isinstance(expires, str) else None,
        raw=raw,
    )


def _sequence_text(sequence: object) -> str | None:
    """`resourceData.sequenceNumber` (a number or a string) as text; None when absent or of another type."""
    if type(sequence) is int or isinstance(sequence, str):  # bool is an int subclass: excluded by `is`
        return str(sequence)
    return None


def _group_id(raw: Mapping[str, Any]) -> str | None:
    """The group a change notification is about: `resourceData.id`, else the id in `resource`."""
    data = raw.get("resourceData")
    candidate = data.get("id") if isinstance(data, dict) else None
    if not isinstance(candidate, str):
        resource = raw.get("resource")
        match = _GROUP_RESOURCE.match(resource) if isinstance(resource, str) else None
        candidate = match.group("id") if match else None
    if not isinstance(candidate, str) or not _ID.match(candidate):
        return None
    return candidate.lower()


def change_message(item: NotificationItem, group_id: str, correlation_id: str) -> Message:
    """The `group.changed` message for an accepted change notification (deterministic id)."""
    marker = _marker(item)
    payload: dict[str, Any] = {
        "group_id": group_id,
        "reason": Reason.NOTIFICATION.value,
        "subscription_id": item.subscription_id,
    }
    if item.change_type is not None:
        payload["change_type"] = item.change_type
    return Message(
        queue=GROUP_CHANGES,
        kind=GROUP_CHANGED.name,
        subject=group_id,
        version=f"n:{item.subscription_id}:{marker}",
        correlation_id=correlation_id,
        payload=payload,
        session_id=group_id,
    )


def group_changes_message(items: Sequence[NotificationItem], group_id: str, correlation_id: str) -> Message:
    """One `group.changed` for every accepted change notification of one subscription in one delivery.

    Each notification only says "read this group's delta again", so one catch-up covers them all. A single
    item keeps `change_message`'s id; several get an id from the sorted set of their markers, so a
    redelivered batch still collapses onto the message it already produced.
    """
    if len(items) == 1:
        return change_message(items[0], group_id, correlation_id)
    markers = sorted({_marker(i) for i in items})
    digest = hashlib.sha256("\x1f".join(markers).encode("utf-8")).hexdigest()[:32]
    first = items[0]
    payload: dict[str, Any] = {
        "group_id": group_id,
        "reason": Reason.NOTIFICATION.value,
        "subscription_id": first.subscription_id,
        "change_type": ",".join(sorted({i.change_type for i in items if i.change_type is not None})),
    }
    return Message(
        queue=GROUP_CHANGES,
        kind=GROUP_CHANGED.name,
        subject=group_id,
        version=f"n:{first.subscription_id}:b{len(markers)}:{digest}",
        correlation_id=correlation_id,
        payload=payload,
        session_id=group_id,
    )


def _marker(item: NotificationItem) -> str:
    return item.sequence_number if item.sequence_number is not None else f"f:{item.fingerprint}"


def lifecycle_message(item: NotificationItem, group_id: str, correlation_id: str) -> Message:
    """The `subscription.lifecycle` message for an accepted lifecycle notification (deterministic id)."""
    event = item.lifecycle_event or ""
    marker = item.subscription_expires_at or f"f:{item.fingerprint}"
    payload: dict[str, Any] = {
        "group_id": group_id,
        "subscription_id": item.subscription_id,
        "lifecycle_event": event,
    }
    if item.subscription_expires_at is not None:
        payload["subscription_expires_at"] = item.subscription_expires_at
    return Message(
        queue=GROUP_CHANGES,
        kind=SUBSCRIPTION_LIFECYCLE.name,
        subject=group_id,
        version=f"l:{item.subscription_id}:{event}:{marker}",
        correlation_id=correlation_id,
        payload=payload,
        session_id=group_id,
    )


def catch_up_message(group_id: str, reason: Reason, version: str, correlation_id: str) -> Message:
    """A `group.changed` that is not a notification: reconciliation tick, new subscription, operator."""
    return Message(
        queue=GROUP_CHANGES,
        kind=GROUP_CHANGED.name,
        subject=group_id,
        version=f"{reason.value[0]}:{version}",
        correlation_id=correlation_id,
        payload={"group_id": group_id, "reason": reason.value},
        session_id=group_id,
    )
