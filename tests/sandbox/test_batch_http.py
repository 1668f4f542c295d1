"""`$batch` over HTTPS: per-item answers, 424 after a failure, inner faults and counters per inner request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected


def _run(info: SandboxInfo, scenario: Callable[[Sandbox], Awaitable[None]]) -> None:
    async def main() -> None:
        async with connected(info) as sandbox:
            await scenario(sandbox)

    asyncio.run(main())


def test_items_answer_on_their_own_and_dependents_of_a_failure_get_424(tenant: SandboxInfo) -> None:
    """One item 404s, its dependent 424s, the others 200; each inner request is counted."""

    async def scenario(sandbox: Sandbox) -> None:
        user = (await sandbox.user_ids())[0]
        await sandbox.control_json("POST", "/counters/reset")
        response = await sandbox.graph.post(
            "/$batch",
            json={
                "requests": [
                    {"id": "1", "method": "GET", "url": f"/users/{user}?$select=id,usageLocation"},
                    {"id": "2", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000"},
                    {"id": "3", "method": "GET", "url": "/subscribedSkus", "dependsOn": ["2"]},
                ]
            },
        )
        counters = await sandbox.control_json("GET", "/counters")
        answers = {a["id"]: a for a in response.json()["responses"]}
        assert response.status_code == 200
        assert {k: a["status"] for k, a in answers.items()} == {"1": 200, "2": 404, "3": 424}
        assert answers["1"]["body"]["id"] == user
        assert counters["total"]["inner_requests"] == 2
        assert counters["resource_units"]["GET /users/{id}"] == 2

    _run(tenant, scenario)


def test_an_inner_request_can_be_throttled_alone(tenant: SandboxInfo) -> None:
    """A fault rule on one path answers that item 429 with its own Retry-After; the rest succeed."""

    async def scenario(sandbox: Sandbox) -> None:
        user = (await sandbox.user_ids())[0]
        await sandbox.control_json(
            "POST",
            "/faults",
            {"seed": 3, "rules": [{"path": "/subscribedSkus", "kind": "throttle", "retry_after": 4}]},
        )
        response = await sandbox.graph.post(
            "/$batch",
            json={
                "requests": [
                    {"id": "a", "method": "GET", "url": "/subscribedSkus"},
                    {"id": "b", "method": "GET", "url": f"/users/{user}"},
                ]
            },
        )
        answers = {a["id"]: a for a in response.json()["responses"]}
        assert (answers["a"]["status"], answers["a"]["headers"]["Retry-After"], answers["b"]["status"]) == (
            429,
            "4",
            200,
        )

    _run(tenant, scenario)


def test_more_than_twenty_requests_answer_400(tenant: SandboxInfo) -> None:
    """The batch limit is 20."""

    async def scenario(sandbox: Sandbox) -> None:
        requests = [{"id": str(n), "method": "GET", "url": "/subscribedSkus"} for n in range(21)]
        response = await sandbox.graph.post("/$batch", json={"requests": requests})
        assert response.status_code == 400

    _run(tenant, scenario)
