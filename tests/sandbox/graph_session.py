"""Helpers shared by the sandbox conformance tests (MSAL apps, tenant lookups)."""

from __future__ import annotations

from typing import Any

import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information

from tests.fixtures.sandbox import SandboxInfo

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"


class AssertionSafeClient(httpx.Client):
    """httpx turns bytes form values into "b'...'"; MSAL passes the certificate assertion as bytes.

    Without this, MSAL + httpx sends a malformed client assertion (Entra, and the sandbox, refuse it).
    """

    def post(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        data = kwargs.get("data")
        if isinstance(data, dict):
            kwargs["data"] = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return super().post(url, **kwargs)


def confidential_app(
    info: SandboxInfo, http: httpx.Client, client_id: str, credential: str | dict[str, str]
) -> msal.ConfidentialClientApplication:
    """An unmodified MSAL confidential client pointed at the sandbox's authority."""
    return msal.ConfidentialClientApplication(
        client_id,
        authority=info.authority,
        client_credential=credential,
        instance_discovery=False,
        http_client=http,
    )


def exported(control: httpx.Client) -> dict[str, Any]:
    """The tenant as the control plane exports it."""
    response = control.get("tenant")
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


def group_id(graph: httpx.Client, name: str) -> str:
    """A group's id by display name."""
    response = graph.get("groups", params={"$filter": f"displayName eq '{name}'", "$select": "id"})
    response.raise_for_status()
    return str(response.json()["value"][0]["id"])


def license_states(graph: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    """A user's licenseAssignmentStates."""
    response = graph.get(f"users/{user_id}", params={"$select": "licenseAssignmentStates"})
    response.raise_for_status()
    states: list[dict[str, Any]] = response.json()["licenseAssignmentStates"]
    return states


def consumed(graph: httpx.Client, sku_id: str) -> int:
    """consumedUnits of one SKU."""
    response = graph.get("subscribedSkus")
    response.raise_for_status()
    return int(next(s["consumedUnits"] for s in response.json()["value"] if s["skuId"] == sku_id))


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}
