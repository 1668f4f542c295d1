"""Helpers for part-2 conformance tests over HTTPS: a token, a Graph client and the control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fixtures.sandbox import SandboxInfo

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class Sandbox:
    """An authorised Graph client and a control-plane client for one sandbox."""

    info: SandboxInfo
    graph: httpx.AsyncClient
    control: httpx.AsyncClient

    async def control_json(self, method: str, path: str, body: Any = None) -> Any:
        """Call the control plane and return its JSON answer (raises on an error status)."""
        response = await self.control.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    async def group_named(self, display_name: str) -> tuple[str, list[str]]:
        """A group of the tenant by display name, with its member ids."""
        tenant = await self.control_json("GET", "/tenant")
        for group in tenant["groups"]:
            if group["displayName"] == display_name:
                return group["id"], list(group.get("members") or [])
        raise AssertionError(f"the tenant has no group named {display_name!r}")

    async def user_ids(self) -> list[str]:
        """Every user id of the tenant."""
        tenant = await self.control_json("GET", "/tenant")
        return [user["id"] for user in tenant["users"]]


async def access_token(info: SandboxInfo, client: httpx.AsyncClient) -> str:
    """A client-credentials token for the default app."""
    response = await client.post(
        info.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": info.client_id,
            "client_secret": info.client_secret,
            "scope": GRAPH_SCOPE,
        },
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@asynccontextmanager
async def connected(info: SandboxInfo, client_timeout: float = 10.0) -> AsyncIterator[Sandbox]:
    """Graph and control-plane clients trusting only the sandbox's CA."""
    context = info.ssl_context()
    async with (
        httpx.AsyncClient(verify=context, base_url=info.control_url, timeout=client_timeout) as control,
        httpx.AsyncClient(verify=context, base_url=info.graph_url, timeout=client_timeout) as graph,
    ):
        graph.headers["Authorization"] = f"Bearer {await access_token(info, control)}"
        yield Sandbox(info, graph, control)
