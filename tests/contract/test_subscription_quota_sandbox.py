"""Subscription upkeep against the sandbox over HTTPS when Graph's 100-per-app quota is used up: the real
403 the sandbox answers becomes one quota alert with the fix, and the run that creates again resolves it.

Another deployment of the same app registration (another notification endpoint on 127.0.0.1) fills the
quota; it takes the last slot between upkeep's listing and its creation, so the refusal comes from Graph
itself, not from upkeep's own count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from handlers.alerts import handle_alert
from handlers.subscription_upkeep import (
    QUOTA_PROBLEM,
    SubscriptionTarget,
    UpkeepDeps,
    graph_time,
    run_upkeep,
)
from seatkeeper.adapters.clocks import WallClock
from seatkeeper.adapters.graph.client import GraphClient, build_http_client, ssl_context
from seatkeeper.adapters.graph.retrying import RetryPolicy
from seatkeeper.adapters.graph.tokens import confidential_client_provider
from seatkeeper.core.incidents import Cause, Decision, parse_alert
from seatkeeper.core.policy import Alerts
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_plan import LIFETIME
from seatkeeper.core.subscription_records import SubscriptionRecords
from tests.fixtures.sandbox import SandboxInfo
from tests.unit.notification_fakes import MemoryStore, RecordingQueue

pytestmark = pytest.mark.anyio

AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
LIMIT = 100


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _answer_handshake(request: web.Request) -> web.Response:
    """Graph's validation handshake: the decoded token back as plain text; deliveries acknowledged."""
    token = request.query.get("validationToken")
    if token is not None:
        return web.Response(text=token, content_type="text/plain")
    return web.Response(status=202)


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    """A webhook on 127.0.0.1 that passes the handshake on any path."""
    app = web.Application()
    app.router.add_post("/{path:.*}", _answer_handshake)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class TakesTheLastSlot(GraphClient):
    """The real Graph client; while `armed`, another deployment subscribes just before our next creation."""

    armed = False
    other_url = ""

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        if self.armed and method == "POST" and path == "/subscriptions":
            self.armed = False
            await _subscribe_other(self, self.other_url)
        return await super().send(method, path, body, idempotent=idempotent)


async def _subscribe_other(graph: GraphClient, url: str) -> str:
    """One subscription of the other deployment (same app registration, another endpoint)."""
    created = await GraphClient.send(
        graph,
        "POST",
        "/subscriptions",
        {
            "changeType": "updated,deleted",
            "resource": "/groups",
            "notificationUrl": url,
            "expirationDateTime": graph_time(WallClock().now() + LIFETIME),
            "clientState": "other-deployment",
        },
    )
    assert created is not None
    return str(created["id"])


@dataclass
class Rig:
    graph: TakesTheLastSlot
    deps: UpkeepDeps
    queue: RecordingQueue


@pytest.fixture
def msal_http(tenant: SandboxInfo) -> Iterator[httpx.Client]:
    with httpx.Client(verify=tenant.ssl_context(), trust_env=False) as client:
        yield client


@pytest.fixture
async def rig(tenant: SandboxInfo, msal_http: httpx.Client, endpoint: str) -> AsyncIterator[Rig]:
    token = confidential_client_provider(
        client_id=tenant.client_id,
        authority=tenant.authority,
        credential=tenant.client_secret,
        scope="https://graph.microsoft.com/.default",
        http_client=msal_http,
        instance_discovery=False,
    )
    graph = TakesTheLastSlot(
        graph_url=tenant.graph_url,
        http=build_http_client(verify=ssl_context(Path(tenant.ca_file)), timeout_seconds=20.0),
        token=token,
        retry=RetryPolicy(budget_seconds=30.0),
    )
    graph.other_url = f"{endpoint}/other-deployment/notifications"
    queue = RecordingQueue()
    target = SubscriptionTarget(
        Secret(f"{endpoint}/api/graph/notifications?code=webhook-key"),
        Secret(f"{endpoint}/api/graph/lifecycle?code=webhook-key"),
    )
    deps = UpkeepDeps(graph, SubscriptionRecords(MemoryStore()), queue, WallClock(), Secret("k" * 32), target)
    try:
        yield Rig(graph, deps, queue)
    finally:
        await graph.aclose()


async def test_graphs_quota_refusal_is_one_quota_alert_and_a_later_creation_resolves_it(rig: Rig) -> None:
    """The sandbox answers 403 `ExtensionError` "Subscription limit of 100 …": upkeep fails no group, sends
    one `subscription.quota_exceeded` (100 held, all by the other endpoint, the fix), and once two stale
    subscriptions are deleted the next run subscribes the group and the incident resolves."""
    others = [await _subscribe_other(rig.graph, rig.graph.other_url) for _ in range(LIMIT - 1)]
    rig.graph.armed = True
    refused = await run_upkeep([AMERICAS], rig.deps, correlation_id="c")
    first_alerts = list(rig.queue.messages.values())
    for stale in others[:2]:
        await rig.graph.send("DELETE", f"/subscriptions/{stale}", idempotent=True)
    created = await run_upkeep([AMERICAS], rig.deps, correlation_id="c2")
    later_alerts = [m for m in rig.queue.messages.values() if m not in first_alerts]

    assert refused.failed == {}
    assert refused.quota is not None
    assert (refused.quota.blocked_groups, refused.quota.in_use, refused.quota.limit) == (
        (AMERICAS,),
        100,
        100,
    )
    assert "403 ExtensionError" in refused.quota.refusal
    assert (
        "Subscription limit of 100 for this application and tenant has been reached" in refused.quota.refusal
    )
    [alert] = [parse_alert(m.payload) for m in first_alerts if m.kind == "alert"]
    facts = {f.label: f.value for f in alert.evidence}
    assert (alert.key.problem, alert.cause) == (QUOTA_PROBLEM, Cause.PRESENT)
    assert (facts["Subscriptions held by the app"], facts["Of them, other endpoints"]) == ("100", "100")
    assert "per app registration and tenant" in alert.remediation
    assert created.created == [AMERICAS]
    quota_later = [parse_alert(m.payload) for m in later_alerts if m.payload.get("problem") == QUOTA_PROBLEM]
    assert [s.cause for s in quota_later] == [Cause.GONE]
    incidents, clock = MemoryStore(), WallClock()
    decisions = [
        (await handle_alert(m.body(), store=incidents, channels={}, alerts=Alerts(), clock=clock)).decision
        for m in [*first_alerts, *later_alerts]
        if m.payload.get("problem") == QUOTA_PROBLEM
    ]
    assert decisions == [Decision.OPENED, Decision.RESOLVED]
