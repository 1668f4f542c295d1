"""Subscriptions and change notifications over HTTPS, delivered to a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected
from tests.sandbox.webhook_receiver import Receiver, running_receiver

PILOTS = "Copilot Pilots"
CLIENT_STATE = "sandbox-client-state"


def _run(
    info: SandboxInfo,
    scenario: Callable[[Sandbox, Receiver], Awaitable[None]],
    receiver: Receiver | None = None,
) -> None:
    async def main() -> None:
        async with connected(info) as sandbox, running_receiver(receiver) as hook:
            await scenario(sandbox, hook)

    asyncio.run(main())


def _subscription(hook: Receiver, group_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "changeType": "updated",
        "notificationUrl": hook.url("/api/graph", "code=fn-key"),
        "lifecycleNotificationUrl": hook.url("/api/lifecycle", "code=fn-key"),
        "resource": f"/groups/{group_id}",
        "expirationDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "clientState": CLIENT_STATE,
    }
    body.update(extra)
    return body


async def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the expected delivery did not arrive")


def test_membership_changes_reach_the_receiver_with_query_string_and_client_state(
    tenant: SandboxInfo,
) -> None:
    """After the handshake, a joiner and a leaver arrive Graph-shaped at the registered URL."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, members = await sandbox.group_named(PILOTS)
        newcomer = next(u for u in await sandbox.user_ids() if u not in members)
        created = await sandbox.graph.post("/subscriptions", json=_subscription(hook, group_id))
        assert created.status_code == 201, created.text
        assert [v["code"] for v in hook.validations] == ["fn-key", "fn-key"]
        await sandbox.control_json(
            "POST", f"/groups/{group_id}/members", {"add": [newcomer], "remove": [members[0]]}
        )
        await _wait_for(lambda: len(hook.notifications()) >= 2)
        queries = {tuple(sorted(query.items())) for query, _ in hook.deliveries}
        deltas = [n["resourceData"]["members@delta"] for n in hook.notifications()]
        assert queries == {(("code", "fn-key"),)}
        assert deltas == [[{"id": newcomer}], [{"id": members[0], "@removed": "deleted"}]]
        assert {(n["clientState"], n["subscriptionId"], n["resource"]) for n in hook.notifications()} == {
            (CLIENT_STATE, created.json()["id"], f"Groups/{group_id}")
        }

    _run(tenant, scenario)


def test_a_receiver_that_fails_the_handshake_gets_no_subscription(tenant: SandboxInfo) -> None:
    """An endpoint that echoes the token still URL-encoded fails validation: 400, nothing listed."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, _ = await sandbox.group_named(PILOTS)
        created = await sandbox.graph.post("/subscriptions", json=_subscription(hook, group_id))
        listed = await sandbox.graph.get("/subscriptions")
        assert (created.status_code, created.json()["error"]["code"]) == (400, "InvalidRequest")
        assert listed.json()["value"] == []
        assert "fn-key" not in created.text

    _run(tenant, scenario, Receiver(handshake="encoded"))


def test_created_change_type_is_refused(tenant: SandboxInfo) -> None:
    """Groups do not support `created`: 400 before any handshake."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, _ = await sandbox.group_named(PILOTS)
        created = await sandbox.graph.post(
            "/subscriptions", json=_subscription(hook, group_id, changeType="created")
        )
        assert (created.status_code, hook.validations) == (400, [])

    _run(tenant, scenario)


def test_switched_off_notifications_deliver_nothing(tenant: SandboxInfo) -> None:
    """With deliveries off in the control plane, changes happen but no notification is posted."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, members = await sandbox.group_named(PILOTS)
        assert (
            await sandbox.graph.post("/subscriptions", json=_subscription(hook, group_id))
        ).status_code == 201
        await sandbox.control_json("POST", "/notifications", {"enabled": False})
        await sandbox.control_json("POST", f"/groups/{group_id}/members", {"remove": members[:1]})
        await asyncio.sleep(0.3)
        assert hook.deliveries == []

    _run(tenant, scenario)


def test_renew_reauthorize_and_expire_on_the_business_clock(tenant: SandboxInfo) -> None:
    """PATCH renews and reauthorize answers 204; moving the clock past expiry sends reauthorizationRequired
    to the lifecycle URL first, then the subscription is gone."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, _ = await sandbox.group_named(PILOTS)
        created = (await sandbox.graph.post("/subscriptions", json=_subscription(hook, group_id))).json()
        sub_url = f"/subscriptions/{created['id']}"
        renewed_to = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        renewed = await sandbox.graph.patch(sub_url, json={"expirationDateTime": renewed_to})
        refused = await sandbox.graph.patch(sub_url, json={"lifecycleNotificationUrl": hook.url("/other")})
        reauthorized = await sandbox.graph.post(f"{sub_url}/reauthorize")
        moved = await sandbox.control_json(
            "POST", "/clock/advance", {"seconds": 4 * 86400, "max_step_seconds": 3600}
        )
        gone = await sandbox.graph.get(sub_url)
        lifecycle = [n for q, b in hook.deliveries for n in b["value"] if "lifecycleEvent" in n]
        assert (renewed.status_code, refused.status_code, reauthorized.status_code) == (200, 400, 204)
        assert (moved["steps"], gone.status_code) == (96, 404)
        assert [(n["lifecycleEvent"], n["subscriptionId"]) for n in lifecycle] == [
            ("reauthorizationRequired", created["id"])
        ]

    _run(tenant, scenario)


def test_expiry_beyond_41760_minutes_is_refused(tenant: SandboxInfo) -> None:
    """A subscription may live at most 41,760 minutes."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, _ = await sandbox.group_named(PILOTS)
        too_late = (datetime.now(UTC) + timedelta(minutes=41_770)).isoformat()
        created = await sandbox.graph.post(
            "/subscriptions", json=_subscription(hook, group_id, expirationDateTime=too_late)
        )
        assert created.status_code == 400

    _run(tenant, scenario)


def test_a_tenant_load_keeps_subscriptions_and_their_lifecycle_timers(tenant: SandboxInfo) -> None:
    """After `POST {control}/tenant`, a subscription still gets reauthorizationRequired an hour before its
    expiry, still notifies membership changes, and still expires on time."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, members = await sandbox.group_named(PILOTS)
        created = (await sandbox.graph.post("/subscriptions", json=_subscription(hook, group_id))).json()
        sub_url = f"/subscriptions/{created['id']}"
        await sandbox.control_json("POST", "/tenant", await sandbox.control_json("GET", "/tenant"))
        await sandbox.control_json("POST", f"/groups/{group_id}/members", {"remove": members[:1]})
        await _wait_for(lambda: any("changeType" in n for n in hook.notifications()))
        await sandbox.control_json(
            "POST", "/clock/advance", {"seconds": 2 * 86400 - 1800, "max_step_seconds": 86400}
        )
        alive = await sandbox.graph.get(sub_url)
        await sandbox.control_json("POST", "/clock/advance", {"seconds": 3600})
        gone = await sandbox.graph.get(sub_url)
        lifecycle = [n["lifecycleEvent"] for n in hook.notifications() if "lifecycleEvent" in n]
        assert (alive.status_code, gone.status_code) == (200, 404)
        assert lifecycle == ["reauthorizationRequired"]

    _run(tenant, scenario)
