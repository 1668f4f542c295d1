"""Part of the composition root: the alert channels of the policy's routes, and the dependencies of the
reconciliation sweep, built once per services container (next to `bootstrap.py`).

Channels share one httpx client that trusts the sandbox's CA in sandbox mode; in sandbox mode a Teams route
whose URL setting is unset posts to the sandbox's Workflows capture. Route problems are logged by name,
never by value (webhook URLs are secrets).
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.reconcile import ReconcileDeps
from seatkeeper.adapters.alert_channels import build_channels, route_secrets
from seatkeeper.adapters.graph.client import build_http_client, ssl_context
from seatkeeper.bootstrap import Services
from seatkeeper.core.alert_ports import NoticeChannel
from seatkeeper.logs import get_logger
from seatkeeper.settings import Mode, environment

ALERT_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class AlertWiring:
    """The channel of every usable route, by route name, and the problems of the others."""

    channels: dict[str, NoticeChannel]
    problems: tuple[str, ...]


_alerts: dict[int, tuple[Services, AlertWiring]] = {}


def alert_wiring(services: Services) -> AlertWiring:
    """The alert channels of `services`, built on first use; their HTTP client closes with the container."""
    cached = _alerts.get(id(services))
    if cached is not None and cached[0] is services:
        return cached[1]
    settings = services.settings
    sandbox_url = (
        settings.sandbox.teams_webhook_url
        if settings.mode is Mode.SANDBOX and settings.sandbox is not None
        else None
    )
    secrets = route_secrets(services.policy.alerts.routes, environment(), sandbox_teams_url=sandbox_url)
    client = build_http_client(
        verify=ssl_context(settings.graph.ca_file), timeout_seconds=ALERT_TIMEOUT_SECONDS
    )
    services.closers.append(client.aclose)
    channels, problems = build_channels(
        services.policy.alerts.routes, secrets=secrets, client=client, graph=services.graph
    )
    for problem in problems:
        get_logger("seatkeeper.alerts").error("alerts.route_unusable", problem=problem)
    built = AlertWiring(channels, problems)
    _alerts.clear()  # one container per process; a replaced one is not kept alive here
    _alerts[id(services)] = (services, built)
    return built


def reconcile_deps(services: Services) -> ReconcileDeps:
    """The sweep's dependencies over the license handlers' (shared caches) and the state store."""
    license_deps = services.license
    if license_deps is None or services.state is None:
        raise RuntimeError("the license and state adapters are not built")
    return ReconcileDeps(
        graph=license_deps.graph,
        reads=license_deps.reads,
        seats=license_deps.seats,
        state=services.state,
        sender=license_deps.sender,
        clock=license_deps.clock,
        policy=license_deps.policy,
    )
