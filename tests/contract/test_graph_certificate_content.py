"""The Graph certificate given as content, as a Key Vault reference supplies it in Azure: PEM text or base64
PKCS#12 (a Key Vault certificate's secret), from settings through the composition root to a token from the
sandbox's Entra; a value that is no certificate stops the start naming the setting, never the value."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from seatkeeper.bootstrap import build_graph
from seatkeeper.core.errors import ConfigurationError, Forbidden
from seatkeeper.settings import APP_ROOT, CLIENT_CERTIFICATE, SANDBOX_GRAPH_RESOURCE, load_settings
from tests.fixtures.sandbox import SandboxInfo


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A fresh key and self-signed certificate in the forms a deployment may hold them."""

    pem: str  # private key then certificate, PEM
    pfx_base64: str  # PKCS#12 without a password, base64: a Key Vault certificate's secret value
    certificate_pem: str


def _certificate() -> Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seatkeeper-kv-test")])
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
    pfx = pkcs12.serialize_key_and_certificates(b"seatkeeper", key, cert, None, serialization.NoEncryption())
    return Certificate(key_pem + cert_pem, base64.b64encode(pfx).decode("ascii"), cert_pem)


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return _certificate()


def _register(info: SandboxInfo, certificate_pem: str) -> None:
    """Upload the certificate's public part to the sandbox's app registration (reset by `tenant`)."""
    with httpx.Client(verify=info.ssl_context(), trust_env=False) as client:
        exported: Any = client.get(f"{info.control_url}/tenant").raise_for_status().json()
        app = next(a for a in exported["apps"] if a["clientId"] == info.client_id)
        app["certificates"] = [*app.get("certificates", []), certificate_pem]
        client.post(f"{info.control_url}/tenant", json=exported).raise_for_status()


def _tenant_environ(info: SandboxInfo, certificate_value: str) -> dict[str, str]:
    """Tenant-mode settings as Azure would hand them over, pointed at the sandbox's Entra and Graph."""
    authority = urlsplit(info.authority)
    return {
        "SEATKEEPER_TENANT_ID": info.tenant_id,
        "SEATKEEPER_CLIENT_ID": info.client_id,
        CLIENT_CERTIFICATE: certificate_value,
        "SEATKEEPER_AUTHORITY_HOST": f"{authority.scheme}://{authority.netloc}",
        "SEATKEEPER_GRAPH_URL": info.graph_url,
        "SEATKEEPER_CLIENT_STATE_KEY": "client-state-key-for-the-test",
        "SEATKEEPER_POLICY_FILE": str(APP_ROOT / "policies" / "example.yaml"),
    }


def _roles(info: SandboxInfo, certificate_value: str) -> frozenset[str]:
    """The app roles of a token obtained with the certificate setting, through the composition root."""
    graph = load_settings(_tenant_environ(info, certificate_value)).graph
    # Trust the sandbox's CA, and ask for Graph's real resource id as the sandbox expects.
    graph = dataclasses.replace(graph, ca_file=Path(info.ca_file), token_resource=SANDBOX_GRAPH_RESOURCE)

    async def run() -> frozenset[str]:
        client, closers = build_graph(graph)
        try:
            return await client.granted_roles()
        finally:
            for close in reversed(closers):
                await close()

    return asyncio.run(run())


@pytest.mark.parametrize("form", ["pfx_base64", "pem"])
def test_certificate_content_gets_a_token(tenant: SandboxInfo, certificate: Certificate, form: str) -> None:
    """Base64 PKCS#12 (Key Vault's form) and PEM text both sign MSAL's assertion; the token carries roles."""
    _register(tenant, certificate.certificate_pem)
    value = getattr(certificate, form)
    assert "GroupMember.ReadWrite.All" in _roles(tenant, value)


def test_pfx_with_line_breaks_is_accepted(tenant: SandboxInfo, certificate: Certificate) -> None:
    """Base64 wrapped over lines (as some tools export it) reads the same."""
    _register(tenant, certificate.certificate_pem)
    wrapped = "\n".join(certificate.pfx_base64[i : i + 64] for i in range(0, len(certificate.pfx_base64), 64))
    assert "GroupMember.ReadWrite.All" in _roles(tenant, wrapped)


def test_unregistered_certificate_is_refused(tenant: SandboxInfo) -> None:
    """A certificate the app registration does not know gets no token (the sandbox checks the signature)."""
    stranger = _certificate()
    with pytest.raises(Forbidden):
        _roles(tenant, stranger.pfx_base64)


@pytest.mark.parametrize(
    "value",
    [
        "bm90IGEgY2VydGlmaWNhdGU=",
        "not base64 at all!",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ],
    ids=["base64-not-pkcs12", "garbage", "broken-pem"],
)
def test_content_that_is_no_certificate_stops_the_start(tenant: SandboxInfo, value: str) -> None:
    """The start fails with one problem that names the setting and never repeats the value."""
    with pytest.raises(ConfigurationError) as caught:
        _roles(tenant, value)
    problems = caught.value.problems
    assert len(problems) == 1
    assert problems[0].startswith(f"{CLIENT_CERTIFICATE}: not a certificate with its private key")
    assert value not in problems[0]
