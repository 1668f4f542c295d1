"""Alert channels against the sandbox tenant over HTTPS: its Teams Workflows and sendMail captures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from structlog.testing import capture_logs

from handlers.alerts import handle_alert
from seatkeeper.adapters.alert_channels import MailChannel, TeamsWorkflowChannel
from seatkeeper.adapters.graph.client import GraphClient, build_http_client
from seatkeeper.adapters.graph.tokens import confidential_client_provider
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.alert_ports import NoticeChannel
from seatkeeper.core.alert_render import RESOLVED_ACTION
from seatkeeper.core.errors import Forbidden, NotFound, Unavailable
from seatkeeper.core.incidents import (
    AlertSignal,
    Cause,
    Decision,
    Fact,
    Incident,
    IncidentKey,
    Notice,
    Scope,
    alert_message,
    transition,
)
from seatkeeper.core.policy import AlertChannel, AlertRoute, Alerts, Severity
from seatkeeper.core.sensitive import Secret
from tests.fixtures.sandbox import SandboxInfo

T = TypeVar("T")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SENDER = "elif.berg@contoso.example"
POLICY = Alerts(routes=(AlertRoute("teams", AlertChannel.TEAMS, Severity.INFO, url_setting="X"),))
TITLE = "Copilot license could not be assigned: no seat left"
TODO = "Buy more Copilot seats or free idle ones; Seatkeeper reprocesses the user by itself."


def signal(cause: Cause, at: datetime) -> AlertSignal:
    return AlertSignal(
        key=IncidentKey(Scope.USER, "u-1/sku-1", "license.not_active"),
        cause=cause,
        severity=Severity.ERROR,
        title=TITLE,
        reason="CountViolation: every seat of Microsoft_365_Copilot is in use.",
        remediation=TODO,
        subject_label="lena.eriksen@contoso.example",
        observed_at=at,
        evidence=(Fact("Error", "CountViolation"),),
    )


def opened_then_resolved() -> list[tuple[Incident, Notice]]:
    first = transition(None, signal(Cause.PRESENT, T0), POLICY, T0)
    assert first.incident is not None
    assert first.notice is not None
    second = transition(first.incident, signal(Cause.GONE, T0.replace(hour=10)), POLICY, T0.replace(hour=10))
    assert second.incident is not None
    assert second.notice is not None
    return [(first.incident, first.notice), (second.incident, second.notice)]


def control(info: SandboxInfo, path: str) -> Any:
    with httpx.Client(verify=info.ssl_context()) as client:
        response = client.get(f"{info.control_url}{path}")
        response.raise_for_status()
        return response.json()


def with_http(info: SandboxInfo, use: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with build_http_client(verify=info.ssl_context(), timeout_seconds=10) as client:
            return await use(client)

    return asyncio.run(go())


def captured_teams(info: SandboxInfo) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = control(info, "/teams")["value"]
    return value


def captured_mail(info: SandboxInfo) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = control(info, "/mail")["value"]
    return value


def card_texts(post: dict[str, Any]) -> str:
    body = post["body"]["attachments"][0]["content"]["body"]
    return " ".join(b.get("text", "") for b in body) + " ".join(
        f["value"] for b in body if b["type"] == "FactSet" for f in b["facts"]
    )


def test_teams_workflow_accepts_and_captures_both_cards(tenant: SandboxInfo) -> None:
    """The opened and the resolved card are accepted by the Workflows endpoint and land in the channel."""

    async def post(client: httpx.AsyncClient) -> None:
        channel = TeamsWorkflowChannel(Secret(tenant.teams_webhook_url), client)
        for incident, notice in opened_then_resolved():
            await channel.send_notice(incident, notice)

    with_http(tenant, post)
    posts = captured_teams(tenant)
    assert len(posts) == 2
    assert f"Error: {TITLE}" in card_texts(posts[0])
    assert TODO in card_texts(posts[0])
    assert RESOLVED_ACTION in card_texts(posts[1])


def test_teams_wrong_signature_is_permanent(tenant: SandboxInfo) -> None:
    """A URL whose `sig` is wrong is refused (401) and reported as Forbidden, without the URL."""
    forged = tenant.teams_webhook_url.replace("sig=", "sig=forged")

    async def post(client: httpx.AsyncClient) -> None:
        await TeamsWorkflowChannel(Secret(forged), client).send_notice(*opened_then_resolved()[0])

    with pytest.raises(Forbidden) as raised:
        with_http(tenant, post)
    assert "forged" not in str(raised.value)
    assert captured_teams(tenant) == []


def test_teams_unknown_workflow_is_not_found(tenant: SandboxInfo) -> None:
    """A deleted flow (no such workflow path) is NotFound: permanent, logged, not retried."""
    gone = tenant.teams_webhook_url.replace("/workflows/", "/workflows/deleted-")

    async def post(client: httpx.AsyncClient) -> None:
        await TeamsWorkflowChannel(Secret(gone), client).send_notice(*opened_then_resolved()[0])

    with pytest.raises((NotFound, Forbidden)):
        with_http(tenant, post)


def graph_client(info: SandboxInfo, http: httpx.AsyncClient, token_http: httpx.Client) -> GraphClient:
    token = confidential_client_provider(
        client_id=info.client_id,
        authority=info.authority,
        credential=info.client_secret,
        scope="https://graph.microsoft.com/.default",
        http_client=token_http,
        instance_discovery=False,
    )
    return GraphClient(graph_url=info.graph_url, http=http, token=token)


def test_mail_goes_out_through_graph_send_mail(tenant: SandboxInfo) -> None:
    """Both notices are sent as HTML mail from the sender mailbox to the recipients, not saved."""

    async def send(client: httpx.AsyncClient) -> None:
        with httpx.Client(verify=tenant.ssl_context()) as token_http:
            channel = MailChannel(
                graph_client(tenant, client, token_http), SENDER, ["m365-admins@contoso.example"]
            )
            for incident, notice in opened_then_resolved():
                await channel.send_notice(incident, notice)

    with_http(tenant, send)
    mails = captured_mail(tenant)
    assert [m["from"] for m in mails] == [SENDER, SENDER]
    subjects = [m["message"]["subject"] for m in mails]
    assert subjects == [
        f"[Seatkeeper] Error: {TITLE} (lena.eriksen@contoso.example)",
        f"[Seatkeeper] Resolved: {TITLE} (lena.eriksen@contoso.example)",
    ]
    assert mails[0]["message"]["body"]["contentType"] == "HTML"
    assert TODO in mails[0]["message"]["body"]["content"]
    assert mails[0]["saveToSentItems"] is False


@dataclass
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


def alert_body(cause: Cause, at: datetime) -> bytes:
    return alert_message(signal(cause, at), correlation_id="corr", version=at.isoformat()).body()


def test_incident_lifecycle_through_the_handler_shows_one_card_each(
    tenant: SandboxInfo, tmp_path: Path
) -> None:
    """Through the handler, the embedded store and the sandbox: one card when it opens, none for repeats
    (even five delivered at once, redelivered as the queue would when one defers to another's claim),
    one when it resolves."""
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    clock = FixedClock(T0)

    async def scenario(client: httpx.AsyncClient) -> list[Decision]:
        channels: dict[str, NoticeChannel] = {
            "teams": TeamsWorkflowChannel(Secret(tenant.teams_webhook_url), client)
        }

        async def handle(body: bytes) -> Decision:
            # A worker that defers to a live delivery claim raises Unavailable; the queue redelivers it.
            for _ in range(50):
                try:
                    result = await handle_alert(
                        body, store=store, channels=channels, alerts=POLICY, clock=clock
                    )
                except Unavailable:
                    await asyncio.sleep(0.05)
                    continue
                return result.decision
            raise AssertionError("still deferring after 50 redeliveries")

        together = await asyncio.gather(*(handle(alert_body(Cause.PRESENT, T0)) for _ in range(5)))
        later = T0 + timedelta(minutes=30)
        clock.at = later
        repeat = await handle(alert_body(Cause.PRESENT, later))
        clock.at = later + timedelta(minutes=30)
        resolved = await handle(alert_body(Cause.GONE, clock.at))
        return [*together, repeat, resolved]

    try:
        with capture_logs() as logs:
            outcomes = with_http(tenant, scenario)
    finally:
        store.close()
    decided = [e["decision"] for e in logs if e["event"] == "alerts.handled"]
    assert decided.count("opened") == 1
    assert set(outcomes[:5]) <= {Decision.OPENED, Decision.UPDATED}
    assert outcomes[-2:] == [Decision.UPDATED, Decision.RESOLVED]
    posts = captured_teams(tenant)
    assert [card_texts(p).split(" ")[0] for p in posts] == ["Error:", "Resolved:"]
