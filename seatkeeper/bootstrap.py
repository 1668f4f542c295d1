"""The composition root: builds every adapter once per process, lazily, from settings.

Nothing is built at import (the Functions host indexes `function_app.py`): the first trigger that calls
`get_services()` builds the container; `close_services()` closes it deliberately. Tests and the local
host pass their own adapters to `build_services(...)` and `install_services(...)`.

To add an adapter: a field on `Services` (default None so tests can leave it out), one `_build_...`
function below, one line in `build_services`, and its closer in `closers`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from handlers.health import HealthReport, check_health
from handlers.heartbeat import heartbeat_probes
from handlers.license_commands import LicenseDeps
from seatkeeper.adapters.graph.client import GraphClient, build_http_client, ssl_context
from seatkeeper.adapters.graph.retrying import RetryPolicy
from seatkeeper.adapters.graph.tokens import (
    TokenProvider,
    certificate_credential,
    certificate_credential_from_content,
    confidential_client_provider,
    managed_identity_provider,
)
from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.policy import AlertChannel, Policy
from seatkeeper.core.ports import Clock, DeadLetterStore, MessageSender, Probe, StateStore
from seatkeeper.license_wiring import build_license_deps
from seatkeeper.logs import configure_logging, get_logger, register_secret
from seatkeeper.policy_file import load_policy
from seatkeeper.settings import (
    CLIENT_CERTIFICATE,
    CLIENT_CERTIFICATE_PATH,
    CredentialKind,
    GraphSettings,
    Mode,
    Settings,
    environment,
    load_settings,
)
from seatkeeper.storage_wiring import build_clock, build_storage

Closer = Callable[[], Awaitable[None]]


@dataclass
class Services:
    """Everything a trigger body hands to its handler, built once per process."""

    settings: Settings
    policy: Policy
    graph: GraphPort
    # Filled by the queue/state/clock adapters (part 2); None until they are wired in.
    clock: Clock | None = None
    sender: MessageSender | None = None
    dead_letters: DeadLetterStore | None = None
    state: StateStore | None = None
    # Reachability checks for health, by name ("queue", "state"): filled by storage_wiring.
    probes: dict[str, Probe] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)
    # The license handlers' dependencies (admission, verification, reprocess): seatkeeper/license_wiring.py.
    license: LicenseDeps | None = None

    async def aclose(self) -> None:
        """Close every adapter, last built first."""
        while self.closers:
            await self.closers.pop()()


def build_graph(graph: GraphSettings) -> tuple[GraphClient, list[Closer]]:
    """The Graph client and its token provider for these settings, and how to close them."""
    verify = ssl_context(graph.ca_file)
    # MSAL is synchronous: it gets its own small client with the same trust (the sandbox's CA).
    msal_http = httpx.Client(verify=verify, timeout=graph.timeout_seconds, trust_env=False)
    token = _token_provider(graph, msal_http)
    client = GraphClient(
        graph_url=graph.graph_url,
        http=build_http_client(verify=verify, timeout_seconds=graph.timeout_seconds),
        token=token,
        retry=RetryPolicy(budget_seconds=graph.retry_budget_seconds),
    )

    async def close_msal_http() -> None:
        await asyncio.to_thread(msal_http.close)

    return client, [close_msal_http, client.aclose]


def _token_provider(graph: GraphSettings, http: httpx.Client) -> TokenProvider:
    sandbox = graph.ca_file is not None  # the sandbox is no Microsoft cloud: no instance discovery
    if graph.credential is CredentialKind.MANAGED_IDENTITY:
        return managed_identity_provider(
            resource=graph.resource, http_client=http, client_id=graph.managed_identity_client_id
        )
    if graph.credential is CredentialKind.CERTIFICATE:
        credential: str | dict[str, str] = _certificate(graph)
    else:
        credential = graph.client_secret.reveal() if graph.client_secret else ""
    return confidential_client_provider(
        client_id=graph.client_id or "",
        authority=graph.authority,
        credential=credential,
        scope=graph.scope,
        http_client=http,
        instance_discovery=not sandbox,
    )


def _certificate(graph: GraphSettings) -> dict[str, str]:
    """MSAL's certificate credential from the certificate setting (content) or its file; a certificate that
    cannot be read stops the start, naming the setting and never its value."""
    password = graph.certificate_password.reveal() if graph.certificate_password else None
    try:
        if graph.certificate is not None:
            return certificate_credential_from_content(graph.certificate.reveal(), password)
        if graph.certificate_path is not None:
            return certificate_credential(graph.certificate_path, password)
    except (ValueError, TypeError, OSError) as error:
        name = CLIENT_CERTIFICATE if graph.certificate is not None else CLIENT_CERTIFICATE_PATH
        problem = f"{name}: not a certificate with its private key (PEM, or base64 PKCS#12)"
        raise ConfigurationError([f"{problem}: {type(error).__name__}"]) from None
    raise ConfigurationError([f"no certificate: set {CLIENT_CERTIFICATE} or {CLIENT_CERTIFICATE_PATH}"])


def build_services(
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    graph: GraphPort | None = None,
    clock: Clock | None = None,
    sender: MessageSender | None = None,
    dead_letters: DeadLetterStore | None = None,
    state: StateStore | None = None,
) -> Services:
    """Build the container; every adapter passed in is used as given (and not closed here)."""
    settings = settings if settings is not None else load_settings()
    configure_logging(settings.log_format, settings.log_level)
    _register_secrets(settings)
    # Before any adapter exists: a bad policy must not leave clients and files open on every failed start.
    policy = policy if policy is not None else load_policy(settings.policy_file)
    closers: list[Closer] = []
    if graph is None:
        graph, graph_closers = build_graph(settings.graph)
        closers.extend(graph_closers)
    if clock is None:
        clock = build_clock(settings)
    probes: dict[str, Probe] = {}
    if sender is None or dead_letters is None or state is None:
        storage = build_storage(settings, clock)
        closers.extend(storage.closers)
        probes = storage.probes
        sender = sender if sender is not None else storage.queues
        dead_letters = dead_letters if dead_letters is not None else storage.dead_letters
        state = state if state is not None else storage.state
    register_policy_secrets(policy, environment())
    services = Services(
        settings=settings,
        policy=policy,
        graph=graph,
        clock=clock,
        sender=sender,
        dead_letters=dead_letters,
        state=state,
        probes=probes,
        closers=closers,
    )
    services.license = build_license_deps(
        graph=services.graph, clock=clock, sender=sender, state=state, policy=services.policy
    )
    # `health` fails a check per timer whose heartbeat is overdue (handlers/heartbeat.py).
    services.probes.update(heartbeat_probes(state, clock))
    get_logger("seatkeeper.bootstrap").info(
        "service.started", mode=settings.mode.value, groups=len(services.policy.licensing_groups)
    )
    return services


def _register_secrets(settings: Settings) -> None:
    """Every secret value of the settings is redacted from every log line from now on."""
    for secret in (
        settings.graph.client_secret,
        settings.graph.certificate,
        settings.graph.certificate_password,
        settings.client_state_key,
        settings.hr_signing_secret,
        settings.graph_webhook_key,
        settings.service_bus_connection,
        settings.state_connection,
    ):
        register_secret(secret)
    if settings.mode is Mode.SANDBOX and settings.sandbox is not None:
        register_secret(settings.sandbox.teams_webhook_url)
        register_secret(settings.sandbox.identity_header)


def register_policy_secrets(policy: Policy, env: Mapping[str, str]) -> None:
    """Alert webhook URLs (named by the policy, held in settings) are secrets too: redacted from logs."""
    for route in policy.alerts.routes:
        if route.url_setting:
            register_secret(env.get(route.url_setting))


_services: Services | None = None
_lock = threading.Lock()


def get_services() -> Services:
    """The process's services, built on first call (raises ConfigurationError listing every problem)."""
    global _services  # noqa: PLW0603 - the one process-wide container, by design
    with _lock:
        if _services is None:
            _services = build_services()
        return _services


def install_services(services: Services | None) -> Services | None:
    """Replace the process's container (local host, end-to-end tests); returns the previous one."""
    global _services  # the one process-wide container, by design
    with _lock:
        previous, _services = _services, services
    return previous


async def close_services() -> None:
    """Close the process's container, if built; the next `get_services()` builds a new one."""
    services = install_services(None)
    if services is not None:
        await services.aclose()


async def health_report() -> HealthReport:
    """The health check of this process: invalid settings are counted (and logged), never echoed."""
    try:
        services = get_services()
    except ConfigurationError as error:
        configure_logging()
        get_logger("seatkeeper.bootstrap").error("health.settings_invalid", problems=list(error.problems))
        return await check_health(settings_problems=len(error.problems))
    needs_mail = any(r.channel is AlertChannel.EMAIL for r in services.policy.alerts.routes)
    return await check_health(graph=services.graph, needs_mail=needs_mail, probes=services.probes)
