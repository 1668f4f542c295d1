"""The clock control calls over HTTPS: read, advance in steps, wait for an idle callback after each step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected


@asynccontextmanager
async def idle_endpoint(busy_polls: int) -> AsyncIterator[tuple[str, list[int]]]:
    """A local-host stand-in: GET /idle answers busy `busy_polls` times after each idle answer, then idle."""
    polls: list[int] = []

    async def idle(_: web.Request) -> web.Response:
        polls.append(1)
        busy = busy_polls > 0 and len(polls) % (busy_polls + 1) != 0
        return web.json_response({"idle": not busy})

    app = web.Application()
    app.router.add_get("/idle", idle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/idle", polls
    finally:
        await runner.cleanup()


def _run(info: SandboxInfo, scenario: Callable[[Sandbox], Awaitable[None]]) -> None:
    async def main() -> None:
        async with connected(info, client_timeout=30.0) as sandbox:
            await scenario(sandbox)

    asyncio.run(main())


def test_reset_puts_the_clock_back_on_wall_time(tenant: SandboxInfo) -> None:
    """After a reset the offset is zero; an advance adds exactly what was asked."""

    async def scenario(sandbox: Sandbox) -> None:
        before = await sandbox.control_json("GET", "/clock")
        moved = await sandbox.control_json(
            "POST", "/clock/advance", {"seconds": 7200, "max_step_seconds": 600}
        )
        assert before["offset_seconds"] == 0
        assert (moved["offset_seconds"], moved["steps"]) == (7200, 12)

    _run(tenant, scenario)


def test_each_step_waits_for_the_idle_callback(tenant: SandboxInfo) -> None:
    """With an idle URL that is busy twice before each idle answer, every step polls until idle."""

    async def scenario(sandbox: Sandbox) -> None:
        async with idle_endpoint(busy_polls=2) as (url, polls):
            moved = await sandbox.control_json(
                "POST", "/clock/advance", {"seconds": 3 * 3600, "max_step_seconds": 3600, "idle_url": url}
            )
        assert (moved["steps"], moved["idle_timeouts"], len(polls)) == (3, 0, 9)

    _run(tenant, scenario)


def test_a_service_that_never_goes_idle_is_reported_not_waited_for_forever(tenant: SandboxInfo) -> None:
    """The wait is bounded: each step's timeout is counted and the move completes."""

    async def scenario(sandbox: Sandbox) -> None:
        async with idle_endpoint(busy_polls=10**6) as (url, _):
            moved = await sandbox.control_json(
                "POST",
                "/clock/advance",
                {"seconds": 7200, "max_step_seconds": 3600, "idle_url": url, "idle_timeout": 0.2},
            )
        assert (moved["steps"], moved["idle_timeouts"]) == (2, 2)

    _run(tenant, scenario)


@pytest.mark.parametrize(
    "body",
    [
        {"seconds": -5},
        {"max_step_seconds": 60},
        {"seconds": 60, "max_step_seconds": 0},
        {"seconds": 60, "idle_url": "https://example.com/idle"},
    ],
    ids=["negative", "missing-seconds", "zero-step", "off-machine-idle-url"],
)
def test_bad_advance_requests_answer_400(tenant: SandboxInfo, body: dict[str, Any]) -> None:
    """The clock never moves back, steps are positive, and idle callbacks stay on 127.0.0.1."""

    async def scenario(sandbox: Sandbox) -> None:
        response = await sandbox.control.post("/clock/advance", json=body)
        assert response.status_code == 400

    _run(tenant, scenario)
