"""Control-plane conformance: reset, tenant load/export, counters, seats, hidden changes, captures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import COPILOT, consumed, exported, group_id


def _card() -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": "Copilot licence failed"}],
                },
            }
        ],
    }


def test_counters_count_requests_per_operation_and_reset(graph: httpx.Client, control: httpx.Client) -> None:
    """Each Graph call is counted under its operation name; counters/reset zeroes them."""
    control.post("counters/reset").raise_for_status()
    graph.get("users", params={"$top": "1"})
    graph.get("users", params={"$top": "1"})
    uid = graph.get("users", params={"$top": "1", "$select": "id"}).json()["value"][0]["id"]
    graph.get(f"users/{uid}")
    counts = control.get("counters").json()
    assert (counts["requests"]["GET /users"], counts["requests"]["GET /users/{id}"]) == (3, 1)
    assert counts["total"]["requests"] == 4
    control.post("counters/reset").raise_for_status()
    assert control.get("counters").json()["total"]["requests"] == 0


def test_reset_undoes_changes(graph: httpx.Client, control: httpx.Client, tenant: SandboxInfo) -> None:
    """POST reset reloads the tenant the server started with."""
    uid = graph.get("users", params={"$top": "1", "$select": "id"}).json()["value"][0]["id"]
    graph.patch(f"users/{uid}", json={"department": "Changed"}).raise_for_status()
    control.post("reset").raise_for_status()
    assert graph.get(f"users/{uid}", params={"$select": "department"}).json()["department"] != "Changed"


def test_export_then_load_round_trips(control: httpx.Client) -> None:
    """A tenant exported and loaded again exports the same document."""
    doc = exported(control)
    control.post("tenant", json=doc).raise_for_status()
    assert exported(control) == doc


def test_an_invalid_tenant_is_refused(control: httpx.Client) -> None:
    """A document without a tenant section answers 400 and the tenant stays."""
    before = exported(control)
    assert control.post("tenant", json={"users": []}).status_code == 400
    assert exported(control) == before


def test_seats_change_prepaid_units(graph: httpx.Client, control: httpx.Client) -> None:
    """POST skus/{id}/seats sets prepaidUnits.enabled as subscribedSkus reports it."""
    control.post(f"skus/{COPILOT}/seats", json={"enabled": 7}).raise_for_status()
    skus = graph.get("subscribedSkus").json()["value"]
    assert next(s["prepaidUnits"]["enabled"] for s in skus if s["skuId"] == COPILOT) == 7


def test_subscribed_skus_shape(graph: httpx.Client) -> None:
    """subscribedSkus carries Graph's fields; $filter is refused."""
    sku = next(s for s in graph.get("subscribedSkus").json()["value"] if s["skuId"] == COPILOT)
    assert {
        "id",
        "accountId",
        "accountName",
        "appliesTo",
        "capabilityStatus",
        "consumedUnits",
        "prepaidUnits",
        "servicePlans",
        "skuId",
        "skuPartNumber",
        "subscriptionIds",
    } == set(sku)
    assert sku["skuPartNumber"] == "Microsoft_365_Copilot"
    assert graph.get("subscribedSkus", params={"$filter": "skuPartNumber eq 'x'"}).status_code == 400


def test_users_and_groups_change_behind_the_back(graph: httpx.Client, control: httpx.Client) -> None:
    """Control-plane user and membership changes are what Graph then reports; deleting frees seats."""
    created = control.post(
        "users", json={"id": "u-behind", "userPrincipalName": "behind@contoso.example", "usageLocation": "US"}
    )
    gid = group_id(graph, "Copilot - Americas")
    control.post(f"groups/{gid}/members", json={"add": ["u-behind"]}).raise_for_status()
    holding = consumed(graph, COPILOT)
    control.patch("users/u-behind", json={"jobTitle": "Pilot"}).raise_for_status()
    title = graph.get("users/u-behind", params={"$select": "jobTitle"}).json()["jobTitle"]
    deleted = control.delete("users/u-behind")
    assert (created.status_code, deleted.status_code, title) == (201, 204, "Pilot")
    assert consumed(graph, COPILOT) == holding - 1
    assert graph.get("users/u-behind").status_code == 404


def test_teams_workflow_posts_are_captured(tenant: SandboxInfo, control: httpx.Client) -> None:
    """A message with an Adaptive Card is accepted (202) and captured."""
    with httpx.Client(verify=tenant.ssl_context()) as http:
        response = http.post(tenant.teams_webhook_url, json=_card())
    captured = control.get("teams").json()["value"]
    assert response.status_code == 202
    assert [c["body"] for c in captured] == [_card()]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "hello"},
        {"type": "message", "attachments": []},
        {**_card(), "attachments": [{"contentType": "text"}]},
    ],
    ids=["connector-style", "no-attachment", "not-adaptive"],
)
def test_teams_workflow_refuses_anything_else(
    tenant: SandboxInfo, control: httpx.Client, body: dict[str, Any]
) -> None:
    """Anything but type message with Adaptive Card attachments answers 400 and is not captured."""
    with httpx.Client(verify=tenant.ssl_context()) as http:
        response = http.post(tenant.teams_webhook_url, json=body)
    assert response.status_code == 400
    assert control.get("teams").json()["value"] == []


def test_teams_workflow_checks_the_signature(tenant: SandboxInfo) -> None:
    """A wrong sig answers 401."""
    url = tenant.teams_webhook_url.rsplit("sig=", 1)[0] + "sig=wrong"
    with httpx.Client(verify=tenant.ssl_context()) as http:
        assert http.post(url, json=_card()).status_code == 401


def test_licensing_delay_must_be_a_non_negative_number(control: httpx.Client) -> None:
    """The licensing call validates its input."""
    assert control.post("licensing", json={"delay_seconds": -1}).status_code == 400
    assert control.post("licensing", json={"delay_seconds": 0}).status_code == 200
