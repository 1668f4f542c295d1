"""Lifecycle Workflows intake: the custom task extension payload becomes a joiner or leaver by the policy's
workflow mapping, and the workflow is resumed once onboarding has decided."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from handlers.hr_intake import IntakeDeps, IntakeRequest
from handlers.lifecycle_workflows import WorkflowDeps, receive_workflow
from handlers.onboarding import Step
from seatkeeper.core.hr_events import HrEventType, parse_work
from seatkeeper.core.hr_rules import HrSettings
from seatkeeper.core.messages import HR_EVENTS, Message
from seatkeeper.core.sensitive import Secret
from tests.unit.license_world import user_id
from tests.unit.test_gate_builders import GROUP, NOW
from tests.unit.test_onboarding import Hr, build_hr, joiner, leaver

pytestmark = pytest.mark.anyio

JOINERS = "156ce798-1eb6-4e0a-8515-e79f54d04390"
LEAVERS = "2a1b3c4d-1eb6-4e0a-8515-e79f54d04391"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hr(tmp_path: Path) -> Iterator[Hr]:
    built, state = build_hr(tmp_path)
    yield built
    state.close()


def payload(workflow: str = JOINERS, result: str = "6e1ec336-8d06-4386-a377-79dbab1a2eb6") -> dict[str, Any]:
    """What a custom task extension sends its Logic App (graph-facts F1), for user 1."""
    return {
        "data": {
            "callbackUriPath": f"/identityGovernance/lifecycleWorkflows/workflows/{workflow}/tasks/"
            f"e07dcdb2-0a77-4ee3-8645-3801fbe1cf9f/taskProcessingResults/{result}/resume",
            "subject": {
                "id": user_id(1),
                "displayName": "User 1",
                "email": "user1@contoso.example",
                "userPrincipalName": "user1@contoso.example",
                "manager": None,
            },
            "task": {"id": "e07dcdb2-0a77-4ee3-8645-3801fbe1cf9f", "displayName": "Seatkeeper"},
            "taskProcessingResult": {"id": result, "createdDateTime": NOW.isoformat()},
            "workflow": {"id": workflow, "displayName": "Onboard", "workflowVersion": 1},
        },
        "source": "sample",
        "type": "lifecycleEvent",
    }


def deps(hr: Hr) -> WorkflowDeps:
    intake = IntakeDeps(hr.sender, hr.deps.state, hr.clock, Secret("unused"), ZoneInfo("UTC"))
    mapping = {JOINERS: HrEventType.JOINER, LEAVERS: HrEventType.LEAVER}
    return WorkflowDeps(intake, HrSettings(workflows=mapping))


async def post(hr: Hr, body: object, content_type: str = "application/json") -> tuple[int, Any]:
    request = IntakeRequest({"Content-Type": content_type}, json.dumps(body).encode())
    answer = await receive_workflow(request, deps(hr), correlation_id="c")
    return answer.status, json.loads(answer.body)


async def test_a_mapped_workflow_becomes_an_hr_event_with_its_callback(hr: Hr) -> None:
    """202; one hr.joiner keyed by the user's object id, carrying the callback path."""
    status, body = await post(hr, payload())
    assert (status, body["outcome"], body["type"]) == (202, "accepted", "joiner")
    [message] = hr.sender.sent
    work = parse_work(Message.from_body(HR_EVENTS, message.body()))
    assert (message.kind, message.session_id) == ("hr.joiner", user_id(1))
    assert work.callback == payload()["data"]["callbackUriPath"]


async def test_the_same_task_result_again_is_a_duplicate(hr: Hr) -> None:
    """The Logic App retried: 202 duplicate, nothing new."""
    await post(hr, payload())
    status, body = await post(hr, payload())
    assert (status, body["outcome"], len(hr.sender.sent)) == (202, "duplicate", 1)


async def test_an_unmapped_workflow_is_refused(hr: Hr) -> None:
    """The policy does not say what the workflow means: 400, nothing enqueued."""
    status, body = await post(hr, payload(workflow="99999999-1eb6-4e0a-8515-e79f54d04390"))
    assert (status, body["error"], hr.sender.sent) == (400, "workflow_not_mapped", [])


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"content_type": "text/plain"}, 415, id="content-type"),
        pytest.param({"body": {"data": {"subject": {}}}}, 400, id="not-the-payload"),
    ],
)
async def test_bad_requests(hr: Hr, change: dict[str, Any], status: int) -> None:
    """Other content types and other shapes are refused."""
    body = change.get("body", payload())
    answered, _ = await post(hr, body, change.get("content_type", "application/json"))
    assert answered == status


async def test_a_joiner_workflow_is_admitted_then_resumed_completed(hr: Hr) -> None:
    """Through onboarding: the user joins the Sales group and the task is resumed with Completed."""
    user = hr.user(1, "E1")
    await post(hr, payload())
    await hr.pump(NOW)
    assert hr.tenant.member_of(user) == [GROUP]
    assert hr.tenant.resumed == [(payload()["data"]["callbackUriPath"], "Completed")]


async def test_a_joiner_with_no_account_is_resumed_failed_at_the_deadline(hr: Hr) -> None:
    """The subject never appears: Failed, once, after the wait."""
    await post(hr, payload())
    await hr.pump(NOW + timedelta(days=4))
    assert [status for _, status in hr.tenant.resumed] == ["Failed"]


# -- one record per human: the HR feed (employeeId) and Lifecycle Workflows (object id) ------------------


def at(body: dict[str, Any], recorded: datetime) -> dict[str, Any]:
    """The payload with the task result created at `recorded` (what orders it)."""
    body["data"]["taskProcessingResult"]["createdDateTime"] = recorded.isoformat()
    return body


async def test_an_older_hr_leaver_after_a_workflow_joiner_is_stale(hr: Hr) -> None:
    """The workflow's joiner (object id) is newer than the HR feed's leaver (employeeId) arriving after it:
    one human, one record, so the leaver changes nothing."""
    user = hr.user(1, "E1")
    await post(hr, payload())
    await hr.pump(NOW)
    assert await hr.post(leaver(at=NOW, recorded=NOW - timedelta(hours=1))) is Step.STALE
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == [GROUP]


async def test_a_workflow_joiner_older_than_an_applied_hr_leaver_is_stale(hr: Hr) -> None:
    """The HR leaver came first and found the user; the workflow's older joiner arriving late adds nobody
    and its task is still resumed (Completed: nothing is left to do)."""
    user = hr.user(1, "E1")
    await hr.post(leaver(at=NOW, recorded=NOW))
    await post(hr, at(payload(), NOW - timedelta(hours=1)))
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []
    assert [status for _, status in hr.tenant.resumed] == ["Completed"]


async def test_a_newer_workflow_leaver_rescinds_an_hr_hire_not_yet_started(hr: Hr) -> None:
    """HR's future hire is keyed by employeeId until someone finds the user; the workflow's leaver finds
    them, the keys are linked, and on the hire date the hire is superseded."""
    user = hr.user(1, "E1")
    hire = NOW + timedelta(days=10)
    assert await hr.post(joiner(hire=hire)) is Step.SCHEDULED
    await post(hr, payload(LEAVERS, result="7e1ec336-8d06-4386-a377-79dbab1a2eb6"))
    await hr.pump(hire + timedelta(days=1))
    assert hr.tenant.member_of(user) == []
    assert hr.steps[-1] is Step.SUPERSEDED


async def test_an_hr_event_naming_the_object_id_is_ordered_on_receipt(hr: Hr) -> None:
    """Entra has no employeeId, so only the HR event's objectId ties it to the workflow's person: an older
    future-dated leaver naming it is stale on receipt (nothing scheduled, no Graph read needed)."""
    user = hr.user(1, "E1", employeeId=None)
    await post(hr, payload())
    await hr.pump(NOW)
    leave = NOW + timedelta(days=10)
    assert await hr.post(leaver(at=leave, recorded=NOW - timedelta(hours=1), objectId=user)) is Step.STALE
    await hr.pump(leave + timedelta(hours=1))
    assert hr.tenant.member_of(user) == [GROUP]


async def test_an_entra_employee_id_unfit_for_a_key_is_not_linked(hr: Hr) -> None:
    """Entra's employeeId is free text ("E/1" cannot key a table row): the workflow joiner is admitted."""
    user = hr.user(1, "E/1")
    await post(hr, payload())
    await hr.pump(NOW)
    assert hr.tenant.member_of(user) == [GROUP]
    assert hr.tenant.resumed == [(payload()["data"]["callbackUriPath"], "Completed")]
