"""Subscription rules (graph-facts §A1, §A2, §A5) and the notifications they produce, without HTTP."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from sandbox.clock import SandboxClock, Scheduler, advance
from sandbox.directory_events import DirectoryEvent, EventKind
from sandbox.graph_errors import GraphError
from sandbox.subscriptions import Subscription, Subscriptions

TENANT = "tenant-1"
HOOK = "http://127.0.0.1:7071/api/graph?code=fn-key"
LIFECYCLE = "http://127.0.0.1:7071/api/lifecycle?code=fn-key"


class Recorder:
    """Records handshakes (answering pass or a failure reason) and queued notifications per URL."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.failing = failing or set()
        self.validated: list[str] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def validate(self, url: str) -> str | None:
        self.validated.append(url)
        return "answered 500, not 200" if url in self.failing else None

    def enqueue(self, url: str, notification: dict[str, Any]) -> None:
        self.sent.append((url, notification))


def _world(failing: set[str] | None = None) -> tuple[Subscriptions, Recorder, Scheduler]:
    scheduler = Scheduler(SandboxClock())
    recorder = Recorder(failing)
    subs = Subscriptions(
        scheduler,
        tenant_id=lambda: TENANT,
        group_exists=lambda gid: gid.startswith("g"),
        validate=recorder.validate,
        enqueue=recorder.enqueue,
    )
    return subs, recorder, scheduler


def _body(scheduler: Scheduler, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "changeType": "updated,deleted",
        "notificationUrl": HOOK,
        "lifecycleNotificationUrl": LIFECYCLE,
        "resource": "/groups/g1",
        "expirationDateTime": (scheduler.clock.now() + timedelta(days=2)).isoformat(),
        "clientState": "s" * 128,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _create(subs: Subscriptions, body: dict[str, Any], app: str = "app") -> Subscription:
    return asyncio.run(subs.create(body, app))


def _event(
    scheduler: Scheduler, kind: EventKind, group: str | None, user: str | None = None
) -> DirectoryEvent:
    return DirectoryEvent(kind, group, user, scheduler.clock.now())


def test_creation_validates_both_urls_and_returns_graphs_shape() -> None:
    """Both URLs get a handshake (the same URL would get two); the answer has Graph's fields."""
    subs, recorder, scheduler = _world()
    sub = _create(subs, _body(scheduler))
    shape = sub.to_graph()
    assert recorder.validated == [HOOK, LIFECYCLE]
    assert (shape["resource"], shape["changeType"], shape["notificationUrl"]) == (
        "/groups/g1",
        "updated,deleted",
        HOOK,
    )
    assert shape["expirationDateTime"].endswith("Z")


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"changeType": "created"}, 400),
        ({"changeType": "updated,created"}, 400),
        ({"changeType": "renamed"}, 400),
        ({"resource": "/users"}, 400),
        ({"resource": "/groups/nope"}, 404),
        ({"clientState": "s" * 129}, 400),
        ({"notificationUrl": "https://example.com/hook"}, 400),
        ({"notificationUrl": "ftp://127.0.0.1/hook"}, 400),
        ({"expirationDateTime": "yesterday"}, 400),
        ({"includeResourceData": True}, 400),
    ],
    ids=[
        "created",
        "created-among-others",
        "unknown-change-type",
        "not-a-group-resource",
        "unknown-group",
        "client-state-129",
        "not-loopback",
        "not-http",
        "bad-expiry",
        "rich-notifications",
    ],
)
def test_invalid_subscriptions_are_refused(overrides: dict[str, Any], status: int) -> None:
    """Graph's documented refusals, each with its status."""
    subs, _, scheduler = _world()
    with pytest.raises(GraphError) as caught:
        _create(subs, _body(scheduler, **overrides))
    assert caught.value.status == status


def test_expiry_can_be_at_most_41760_minutes_ahead() -> None:
    """41,760 minutes is accepted; a minute more is refused, at creation and at renewal."""
    subs, _, scheduler = _world()
    now = scheduler.clock.now()
    sub = _create(subs, _body(scheduler, expirationDateTime=(now + timedelta(minutes=41_759)).isoformat()))
    with pytest.raises(GraphError):
        _create(subs, _body(scheduler, expirationDateTime=(now + timedelta(minutes=41_761)).isoformat()))
    with pytest.raises(GraphError):
        asyncio.run(
            subs.update(sub.id, {"expirationDateTime": (now + timedelta(minutes=41_761)).isoformat()}, "app")
        )


def test_a_failed_handshake_creates_nothing() -> None:
    """If the lifecycle URL fails its validation, creation fails and no subscription exists."""
    subs, _, scheduler = _world(failing={LIFECYCLE})
    with pytest.raises(GraphError) as caught:
        _create(subs, _body(scheduler))
    assert (caught.value.status, subs.list("app")) == (400, [])
    assert "code=fn-key" not in caught.value.message


def test_one_hundred_subscriptions_per_app() -> None:
    """The 101st subscription of one app answers 403; another app may still subscribe."""
    subs, _, scheduler = _world()
    for _ in range(100):
        _create(subs, _body(scheduler, lifecycleNotificationUrl=None))
    with pytest.raises(GraphError) as caught:
        _create(subs, _body(scheduler, lifecycleNotificationUrl=None))
    _create(subs, _body(scheduler, lifecycleNotificationUrl=None), app="other")
    assert caught.value.status == 403
    assert "100" in caught.value.message


def test_lifecycle_url_cannot_be_added_by_patch() -> None:
    """PATCH may renew, but not set lifecycleNotificationUrl."""
    subs, _, scheduler = _world()
    sub = _create(subs, _body(scheduler, lifecycleNotificationUrl=None))
    with pytest.raises(GraphError) as caught:
        asyncio.run(subs.update(sub.id, {"lifecycleNotificationUrl": LIFECYCLE}, "app"))
    assert caught.value.status == 400


def test_a_new_notification_url_must_pass_the_handshake() -> None:
    """PATCH to a URL that fails validation is refused and changes nothing; one that passes is taken."""
    moved = "http://127.0.0.1:7072/api/graph?code=other-key"
    broken = "http://127.0.0.1:7073/api/graph"
    subs, recorder, scheduler = _world(failing={broken})
    sub = _create(subs, _body(scheduler, lifecycleNotificationUrl=None))
    with pytest.raises(GraphError) as caught:
        asyncio.run(subs.update(sub.id, {"notificationUrl": broken}, "app"))
    kept = sub.notification_url
    asyncio.run(subs.update(sub.id, {"notificationUrl": moved}, "app"))
    assert (caught.value.status, kept) == (400, HOOK)
    assert (recorder.validated, sub.notification_url) == ([HOOK, broken, moved], moved)


def test_membership_changes_notify_with_members_delta() -> None:
    """A joiner and a leaver each produce Graph's notification shape; a leaver is marked @removed."""
    subs, recorder, scheduler = _world()
    sub = _create(subs, _body(scheduler))
    subs.on_event(_event(scheduler, "member_added", "g1", "u1"))
    subs.on_event(_event(scheduler, "member_removed", "g1", "u2"))
    subs.on_event(_event(scheduler, "member_added", "g2", "u3"))
    assert [url for url, _ in recorder.sent] == [HOOK, HOOK]
    first, second = (n for _, n in recorder.sent)
    assert first["resourceData"]["members@delta"] == [{"id": "u1"}]
    assert second["resourceData"]["members@delta"] == [{"id": "u2", "@removed": "deleted"}]
    assert {k: first[k] for k in ("subscriptionId", "changeType", "clientState", "tenantId", "resource")} == {
        "subscriptionId": sub.id,
        "changeType": "updated",
        "clientState": "s" * 128,
        "tenantId": TENANT,
        "resource": "Groups/g1",
    }
    assert {k: first["resourceData"][k] for k in ("@odata.type", "@odata.id", "id", "organizationId")} == {
        "@odata.type": "#Microsoft.Graph.Group",
        "@odata.id": "Groups/g1",
        "id": "g1",
        "organizationId": TENANT,
    }
    assert second["resourceData"]["sequenceNumber"] > first["resourceData"]["sequenceNumber"]


@pytest.mark.parametrize(
    ("resource", "kinds", "expected"),
    [
        ("/groups", ("member_added", "group_updated"), ["updated", "updated"]),
        ("/groups/g1/members", ("member_added", "group_updated"), ["updated"]),
        ("/groups/g1/owners", ("member_added", "group_updated"), []),
        ("/groups/g1", ("group_deleted",), ["deleted"]),
    ],
    ids=["all-groups", "members-only", "owners", "deletion"],
)
def test_which_changes_reach_which_resource(
    resource: str, kinds: tuple[EventKind, ...], expected: list[str]
) -> None:
    """`/groups` sees all, `/members` only membership, `/owners` no membership; deletion is `deleted`."""
    subs, recorder, scheduler = _world()
    _create(subs, _body(scheduler, resource=resource))
    for kind in kinds:
        subs.on_event(_event(scheduler, kind, "g1", "u1" if kind.startswith("member") else None))
    assert [n["changeType"] for _, n in recorder.sent] == expected


def test_lifecycle_notification_comes_before_expiry_and_the_subscription_then_disappears() -> None:
    """Moving the clock sends reauthorizationRequired an hour before expiry, then the subscription expires."""
    subs, recorder, scheduler = _world()
    sub = _create(subs, _body(scheduler))
    seen: list[tuple[str, datetime]] = []

    async def move() -> None:
        await advance(scheduler, timedelta(days=1, hours=22, minutes=30), timedelta(hours=1))
        seen.append(("before", scheduler.clock.now()))
        await advance(scheduler, timedelta(hours=2), timedelta(hours=1))

    asyncio.run(move())
    lifecycle = [n for url, n in recorder.sent if url == LIFECYCLE]
    assert [n["lifecycleEvent"] for n in lifecycle] == ["reauthorizationRequired"]
    assert lifecycle[0]["subscriptionId"] == sub.id
    assert subs.list("app") == []
    with pytest.raises(GraphError):
        subs.get(sub.id, "app")


def test_renewal_moves_expiry_and_lifecycle() -> None:
    """After a PATCH renewal the old expiry passes without loss; the subscription lives on."""
    subs, recorder, scheduler = _world()
    sub = _create(subs, _body(scheduler))
    renewed = (scheduler.clock.now() + timedelta(days=20)).isoformat()
    asyncio.run(subs.update(sub.id, {"expirationDateTime": renewed}, "app"))
    asyncio.run(advance(scheduler, timedelta(days=3), timedelta(hours=6)))
    assert [s.id for s in subs.list("app")] == [sub.id]
    assert [url for url, _ in recorder.sent] == []


def test_subscriptions_belong_to_their_app() -> None:
    """Another app can neither see nor delete a subscription."""
    subs, _, scheduler = _world()
    sub = _create(subs, _body(scheduler))
    with pytest.raises(GraphError):
        subs.delete(sub.id, "other")
    assert (subs.list("other"), [s.id for s in subs.list("app")]) == ([], [sub.id])
