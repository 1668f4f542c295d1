"""Identity: Entra's client-credentials token endpoint, OIDC discovery, App Service managed identity.

Tokens are RS256 JWTs signed by a key made at start; they carry the app's application permissions as
`roles` and expire on wall time (never business time: MSAL caches by wall time). Verified tokens are cached
so the Graph hot path costs a dict lookup.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.model import GRAPH_RESOURCE, App, Tenant
from sandbox.router import GraphRequest

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = {f"{GRAPH_RESOURCE}/.default", f"{GRAPH_RESOURCE}//.default", f"{GRAPH_APP_ID}/.default"}
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for."""

    app_id: str
    roles: frozenset[str]
    expires: float


class TokenError(Exception):
    """An OAuth error answer from the token endpoint (AADSTS-style)."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"{error}: AADSTS{code}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        """Entra's error body."""
        trace = str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace}",
            "error_codes": [self.code],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
        }


class TokenService:
    """Issues and verifies access tokens for one sandbox server."""

    def __init__(self, base_url: str, tenant_id: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant_id = tenant_id
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = self._key.public_key()
        self.key_id = uuid.uuid4().hex
        self._verified: dict[str, Principal] = {}

    # Discovery --------------------------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        """What `/{tenant}/v2.0/.well-known/openid-configuration` answers."""
        root = f"{self.base_url}/{tenant}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "sandbox.invalid",
        }

    def jwks(self) -> dict[str, Any]:
        """The signing key as a JWK set."""
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self._public, as_dict=True)
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    # Issuing ----------------------------------------------------------------------------------------

    def issue(self, app: App) -> tuple[str, int]:
        """A Graph access token for `app` and its lifetime in seconds."""
        now = int(time.time())
        lifetime = max(0, app.token_lifetime_seconds)
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app.client_id,
            "azp": app.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": app.client_id,
            "sub": app.client_id,
            "roles": sorted(app.roles),
            "tid": self.tenant_id,
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})
        return token, lifetime

    def client_credentials(
        self, tenant: Tenant, tenant_in_path: str, form: dict[str, str], token_url: str
    ) -> dict[str, Any]:
        """The token endpoint: client credentials by secret or by certificate assertion."""
        if tenant_in_path.lower() not in (tenant.id.lower(), tenant.default_domain.lower()):
            raise TokenError(400, "invalid_request", 90002, f"Tenant '{tenant_in_path}' not found.")
        if form.get("grant_type") != "client_credentials":
            raise TokenError(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        app = tenant.apps.get(client_id)
        if app is None or (app.managed_identity and not app.client_secret and not app.certificates):
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant.id}'.",
            )
        scope = form.get("scope", "")
        if scope.strip() not in GRAPH_SCOPES:
            raise TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        if "client_assertion" in form:
            self._check_assertion(app, form, token_url)
        elif "client_secret" in form:
            import hmac

            if not app.client_secret or not hmac.compare_digest(form["client_secret"], app.client_secret):
                raise TokenError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID.",
                )
        else:
            raise TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        token, lifetime = self.issue(app)
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def _check_assertion(self, app: App, form: dict[str, str], token_url: str) -> None:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise TokenError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise TokenError(
                400, "invalid_client", 50027, "Invalid JWT token. The token is malformed."
            ) from exc
        thumb = str(header.get("x5t#S256") or header.get("x5t") or "").rstrip("=")
        pem = app.certificate_thumbprints.get(thumb)
        if pem is None:
            raise TokenError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                "application. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{thumb}']",
            )
        public_key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        try:
            claims = jwt.decode(
                assertion,
                public_key,  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=[token_url, f"{self.base_url}/{self.tenant_id}/v2.0"],
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from exc
        except jwt.PyJWTError as exc:
            raise TokenError(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from exc
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise TokenError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )

    def managed_identity(self, tenant: Tenant, resource: str, client_id: str | None) -> dict[str, Any]:
        """The App Service identity endpoint's answer (`expires_on` as epoch seconds, a string)."""
        app = tenant.managed_identity_app()
        if app is None or (client_id and client_id != app.client_id):
            raise TokenError(400, "invalid_request", 0, "No managed identity matches the request.")
        if resource.rstrip("/") not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            raise TokenError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant.",
            )
        token, lifetime = self.issue(app)
        return {
            "access_token": token,
            "expires_on": str(int(time.time()) + lifetime),
            "resource": GRAPH_RESOURCE,
            "token_type": "Bearer",
            "client_id": app.client_id,
        }

    # Verifying --------------------------------------------------------------------------------------

    def identify(self, request: GraphRequest) -> None:
        """Fill the caller's app id and roles from the bearer token, or say why the token fails."""
        header = request.headers.get("authorization", "")
        if not header:
            request.auth_error = "Access token is empty."
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            request.auth_error = "Access token is empty."
            return
        principal = self._verified.get(token)
        if principal is None:
            try:
                claims = jwt.decode(
                    token,
                    self._public,
                    algorithms=["RS256"],
                    audience=[GRAPH_RESOURCE, GRAPH_APP_ID],
                    options={"verify_exp": False},
                )
            except jwt.InvalidAudienceError:
                request.auth_error = "Access token validation failure. Invalid audience."
                return
            except jwt.PyJWTError:
                request.auth_error = "Access token validation failure."
                return
            principal = Principal(
                str(claims["appid"]), frozenset(claims.get("roles", [])), float(claims["exp"])
            )
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = principal
        if principal.expires <= time.time():
            request.auth_error = "Lifetime validation failed, the token is expired."
            return
        request.app_id = principal.app_id
        request.roles = principal.roles
