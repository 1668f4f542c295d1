"""Fixtures for the sandbox conformance tests: a real MSAL app and real httpx clients over TLS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information
import pytest

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app


@pytest.fixture(scope="session")
def msal_app(sandbox: SandboxInfo) -> Iterator[msal.ConfidentialClientApplication]:
    """The default app's MSAL application (its token cache lives for the session)."""
    with httpx.Client(verify=sandbox.ssl_context()) as http:
        yield confidential_app(sandbox, http, sandbox.client_id, sandbox.client_secret)


@pytest.fixture
def http(tenant: SandboxInfo) -> Iterator[httpx.Client]:
    """A plain httpx client trusting the sandbox CA (for MSAL apps made in a test, and raw calls)."""
    with httpx.Client(verify=tenant.ssl_context()) as client:
        yield client


@pytest.fixture
def graph(tenant: SandboxInfo, msal_app: msal.ConfidentialClientApplication) -> Iterator[httpx.Client]:
    """An httpx client on the Graph URL, authenticated as the default app."""
    result = msal_app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    token = result["access_token"]
    with httpx.Client(
        base_url=tenant.graph_url + "/",
        verify=tenant.ssl_context(),
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


@pytest.fixture
def control(tenant: SandboxInfo) -> Iterator[httpx.Client]:
    """An httpx client on the control plane."""
    with httpx.Client(base_url=tenant.control_url + "/", verify=tenant.ssl_context()) as client:
        yield client
