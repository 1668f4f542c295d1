"""Fault injection over HTTPS: 429, 503, slow answers past a client's timeout, dropped connections, seeds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.part2_http import Sandbox, connected


def _run(info: SandboxInfo, scenario: Callable[[Sandbox], Awaitable[None]], timeout: float = 10.0) -> None:
    async def main() -> None:
        async with connected(info, client_timeout=timeout) as sandbox:
            await scenario(sandbox)

    asyncio.run(main())


def test_throttle_and_unavailable_answer_with_retry_after(tenant: SandboxInfo) -> None:
    """`throttle` answers 429 and `unavailable` 503, both with the rule's Retry-After; others pass."""

    async def scenario(sandbox: Sandbox) -> None:
        await sandbox.control_json(
            "POST",
            "/faults",
            {
                "seed": 1,
                "rules": [
                    {"path": "/subscribedSkus$", "kind": "throttle", "retry_after": 2},
                    {"path": "^/v1.0/groups$", "method": "GET", "kind": "unavailable", "retry_after": 5},
                ],
            },
        )
        throttled = await sandbox.graph.get("/subscribedSkus")
        unavailable = await sandbox.graph.get("/groups")
        untouched = await sandbox.graph.get("/users", params={"$top": "1"})
        assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "2")
        assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "5")
        assert untouched.status_code == 200

    _run(tenant, scenario)


def test_retry_after_null_throttles_without_the_header(tenant: SandboxInfo) -> None:
    """`retry_after: null` answers 429 without Retry-After, outside and inside `$batch`; GET lists it."""

    async def scenario(sandbox: Sandbox) -> None:
        await sandbox.control_json(
            "POST",
            "/faults",
            {"rules": [{"path": "/subscribedSkus$", "kind": "throttle", "retry_after": None}]},
        )
        outer = await sandbox.graph.get("/subscribedSkus")
        batch = await sandbox.graph.post(
            "/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/subscribedSkus"}]}
        )
        item = batch.json()["responses"][0]
        rules = (await sandbox.control_json("GET", "/faults"))["rules"]
        assert outer.status_code == 429
        assert "retry-after" not in outer.headers
        assert outer.json()["error"]["code"] == "TooManyRequests"
        assert item["status"] == 429
        assert "retry-after" not in {name.lower() for name in item["headers"]}
        assert [(r["kind"], r["retry_after"], r["fired"]) for r in rules] == [("throttle", None, 2)]

    _run(tenant, scenario)


def test_a_dropped_connection_reaches_the_client_as_a_transport_error(tenant: SandboxInfo) -> None:
    """`drop` closes the connection without an answer; `count` limits it to the first request."""

    async def scenario(sandbox: Sandbox) -> None:
        await sandbox.control_json(
            "POST", "/faults", {"rules": [{"path": "/subscribedSkus", "kind": "drop", "count": 1}]}
        )
        with pytest.raises(httpx.TransportError):
            await sandbox.graph.get("/subscribedSkus")
        assert (await sandbox.graph.get("/subscribedSkus")).status_code == 200

    _run(tenant, scenario)


def test_a_slow_answer_outlasts_the_clients_timeout(tenant: SandboxInfo) -> None:
    """`slow` delays the answer past a short client timeout."""

    async def scenario(sandbox: Sandbox) -> None:
        await sandbox.control_json(
            "POST", "/faults", {"rules": [{"path": "/subscribedSkus", "kind": "slow", "delay": 1.0}]}
        )
        with pytest.raises(httpx.TimeoutException):
            await sandbox.graph.get("/subscribedSkus", timeout=0.3)

    _run(tenant, scenario)


def test_the_same_seed_replays_the_same_faults(tenant: SandboxInfo) -> None:
    """Loading the same spec twice gives the same sequence of answers; DELETE removes the faults."""

    async def scenario(sandbox: Sandbox) -> None:
        spec = {"seed": 42, "rules": [{"path": "/subscribedSkus", "kind": "unavailable", "rate": 0.5}]}

        async def statuses() -> list[int]:
            await sandbox.control_json("POST", "/faults", spec)
            return [(await sandbox.graph.get("/subscribedSkus")).status_code for _ in range(16)]

        first, second = await statuses(), await statuses()
        await sandbox.control.delete("/faults")
        after = (await sandbox.graph.get("/subscribedSkus")).status_code
        assert first == second
        assert set(first) == {200, 503}
        assert after == 200

    _run(tenant, scenario)


def test_a_malformed_fault_spec_answers_400(tenant: SandboxInfo) -> None:
    """The control plane names what is wrong."""

    async def scenario(sandbox: Sandbox) -> None:
        response = await sandbox.control.post("/faults", json={"rules": [{"path": ".*", "kind": "explode"}]})
        assert (response.status_code, "kind" in response.json()["error"]) == (400, True)

    _run(tenant, scenario)
