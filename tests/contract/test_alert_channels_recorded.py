"""Alert channel adapters over a recording httpx transport and a recording Graph port (no network)."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from structlog.testing import capture_logs

from handlers.alerts import handle_alert
from seatkeeper.adapters.alert_channels import (
    MailChannel,
    TeamsWorkflowChannel,
    WebhookChannel,
    build_channels,
    route_secrets,
)
from seatkeeper.core.alert_ports import NoticeChannel
from seatkeeper.core.errors import (
    Forbidden,
    NotFound,
    Rejected,
    SeatkeeperError,
    Throttled,
    Unavailable,
)
from seatkeeper.core.graph_port import GraphPage, GraphRequest, GraphResponse, MemberAddResult, OperationCount
from seatkeeper.core.incidents import (
    AlertSignal,
    Cause,
    Fact,
    Incident,
    IncidentKey,
    Notice,
    Scope,
    alert_message,
    build_digest,
    transition,
)
from seatkeeper.core.policy import AlertChannel, AlertRoute, Alerts, Severity
from seatkeeper.core.sensitive import Secret
from tests.unit.test_alerts_handler import FakeStore, FixedClock

T = TypeVar("T")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SIG = "s3cr3t-signature-value"
URL = f"https://127.0.0.1:9/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig={SIG}"
POLICY = Alerts(routes=(AlertRoute("teams", AlertChannel.TEAMS, Severity.INFO, url_setting="TEAMS_URL"),))


def opened() -> tuple[Incident, Notice]:
    signal = AlertSignal(
        key=IncidentKey(Scope.USER, "u-1/sku-1", "license.not_active"),
        cause=Cause.PRESENT,
        severity=Severity.ERROR,
        title="Copilot license could not be assigned: no seat left",
        reason="CountViolation",
        remediation="Buy seats, then reprocess.",
        subject_label="adele@contoso.com",
        observed_at=T0,
        evidence=(Fact("Error", "CountViolation"),),
    )
    step = transition(None, signal, POLICY, T0)
    assert step.incident is not None
    assert step.notice is not None
    return step.incident, step.notice


@dataclass
class Recorder:
    """A transport that records every request and answers with the queued responses (else 202)."""

    requests: list[httpx.Request] = field(default_factory=list)
    answers: list[httpx.Response | Exception] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return httpx.Response(202)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def run(make: Callable[[httpx.AsyncClient], Awaitable[T]], recorder: Recorder) -> T:
    async def go() -> T:
        async with recorder.client() as client:
            return await make(client)

    return asyncio.run(go())


def test_teams_posts_the_card_to_the_secret_url() -> None:
    """The card arrives as a `type: message` JSON body at the configured URL."""
    recorder = Recorder()
    run(lambda c: TeamsWorkflowChannel(Secret(URL), c).send_notice(*opened()), recorder)
    assert [str(r.url) for r in recorder.requests] == [URL]
    assert recorder.bodies()[0]["type"] == "message"
    assert recorder.requests[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(httpx.Response(429, headers={"Retry-After": "7"}), Throttled, id="429"),
        pytest.param(httpx.Response(503), Unavailable, id="503"),
        pytest.param(httpx.Response(401), Forbidden, id="401"),
        pytest.param(httpx.Response(404), NotFound, id="404"),
        pytest.param(httpx.Response(400), Rejected, id="400"),
        pytest.param(httpx.ConnectError("refused"), Unavailable, id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), Unavailable, id="timeout"),
    ],
)
def test_failures_map_to_the_error_tree(answer: httpx.Response | Exception, error: type[Exception]) -> None:
    """Retryable answers become TransientErrors, refusals PermanentErrors; none mentions the URL."""
    recorder = Recorder(answers=[answer])
    with pytest.raises(error) as raised:
        run(lambda c: TeamsWorkflowChannel(Secret(URL), c).send_notice(*opened()), recorder)
    shown = "".join(traceback.format_exception(raised.value))
    assert SIG not in shown
    assert "127.0.0.1:9" not in shown


def test_throttle_carries_retry_after() -> None:
    """Retry-After reaches the error, so the queue waits as long as the webhook asked."""
    recorder = Recorder(answers=[httpx.Response(429, headers={"Retry-After": "7"})])
    with pytest.raises(Throttled) as raised:
        run(lambda c: WebhookChannel(Secret(URL), c).send_notice(*opened()), recorder)
    assert raised.value.retry_after == 7.0


def test_repr_never_shows_the_url() -> None:
    """Reprs of channels are safe to log."""
    recorder = Recorder()

    async def reprs(client: httpx.AsyncClient) -> str:
        return repr(TeamsWorkflowChannel(Secret(URL), client)) + repr(WebhookChannel(Secret(URL), client))

    assert SIG not in run(reprs, recorder)


def test_webhook_sends_idempotency_key_per_notice() -> None:
    """The generic webhook carries the incident JSON and a stable Idempotency-Key."""
    recorder = Recorder()

    async def twice(client: httpx.AsyncClient) -> None:
        channel = WebhookChannel(Secret(URL), client)
        await channel.send_notice(*opened())
        await channel.send_notice(*opened())

    run(twice, recorder)
    keys = {r.headers["idempotency-key"] for r in recorder.requests}
    assert len(keys) == 1
    assert recorder.bodies()[0]["type"] == "seatkeeper.incident.opened"


def test_digest_goes_through_the_same_channel() -> None:
    """A digest is posted as a card too."""
    recorder = Recorder()
    digest = build_digest([opened()[0]], T0)
    run(lambda c: TeamsWorkflowChannel(Secret(URL), c).send_digest(digest), recorder)
    assert recorder.bodies()[0]["attachments"][0]["content"]["type"] == "AdaptiveCard"


@dataclass
class RecordingGraph:
    """A Graph port that keeps what was sent with `send` (the mailbox's outbox); nothing else is used."""

    sent: list[tuple[str, str, Mapping[str, Any] | None]] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        raise NotImplementedError

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        nothing: tuple[GraphPage, ...] = ()
        for page in nothing:
            yield page
        raise NotImplementedError

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((method, path, body))
        return None

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        raise NotImplementedError

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        raise NotImplementedError

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        raise NotImplementedError

    async def granted_roles(self) -> frozenset[str]:
        return frozenset()

    def counters(self) -> Mapping[str, OperationCount]:
        return {}


def test_mail_goes_through_graph_send_mail() -> None:
    """The mail is a sendMail body for the sender mailbox, HTML, to every recipient, not saved."""
    graph = RecordingGraph()
    asyncio.run(
        MailChannel(graph, "seatkeeper@contoso.com", ["it@contoso.com", "ops@contoso.com"]).send_notice(
            *opened()
        )
    )
    [(method, path, body)] = graph.sent
    assert (method, path) == ("POST", "/users/seatkeeper@contoso.com/sendMail")
    assert body is not None
    message = body["message"]
    assert message["subject"].startswith("[Seatkeeper] Error: Copilot license could not be assigned")
    assert message["body"]["contentType"] == "HTML"
    assert [r["emailAddress"]["address"] for r in message["toRecipients"]] == [
        "it@contoso.com",
        "ops@contoso.com",
    ]
    assert body["saveToSentItems"] is False


def test_mail_failure_propagates_as_is() -> None:
    """A throttled sendMail stays a Throttled error for the handler to retry."""
    graph = RecordingGraph(failures=[Throttled("429", retry_after=3)])
    with pytest.raises(Throttled):
        asyncio.run(MailChannel(graph, "seatkeeper@contoso.com", ["it@contoso.com"]).send_notice(*opened()))


def test_build_channels_names_every_problem_without_values() -> None:
    """Missing or non-https URLs and incomplete mail routes are named by route and setting, never by value."""
    routes = (
        AlertRoute("teams", AlertChannel.TEAMS, url_setting="TEAMS_URL"),
        AlertRoute("siem", AlertChannel.WEBHOOK, url_setting="SIEM_URL"),
        AlertRoute("plain", AlertChannel.WEBHOOK, url_setting="PLAIN_URL"),
        AlertRoute("mail", AlertChannel.EMAIL, sender="sk@contoso.com", recipients=("it@contoso.com",)),
        AlertRoute("nomail", AlertChannel.EMAIL),
    )
    secrets = {"TEAMS_URL": Secret(URL), "PLAIN_URL": Secret("http://example.invalid/hook?sig=plain-secret")}

    async def build(client: httpx.AsyncClient) -> tuple[dict[str, Any], tuple[str, ...]]:
        channels, problems = build_channels(routes, secrets=secrets, client=client, graph=RecordingGraph())
        return dict(channels), problems

    channels, problems = run(build, Recorder())
    assert sorted(channels) == ["mail", "teams"]
    assert [p.split(":")[0] for p in problems] == [
        "alert route 'siem'",
        "alert route 'plain'",
        "alert route 'nomail'",
    ]
    assert "plain-secret" not in " ".join(problems)


def test_errors_are_seatkeeper_errors() -> None:
    """Every failure a channel raises belongs to the one error tree (the handler catches nothing else)."""
    for answer in (httpx.Response(500), httpx.Response(418), httpx.RemoteProtocolError("reset")):
        with pytest.raises(SeatkeeperError):
            run(lambda c: WebhookChannel(Secret(URL), c).send_notice(*opened()), Recorder(answers=[answer]))


def test_route_secrets_fall_back_to_the_sandbox_teams_capture() -> None:
    """Set settings win; an unset Teams setting in sandbox mode uses the sandbox's Workflows URL."""
    routes = (
        AlertRoute("teams", AlertChannel.TEAMS, url_setting="TEAMS_URL"),
        AlertRoute("siem", AlertChannel.WEBHOOK, url_setting="SIEM_URL"),
    )
    found = route_secrets(routes, {"SIEM_URL": URL}, sandbox_teams_url=Secret("https://127.0.0.1:1/w?sig=x"))
    assert {k: v.reveal() for k, v in found.items()} == {
        "TEAMS_URL": "https://127.0.0.1:1/w?sig=x",
        "SIEM_URL": URL,
    }
    assert route_secrets(routes, {}) == {}


def test_handler_logs_never_carry_the_webhook_url() -> None:
    """A failing and then succeeding Teams delivery through the handler logs route names, never the URL."""

    incident, _ = opened()
    signal = AlertSignal(
        key=incident.key,
        cause=Cause.PRESENT,
        severity=Severity.ERROR,
        title=incident.title,
        reason=incident.reason,
        remediation=incident.remediation,
        subject_label=incident.subject_label,
        observed_at=T0,
    )
    body = alert_message(signal, correlation_id="c", version="1").body()
    recorder = Recorder(answers=[httpx.Response(503), httpx.Response(202)])
    store = FakeStore()

    async def twice(client: httpx.AsyncClient) -> None:
        channels: dict[str, NoticeChannel] = {"teams": TeamsWorkflowChannel(Secret(URL), client)}
        for _ in range(2):
            try:
                await handle_alert(body, store=store, channels=channels, alerts=POLICY, clock=FixedClock(T0))
            except Unavailable:
                continue

    with capture_logs() as logs:
        run(twice, recorder)
    assert [e["event"] for e in logs if e["event"].startswith("alerts.notice")] == [
        "alerts.notice_retry",
        "alerts.notice_sent",
    ]
    assert SIG not in repr(logs)
    assert SIG not in repr(store.rows)
