"""Application tokens for Graph from MSAL: client secret, certificate or managed identity.

One MSAL object per process (its in-memory cache is the token cache), built on first use in a worker
thread, because MSAL is synchronous and may fetch the authority's metadata when built.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from seatkeeper.core.errors import Forbidden, Unavailable

# A callable that returns a valid access token for Graph (cached and renewed behind it).
TokenProvider = Callable[[], Awaitable[str]]

# Entra answers that mean the credential or its consent is wrong: retrying will not help.
_PERMANENT = frozenset({"invalid_client", "unauthorized_client", "invalid_scope", "invalid_resource"})


class _MsalApp(Protocol):
    def acquire_token_for_client(self, *args: Any, **kwargs: Any) -> Any: ...


class MsalHttpClient:
    """An httpx.Client in the shape MSAL expects of a `requests.Session`.

    MSAL passes the signed client assertion as bytes in the form; httpx would send their `repr`, so form
    values are decoded first.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> httpx.Response:
        """A GET, as `requests.Session.get`."""
        return self._client.get(url, params=params, headers=headers, **kwargs)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> httpx.Response:
        """A POST, as `requests.Session.post`, with bytes form values decoded."""
        if isinstance(data, Mapping):
            data = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        """Close the underlying client."""
        self._client.close()


class MsalTokenProvider:
    """Awaitable access tokens from an MSAL application built lazily by `build_app`."""

    def __init__(self, build_app: Callable[[], _MsalApp], acquire: Callable[[_MsalApp], Any]) -> None:
        self._build_app = build_app
        self._acquire = acquire
        self._app: _MsalApp | None = None
        self._lock = threading.Lock()

    def _token(self) -> str:
        with self._lock:
            if self._app is None:
                self._app = self._build_app()
            app = self._app
        try:
            result = self._acquire(app)
        except (httpx.HTTPError, OSError, ValueError) as error:
            raise Unavailable(f"token: {type(error).__name__}") from None
        if isinstance(result, Mapping) and "access_token" in result:
            return str(result["access_token"])
        code = str(result.get("error", "unknown")) if isinstance(result, Mapping) else "unknown"
        if code in _PERMANENT:
            raise Forbidden(f"token: Entra refused the credential ({code})")
        raise Unavailable(f"token: no token ({code})")

    async def __call__(self) -> str:
        """A valid access token: from MSAL's cache, else from Entra (in a worker thread)."""
        return await asyncio.to_thread(self._token)


def confidential_client_provider(
    *,
    client_id: str,
    authority: str,
    credential: str | Mapping[str, str],
    scope: str,
    http_client: httpx.Client,
    instance_discovery: bool = True,
) -> MsalTokenProvider:
    """Tokens for an app registration with a client secret (a str) or a certificate (MSAL's dict)."""

    def build() -> _MsalApp:
        app: _MsalApp = msal.ConfidentialClientApplication(
            client_id,
            authority=authority,
            client_credential=dict(credential) if isinstance(credential, Mapping) else credential,
            http_client=MsalHttpClient(http_client),
            instance_discovery=instance_discovery,
        )
        return app

    return MsalTokenProvider(build, lambda app: app.acquire_token_for_client(scopes=[scope]))


def managed_identity_provider(
    *, resource: str, http_client: httpx.Client, client_id: str | None = None
) -> MsalTokenProvider:
    """Tokens for the Function App's managed identity (system-assigned, or user-assigned by client id)."""

    def build() -> _MsalApp:
        identity: Any = (
            msal.UserAssignedManagedIdentity(client_id=client_id)
            if client_id
            else msal.SystemAssignedManagedIdentity()
        )
        app: _MsalApp = msal.ManagedIdentityClient(identity, http_client=MsalHttpClient(http_client))
        return app

    return MsalTokenProvider(build, lambda app: app.acquire_token_for_client(resource=resource))


def certificate_credential(path: Path, passphrase: str | None = None) -> dict[str, str]:
    """MSAL's certificate credential from one PEM file holding the private key and the certificate."""
    return certificate_credential_from_content(path.read_text(encoding="ascii"), passphrase)


def certificate_credential_from_content(content: str, passphrase: str | None = None) -> dict[str, str]:
    """MSAL's certificate credential from a certificate with its private key, given as content: PEM text, or
    base64 PKCS#12 (the value of a Key Vault certificate's secret, which a Key Vault reference yields).

    Raises ValueError when the content is neither, or holds no private key or no certificate.
    """
    password = passphrase.encode() if passphrase else None
    key: Any
    if "-----BEGIN" in content:
        pem = content.encode("ascii")
        certificate = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=password)
    else:
        try:
            pfx = base64.b64decode("".join(content.split()), validate=True)
        except binascii.Error:
            raise ValueError("certificate: neither PEM nor base64 PKCS#12") from None
        key, pfx_certificate, _ = pkcs12.load_key_and_certificates(pfx, password)
        if key is None or pfx_certificate is None:
            raise ValueError("certificate: the PKCS#12 lacks the private key or the certificate")
        certificate = pfx_certificate
    private_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return {
        "private_key": private_key,
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - x5t is SHA-1 by definition
        "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }


def token_roles(token: str) -> frozenset[str]:
    """The `roles` claim (application permissions) of an access token; signature is Entra's business."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return frozenset()
    roles = claims.get("roles", []) if isinstance(claims, dict) else []
    return frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset()
