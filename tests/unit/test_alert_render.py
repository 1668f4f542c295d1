"""Rendering: every card, mail and webhook body says what happened, to whom, why and exactly what to do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seatkeeper.core.alert_render import (
    DIGEST_LIMIT,
    RESOLVED_ACTION,
    digest_card,
    digest_mail,
    digest_webhook_body,
    mail,
    teams_card,
    webhook_body,
)
from seatkeeper.core.incidents import (
    AlertSignal,
    Cause,
    Fact,
    Incident,
    IncidentKey,
    Notice,
    Scope,
    alert_payload,
    build_digest,
    parse_alert,
    transition,
)
from seatkeeper.core.policy import AlertChannel, AlertRoute, Alerts, Severity

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = Alerts(routes=(AlertRoute("teams", AlertChannel.TEAMS, Severity.INFO, url_setting="X"),))
TITLE = "Copilot license could not be assigned: no seat left"
WHO = "adele@contoso.com"
WHY = "Group-based licensing reports CountViolation: all 200 Copilot seats are in use."
TODO = "Buy more Copilot seats or remove idle users from 'Copilot users', then reprocess the user."


def signal(cause: Cause, at: datetime, *, label: str = WHO, subject: str = "u-1/sku-1") -> AlertSignal:
    return AlertSignal(
        key=IncidentKey(Scope.USER, subject, "license.not_active"),
        cause=cause,
        severity=Severity.ERROR,
        title=TITLE,
        reason=WHY,
        remediation=TODO,
        subject_label=label,
        observed_at=at,
        evidence=(Fact("Error", "CountViolation"), Fact("Group", "Copilot users")),
    )


def opened(label: str = WHO) -> tuple[Incident, Notice]:
    step = transition(None, signal(Cause.PRESENT, T0, label=label), POLICY, T0)
    assert step.incident is not None
    assert step.notice is not None
    return step.incident, step.notice


def resolved() -> tuple[Incident, Notice]:
    incident, _ = opened()
    later = T0 + timedelta(hours=26, minutes=5)
    step = transition(incident, signal(Cause.GONE, later), POLICY, later)
    assert step.incident is not None
    assert step.notice is not None
    return step.incident, step.notice


def card_text(payload: dict[str, Any]) -> str:
    """Every string a Teams user sees on the card."""
    body = payload["attachments"][0]["content"]["body"]
    parts: list[str] = []
    for element in body:
        if element["type"] == "TextBlock":
            parts.append(element["text"])
        else:
            parts += [f"{f['title']}: {f['value']}" for f in element["facts"]]
    return "\n".join(parts)


def test_teams_payload_is_a_workflows_message_with_one_adaptive_card() -> None:
    """The envelope is `type: message` with exactly one Adaptive Card attachment (graph-facts §G)."""
    payload = teams_card(*opened())
    attachment = payload["attachments"][0]
    assert (payload["type"], len(payload["attachments"])) == ("message", 1)
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert (attachment["content"]["type"], attachment["content"]["version"]) == ("AdaptiveCard", "1.4")
    assert "@type" not in json.dumps(payload)  # the retired MessageCard format


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda i, n: card_text(teams_card(i, n)), id="teams"),
        pytest.param(lambda i, n: mail(i, n).text, id="mail-text"),
        pytest.param(lambda i, n: mail(i, n).html, id="mail-html"),
        pytest.param(lambda i, n: json.dumps(webhook_body(i, n)), id="webhook"),
    ],
)
def test_opened_says_what_whom_why_and_what_to_do(render: Any) -> None:
    """Each rendering of an opened incident carries the title, the subject, the reason and the fix."""
    text = render(*opened())
    assert all(part in text for part in (TITLE, WHO, "CountViolation", TODO))


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda i, n: card_text(teams_card(i, n)), id="teams"),
        pytest.param(lambda i, n: mail(i, n).text, id="mail"),
        pytest.param(
            lambda i, n: " ".join(webhook_body(i, n)[k] for k in ("headline", "why", "action")), id="webhook"
        ),
    ],
)
def test_resolved_says_resolved_and_nothing_to_do(render: Any) -> None:
    """A resolved note names the incident, says it is resolved, how long it was open, and that no action
    is needed."""
    text = render(*resolved())
    assert f"Resolved: {TITLE}" in text
    assert RESOLVED_ACTION in text
    assert f"The cause is gone. It was: {WHY}" in text
    assert TODO not in text


def test_resolved_card_shows_duration() -> None:
    """The resolved card says when it resolved and for how long it was open."""
    text = card_text(teams_card(*resolved()))
    assert "Resolved: 2026-12-02 11:05 UTC" in text
    assert "Open for: 1 d 2 h 5 min" in text


def test_mail_subject_names_severity_title_and_subject() -> None:
    """The subject line alone tells what and whom."""
    assert mail(*opened()).subject == f"[Seatkeeper] Error: {TITLE} ({WHO})"
    assert mail(*resolved()).subject == f"[Seatkeeper] Resolved: {TITLE} ({WHO})"


def test_mail_html_escapes_directory_values() -> None:
    """A display name with markup is shown as text, never as HTML."""
    evil = "<script>alert(1)</script>@contoso.com"
    html = mail(*opened(label=evil)).html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_webhook_id_is_stable_per_notice() -> None:
    """Rendering the same notice twice gives the same id; the resolved note gets another."""
    assert webhook_body(*opened())["id"] == webhook_body(*opened())["id"]
    assert webhook_body(*opened())["id"] != webhook_body(*resolved())["id"]
    assert webhook_body(*resolved())["type"] == "seatkeeper.incident.resolved"


def many_open(count: int) -> list[Incident]:
    found: list[Incident] = []
    for n in range(count):
        step = transition(None, signal(Cause.PRESENT, T0, subject=f"u-{n}/sku"), POLICY, T0)
        assert step.incident is not None
        found.append(step.incident)
    return found


def test_digest_card_is_capped_and_counts_the_rest() -> None:
    """A digest card lists at most DIGEST_LIMIT incidents and says how many more there are."""
    digest = build_digest(many_open(DIGEST_LIMIT + 3), T0)
    text = card_text(digest_card(digest))
    assert f"{DIGEST_LIMIT + 3} open incidents" in text
    assert "… and 3 more" in text
    assert text.count(TODO) == DIGEST_LIMIT


def test_digest_mail_and_webhook_list_the_open_incidents() -> None:
    """The digest mail carries each fix; the webhook carries every open incident."""
    digest = build_digest(many_open(2), T0)
    assert digest_mail(digest).text.count(TODO) == 2
    assert len(digest_webhook_body(digest)["open"]) == 2


def test_the_largest_possible_card_fits_a_teams_message() -> None:
    """Even an alert at every size limit renders a card under Teams' 28 KB message limit."""
    payload = {
        **alert_payload(signal(Cause.PRESENT, T0)),
        **dict.fromkeys(("title", "reason", "remediation", "subject_label"), "é" * 10000),
        "evidence": [["l" * 1000, "v" * 1000] for _ in range(100)],
    }
    big = parse_alert(payload)
    step = transition(None, big, POLICY, T0)
    assert step.incident is not None
    assert step.notice is not None
    card = teams_card(step.incident, step.notice)
    sent = json.dumps(card, separators=(",", ":"), ensure_ascii=False)  # as the Teams channel sends it
    assert len(sent.encode("utf-8")) < 28 * 1024
