"""Renders incident notices and digests for each channel: a Teams Workflows Adaptive Card, a mail, a JSON
webhook body. Every one says what happened, to whom, why, and exactly what to do. Pure: no I/O.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from seatkeeper.core.incidents import Digest, Fact, Incident, Notice, NoticeKind
from seatkeeper.core.policy import Severity

PRODUCT: Final = "Seatkeeper"
# A Teams card or mail lists at most this many incidents of a digest; the rest are counted.
DIGEST_LIMIT: Final = 25
_ADAPTIVE_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
_CARD_COLOR: Final = {
    Severity.INFO: "Accent",
    Severity.WARNING: "Warning",
    Severity.ERROR: "Attention",
    Severity.CRITICAL: "Attention",
}
RESOLVED_ACTION: Final = "Nothing: the cause is gone. This note closes the incident."


@dataclass(frozen=True)
class Mail:
    """One mail: subject, plain-text body and HTML body (sendMail carries one of the two)."""

    subject: str
    text: str
    html: str


def _escape(text: str) -> str:
    """Escape for HTML text content (quotes need no escaping outside attributes)."""
    return html.escape(text, quote=False)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)


def headline(incident: Incident, notice: Notice) -> str:
    """What happened, in one line."""
    if notice.kind is NoticeKind.RESOLVED:
        return f"Resolved: {incident.title}"
    return f"{incident.severity.value.capitalize()}: {incident.title}"


def facts(incident: Incident, notice: Notice) -> tuple[Fact, ...]:
    """To whom and when, then the emitter's evidence: the lines of every rendering."""
    lines = [
        Fact("Subject", incident.subject_label),
        Fact("Problem", incident.key.problem),
        Fact("Severity", incident.severity.value),
        Fact("Opened", _when(incident.opened_at)),
    ]
    if notice.kind is NoticeKind.RESOLVED and incident.closed_at is not None:
        lines.append(Fact("Resolved", _when(incident.closed_at)))
        lines.append(Fact("Open for", _duration(incident.closed_at - incident.opened_at)))
    if incident.occurrence > 1:
        lines.append(Fact("Occurrence", str(incident.occurrence)))
    return (*lines, *incident.evidence)


def why(incident: Incident, notice: Notice) -> str:
    """Why it happened; on a resolved note, what the cause was."""
    if notice.kind is NoticeKind.RESOLVED:
        return f"The cause is gone. It was: {incident.reason}"
    return incident.reason


def action(incident: Incident, notice: Notice) -> str:
    """Exactly what to do (or that nothing is left to do)."""
    return RESOLVED_ACTION if notice.kind is NoticeKind.RESOLVED else incident.remediation


def _reference(incident: Incident, notice: Notice) -> str:
    return f"{PRODUCT} incident {incident.key.text} · notice {notice.id}"


def _adaptive_card(body: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": _ADAPTIVE_SCHEMA,
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }
        ],
    }


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def teams_card(incident: Incident, notice: Notice) -> dict[str, Any]:
    """The Workflows webhook body: a `type: message` with one Adaptive Card (graph-facts §G)."""
    resolved = notice.kind is NoticeKind.RESOLVED
    body: list[dict[str, Any]] = [
        _text_block(
            headline(incident, notice),
            weight="Bolder",
            size="Medium",
            color="Good" if resolved else _CARD_COLOR[incident.severity],
        ),
        _text_block(why(incident, notice)),
        {
            "type": "FactSet",
            "facts": [{"title": f.label, "value": f.value} for f in facts(incident, notice)],
        },
        _text_block("What to do", weight="Bolder", spacing="Medium"),
        _text_block(action(incident, notice)),
        _text_block(_reference(incident, notice), isSubtle=True, size="Small", spacing="Medium"),
    ]
    return _adaptive_card(body)


def mail(incident: Incident, notice: Notice) -> Mail:
    """The mail for this notice, as text and as HTML (every value escaped)."""
    title = headline(incident, notice)
    subject = f"[{PRODUCT}] {title} ({incident.subject_label})"
    lines = facts(incident, notice)
    todo = action(incident, notice)
    reference = _reference(incident, notice)
    text = "\n".join(
        [
            title,
            "",
            why(incident, notice),
            "",
            *(f"{f.label}: {f.value}" for f in lines),
            "",
            "What to do:",
            todo,
            "",
            f"-- {reference}",
        ]
    )
    e = _escape
    rows = "".join(
        f'<tr><th align="left" style="padding-right:12px">{e(f.label)}</th><td>{e(f.value)}</td></tr>'
        for f in lines
    )
    body = (
        f"<h2>{e(title)}</h2><p>{e(why(incident, notice))}</p><table>{rows}</table>"
        f"<h3>What to do</h3><p>{e(todo)}</p><p><small>{e(reference)}</small></p>"
    )
    return Mail(subject=subject, text=text, html=f"<html><body>{body}</body></html>")


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "scope": incident.key.scope.value,
        "subject": incident.key.subject,
        "problem": incident.key.problem,
        "key": incident.key.text,
        "status": incident.status.value,
        "occurrence": incident.occurrence,
        "severity": incident.severity.value,
        "title": incident.title,
        "subject_label": incident.subject_label,
        "reason": incident.reason,
        "remediation": incident.remediation,
        "evidence": [{"label": f.label, "value": f.value} for f in incident.evidence],
        "opened_at": incident.opened_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at is not None else None,
        "user_id": incident.user_id,
        "group_id": incident.group_id,
        "sku_id": incident.sku_id,
    }


def webhook_body(incident: Incident, notice: Notice) -> dict[str, Any]:
    """The generic JSON webhook body; `id` is stable per notice so a receiver can drop a repeat."""
    return {
        "type": f"seatkeeper.incident.{notice.kind.value}",
        "id": f"{incident.key.row}-{notice.id}",
        "headline": headline(incident, notice),
        "why": why(incident, notice),
        "action": action(incident, notice),
        "incident": _incident_json(incident),
    }


# --- digest ---------------------------------------------------------------------------------------------


def _digest_title(digest: Digest) -> str:
    count = len(digest.incidents)
    noun = "incident" if count == 1 else "incidents"
    return f"{PRODUCT} daily digest: {count} open {noun} ({_when(digest.generated_at)})"


def _digest_line(incident: Incident) -> str:
    since = _when(incident.opened_at)
    return f"[{incident.severity.value}] {incident.title} — {incident.subject_label} (since {since})"


def _digest_rest(digest: Digest) -> str | None:
    rest = len(digest.incidents) - DIGEST_LIMIT
    return f"… and {rest} more: run `seatkeeper incidents list`." if rest > 0 else None


def digest_card(digest: Digest) -> dict[str, Any]:
    """The digest as a Workflows message: one line per open incident with its remediation."""
    body: list[dict[str, Any]] = [_text_block(_digest_title(digest), weight="Bolder", size="Medium")]
    if not digest.incidents:
        body.append(_text_block("Nothing is open."))
    for incident in digest.incidents[:DIGEST_LIMIT]:
        body.append(_text_block(_digest_line(incident), weight="Bolder", spacing="Medium"))
        body.append(_text_block(f"What to do: {incident.remediation}", spacing="None"))
    rest = _digest_rest(digest)
    if rest:
        body.append(_text_block(rest, isSubtle=True))
    return _adaptive_card(body)


def digest_mail(digest: Digest) -> Mail:
    """The digest as a mail."""
    title = _digest_title(digest)
    shown = digest.incidents[:DIGEST_LIMIT]
    rest = _digest_rest(digest)
    text_lines = [title, ""]
    if not shown:
        text_lines.append("Nothing is open.")
    for incident in shown:
        text_lines += [_digest_line(incident), f"  What to do: {incident.remediation}"]
    if rest:
        text_lines += ["", rest]
    e = _escape
    items = "".join(f"<li><b>{e(_digest_line(i))}</b><br>What to do: {e(i.remediation)}</li>" for i in shown)
    body = f"<h2>{e(title)}</h2>" + (f"<ul>{items}</ul>" if shown else "<p>Nothing is open.</p>")
    if rest:
        body += f"<p>{e(rest)}</p>"
    return Mail(subject=title, text="\n".join(text_lines), html=f"<html><body>{body}</body></html>")


def digest_webhook_body(digest: Digest) -> dict[str, Any]:
    """The digest as a JSON webhook body (every open incident, not capped)."""
    return {
        "type": "seatkeeper.digest",
        "id": f"digest-{digest.generated_at.date().isoformat()}",
        "generated_at": digest.generated_at.isoformat(),
        "open": [_incident_json(i) for i in digest.incidents],
    }
