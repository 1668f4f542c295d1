"""Lifecycle Workflows in the sandbox: task processing results waiting on a custom task extension, and Graph's
`taskProcessingResult: resume` (v1.0), written from Microsoft's documents.

Graph: `POST /identityGovernance/lifecycleWorkflows/workflows/{workflowId}/tasks/{taskId}/
taskProcessingResults/{id}/resume` with `{"data": {"operationStatus": "Completed"|"Failed"}, "source",
"type"}` answers `204 No Content`. The caller needs LifecycleWorkflows.ReadWrite.All, except the apps named in
the extension's callback configuration (`authorizedApps`, or the `resourceId` of its token authentication),
which may resume without any permission.

Control plane: `POST {control}/lifecycle-workflows/task-results` `{"workflow_id", "task_id", "subject":
{"id", "userPrincipalName", ...}, "authorized_apps": [appId]}` starts a result `inProgress` and answers the
payload the custom task extension sends to its Logic App; `GET {control}/lifecycle-workflows/task-results`
lists results with their status. Sandbox assumptions: resuming a result twice with the same status is
accepted again; with the other status it is refused (400); an unknown result answers 404.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from sandbox.extension import SandboxApp
from sandbox.graph_errors import GraphError
from sandbox.router import GraphRequest, GraphResponse, Operation

RESUME: Final = (
    "/identityGovernance/lifecycleWorkflows/workflows/{workflowId}/tasks/{taskId}"
    "/taskProcessingResults/{taskProcessingResultId}/resume"
)
READ_WRITE: Final = "LifecycleWorkflows.ReadWrite.All"
_STATUSES: Final = {"completed": "completed", "failed": "failed"}


@dataclass
class TaskResult:
    """One task processing result of a custom task extension, waiting for its Logic App to resume it."""

    id: str
    workflow_id: str
    task_id: str
    subject: dict[str, Any]
    authorized_apps: frozenset[str]
    created: datetime
    status: str = "inProgress"
    resumed: datetime | None = None
    resumed_by: str | None = None

    @property
    def callback_path(self) -> str:
        """The `callbackUriPath` the extension hands to its Logic App."""
        return RESUME.format(workflowId=self.workflow_id, taskId=self.task_id, taskProcessingResultId=self.id)

    def payload(self) -> dict[str, Any]:
        """What the custom task extension POSTs to its Logic App (Microsoft's template schema)."""
        return {
            "data": {
                "callbackUriPath": self.callback_path,
                "subject": self.subject,
                "task": {"id": self.task_id, "displayName": "Seatkeeper"},
                "taskProcessingResult": {"id": self.id, "createdDateTime": self.created.isoformat()},
                "workflow": {"id": self.workflow_id, "displayName": "Sandbox workflow", "workflowVersion": 1},
            },
            "source": "sandbox/identityGovernance/lifecycleWorkflows",
            "type": "lifecycleEvent",
        }

    def view(self) -> dict[str, Any]:
        """The result as the control plane lists it."""
        return {
            "id": self.id,
            "workflow_id": self.workflow_id,
            "task_id": self.task_id,
            "subject_id": self.subject.get("id"),
            "status": self.status,
            "resumed": self.resumed.isoformat() if self.resumed else None,
            "resumed_by": self.resumed_by,
        }


class LifecycleWorkflows:
    """The sandbox's waiting task processing results."""

    def __init__(self) -> None:
        self.results: dict[str, TaskResult] = {}

    def reset(self) -> None:
        """Forget every result (control-plane reset)."""
        self.results.clear()

    def resume(self, params: dict[str, str], body: Any, app_id: str | None, roles: frozenset[str]) -> None:
        """Resume one result, as Graph does; raises GraphError with Graph's status codes."""
        result = self.results.get(params["taskProcessingResultId"].lower())
        if (
            result is None
            or result.workflow_id != params["workflowId"].lower()
            or result.task_id != params["taskId"].lower()
        ):
            raise GraphError(404, "ResourceNotFound", "The taskProcessingResult was not found.")
        if READ_WRITE not in roles and (app_id or "").lower() not in result.authorized_apps:
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        data = body.get("data") if isinstance(body, dict) else None
        raw = data.get("operationStatus") if isinstance(data, dict) else None
        status = _STATUSES.get(str(raw).lower()) if isinstance(raw, str) else None
        if status is None:
            raise GraphError(400, "BadRequest", "data.operationStatus must be completed or failed.")
        if result.status not in ("inProgress", status):
            raise GraphError(400, "BadRequest", f"The taskProcessingResult is already {result.status}.")
        result.status = status
        result.resumed_by = app_id

    def start(self, body: dict[str, Any], now: datetime) -> TaskResult:
        """A new result in progress (control plane); ValueError naming what is missing."""
        subject = body.get("subject")
        if not isinstance(subject, dict) or not isinstance(subject.get("id"), str):
            raise TypeError("subject.id is required")
        apps = body.get("authorized_apps", [])
        if not isinstance(apps, list):
            raise TypeError("authorized_apps must be a list of app ids")
        result = TaskResult(
            id=str(body.get("id") or uuid.uuid4()).lower(),
            workflow_id=str(body.get("workflow_id") or uuid.uuid4()).lower(),
            task_id=str(body.get("task_id") or uuid.uuid4()).lower(),
            subject=subject,
            authorized_apps=frozenset(str(a).lower() for a in apps),
            created=now,
        )
        self.results[result.id] = result
        return result


def install(sandbox: SandboxApp) -> None:
    """Serve `resume` on Graph and the task-result control calls."""
    workflows = LifecycleWorkflows()
    state = sandbox.state

    async def resume(request: GraphRequest) -> GraphResponse:
        workflows.resume(request.params, request.json(), request.app_id, request.roles)
        result = workflows.results[request.params["taskProcessingResultId"].lower()]
        result.resumed = state.clock.now()
        return GraphResponse(204)

    # The pipeline asks for LifecycleWorkflows.ReadWrite.All; `authorize` grants it, for this one call, to
    # the apps the result's callback configuration names (they need no permission, per Microsoft).
    operation: Operation = sandbox.router.add(
        "POST", RESUME, resume, permissions=frozenset({READ_WRITE}), write=True
    )

    async def authorize(request: GraphRequest, op: Operation | None) -> GraphResponse | None:
        if op is operation and request.auth_error is None:
            result = workflows.results.get(request.params.get("taskProcessingResultId", "").lower())
            if result is not None and (request.app_id or "").lower() in result.authorized_apps:
                # Microsoft: the app named in the callback configuration may resume without the role.
                request.roles = request.roles | {READ_WRITE}
        return None

    async def start(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            result = workflows.start(body if isinstance(body, dict) else {}, state.clock.now())
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"id": result.id, "payload": result.payload()}, status=201)

    async def listing(_: web.Request) -> web.Response:
        return web.json_response({"value": [r.view() for r in workflows.results.values()]})

    sandbox.pipeline.pre_hooks.insert(0, authorize)
    state.on_reset.append(workflows.reset)
    sandbox.add_control_route("POST", "/lifecycle-workflows/task-results", start)
    sandbox.add_control_route("GET", "/lifecycle-workflows/task-results", listing)
