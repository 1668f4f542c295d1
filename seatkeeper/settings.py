"""Settings from the environment (Azure app settings, or `local.settings.json` locally), checked at start.

No tenant configured means sandbox mode: the sandbox's ready file supplies endpoints, credentials and CA.
A partly configured tenant fails with one ConfigurationError that lists every problem at once.
Every name read here is listed in SETTINGS and documented in docs/settings.md.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.sensitive import Secret

APP_ROOT: Final = Path(__file__).resolve().parents[1]
# The annotated policy an admin copies to write their own (a missing policy file points at it).
EXAMPLE_POLICY: Final = "policies/example.yaml"
# Where local runs keep the embedded queue and store, the host's keys and the sandbox's ready file.
DEFAULT_DATA_DIR: Final = ".seatkeeper"

TENANT_ID: Final = "SEATKEEPER_TENANT_ID"
CLIENT_ID: Final = "SEATKEEPER_CLIENT_ID"
CLIENT_SECRET: Final = "SEATKEEPER_CLIENT_SECRET"  # noqa: S105 - the setting's name, not a secret
CLIENT_CERTIFICATE_PATH: Final = "SEATKEEPER_CLIENT_CERTIFICATE_PATH"
CLIENT_CERTIFICATE: Final = "SEATKEEPER_CLIENT_CERTIFICATE"
CLIENT_CERTIFICATE_PASSWORD: Final = "SEATKEEPER_CLIENT_CERTIFICATE_PASSWORD"  # noqa: S105 - a name
MANAGED_IDENTITY: Final = "SEATKEEPER_MANAGED_IDENTITY"
MANAGED_IDENTITY_CLIENT_ID: Final = "SEATKEEPER_MANAGED_IDENTITY_CLIENT_ID"
GRAPH_URL: Final = "SEATKEEPER_GRAPH_URL"
AUTHORITY_HOST: Final = "SEATKEEPER_AUTHORITY_HOST"
GRAPH_TIMEOUT_SECONDS: Final = "SEATKEEPER_GRAPH_TIMEOUT_SECONDS"
GRAPH_RETRY_BUDGET_SECONDS: Final = "SEATKEEPER_GRAPH_RETRY_BUDGET_SECONDS"
POLICY_FILE: Final = "SEATKEEPER_POLICY_FILE"
CLIENT_STATE_KEY: Final = "SEATKEEPER_CLIENT_STATE_KEY"
HR_SIGNING_SECRET: Final = "SEATKEEPER_HR_SIGNING_SECRET"  # noqa: S105 - the setting's name
SANDBOX_READY_FILE: Final = "SEATKEEPER_SANDBOX_READY_FILE"
GRAPH_WEBHOOK_KEY: Final = "SEATKEEPER_GRAPH_WEBHOOK_KEY"
PUBLIC_BASE_URL: Final = "SEATKEEPER_PUBLIC_BASE_URL"
WEBSITE_HOSTNAME: Final = "WEBSITE_HOSTNAME"
DATA_DIR: Final = "SEATKEEPER_DATA_DIR"
LOG_FORMAT: Final = "SEATKEEPER_LOG_FORMAT"
LOG_LEVEL: Final = "SEATKEEPER_LOG_LEVEL"
TEAMS_WEBHOOK_URL: Final = "SEATKEEPER_TEAMS_WEBHOOK_URL"
SERVICE_BUS_NAMESPACE: Final = "ServiceBusConnection__fullyQualifiedNamespace"
SERVICE_BUS_CONNECTION: Final = "ServiceBusConnection"
STATE_TABLE_URI: Final = "StateStorage__tableServiceUri"
STATE_CONNECTION: Final = "StateStorage"


@dataclass(frozen=True)
class SettingInfo:
    """What a setting means, its default, and whether its value is a secret (Key Vault, never logged)."""

    meaning: str
    default: str = ""
    secret: bool = False


# Every setting Seatkeeper reads. docs/settings.md documents each; a test keeps the two in step.
SETTINGS: Final[Mapping[str, SettingInfo]] = {
    TENANT_ID: SettingInfo(
        "Entra tenant id (GUID or verified domain). With no tenant setting at all: sandbox mode."
    ),
    CLIENT_ID: SettingInfo(
        "Application (client) id of Seatkeeper's app registration (secret or certificate)."
    ),
    CLIENT_SECRET: SettingInfo(
        "Client secret of the app registration (prefer certificate or managed identity).", secret=True
    ),
    CLIENT_CERTIFICATE_PATH: SettingInfo(
        "PEM file holding the app registration's private key and certificate."
    ),
    CLIENT_CERTIFICATE: SettingInfo(
        "The app registration's certificate with its private key, as content: PEM, or base64 PKCS#12 (what a "
        "Key Vault reference to a Key Vault certificate yields). In Azure, instead of the path.",
        secret=True,
    ),
    CLIENT_CERTIFICATE_PASSWORD: SettingInfo(
        "Passphrase of the certificate's private key (or PKCS#12), if any.", secret=True
    ),
    MANAGED_IDENTITY: SettingInfo(
        "`system`: get Graph tokens with the Function App's system-assigned identity."
    ),
    MANAGED_IDENTITY_CLIENT_ID: SettingInfo(
        "Client id of a user-assigned managed identity to get Graph tokens with."
    ),
    GRAPH_URL: SettingInfo(
        "Microsoft Graph base URL with version (differs in sovereign clouds).",
        "https://graph.microsoft.com/v1.0",
    ),
    AUTHORITY_HOST: SettingInfo(
        "Entra sign-in host (differs in sovereign clouds).", "https://login.microsoftonline.com"
    ),
    GRAPH_TIMEOUT_SECONDS: SettingInfo("Timeout of one Graph request, in seconds.", "30"),
    GRAPH_RETRY_BUDGET_SECONDS: SettingInfo(
        "Time one Graph operation may spend retrying; keep it inside the message lock.", "60"
    ),
    POLICY_FILE: SettingInfo(
        "Policy file (YAML); relative paths start at the app root.",
        "policies/policy.yaml (sandbox mode: policies/sandbox.yaml)",
    ),
    CLIENT_STATE_KEY: SettingInfo(
        "Key that change-notification clientState values derive from. Required with a tenant.",
        "random per process in sandbox mode",
        secret=True,
    ),
    HR_SIGNING_SECRET: SettingInfo(
        "Shared secret HR webhooks are signed with; without it HR intake refuses every call.", secret=True
    ),
    GRAPH_WEBHOOK_KEY: SettingInfo(
        "Named function key Graph's notification URL carries (`?code=`); the local host sets it.", secret=True
    ),
    PUBLIC_BASE_URL: SettingInfo(
        "Public base URL of the Function App, for Graph's notificationUrl (`https://<app>.azurewebsites.net`).",
        "https://$WEBSITE_HOSTNAME (http on loopback)",
    ),
    WEBSITE_HOSTNAME: SettingInfo("Host name of the Function App (set by Azure and by the local host)."),
    SANDBOX_READY_FILE: SettingInfo(
        "Ready file written by the sandbox the local host starts (sandbox mode only).",
        ".seatkeeper/sandbox.json",
    ),
    DATA_DIR: SettingInfo("Directory of the embedded queue and state store (local runs).", DEFAULT_DATA_DIR),
    LOG_FORMAT: SettingInfo(
        "`json`, `console`, or `auto` (JSON in Azure or when not on a terminal).", "auto"
    ),
    LOG_LEVEL: SettingInfo("Lowest level logged: DEBUG, INFO, WARNING or ERROR.", "INFO"),
    TEAMS_WEBHOOK_URL: SettingInfo(
        "Teams Workflows webhook URL (its `sig=` is a credential): the app setting the example policy's "
        "Teams route names in `url_setting`. Read by the alert channels, not here.",
        "sandbox mode: the sandbox's Workflows capture",
        secret=True,
    ),
    SERVICE_BUS_NAMESPACE: SettingInfo(
        "Service Bus namespace for an identity-based connection (`<name>.servicebus.windows.net`)."
    ),
    SERVICE_BUS_CONNECTION: SettingInfo(
        "Service Bus connection string, when the connection is not identity-based.", secret=True
    ),
    STATE_TABLE_URI: SettingInfo(
        "Table service URI of the state storage account, for an identity-based connection."
    ),
    STATE_CONNECTION: SettingInfo(
        "State storage connection string, when not identity-based (Azurite locally).", secret=True
    ),
}

_TENANT_NAMES: Final = (
    TENANT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    CLIENT_CERTIFICATE_PATH,
    CLIENT_CERTIFICATE,
    MANAGED_IDENTITY,
    MANAGED_IDENTITY_CLIENT_ID,
)
# A reference App Service could not resolve stays in the setting as its own text (wrong secret name, no
# access, vault unreachable): such a value must never be used as a key or credential.
_UNRESOLVED_REFERENCE: Final = re.compile(r"^\s*@Microsoft\.(KeyVault|AppConfiguration)\(", re.IGNORECASE)
# The sandbox issues tokens for Graph's real resource id while it serves Graph on loopback.
SANDBOX_GRAPH_RESOURCE: Final = "https://graph.microsoft.com"
_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DOMAIN: Final = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$")
_NAMESPACE: Final = re.compile(r"^[a-zA-Z0-9.-]+$")


class Mode(StrEnum):
    """Sandbox: the simulated tenant on loopback. Tenant: a real Microsoft 365 tenant."""

    SANDBOX = "sandbox"
    TENANT = "tenant"


class CredentialKind(StrEnum):
    """How Seatkeeper proves who it is to Entra."""

    SECRET = "secret"  # noqa: S105 - a kind of credential, not a secret
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed_identity"


@dataclass(frozen=True)
class GraphSettings:
    """Where Graph and Entra are, and the credential to get application tokens with."""

    tenant_id: str
    graph_url: str
    authority: str
    credential: CredentialKind
    client_id: str | None = None
    client_secret: Secret | None = None
    certificate_path: Path | None = None
    # The certificate as content (PEM or base64 PKCS#12), the form a Key Vault reference supplies.
    certificate: Secret | None = None
    certificate_password: Secret | None = None
    managed_identity_client_id: str | None = None
    ca_file: Path | None = None
    timeout_seconds: float = 30.0
    retry_budget_seconds: float = 60.0
    # Tokens name Graph by its resource id; only the sandbox serves Graph at another address than that.
    token_resource: str | None = None

    @property
    def resource(self) -> str:
        """Graph's resource id for tokens: the origin of the Graph URL (`https://graph.microsoft.com`)."""
        if self.token_resource:
            return self.token_resource
        parts = urlsplit(self.graph_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def scope(self) -> str:
        """The client-credentials scope: every application permission granted to the app."""
        return f"{self.resource}/.default"


@dataclass(frozen=True)
class SandboxSettings:
    """What the sandbox's ready file says beyond Graph itself (control plane, captured channels)."""

    ready_file: Path
    control_url: str
    teams_webhook_url: Secret
    identity_endpoint: str
    identity_header: Secret
    pid: int


@dataclass(frozen=True)
class Settings:
    """Everything Seatkeeper reads from its environment, checked once at start."""

    mode: Mode
    graph: GraphSettings
    policy_file: Path
    client_state_key: Secret
    hr_signing_secret: Secret | None
    data_dir: Path
    log_format: str
    log_level: str
    service_bus_namespace: str | None = None
    service_bus_connection: Secret | None = None
    state_table_uri: str | None = None
    state_connection: Secret | None = None
    sandbox: SandboxSettings | None = None
    graph_webhook_key: Secret | None = None
    public_base_url: str | None = None


class _Reader:
    """Reads settings and collects every problem, so one error can name them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> Secret | None:
        value = self.environ.get(name, "")
        return Secret(value) if value.strip() else None

    def https_url(self, name: str) -> str:
        value = (self.text(name) or SETTINGS[name].default).rstrip("/")
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")  # emulators (Azurite) speak http
        if not parts.netloc or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
            self.problems.append(f"{name} must be an https URL")
        return value

    def number(self, name: str) -> float:
        raw = self.text(name) or SETTINGS[name].default
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value <= 0:
            self.problems.append(f"{name} must be a positive number of seconds")
            return float(SETTINGS[name].default)
        return value

    def guid(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and not _GUID.match(value):
            self.problems.append(f"{name} must be a GUID")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        value = value.upper() if default.isupper() else value.lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}")
            return default
        return value


def load_settings(
    environ: Mapping[str, str] | None = None, *, local_settings_file: Path = APP_ROOT / "local.settings.json"
) -> Settings:
    """Read and check every setting; raise one ConfigurationError listing every problem.

    Without an explicit `environ`, the process environment wins over `local.settings.json` in the app root
    (read as Core Tools reads it), so a local run and `func start` see the same settings.
    """
    env = environment(local_settings_file) if environ is None else environ
    unresolved = unresolved_references(env)
    # Treated as unset from here on, so no second problem ("required") names the same setting.
    env = {name: value for name, value in env.items() if name not in unresolved}
    reader = _Reader(env)
    reader.problems.extend(
        f"{name} is an unresolved Key Vault reference: check the secret exists and the app's identity may "
        f"read it (Key Vault Secrets User), then restart"
        for name in unresolved
    )
    sandbox: SandboxSettings | None = None
    if any(reader.text(name) for name in _TENANT_NAMES):
        mode = Mode.TENANT
        graph = _tenant_graph(reader)
    else:
        mode = Mode.SANDBOX
        graph, sandbox = _sandbox_graph(reader)
    client_state_key = reader.secret(CLIENT_STATE_KEY)
    if client_state_key is None:
        if mode is Mode.TENANT and CLIENT_STATE_KEY not in unresolved:
            reader.problems.append(f"{CLIENT_STATE_KEY} is required with a tenant (keep it in Key Vault)")
        client_state_key = Secret(secrets.token_urlsafe(32))
    configured_policy = reader.text(POLICY_FILE)
    policy_file = _path(
        configured_policy or ("policies/sandbox.yaml" if mode is Mode.SANDBOX else "policies/policy.yaml")
    )
    if not policy_file.is_file():
        reader.problems.append(_no_policy_file(policy_file, configured=configured_policy is not None))
    namespace = reader.text(SERVICE_BUS_NAMESPACE)
    if namespace is not None and not _NAMESPACE.match(namespace):
        reader.problems.append(
            f"{SERVICE_BUS_NAMESPACE} must be a host name like <name>.servicebus.windows.net"
        )
    table_uri = reader.text(STATE_TABLE_URI)
    if table_uri is not None:
        table_uri = reader.https_url(STATE_TABLE_URI)
    settings = Settings(
        mode=mode,
        graph=graph,
        policy_file=policy_file,
        client_state_key=client_state_key,
        hr_signing_secret=reader.secret(HR_SIGNING_SECRET),
        data_dir=data_dir(env),
        log_format=reader.choice(LOG_FORMAT, ("auto", "json", "console"), "auto"),
        log_level=reader.choice(LOG_LEVEL, ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        service_bus_namespace=namespace,
        service_bus_connection=reader.secret(SERVICE_BUS_CONNECTION),
        state_table_uri=table_uri,
        state_connection=reader.secret(STATE_CONNECTION),
        sandbox=sandbox,
        graph_webhook_key=reader.secret(GRAPH_WEBHOOK_KEY),
        public_base_url=_public_base_url(reader),
    )
    if reader.problems:
        raise ConfigurationError(reader.problems)
    return settings


def unresolved_references(environ: Mapping[str, str]) -> list[str]:
    """Names of Seatkeeper's settings whose value is still an `@Microsoft.KeyVault(...)` reference (or an App
    Configuration one): App Service leaves the reference text in place when it cannot resolve it."""
    return sorted(name for name in SETTINGS if _UNRESOLVED_REFERENCE.match(environ.get(name, "")))


def _no_policy_file(path: Path, *, configured: bool) -> str:
    """What a first-time admin reads when the policy file is missing: the setting, the example, the check."""
    shown = path.relative_to(APP_ROOT) if path.is_relative_to(APP_ROOT) else path
    where = f"names {shown}, which" if configured else f"is unset and its default {shown}"
    return (
        f"{POLICY_FILE} {where} does not exist: copy {EXAMPLE_POLICY} to {shown}, fill in your licensing "
        f"groups, check it with `seatkeeper policy check {shown}`, and deploy it with the app"
    )


def _public_base_url(reader: _Reader) -> str | None:
    """Where Graph reaches the app: the setting, else https://WEBSITE_HOSTNAME (http on loopback)."""
    value = reader.text(PUBLIC_BASE_URL)
    if value is None:
        host = reader.text(WEBSITE_HOSTNAME)
        if host is None:
            return None
        loopback = urlsplit(f"//{host}").hostname in ("127.0.0.1", "localhost", "::1")
        value = f"{'http' if loopback else 'https'}://{host}"
    parts = urlsplit(value)
    if not parts.netloc or not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost"))
    ):
        reader.problems.append(f"{PUBLIC_BASE_URL} must be an https URL (http only on loopback)")
    return value.rstrip("/")


def _tenant_graph(reader: _Reader) -> GraphSettings:
    """A real tenant: a tenant id and exactly one complete credential."""
    tenant_id = reader.text(TENANT_ID)
    if tenant_id is None:
        reader.problems.append(f"{TENANT_ID} is required once any tenant setting is set")
    elif not (_GUID.match(tenant_id) or _DOMAIN.match(tenant_id)):
        reader.problems.append(f"{TENANT_ID} must be a GUID or a verified domain name")
    client_id = reader.guid(CLIENT_ID)
    secret = reader.secret(CLIENT_SECRET)
    cert_text = reader.text(CLIENT_CERTIFICATE_PATH)
    cert_content = reader.secret(CLIENT_CERTIFICATE)
    mi_kind = reader.text(MANAGED_IDENTITY)
    mi_client_id = reader.guid(MANAGED_IDENTITY_CLIENT_ID)
    if mi_kind is not None and mi_kind.lower() != "system":
        reader.problems.append(
            f"{MANAGED_IDENTITY} may only be `system` "
            f"(set {MANAGED_IDENTITY_CLIENT_ID} for a user-assigned identity)"
        )
    kinds = [
        kind
        for kind, present in (
            (CredentialKind.SECRET, secret is not None),
            (CredentialKind.CERTIFICATE, cert_text is not None or cert_content is not None),
            (CredentialKind.MANAGED_IDENTITY, mi_kind is not None or mi_client_id is not None),
        )
        if present
    ]
    credential = kinds[0] if kinds else CredentialKind.SECRET
    if not kinds:
        reader.problems.append(
            f"no credential: set {CLIENT_SECRET}, {CLIENT_CERTIFICATE} (or {CLIENT_CERTIFICATE_PATH}), "
            f"{MANAGED_IDENTITY} or {MANAGED_IDENTITY_CLIENT_ID}"
        )
    elif len(kinds) > 1:
        reader.problems.append(f"more than one credential is set ({', '.join(kinds)}): keep exactly one")
    if credential in (CredentialKind.SECRET, CredentialKind.CERTIFICATE) and client_id is None:
        reader.problems.append(f"{CLIENT_ID} is required with a client secret or certificate")
    if cert_text is not None and cert_content is not None:
        reader.problems.append(f"set {CLIENT_CERTIFICATE} or {CLIENT_CERTIFICATE_PATH}, not both")
    cert_path: Path | None = None
    if cert_text is not None:
        cert_path = _path(cert_text)
        if not cert_path.is_file():
            reader.problems.append(f"{CLIENT_CERTIFICATE_PATH}: no certificate file at {cert_path}")
    authority_host = reader.https_url(AUTHORITY_HOST)
    return GraphSettings(
        tenant_id=tenant_id or "",
        graph_url=reader.https_url(GRAPH_URL),
        authority=f"{authority_host}/{tenant_id or ''}",
        credential=credential,
        client_id=client_id,
        client_secret=secret,
        certificate_path=cert_path,
        certificate=cert_content,
        certificate_password=reader.secret(CLIENT_CERTIFICATE_PASSWORD),
        managed_identity_client_id=mi_client_id,
        timeout_seconds=reader.number(GRAPH_TIMEOUT_SECONDS),
        retry_budget_seconds=reader.number(GRAPH_RETRY_BUDGET_SECONDS),
    )


_READY_FIELDS: Final = (
    "graph_url",
    "authority",
    "control_url",
    "ca_file",
    "tenant_id",
    "client_id",
    "client_secret",
    "teams_webhook_url",
    "identity_endpoint",
    "identity_header",
    "pid",
)


def _sandbox_graph(reader: _Reader) -> tuple[GraphSettings, SandboxSettings | None]:
    """Sandbox mode: everything about Graph comes from the ready file the local host's sandbox wrote."""
    ready_file = _path(reader.text(SANDBOX_READY_FILE) or ".seatkeeper/sandbox.json")
    ready = read_ready_file(ready_file, reader.problems)
    graph = GraphSettings(
        tenant_id=str(ready.get("tenant_id", "")),
        graph_url=str(ready.get("graph_url", "")).rstrip("/"),
        authority=str(ready.get("authority", "")).rstrip("/"),
        credential=CredentialKind.SECRET,
        client_id=str(ready.get("client_id", "")),
        client_secret=Secret(str(ready.get("client_secret", ""))),
        ca_file=Path(str(ready["ca_file"])) if "ca_file" in ready else None,
        token_resource=SANDBOX_GRAPH_RESOURCE,
        timeout_seconds=reader.number(GRAPH_TIMEOUT_SECONDS),
        retry_budget_seconds=reader.number(GRAPH_RETRY_BUDGET_SECONDS),
    )
    if not ready:
        return graph, None
    sandbox = SandboxSettings(
        ready_file=ready_file,
        control_url=str(ready["control_url"]).rstrip("/"),
        teams_webhook_url=Secret(str(ready["teams_webhook_url"])),
        identity_endpoint=str(ready["identity_endpoint"]),
        identity_header=Secret(str(ready["identity_header"])),
        pid=int(ready["pid"]),
    )
    return graph, sandbox


def read_ready_file(path: Path, problems: list[str]) -> dict[str, Any]:
    """The sandbox's ready file as a dict, or {} with the reason appended to `problems`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(
            f"sandbox mode (no {TENANT_ID}): no sandbox ready file at {path}; start the service with "
            f"`make run`, or set {SANDBOX_READY_FILE}, or configure a tenant"
        )
        return {}
    except (OSError, ValueError) as error:
        problems.append(f"{SANDBOX_READY_FILE}: {path} is not readable JSON ({type(error).__name__})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{SANDBOX_READY_FILE}: {path} is not a JSON object")
        return {}
    missing = [name for name in _READY_FIELDS if name not in data]
    if missing:
        problems.append(f"{SANDBOX_READY_FILE}: {path} lacks {', '.join(missing)}")
        return {}
    for name in ("graph_url", "authority", "control_url"):
        host = urlsplit(str(data[name])).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            problems.append(f"{SANDBOX_READY_FILE}: {name} must be on loopback")
    return data


def data_dir(environ: Mapping[str, str]) -> Path:
    """`SEATKEEPER_DATA_DIR` (a relative path starts at the app root), else `.seatkeeper` in the app root."""
    return _path(environ.get(DATA_DIR, "").strip() or DEFAULT_DATA_DIR)


def environment(local_settings_file: Path = APP_ROOT / "local.settings.json") -> dict[str, str]:
    """The process environment over `local.settings.json`'s Values: where every setting is read from."""
    return {**local_settings_values(local_settings_file), **os.environ}


def local_settings_values(path: Path) -> dict[str, str]:
    """The `Values` of a `local.settings.json` (as Core Tools reads them); {} when there is no file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    values = document.get("Values", {}) if isinstance(document, dict) else {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def _path(text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else APP_ROOT / path
