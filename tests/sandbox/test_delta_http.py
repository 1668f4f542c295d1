"""Group delta over HTTPS: follow links, see membership changes, token expiry on the business clock, reset."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected

PILOTS = "Copilot Pilots"


def _run(info: SandboxInfo, scenario: Callable[[Sandbox], Awaitable[None]]) -> None:
    async def main() -> None:
        async with connected(info) as sandbox:
            await scenario(sandbox)

    asyncio.run(main())


async def _sync(
    sandbox: Sandbox, url: str, params: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    response = await sandbox.graph.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        response = await sandbox.graph.get(body["@odata.nextLink"])


def test_delta_reports_joiners_and_leavers_after_a_full_sync(tenant: SandboxInfo) -> None:
    """The first round lists the members; the next lists only the change, leavers with @removed."""

    async def scenario(sandbox: Sandbox) -> None:
        group_id, members = await sandbox.group_named(PILOTS)
        newcomer = next(u for u in await sandbox.user_ids() if u not in members)
        first, link = await _sync(
            sandbox, "/groups/delta", {"$select": "members", "$filter": f"id eq '{group_id}'"}
        )
        await sandbox.control_json(
            "POST", f"/groups/{group_id}/members", {"add": [newcomer], "remove": members[:1]}
        )
        second, _ = await _sync(sandbox, link)
        assert sorted(m["id"] for item in first for m in item["members@delta"]) == sorted(members)
        assert link.startswith(tenant.graph_url)
        assert [(m["id"], m.get("@removed")) for item in second for m in item["members@delta"]] == [
            (newcomer, None),
            (members[0], {"reason": "deleted"}),
        ]

    _run(tenant, scenario)


def test_a_delta_link_expires_after_seven_business_days(tenant: SandboxInfo) -> None:
    """Eight days on the sandbox clock later, the deltaLink answers 400 syncStateNotFound."""

    async def scenario(sandbox: Sandbox) -> None:
        _, link = await _sync(sandbox, "/groups/delta", {"$deltatoken": "latest", "$select": "members"})
        await sandbox.control_json(
            "POST", "/clock/advance", {"seconds": 8 * 86400, "max_step_seconds": 86400}
        )
        expired = await sandbox.graph.get(link)
        assert (expired.status_code, expired.json()["error"]["code"]) == (400, "syncStateNotFound")

    _run(tenant, scenario)


def test_a_delta_link_from_before_a_reset_answers_410_with_location(tenant: SandboxInfo) -> None:
    """A reset forgets the change log: old links answer 410 Gone with a Location to start over."""

    async def scenario(sandbox: Sandbox) -> None:
        _, link = await _sync(sandbox, "/groups/delta", {"$deltatoken": "latest", "$select": "members"})
        await sandbox.control_json("POST", "/reset")
        gone = await sandbox.graph.get(link)
        restarted, _ = await _sync(sandbox, gone.headers["Location"])
        assert gone.status_code == 410
        assert restarted

    _run(tenant, scenario)


def test_more_than_fifty_ids_in_the_filter_answer_400(tenant: SandboxInfo) -> None:
    """Graph's limit of 50 ids per delta filter."""

    async def scenario(sandbox: Sandbox) -> None:
        ids = " or ".join(f"id eq '{n:08d}-0000-0000-0000-000000000000'" for n in range(51))
        response = await sandbox.graph.get("/groups/delta", params={"$select": "members", "$filter": ids})
        assert response.status_code == 400

    _run(tenant, scenario)
