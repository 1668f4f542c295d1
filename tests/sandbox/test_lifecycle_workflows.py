"""The sandbox's Lifecycle Workflows resume: as Microsoft documents it, over HTTPS with a real token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, bearer, confidential_app, exported

READONLY_APP = "0a5e3c1b-7d9f-4e2a-b6c8-1f3d5a7b9c04"

SUBJECT = {"id": "a1b2c3d4-0000-4000-8000-000000000001", "userPrincipalName": "ada@contoso.example"}


def start(control: httpx.Client, *, authorized: list[str]) -> dict[str, Any]:
    response = control.post(
        "lifecycle-workflows/task-results", json={"subject": SUBJECT, "authorized_apps": authorized}
    )
    assert response.status_code == 201
    document: dict[str, Any] = response.json()
    return document


def resume(graph: httpx.Client, path: str, status: object = "Completed") -> httpx.Response:
    body = {"data": {"operationStatus": status}, "source": "test", "type": "lifecycleEvent"}
    return graph.post(path.lstrip("/"), json=body)


def statuses(control: httpx.Client) -> dict[str, str]:
    listed = control.get("lifecycle-workflows/task-results").json()["value"]
    return {r["id"]: r["status"] for r in listed}


def test_the_extension_payload_has_microsofts_shape(tenant: SandboxInfo, control: httpx.Client) -> None:
    """callbackUriPath, subject, task, taskProcessingResult and workflow, as the Logic App receives them."""
    payload = start(control, authorized=[tenant.client_id])["payload"]
    data = payload["data"]
    assert set(data) == {"callbackUriPath", "subject", "task", "taskProcessingResult", "workflow"}
    assert data["callbackUriPath"].startswith("/identityGovernance/lifecycleWorkflows/workflows/")
    assert data["callbackUriPath"].endswith(
        f"/taskProcessingResults/{data['taskProcessingResult']['id']}/resume"
    )
    assert data["subject"] == SUBJECT


def test_the_authorized_app_resumes_without_a_permission(
    tenant: SandboxInfo, control: httpx.Client, graph: httpx.Client
) -> None:
    """204 No Content, and the result is completed."""
    started = start(control, authorized=[tenant.client_id])
    answer = resume(graph, started["payload"]["data"]["callbackUriPath"])
    assert (answer.status_code, answer.content) == (204, b"")
    assert statuses(control)[started["id"]] == "completed"


def test_an_app_without_the_permission_is_refused_unless_authorized(
    tenant: SandboxInfo, control: httpx.Client, http: httpx.Client
) -> None:
    """The read-only app: 403 for a result that does not name it, 204 for one that does."""
    secret = next(a["clientSecret"] for a in exported(control)["apps"] if a["clientId"] == READONLY_APP)
    app = confidential_app(tenant, http, READONLY_APP, str(secret))
    token = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
    reader = httpx.Client(base_url=tenant.graph_url + "/", verify=tenant.ssl_context(), headers=bearer(token))
    with reader:
        other = start(control, authorized=[tenant.client_id])
        answer = resume(reader, other["payload"]["data"]["callbackUriPath"])
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "Authorization_RequestDenied")
        named = start(control, authorized=[READONLY_APP])
        assert resume(reader, named["payload"]["data"]["callbackUriPath"]).status_code == 204
    assert (statuses(control)[other["id"]], statuses(control)[named["id"]]) == ("inProgress", "completed")


def test_failed_is_recorded_and_the_other_status_is_refused_after(
    tenant: SandboxInfo, control: httpx.Client, graph: httpx.Client
) -> None:
    """Failed sticks: the same again is fine, Completed afterwards is a 400."""
    path = start(control, authorized=[tenant.client_id])["payload"]["data"]["callbackUriPath"]
    assert resume(graph, path, "Failed").status_code == 204
    assert resume(graph, path, "failed").status_code == 204
    assert resume(graph, path, "Completed").status_code == 400


def test_unknown_results_and_bad_statuses(
    tenant: SandboxInfo, control: httpx.Client, graph: httpx.Client
) -> None:
    """404 for a result that does not exist, 400 for an operationStatus that is not one."""
    path = start(control, authorized=[tenant.client_id])["payload"]["data"]["callbackUriPath"]
    assert resume(graph, path, "Done").status_code == 400
    missing = "/".join([*path.split("/")[:-2], "11111111-1111-4111-8111-111111111111", "resume"])
    assert resume(graph, missing).status_code == 404


def test_reset_forgets_the_results(tenant: SandboxInfo, control: httpx.Client) -> None:
    """A control-plane reset starts with no task results."""
    start(control, authorized=[tenant.client_id])
    control.post("reset").raise_for_status()
    assert statuses(control) == {}
