"""Health: each check says what is wrong (a missing permission, an error kind), never the configuration;
the HTTP function answers 200 or 503 with that report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from structlog.testing import capture_logs

import function_app
from handlers.health import check_health
from seatkeeper.bootstrap import Services, install_services
from seatkeeper.core.errors import ConfigurationError, Forbidden, Unavailable
from seatkeeper.core.policy import AlertChannel, AlertRoute, Alerts, Policy
from seatkeeper.core.sensitive import Secret
from seatkeeper.localhost.invoker import LocalContext
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from tests.unit.graph_fakes import ALL_ROLES, FakeGraph

USERS_PROBE: dict[str, Mapping[str, Any]] = {"/users": {"value": [{"id": "u1"}]}}
SECRET = "health-client-secret-value"


class FailingProbe:
    """A probe of a dependency that is down."""

    async def check(self) -> None:
        raise Unavailable("queue: connection refused")


class RefusedProbe:
    """A store that refuses our identity: its error says which role to grant."""

    REASON = "table storage refused access (403): grant Storage Table Data Contributor"

    async def check(self) -> None:
        raise Unavailable(self.REASON)


class PassingProbe:
    """A probe of a dependency that is up."""

    async def check(self) -> None:
        return None


def _checks(body: bytes) -> dict[str, Any]:
    return dict(json.loads(body)["checks"])


def test_all_checks_pass() -> None:
    """Token, permissions, Graph and probes all fine: healthy."""
    report = asyncio.run(
        check_health(graph=FakeGraph(resources=USERS_PROBE), probes={"state": PassingProbe()})
    )
    assert report.healthy
    assert [c.name for c in report.checks] == ["settings", "token", "permissions", "graph", "state"]


def test_missing_permissions_are_named() -> None:
    """The report names each required permission the token lacks; broader roles count."""
    graph = FakeGraph(resources=USERS_PROBE, roles=frozenset({"Directory.ReadWrite.All"}))
    report = asyncio.run(check_health(graph=graph, needs_mail=True))
    assert not report.healthy
    assert _checks(report.body())["permissions"] == {"ok": False, "detail": "missing: Mail.Send"}


def test_failed_token_skips_what_needs_one() -> None:
    """Without a token there is no permission or Graph check, only the token failure."""
    report = asyncio.run(check_health(graph=FakeGraph(token_error=Forbidden("token: refused"))))
    assert [(c.name, c.ok, c.detail) for c in report.checks] == [
        ("settings", True, "ok"),
        ("token", False, "Forbidden"),
    ]


def test_unreachable_graph_and_probe_are_reported_by_kind() -> None:
    """Errors are named by kind, not by message (which could carry configuration)."""
    graph = FakeGraph(read_error=Unavailable("GET /users: 503 at https://internal.example"))
    report = asyncio.run(check_health(graph=graph, probes={"queue": FailingProbe()}))
    checks = _checks(report.body())
    assert checks["graph"] == {"ok": False, "detail": "Unavailable"}
    assert checks["queue"] == {"ok": False, "detail": "Unavailable"}
    assert b"internal.example" not in report.body()


def test_a_failed_probe_logs_its_reason_for_the_admin() -> None:
    """The body names the kind only; the log line carries the adapter's reason (what to fix)."""
    with capture_logs() as logs:
        report = asyncio.run(check_health(probes={"state": RefusedProbe()}))
    assert _checks(report.body())["state"] == {"ok": False, "detail": "Unavailable"}
    assert b"Contributor" not in report.body()
    failed = [e for e in logs if e["event"] == "health.check_failed"]
    assert [(e["check"], e["reason"]) for e in failed] == [("state", RefusedProbe.REASON)]


def test_settings_problems_are_counted_not_echoed() -> None:
    """Invalid settings make the service unhealthy; the body gives a count, the log the details."""
    report = asyncio.run(check_health(settings_problems=3))
    assert _checks(report.body()) == {"settings": {"ok": False, "detail": "3 problem(s), see the log"}}


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[FakeGraph]:
    """A process container with a fake Graph and an email route (so Mail.Send is required)."""
    graph = FakeGraph(resources=USERS_PROBE, roles=ALL_ROLES - {"Mail.Send"})
    settings = Settings(
        mode=Mode.SANDBOX,
        graph=GraphSettings(
            tenant_id="t",
            graph_url="https://127.0.0.1:1/v1.0",
            authority="https://127.0.0.1:1/t",
            credential=CredentialKind.SECRET,
            client_secret=Secret(SECRET),
        ),
        policy_file=tmp_path / "policy.yaml",
        client_state_key=Secret("health-client-state-key"),
        hr_signing_secret=None,
        data_dir=tmp_path,
        log_format="json",
        log_level="INFO",
    )
    mail = AlertRoute(name="m", channel=AlertChannel.EMAIL, sender="a@x.org", recipients=("b@x.org",))
    policy = Policy(licensing_groups=(), alerts=Alerts(routes=(mail,)))
    previous = install_services(Services(settings=settings, policy=policy, graph=graph))
    try:
        yield graph
    finally:
        install_services(previous)


def _call_health() -> func.HttpResponse:
    # The decorated function is called as the worker calls it (app.get_functions() may run once only).
    request = func.HttpRequest(method="GET", url="http://127.0.0.1:7071/api/health", body=b"")
    response: func.HttpResponse = asyncio.run(function_app.health(request, LocalContext("inv-1", "health")))
    return response


@pytest.mark.usefixtures("installed")
def test_health_function_answers_503_naming_the_missing_permission() -> None:
    """Through function_app.py with a real HttpRequest: an email route without Mail.Send is unhealthy."""
    response = _call_health()
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    body = response.get_body()
    assert _checks(body)["permissions"] == {"ok": False, "detail": "missing: Mail.Send"}
    assert SECRET.encode() not in body


def test_health_function_with_invalid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No container can be built: 503 with the settings check failed, and no problem text in the body."""
    monkeypatch.setenv("SEATKEEPER_CLIENT_ID", "not-a-guid")  # an environment variable, not a module path
    previous = install_services(None)
    try:
        response = _call_health()
    finally:
        install_services(previous)
    assert response.status_code == 503
    checks = _checks(response.get_body())
    assert checks["settings"]["ok"] is False
    assert b"SEATKEEPER_CLIENT_ID" not in response.get_body()


def test_configuration_error_lists_problems() -> None:
    """The error the health function counts carries every problem."""
    assert ConfigurationError(["a", "b"]).problems == ("a", "b")
