"""Tokens from real MSAL against the sandbox's Entra: client secret, certificate and managed identity, and a
refused credential as a permanent error."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from seatkeeper.adapters.graph.tokens import (
    certificate_credential,
    confidential_client_provider,
    managed_identity_provider,
    token_roles,
)
from seatkeeper.core.errors import Forbidden
from seatkeeper.core.graph_port import missing_roles
from tests.fixtures.sandbox import SandboxInfo

SCOPE = "https://graph.microsoft.com/.default"


@pytest.fixture
def msal_http(tenant: SandboxInfo) -> Iterator[httpx.Client]:
    with httpx.Client(verify=tenant.ssl_context(), trust_env=False) as client:
        yield client


def _control(info: SandboxInfo, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(verify=info.ssl_context(), trust_env=False) as client:
        response = client.request(method, f"{info.control_url}{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


def _self_signed(path: Path) -> str:
    """Write a key and its self-signed certificate into one PEM file; return the certificate's PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seatkeeper-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    path.write_text(key_pem + cert_pem, encoding="utf-8")
    return cert_pem


def test_client_secret(tenant: SandboxInfo, msal_http: httpx.Client) -> None:
    """The sandbox's app registration gets a token with every permission the code needs."""
    provider = confidential_client_provider(
        client_id=tenant.client_id,
        authority=tenant.authority,
        credential=tenant.client_secret,
        scope=SCOPE,
        http_client=msal_http,
        instance_discovery=False,
    )
    assert missing_roles(token_roles(asyncio.run(provider())), needs_mail=True) == ()


def test_certificate(tenant: SandboxInfo, msal_http: httpx.Client, tmp_path: Path) -> None:
    """A certificate registered on the app signs MSAL's client assertion; the token follows."""
    pem_file = tmp_path / "app.pem"
    cert_pem = _self_signed(pem_file)
    exported = _control(tenant, "GET", "/tenant")
    app = next(a for a in exported["apps"] if a["clientId"] == tenant.client_id)
    app["certificates"] = [*app.get("certificates", []), cert_pem]
    _control(tenant, "POST", "/tenant", exported)  # the `tenant` fixture resets it for the next test
    provider = confidential_client_provider(
        client_id=tenant.client_id,
        authority=tenant.authority,
        credential=certificate_credential(pem_file),
        scope=SCOPE,
        http_client=msal_http,
        instance_discovery=False,
    )
    assert "GroupMember.ReadWrite.All" in token_roles(asyncio.run(provider()))


def test_managed_identity(
    tenant: SandboxInfo, msal_http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MSAL's managed-identity client finds the App Service endpoint in the environment, as in Azure."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", tenant.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", tenant.identity_header)
    provider = managed_identity_provider(resource="https://graph.microsoft.com", http_client=msal_http)
    assert missing_roles(token_roles(asyncio.run(provider()))) == ()


def test_refused_secret_is_permanent(tenant: SandboxInfo, msal_http: httpx.Client) -> None:
    """A wrong secret is Forbidden (an admin must act), not a transient failure to retry."""
    provider = confidential_client_provider(
        client_id=tenant.client_id,
        authority=tenant.authority,
        credential="not-the-secret",
        scope=SCOPE,
        http_client=msal_http,
        instance_discovery=False,
    )
    with pytest.raises(Forbidden, match="invalid_client"):
        asyncio.run(provider())
