"""Alert channels: a Teams Workflows webhook, mail through Graph `sendMail`, and a generic JSON webhook.

Webhook URLs carry their authorization (`sig=`) and are secrets: held as `Secret`, never logged, never in a
repr or an error message. Failures map onto the core error tree so the handler knows retry from give-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from seatkeeper.core.alert_ports import NoticeChannel
from seatkeeper.core.alert_render import (
    Mail,
    digest_card,
    digest_mail,
    digest_webhook_body,
    mail,
    teams_card,
    webhook_body,
)
from seatkeeper.core.errors import (
    Forbidden,
    NotFound,
    Rejected,
    Throttled,
    Unavailable,
)
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.incidents import Digest, Incident, Notice
from seatkeeper.core.policy import AlertChannel, AlertRoute
from seatkeeper.core.sensitive import Secret

# A webhook that does not answer within this many seconds is treated as unavailable (and retried).
DEFAULT_TIMEOUT: Final = 10.0
USER_AGENT: Final = "Seatkeeper-Alerts/1"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


async def post_json(
    client: httpx.AsyncClient,
    url: Secret,
    body: Mapping[str, Any],
    *,
    channel: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """POST a JSON body to a secret URL; 2xx returns, anything else raises a core error naming the channel
    and the status only (never the URL)."""
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sent_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    try:
        response = await client.post(url.reveal(), content=content, headers=sent_headers)
    # `from None`: httpx errors carry the request, and with it the secret URL.
    except httpx.TimeoutException:
        raise Unavailable(f"{channel}: timed out") from None
    except httpx.TransportError:
        raise Unavailable(f"{channel}: connection failed") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        raise Throttled(f"{channel}: throttled (429)", retry_after=_retry_after(response))
    if status >= 500 or status == 408:
        raise Unavailable(f"{channel}: answered {status}", retry_after=_retry_after(response))
    if status in (401, 403):
        raise Forbidden(f"{channel}: refused ({status}); check the webhook URL and the flow's owner")
    if status in (404, 410):
        raise NotFound(f"{channel}: no such webhook ({status}); the flow may have been deleted or turned off")
    raise Rejected(f"{channel}: rejected the payload ({status})", status=status)


class TeamsWorkflowChannel:
    """Posts an Adaptive Card to a Teams chat or channel through a Workflows "When a Teams webhook request
    is received" trigger (the retired Office 365 connector format is not used)."""

    def __init__(self, url: Secret, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    def __repr__(self) -> str:
        return f"TeamsWorkflowChannel(url={self._url!r})"

    async def send_notice(self, incident: Incident, notice: Notice) -> None:
        """Post the notice's card."""
        await post_json(self._client, self._url, teams_card(incident, notice), channel="teams")

    async def send_digest(self, digest: Digest) -> None:
        """Post the digest card."""
        await post_json(self._client, self._url, digest_card(digest), channel="teams")


class WebhookChannel:
    """Posts the generic JSON body; `Idempotency-Key` is stable per notice so a receiver can drop repeats."""

    def __init__(self, url: Secret, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    def __repr__(self) -> str:
        return f"WebhookChannel(url={self._url!r})"

    async def send_notice(self, incident: Incident, notice: Notice) -> None:
        """Post the notice as JSON."""
        body = webhook_body(incident, notice)
        await post_json(
            self._client, self._url, body, channel="webhook", headers={"Idempotency-Key": body["id"]}
        )

    async def send_digest(self, digest: Digest) -> None:
        """Post the digest as JSON."""
        body = digest_webhook_body(digest)
        await post_json(
            self._client, self._url, body, channel="webhook", headers={"Idempotency-Key": body["id"]}
        )


def send_mail_body(content: Mail, recipients: Sequence[str]) -> dict[str, Any]:
    """The Graph `sendMail` body (graph-facts §G): HTML content, not saved to Sent Items."""
    return {
        "message": {
            "subject": content.subject,
            "body": {"contentType": "HTML", "content": content.html},
            "toRecipients": [{"emailAddress": {"address": a}} for a in recipients],
        },
        "saveToSentItems": False,
    }


class MailChannel:
    """Sends mail from the `sender` mailbox through Graph `sendMail` (needs the Mail.Send permission)."""

    def __init__(self, graph: GraphPort, sender: str, recipients: Sequence[str]) -> None:
        self._graph = graph
        self._path = f"/users/{quote(sender, safe='@')}/sendMail"
        self._recipients = tuple(recipients)

    def __repr__(self) -> str:
        return f"MailChannel(recipients={len(self._recipients)})"

    async def _send(self, content: Mail) -> None:
        # sendMail is not idempotent: the Graph port retries it only after a 429, never after a 5xx.
        await self._graph.send("POST", self._path, send_mail_body(content, self._recipients))

    async def send_notice(self, incident: Incident, notice: Notice) -> None:
        """Mail the notice."""
        await self._send(mail(incident, notice))

    async def send_digest(self, digest: Digest) -> None:
        """Mail the digest."""
        await self._send(digest_mail(digest))


def route_secrets(
    routes: Sequence[AlertRoute], environ: Mapping[str, str], *, sandbox_teams_url: Secret | None = None
) -> dict[str, Secret]:
    """The webhook URLs the routes name, read from app settings. In sandbox mode a Teams route whose
    setting is unset posts to the sandbox's Workflows capture, so alerts work out of the box."""
    found: dict[str, Secret] = {}
    for route in routes:
        if route.url_setting is None:
            continue
        value = environ.get(route.url_setting)
        if value:
            found[route.url_setting] = Secret(value)
        elif route.channel is AlertChannel.TEAMS and sandbox_teams_url is not None:
            found[route.url_setting] = sandbox_teams_url
    return found


def build_channels(
    routes: Sequence[AlertRoute],
    *,
    secrets: Mapping[str, Secret],
    client: httpx.AsyncClient,
    graph: GraphPort | None,
) -> tuple[dict[str, NoticeChannel], tuple[str, ...]]:
    """One channel per policy route, by route name, and every configuration problem found (named by route
    and setting, never by value). `secrets` maps app-setting names to their (secret) values."""
    channels: dict[str, NoticeChannel] = {}
    problems: list[str] = []
    for route in routes:
        if route.channel is AlertChannel.EMAIL:
            if graph is None or route.sender is None or not route.recipients:
                problems.append(f"alert route {route.name!r}: email needs a sender, recipients and Graph")
                continue
            channels[route.name] = MailChannel(graph, route.sender, route.recipients)
            continue
        url = secrets.get(route.url_setting) if route.url_setting else None
        if url is None or not url.reveal().startswith("https://"):
            problems.append(
                f"alert route {route.name!r}: setting {route.url_setting!r} must hold an https URL"
            )
            continue
        if route.channel is AlertChannel.TEAMS:
            channels[route.name] = TeamsWorkflowChannel(url, client)
        else:
            channels[route.name] = WebhookChannel(url, client)
    return channels, tuple(problems)
