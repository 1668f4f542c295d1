"""Graph's quotas over HTTPS: inner `$batch` requests are charged one by one until one answers 429."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected


def _run(info: SandboxInfo, scenario: Callable[[Sandbox], Awaitable[None]]) -> None:
    async def main() -> None:
        async with connected(info) as sandbox:
            await scenario(sandbox)

    asyncio.run(main())


def _members_batch(group_id: str) -> dict[str, Any]:
    """20 member listings: 3 RU each, 60 RU per call."""
    return {
        "requests": [{"id": str(n), "method": "GET", "url": f"/groups/{group_id}/members"} for n in range(20)]
    }


def test_the_resource_unit_quota_throttles_inner_requests_with_graphs_headers(tenant: SandboxInfo) -> None:
    """A 200-user tenant (5,000 RU per 10 s) is exhausted by ~84 batches; the first refusal is a 429 item
    with Retry-After and the reason, after earlier items reported the usage percentage."""

    async def scenario(sandbox: Sandbox) -> None:
        group_id, _ = await sandbox.group_named("Copilot Pilots")
        seen: list[dict[str, Any]] = []
        for _ in range(120):
            response = await sandbox.graph.post("/$batch", json=_members_batch(group_id))
            seen.extend(response.json()["responses"])
            if any(item["status"] == 429 for item in seen):
                break
        refused = next(item for item in seen if item["status"] == 429)
        admitted = [item for item in seen if item["status"] == 200]
        assert len(admitted) * 3 > 5000 - 3  # nothing was refused before the quota was spent
        assert int(refused["headers"]["Retry-After"]) >= 1
        assert refused["headers"]["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        assert any("x-ms-throttle-limit-percentage" in item["headers"] for item in admitted)
        counters = await sandbox.control_json("GET", "/counters")
        assert counters["resource_units"]["GET /groups/{id}/members"] == 3 * len(admitted)

    _run(tenant, scenario)


def test_switching_throttling_off_admits_everything(tenant: SandboxInfo) -> None:
    """With quotas off, the same load goes through untouched."""

    async def scenario(sandbox: Sandbox) -> None:
        group_id, _ = await sandbox.group_named("Copilot Pilots")
        await sandbox.control_json("POST", "/throttling", {"enabled": False})
        statuses: set[int] = set()
        for _ in range(90):
            response = await sandbox.graph.post("/$batch", json=_members_batch(group_id))
            statuses |= {item["status"] for item in response.json()["responses"]}
        assert statuses == {200}

    _run(tenant, scenario)


def test_every_answer_reports_its_resource_units(tenant: SandboxInfo) -> None:
    """x-ms-resource-unit is on each answer: `$select` makes a user read cost 1, a user list 2 minus 1."""

    async def scenario(sandbox: Sandbox) -> None:
        user = (await sandbox.user_ids())[0]
        one = await sandbox.graph.get(f"/users/{user}", params={"$select": "id"})
        listing = await sandbox.graph.get("/users", params={"$top": "999"})
        skus = await sandbox.graph.get("/subscribedSkus")
        assert [r.headers["x-ms-resource-unit"] for r in (one, listing, skus)] == ["1", "2", "3"]

    _run(tenant, scenario)
