"""Identity conformance: MSAL gets tokens by secret, certificate and managed identity; Graph checks them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, AssertionSafeClient, bearer, confidential_app, exported

READONLY_APP = "0a5e3c1b-7d9f-4e2a-b6c8-1f3d5a7b9c04"


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _certificate() -> tuple[str, str, str]:
    """A self-signed certificate: (private key PEM, certificate PEM, SHA-1 thumbprint hex)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seatkeeper-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return key_pem, cert_pem, cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - x5t is SHA-1


def _secret_of(control: httpx.Client, client_id: str) -> str:
    return str(next(a["clientSecret"] for a in exported(control)["apps"] if a["clientId"] == client_id))


def test_msal_gets_a_token_by_secret_carrying_the_apps_roles(
    tenant: SandboxInfo, msal_app: msal.ConfidentialClientApplication
) -> None:
    """A real MSAL confidential client gets a Graph token whose roles are the app's permissions."""
    result = msal_app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    claims = _claims(result["access_token"])
    assert (claims["appid"], claims["tid"], claims["aud"]) == (
        tenant.client_id,
        tenant.tenant_id,
        "https://graph.microsoft.com",
    )
    assert {"User.Read.All", "GroupMember.ReadWrite.All", "LicenseAssignment.ReadWrite.All"} <= set(
        claims["roles"]
    )


def test_a_wrong_secret_is_refused_with_aadsts7000215(tenant: SandboxInfo, http: httpx.Client) -> None:
    """A bad client secret answers invalid_client, as Entra does."""
    result = confidential_app(tenant, http, tenant.client_id, "not-the-secret").acquire_token_for_client(
        scopes=[GRAPH_SCOPE]
    )
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]


def test_an_unknown_client_is_refused(tenant: SandboxInfo, http: httpx.Client) -> None:
    """An app id the tenant does not know answers unauthorized_client (AADSTS700016)."""
    result = confidential_app(
        tenant, http, "11111111-2222-3333-4444-555555555555", "x"
    ).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert "AADSTS700016" in result["error_description"]


def test_a_scope_without_default_is_refused(tenant: SandboxInfo, http: httpx.Client) -> None:
    """Client credentials need `{resource}/.default`."""
    result = confidential_app(tenant, http, tenant.client_id, tenant.client_secret).acquire_token_for_client(
        scopes=["https://graph.microsoft.com/User.Read.All"]
    )
    assert result["error"] == "invalid_scope"


@pytest.mark.parametrize("style", ["sha1-thumbprint", "public-certificate"])
def test_msal_gets_a_token_by_certificate(
    tenant: SandboxInfo, control: httpx.Client, http: httpx.Client, style: str
) -> None:
    """A certificate registered on the app signs a client assertion MSAL builds (x5t or x5t#S256)."""
    key_pem, cert_pem, thumbprint = _certificate()
    doc = exported(control)
    next(a for a in doc["apps"] if a["clientId"] == tenant.client_id)["certificates"] = [cert_pem]
    control.post("tenant", json=doc).raise_for_status()
    credential = (
        {"private_key": key_pem, "thumbprint": thumbprint}
        if style == "sha1-thumbprint"
        else {"private_key": key_pem, "public_certificate": cert_pem}
    )
    with AssertionSafeClient(verify=tenant.ssl_context()) as msal_http:
        result = confidential_app(tenant, msal_http, tenant.client_id, credential).acquire_token_for_client(
            scopes=[GRAPH_SCOPE]
        )
    assert "access_token" in result, result.get("error_description")
    response = http.get(f"{tenant.graph_url}/users?$top=1", headers=bearer(result["access_token"]))
    assert response.status_code == 200


def test_an_unregistered_certificate_is_refused(tenant: SandboxInfo) -> None:
    """A client assertion signed by a certificate the app does not have answers invalid_client."""
    key_pem, _, thumbprint = _certificate()
    with AssertionSafeClient(verify=tenant.ssl_context()) as msal_http:
        result = confidential_app(
            tenant, msal_http, tenant.client_id, {"private_key": key_pem, "thumbprint": thumbprint}
        ).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert "AADSTS700027" in result["error_description"]


def test_a_bytes_assertion_stringified_by_plain_httpx_is_refused_as_malformed(
    tenant: SandboxInfo, control: httpx.Client, http: httpx.Client
) -> None:
    """MSAL hands httpx the assertion as bytes and plain httpx sends "b'...'": refused, as Entra would."""
    key_pem, cert_pem, thumbprint = _certificate()
    doc = exported(control)
    next(a for a in doc["apps"] if a["clientId"] == tenant.client_id)["certificates"] = [cert_pem]
    control.post("tenant", json=doc).raise_for_status()
    result = confidential_app(
        tenant, http, tenant.client_id, {"private_key": key_pem, "thumbprint": thumbprint}
    ).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert "AADSTS50027" in result["error_description"]


def test_managed_identity_app_service_protocol(
    tenant: SandboxInfo, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """msal.ManagedIdentityClient on the App Service protocol gets a Graph token that Graph accepts."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", tenant.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", tenant.identity_header)
    client = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=http)
    result = client.acquire_token_for_client(resource="https://graph.microsoft.com")
    response = http.get(f"{tenant.graph_url}/subscribedSkus", headers=bearer(result["access_token"]))
    assert response.status_code == 200


def test_managed_identity_needs_the_identity_header(tenant: SandboxInfo) -> None:
    """Without the right X-IDENTITY-HEADER the identity endpoint refuses."""
    with httpx.Client(verify=tenant.ssl_context()) as http:
        response = http.get(
            tenant.identity_endpoint,
            params={"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"},
            headers={"X-IDENTITY-HEADER": "wrong"},
        )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Access token is empty."),
        ({"Authorization": "Bearer not.a.token"}, "Access token validation failure."),
        ({"Authorization": "Basic abc"}, "Access token is empty."),
    ],
    ids=["missing", "garbage", "not-bearer"],
)
def test_graph_answers_401_without_a_valid_token(
    tenant: SandboxInfo, headers: dict[str, str], message: str
) -> None:
    """Every Graph call checks the bearer token: 401 InvalidAuthenticationToken otherwise."""
    with httpx.Client(verify=tenant.ssl_context()) as http:
        response = http.get(f"{tenant.graph_url}/users", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.json()["error"]["message"] == message


def test_an_expired_token_answers_401(tenant: SandboxInfo, control: httpx.Client) -> None:
    """Tokens expire on wall time; an expired one is refused."""
    doc = exported(control)
    next(a for a in doc["apps"] if a["clientId"] == tenant.client_id)["tokenLifetimeSeconds"] = 0
    control.post("tenant", json=doc).raise_for_status()
    with httpx.Client(verify=tenant.ssl_context()) as http:
        token = http.post(
            tenant.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": tenant.client_id,
                "client_secret": tenant.client_secret,
                "scope": GRAPH_SCOPE,
            },
        ).json()["access_token"]
        response = http.get(f"{tenant.graph_url}/users", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "case",
    [
        ("GET", "users?$top=1", None, 200),
        ("GET", "subscribedSkus", None, 403),
        ("GET", "groups", None, 403),
        ("PATCH", "users/{user}", {"department": "X"}, 403),
        ("POST", "users/{user}/reprocessLicenseAssignment", None, 403),
        ("POST", "users/{user}/sendMail", {"message": {}}, 403),
    ],
)
def test_an_app_without_an_accepted_permission_gets_403(
    tenant: SandboxInfo,
    control: httpx.Client,
    graph: httpx.Client,
    http: httpx.Client,
    case: tuple[str, str, dict[str, Any] | None, int],
) -> None:
    """A token without a permission Microsoft accepts for the operation gets Authorization_RequestDenied."""
    method, path, body, status = case
    user = graph.get("users?$top=1&$select=id").json()["value"][0]["id"]
    app = confidential_app(tenant, http, READONLY_APP, _secret_of(control, READONLY_APP))
    token = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
    response = http.request(
        method, f"{tenant.graph_url}/{path.format(user=user)}", headers=bearer(token), json=body
    )
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "Authorization_RequestDenied"


def test_errors_have_graphs_shape_and_echo_the_client_request_id(graph: httpx.Client) -> None:
    """Error bodies carry code, message and innerError with date, request-id and client-request-id."""
    response = graph.get(
        "users/00000000-0000-0000-0000-000000000000", headers={"client-request-id": "abc-123"}
    )
    error = response.json()["error"]
    assert response.status_code == 404
    assert error["code"] == "Request_ResourceNotFound"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["client-request-id"] == "abc-123"
    assert response.headers["request-id"] == error["innerError"]["request-id"]
