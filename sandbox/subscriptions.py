"""Change-notification subscriptions on groups, with Graph's documented rules (graph-facts §A1, §A2, §A5).

Group resources only; `changeType` `updated`/`deleted`; expiry at most 41,760 minutes ahead; 100 per app;
`clientState` at most 128 characters; `lifecycleNotificationUrl` only at creation; both URLs must pass the
validation handshake. Unlike Graph, `http://127.0.0.1` URLs are accepted, and only loopback URLs are (the
sandbox sends nothing off the machine). Expiry and `reauthorizationRequired` run on business time.
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from aiohttp import web

from sandbox import clock_control
from sandbox.clock import Scheduler
from sandbox.directory_events import DirectoryEvent
from sandbox.graph_errors import GraphError
from sandbox.model import iso
from sandbox.notifications import Notifier, validate_endpoint
from sandbox.router import GraphRequest, GraphResponse

if TYPE_CHECKING:
    from sandbox.extension import SandboxApp

MAX_EXPIRY = timedelta(minutes=41_760)
MAX_PER_APP = 100
MAX_CLIENT_STATE = 128
REAUTHORIZE_LEAD = timedelta(hours=1)
_CHANGE_TYPES = frozenset({"updated", "deleted"})
_RESOURCE = re.compile(r"^/?groups(?:/(?P<id>[^/?]+)(?:/(?P<rel>members|owners))?)?/?$", re.IGNORECASE)
_GROUP_TYPE = "#Microsoft.Graph.Group"

Validate = Callable[[str], Awaitable[str | None]]
Enqueue = Callable[[str, dict[str, Any]], None]


@dataclass
class Subscription:
    """One subscription and its timers."""

    id: str
    app_id: str
    resource: str
    group_id: str | None
    relation: str | None
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    reauthorization_pending: bool = False
    timers: list[Any] = field(default_factory=list)

    def to_graph(self) -> dict[str, Any]:
        """The subscription resource as Graph returns it."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": iso(self.expiration),
            "creatorId": self.app_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }

    def covers(self, group_id: str, membership: bool) -> bool:
        """Whether a change to `group_id` (a membership change or not) concerns this subscription."""
        if self.group_id is None:
            return True
        if self.group_id != group_id:
            return False
        if self.relation == "owners":
            return False
        return self.relation is None or membership


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def _loopback_url(url: Any, name: str) -> str:
    """Accept `https://` or `http://` on a loopback address; Graph itself requires https."""
    if not isinstance(url, str) or not url:
        raise _invalid(f"{name} is required.")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _invalid(f"Invalid {name}: an absolute http(s) URL is required.")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise _invalid(f"Invalid {name}: the sandbox delivers to loopback addresses (127.0.0.1) only.")
    return url


def _parse_expiry(raw: Any, now: datetime) -> datetime:
    if not isinstance(raw, str):
        raise _invalid("expirationDateTime is required.")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise _invalid(f"Invalid expirationDateTime '{raw}'.") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= now:
        raise _invalid("Subscription expiration must be in the future.")
    if moment > now + MAX_EXPIRY:
        raise _invalid(
            f"Subscription expiration can only be {MAX_EXPIRY // timedelta(minutes=1)} minutes in the future."
        )
    return moment


class Subscriptions:
    """The tenant's subscriptions: Graph's CRUD rules, expiry, lifecycle and change notifications."""

    def __init__(
        self,
        scheduler: Scheduler,
        tenant_id: Callable[[], str],
        group_exists: Callable[[str], bool],
        validate: Validate,
        enqueue: Enqueue,
    ) -> None:
        self.scheduler = scheduler
        self._tenant_id = tenant_id
        self._group_exists = group_exists
        self._validate = validate
        self._enqueue = enqueue
        self._by_id: dict[str, Subscription] = {}
        self._sequence = 0

    # -- Graph operations ------------------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any], app_id: str) -> Subscription:
        """`POST /subscriptions`: validate, run the handshake(s), store and schedule."""
        now = self.scheduler.clock.now()
        resource = body.get("resource")
        match = _RESOURCE.match(resource) if isinstance(resource, str) else None
        if match is None:
            raise _invalid(
                f"Resource '{resource}' is not supported: the sandbox supports /groups, /groups/{{id}}, "
                "/groups/{id}/members and /groups/{id}/owners."
            )
        group_id = match.group("id")
        if group_id is not None and not self._group_exists(group_id):
            raise GraphError(404, "ResourceNotFound", f"Resource '{resource}' was not found.")
        change_types = self._change_types(body.get("changeType"))
        if body.get("includeResourceData"):
            raise _invalid("Rich notifications (includeResourceData) are not supported for groups.")
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE
        ):
            raise _invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
        notification_url = _loopback_url(body.get("notificationUrl"), "notificationUrl")
        raw_lifecycle = body.get("lifecycleNotificationUrl")
        lifecycle_url = (
            None if raw_lifecycle is None else _loopback_url(raw_lifecycle, "lifecycleNotificationUrl")
        )
        expiration = _parse_expiry(body.get("expirationDateTime"), now)
        self._sweep()
        if sum(1 for s in self._by_id.values() if s.app_id == app_id) >= MAX_PER_APP:
            raise GraphError(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: Subscription limit of "
                f"{MAX_PER_APP} for this application and tenant has been reached for resource type groups.]",
            )
        for url in dict.fromkeys(u for u in (notification_url, lifecycle_url) if u is not None):
            failure = await self._validate(url)
            if failure is not None:
                raise _invalid(f"Subscription validation request failed: {url.split('?')[0]} {failure}.")
        sub = Subscription(
            id=str(uuid.uuid4()),
            app_id=app_id,
            resource=resource if isinstance(resource, str) else "",
            group_id=group_id,
            relation=(match.group("rel") or "").lower() or None,
            change_types=change_types,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expiration=expiration,
        )
        self._by_id[sub.id] = sub
        self._schedule(sub)
        return sub

    def get(self, subscription_id: str, app_id: str) -> Subscription:
        """`GET /subscriptions/{id}`; 404 for an unknown, expired or foreign subscription."""
        self._sweep()
        sub = self._by_id.get(subscription_id)
        if sub is None or sub.app_id != app_id:
            raise GraphError(404, "ResourceNotFound", f"The object '{subscription_id}' was not found.")
        return sub

    def list(self, app_id: str) -> list[Subscription]:
        """`GET /subscriptions`: the calling app's live subscriptions."""
        self._sweep()
        return [s for s in self._by_id.values() if s.app_id == app_id]

    async def update(self, subscription_id: str, body: Mapping[str, Any], app_id: str) -> Subscription:
        """`PATCH /subscriptions/{id}`: renew (`expirationDateTime`), which also reauthorizes; a new
        `notificationUrl` must pass the validation handshake first (stricter than Graph documents [U])."""
        sub = self.get(subscription_id, app_id)
        if "lifecycleNotificationUrl" in body:
            raise _invalid("lifecycleNotificationUrl can only be set when the subscription is created.")
        unknown = set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"}
        if unknown:
            raise _invalid(f"Only expirationDateTime can be updated; got {sorted(unknown)}.")
        expiration = sub.expiration
        if "expirationDateTime" in body:
            expiration = _parse_expiry(body["expirationDateTime"], self.scheduler.clock.now())
        notification_url = sub.notification_url
        if "notificationUrl" in body:
            notification_url = _loopback_url(body["notificationUrl"], "notificationUrl")
            if notification_url != sub.notification_url:
                failure = await self._validate(notification_url)
                if failure is not None:
                    raise _invalid(
                        f"Subscription validation request failed: {notification_url.split('?')[0]} {failure}."
                    )
        sub = self.get(subscription_id, app_id)  # still there after the handshake's await
        sub.notification_url, sub.expiration = notification_url, expiration
        sub.reauthorization_pending = False
        self._schedule(sub)
        return sub

    def delete(self, subscription_id: str, app_id: str) -> None:
        """`DELETE /subscriptions/{id}`."""
        sub = self.get(subscription_id, app_id)
        self._remove(sub)

    def reauthorize(self, subscription_id: str, app_id: str) -> None:
        """`POST /subscriptions/{id}/reauthorize`: clears a pending reauthorization; expiry unchanged."""
        self.get(subscription_id, app_id).reauthorization_pending = False

    def reset(self) -> None:
        """Drop every subscription (control-plane reset)."""
        for sub in list(self._by_id.values()):
            self._remove(sub)

    # -- notifications ---------------------------------------------------------------------------------

    def on_event(self, event: DirectoryEvent) -> None:
        """Turn a directory event into change notifications for the subscriptions it concerns."""
        if event.group_id is None or event.kind == "user_updated":
            return
        membership = event.kind in ("member_added", "member_removed")
        now = self.scheduler.clock.now()
        for sub in list(self._by_id.values()):
            if sub.expiration <= now:
                self._remove(sub)
                continue
            if not sub.covers(event.group_id, membership):
                continue
            if event.kind == "group_deleted":
                change_type = "deleted" if "deleted" in sub.change_types else "updated"
            elif "updated" in sub.change_types:
                change_type = "updated"
            else:
                continue
            self._enqueue(sub.notification_url, self._change_notification(sub, event, change_type))

    def _change_notification(
        self, sub: Subscription, event: DirectoryEvent, change_type: str
    ) -> dict[str, Any]:
        group_id = event.group_id or ""
        tenant_id = self._tenant_id()
        resource_data: dict[str, Any] = {
            "@odata.type": _GROUP_TYPE,
            "@odata.id": f"Groups/{group_id}",
            "id": group_id,
            "organizationId": tenant_id,
            "sequenceNumber": self._next_sequence(event.at),
        }
        if event.kind in ("member_added", "member_removed") and event.user_id is not None:
            member: dict[str, Any] = {"id": event.user_id}
            if event.kind == "member_removed":
                member["@removed"] = "deleted"
            resource_data["members@delta"] = [member]
        return {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": iso(sub.expiration),
            "changeType": change_type,
            "clientState": sub.client_state,
            "tenantId": tenant_id,
            "resource": f"Groups/{group_id}",
            "resourceData": resource_data,
        }

    def _next_sequence(self, at: datetime) -> int:
        """Strictly increasing, shaped like Graph's (.NET ticks of the change time)."""
        ticks = int((at - datetime(1, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
        self._sequence = max(self._sequence + 1, ticks)
        return self._sequence

    # -- timers ----------------------------------------------------------------------------------------

    def _schedule(self, sub: Subscription) -> None:
        for entry in sub.timers:
            Scheduler.cancel(entry)
        sub.timers = [
            self.scheduler.call_at(sub.expiration, lambda: self._expire(sub), f"subscription.expire {sub.id}")
        ]
        if sub.lifecycle_url is not None:
            at = max(sub.expiration - REAUTHORIZE_LEAD, self.scheduler.clock.now())
            sub.timers.append(
                self.scheduler.call_at(
                    at, lambda: self._reauthorization_required(sub), f"subscription.lifecycle {sub.id}"
                )
            )

    def _reauthorization_required(self, sub: Subscription) -> None:
        if self._by_id.get(sub.id) is not sub or sub.lifecycle_url is None:
            return
        sub.reauthorization_pending = True
        self._enqueue(
            sub.lifecycle_url,
            {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso(sub.expiration),
                "tenantId": self._tenant_id(),
                "clientState": sub.client_state,
                "lifecycleEvent": "reauthorizationRequired",
            },
        )

    def _expire(self, sub: Subscription) -> None:
        if self._by_id.get(sub.id) is sub and sub.expiration <= self.scheduler.clock.now():
            self._remove(sub)

    def _sweep(self) -> None:
        """Drop expired subscriptions even if their timer was lost (a tenant load clears the scheduler)."""
        now = self.scheduler.clock.now()
        for sub in [s for s in self._by_id.values() if s.expiration <= now]:
            self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        for entry in sub.timers:
            Scheduler.cancel(entry)
        sub.timers = []
        self._by_id.pop(sub.id, None)

    @staticmethod
    def _change_types(raw: Any) -> tuple[str, ...]:
        if not isinstance(raw, str) or not raw.strip():
            raise _invalid("changeType is required.")
        types = tuple(dict.fromkeys(part.strip() for part in raw.split(",")))
        if "created" in types:
            raise _invalid("changeType 'created' is not supported for groups; use 'updated' and 'deleted'.")
        unknown = [t for t in types if t not in _CHANGE_TYPES]
        if unknown:
            raise _invalid(f"Invalid changeType {unknown}; groups support 'updated' and 'deleted'.")
        return types


# Subscribing to groups needs Group.Read.All (or higher) per the create-subscription permission table.
_SUBSCRIBE = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)


def install(sandbox: SandboxApp) -> None:
    """Serve `/subscriptions`, deliver change and lifecycle notifications, and add the notification and
    clock control calls (the clock waits for queued deliveries after each step)."""
    state = sandbox.state
    client = httpx.AsyncClient(verify=ssl.create_default_context(), timeout=httpx.Timeout(15.0))
    notifier = Notifier(client)
    subs = Subscriptions(
        state.scheduler,
        tenant_id=lambda: state.tenant.id,
        group_exists=lambda gid: gid in state.tenant.groups,
        validate=lambda url: validate_endpoint(client, url, notifier.limits),
        enqueue=notifier.enqueue,
    )
    context = f"{sandbox.graph_url}/$metadata#subscriptions"

    def entity(sub: Subscription) -> dict[str, Any]:
        return {"@odata.context": f"{context}/$entity", **sub.to_graph()}

    async def create(request: GraphRequest) -> GraphResponse:
        return GraphResponse(201, entity(await subs.create(request.json_object(), request.app_id or "")))

    async def list_all(request: GraphRequest) -> GraphResponse:
        return GraphResponse(
            200, {"@odata.context": context, "value": [s.to_graph() for s in subs.list(request.app_id or "")]}
        )

    async def get_one(request: GraphRequest) -> GraphResponse:
        return GraphResponse(200, entity(subs.get(request.params["id"], request.app_id or "")))

    async def renew(request: GraphRequest) -> GraphResponse:
        sub = await subs.update(request.params["id"], request.json_object(), request.app_id or "")
        return GraphResponse(200, entity(sub))

    async def delete(request: GraphRequest) -> GraphResponse:
        subs.delete(request.params["id"], request.app_id or "")
        return GraphResponse(204)

    async def reauthorize(request: GraphRequest) -> GraphResponse:
        subs.reauthorize(request.params["id"], request.app_id or "")
        return GraphResponse(204)

    async def switch(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        enabled = body.get("enabled") if isinstance(body, dict) else None
        if not isinstance(enabled, bool):
            return web.json_response({"error": 'give {"enabled": true|false}'}, status=400)
        notifier.enabled = enabled
        return web.json_response({"enabled": notifier.enabled})

    async def report(_: web.Request) -> web.Response:
        endpoints = {
            url.split("?", 1)[0]: vars(stats)  # the query string may hold a function key: never shown
            for url, stats in notifier.stats.items()
        }
        return web.json_response({"enabled": notifier.enabled, "endpoints": endpoints})

    async def close(_: web.Application) -> None:
        await notifier.close()
        await client.aclose()

    router = sandbox.router
    router.add("POST", "/subscriptions", create, permissions=_SUBSCRIBE)
    router.add("GET", "/subscriptions", list_all, permissions=_SUBSCRIBE)
    router.add("GET", "/subscriptions/{id}", get_one, permissions=_SUBSCRIBE)
    router.add("PATCH", "/subscriptions/{id}", renew, permissions=_SUBSCRIBE)
    router.add("DELETE", "/subscriptions/{id}", delete, permissions=_SUBSCRIBE)
    router.add("POST", "/subscriptions/{id}/reauthorize", reauthorize, permissions=_SUBSCRIBE)
    state.events.subscribe(subs.on_event)
    state.on_reset.append(subs.reset)
    state.on_reset.append(notifier.reset)
    sandbox.add_control_route("POST", "/notifications", switch)
    sandbox.add_control_route("GET", "/notifications", report)
    sandbox.web_app.on_cleanup.append(close)
    clock_control.register(sandbox, notifier, client)
