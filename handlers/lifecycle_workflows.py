"""Lifecycle Workflows intake (HTTP, function key): the custom task extension payload an Entra Lifecycle
Workflow sends to its Logic App, forwarded unchanged. The policy maps the workflow to joiner or leaver; the
event then goes the HR way (dedupe, `hr-events`), and onboarding resumes the task with Completed or Failed
once the decision is made (graph-facts F1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import structlog

from handlers.hr_intake import IntakeDeps, IntakeRequest, IntakeResponse, enqueue
from seatkeeper.core.hr_events import HrEvent, HrRecord, HrWork, body_hash
from seatkeeper.core.hr_rules import HrSettings

MAX_PAYLOAD_BYTES: Final = 65_536
_GUID: Final = "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
_ID: Final = {"type": "string", "pattern": _GUID}
PAYLOAD_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "source": {"type": "string"},
        "type": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["callbackUriPath", "subject", "taskProcessingResult", "workflow"],
            "properties": {
                "callbackUriPath": {
                    "type": "string",
                    "maxLength": 512,
                    "pattern": "^/identityGovernance/lifecycleWorkflows/workflows/[^/?#]+/tasks/[^/?#]+"
                    "/taskProcessingResults/[^/?#]+/resume$",
                },
                "subject": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": _ID, "userPrincipalName": {"type": ["string", "null"]}},
                },
                "task": {"type": "object"},
                "taskProcessingResult": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": _ID, "createdDateTime": {"type": ["string", "null"]}},
                },
                "workflow": {"type": "object", "required": ["id"], "properties": {"id": _ID}},
            },
        },
    },
}
_log = structlog.get_logger("seatkeeper.hr")


@dataclass(frozen=True)
class WorkflowDeps:
    """The intake's ports and the policy's HR settings (which workflow is a joiner, which a leaver)."""

    intake: IntakeDeps
    hr: HrSettings


def _answer(status: int, document: Mapping[str, Any]) -> IntakeResponse:
    if status >= 400:
        _log.warning("hr.workflow_refused", status=status, reason=document.get("error"))
    return IntakeResponse(status, json.dumps(document, separators=(",", ":")))


def _problems(raw: object) -> list[str]:
    import jsonschema  # lazy: keeps function_app.py's import cheap

    validator = jsonschema.Draft202012Validator(PAYLOAD_SCHEMA)
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}" for e in validator.iter_errors(raw)
    )


def _recorded_at(text: object, now: datetime) -> datetime:
    """The task result's creation time (orders the person's events), else now."""
    if isinstance(text, str):
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return now
        return value if value.tzinfo is not None else now
    return now


async def receive_workflow(  # noqa: PLR0911 - one return per documented answer reads best
    request: IntakeRequest, deps: WorkflowDeps, *, correlation_id: str
) -> IntakeResponse:
    """Handle one forwarded custom task extension call: 202 accepted or duplicate, else 4xx/503."""
    media = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return _answer(415, {"error": "content type must be application/json"})
    if len(request.body) > MAX_PAYLOAD_BYTES:
        return _answer(413, {"error": f"the body is larger than {MAX_PAYLOAD_BYTES} bytes"})
    try:
        raw = json.loads(request.body)
    # ValueError: not JSON, not UTF-8 or an integer past 4,300 digits; RecursionError: nested too deep.
    except (ValueError, RecursionError):
        return _answer(400, {"error": "the body is not JSON"})
    problems = _problems(raw)
    if problems:
        return _answer(400, {"error": "not a custom task extension payload", "errors": problems})
    data: Mapping[str, Any] = raw["data"]
    workflow_id = str(data["workflow"]["id"]).lower()
    kind = deps.hr.workflow_event(workflow_id)
    if kind is None:
        return _answer(400, {"error": "workflow_not_mapped", "workflow_id": workflow_id})
    now = deps.intake.clock.now()
    subject = data["subject"]
    upn = subject.get("userPrincipalName")
    event = HrEvent(
        id=str(data["taskProcessingResult"]["id"]).lower(),
        source=f"urn:lifecycleworkflows:{workflow_id}",
        type=kind,
        recorded_at=_recorded_at(data["taskProcessingResult"].get("createdDateTime"), now),
        effective_at=now,
        person=HrRecord(
            employee_id=str(subject["id"]).lower(),
            object_id=str(subject["id"]).lower(),
            user_principal_name=str(upn) if upn else None,
        ),
        body_hash=body_hash(raw),
    )
    work = HrWork(event, callback=str(data["callbackUriPath"]))
    outcomes = await enqueue([work], deps.intake, correlation_id=correlation_id)
    if outcomes is None:
        return _answer(503, {"error": "could not persist the event; retry later"})
    [outcome] = outcomes
    _log.info("hr.workflow_received", workflow_id=workflow_id, event_id=event.id, outcome=outcome.value)
    return _answer(outcome.status, {"outcome": outcome.value, "id": event.id, "type": kind.value})
