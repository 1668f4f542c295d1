"""Graph's 3-second rule end to end: the sandbox server retries a delivery its receiver answered too late."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected
from tests.sandbox.webhook_receiver import Receiver, running_receiver


def test_a_reply_after_three_seconds_is_a_failure_and_the_notification_comes_again(
    tenant: SandboxInfo,
) -> None:
    """The receiver answers the first POST 202 after 3.3 s: the sandbox counts it failed and delivers again;
    the control plane reports it without the URL's query string."""

    async def scenario(sandbox: Sandbox, hook: Receiver) -> None:
        group_id, members = await sandbox.group_named("Copilot Pilots")
        url = hook.url("/api/graph", "code=fn-key")
        created = await sandbox.graph.post(
            "/subscriptions",
            json={
                "changeType": "updated",
                "notificationUrl": url,
                "resource": f"/groups/{group_id}",
                "expirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "clientState": "state",
            },
        )
        assert created.status_code == 201, created.text
        await sandbox.control_json("POST", f"/groups/{group_id}/members", {"remove": members[:1]})
        for _ in range(200):
            if len(hook.deliveries) >= 2:
                break
            await asyncio.sleep(0.05)
        report = await sandbox.control_json("GET", "/notifications")
        stats = report["endpoints"][url.split("?")[0]]
        assert [body["value"][0]["resourceData"]["members@delta"] for _, body in hook.deliveries] == [
            [{"id": members[0], "@removed": "deleted"}]
        ] * 2
        assert (stats["failed_attempts"], stats["slow"]) == (1, 1)
        assert "fn-key" not in str(report)

    async def main() -> None:
        async with connected(tenant) as sandbox, running_receiver(Receiver(script=[(3.3, 202)])) as hook:
            await scenario(sandbox, hook)

    asyncio.run(main())
