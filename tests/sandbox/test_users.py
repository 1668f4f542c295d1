"""Users conformance: `$select`, `$filter`, `$top` and paging rules, PATCH, assignLicense, sendMail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.graph_session import COPILOT

E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
E1 = "18181a46-0d4e-45cd-891e-60aabd171b4e"


def _first_user(graph: httpx.Client, select: str = "id,userPrincipalName,employeeId") -> dict[str, Any]:
    user: dict[str, Any] = graph.get("users", params={"$top": 1, "$select": select}).json()["value"][0]
    return user


def test_default_page_is_100_and_next_links_walk_every_user_once(graph: httpx.Client) -> None:
    """GET /users pages by 100 with @odata.nextLink until the last page."""
    first = graph.get("users").json()
    ids: list[str] = [u["id"] for u in first["value"]]
    link = first.get("@odata.nextLink")
    assert len(first["value"]) == 100
    while link:
        body = graph.get(link).json()
        ids += [u["id"] for u in body["value"]]
        link = body.get("@odata.nextLink")
    assert len(ids) == len(set(ids)) == 200


@pytest.mark.parametrize("top", ["0", "1000", "-1", "abc"])
def test_top_outside_1_to_999_is_refused(graph: httpx.Client, top: str) -> None:
    """$top must be between 1 and 999."""
    response = graph.get("users", params={"$top": top})
    assert response.status_code == 400
    assert "Must be between 1 and 999" in response.json()["error"]["message"]


def test_top_999_returns_everyone_on_one_page(graph: httpx.Client) -> None:
    """$top=999 is the largest page."""
    body = graph.get("users", params={"$top": "999"}).json()
    assert (len(body["value"]), "@odata.nextLink" in body) == (200, False)


def test_default_properties_leave_out_licenses_and_usage_location(graph: httpx.Client) -> None:
    """assignedLicenses, licenseAssignmentStates and usageLocation come back only when selected."""
    user = graph.get("users", params={"$top": 1}).json()["value"][0]
    assert {"id", "displayName", "userPrincipalName"} <= set(user)
    assert not {"assignedLicenses", "licenseAssignmentStates", "usageLocation", "department"} & set(user)


def test_select_returns_exactly_the_selected_properties(graph: httpx.Client) -> None:
    """$select returns only what was asked for."""
    uid = _first_user(graph)["id"]
    body = graph.get(f"users/{uid}", params={"$select": "usageLocation,assignedLicenses"}).json()
    assert set(body) - {"@odata.context"} == {"usageLocation", "assignedLicenses"}


def test_select_of_an_unknown_property_is_refused(graph: httpx.Client) -> None:
    """An unknown property in $select answers 400."""
    response = graph.get("users", params={"$select": "id,shoeSize"})
    assert response.status_code == 400
    assert "shoeSize" in response.json()["error"]["message"]


def test_get_by_user_principal_name(graph: httpx.Client) -> None:
    """A user can be read by id or by UPN."""
    user = _first_user(graph)
    by_upn = graph.get(f"users/{user['userPrincipalName']}", params={"$select": "id"}).json()
    assert by_upn["id"] == user["id"]


def test_unknown_user_is_404(graph: httpx.Client) -> None:
    """An unknown user answers 404 Request_ResourceNotFound."""
    response = graph.get("users/nobody@contoso.example")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "Request_ResourceNotFound")


@pytest.mark.parametrize(
    "template",
    ["userPrincipalName eq '{userPrincipalName}'", "employeeId eq '{employeeId}'"],
    ids=["upn", "employeeId"],
)
def test_filter_by_upn_or_employee_id(graph: httpx.Client, template: str) -> None:
    """`eq` filters on userPrincipalName and employeeId find exactly that user."""
    user = _first_user(graph)
    body = graph.get("users", params={"$filter": template.format(**user), "$select": "id"}).json()
    assert [u["id"] for u in body["value"]] == [user["id"]]


def test_filter_by_assigned_sku(graph: httpx.Client) -> None:
    """assignedLicenses/any(x:x/skuId eq {id}) finds the users holding the SKU."""
    body = graph.get(
        "users",
        params={
            "$filter": f"assignedLicenses/any(x:x/skuId eq {COPILOT})",
            "$select": "assignedLicenses",
            "$top": "999",
        },
    ).json()
    assert body["value"]
    assert all(any(a["skuId"] == COPILOT for a in u["assignedLicenses"]) for u in body["value"])


@pytest.mark.parametrize(
    "clause",
    [
        "licenseAssignmentStates/any(x:x/skuId eq 639dec6b-bb19-468b-871c-c5c441c4b0cb)",
        f"assignedLicenses/any(x:x/skuId eq '{COPILOT}')",
        "jobTitle ne 'Counsel'",
        "businessPhones eq '1'",
        "displayName eq 'a' or displayName eq 'b'",
    ],
    ids=["states-not-filterable", "quoted-guid", "ne-needs-advanced", "not-filterable", "or"],
)
def test_filters_graph_does_not_support_are_refused(graph: httpx.Client, clause: str) -> None:
    """Filters Microsoft does not document for a property answer 400."""
    assert graph.get("users", params={"$filter": clause}).status_code == 400


def test_patch_changes_properties_and_answers_204(graph: httpx.Client) -> None:
    """PATCH /users/{id} answers 204 and the change is visible."""
    uid = _first_user(graph)["id"]
    response = graph.patch(
        f"users/{uid}", json={"usageLocation": "DE", "department": "Legal", "jobTitle": "Counsel"}
    )
    after = graph.get(f"users/{uid}", params={"$select": "usageLocation,department,jobTitle"}).json()
    assert response.status_code == 204
    assert (after["usageLocation"], after["department"], after["jobTitle"]) == ("DE", "Legal", "Counsel")


@pytest.mark.parametrize(
    "body",
    [
        {"assignedLicenses": []},
        {"id": "x"},
        {"usageLocation": "Germany"},
        {"accountEnabled": "yes"},
        {"shoeSize": 9},
    ],
    ids=["read-only-licenses", "read-only-id", "bad-usage-location", "bad-bool", "unknown"],
)
def test_bad_patches_are_refused(graph: httpx.Client, body: dict[str, Any]) -> None:
    """Read-only, unknown or ill-typed properties answer 400 and change nothing."""
    uid = _first_user(graph)["id"]
    assert graph.patch(f"users/{uid}", json=body).status_code == 400


def test_send_mail_is_accepted_and_captured(graph: httpx.Client, control: httpx.Client) -> None:
    """sendMail answers 202 and the control plane shows the message."""
    user = _first_user(graph)
    message = {
        "subject": "Copilot licence",
        "body": {"contentType": "Text", "content": "Hello"},
        "toRecipients": [{"emailAddress": {"address": "admin@contoso.example"}}],
    }
    response = graph.post(f"users/{user['id']}/sendMail", json={"message": message, "saveToSentItems": False})
    captured = control.get("mail").json()["value"]
    assert response.status_code == 202
    assert [(m["from"], m["message"]["subject"]) for m in captured] == [
        (user["userPrincipalName"], "Copilot licence")
    ]


def test_send_mail_without_recipients_is_refused(graph: httpx.Client) -> None:
    """A message without a valid recipient answers 400."""
    uid = _first_user(graph)["id"]
    response = graph.post(f"users/{uid}/sendMail", json={"message": {"subject": "x", "toRecipients": []}})
    assert response.status_code == 400


def test_direct_assign_license_needs_a_usage_location(graph: httpx.Client, control: httpx.Client) -> None:
    """Direct assignment to a user without usageLocation answers 400 (group-based would inherit)."""
    control.post(
        "users", json={"id": "u-direct", "userPrincipalName": "direct@contoso.example"}
    ).raise_for_status()
    body = {"addLicenses": [{"skuId": E1, "disabledPlans": []}], "removeLicenses": []}
    response = graph.post("users/u-direct/assignLicense", json=body)
    assert response.status_code == 400


def test_direct_assign_license_gives_a_seat_and_remove_frees_it(
    graph: httpx.Client, control: httpx.Client
) -> None:
    """assignLicense answers 200 with the user; the seat is consumed, then freed on removal."""
    control.post(
        "users", json={"id": "u-direct", "userPrincipalName": "direct@contoso.example", "usageLocation": "US"}
    ).raise_for_status()

    def e1_consumed() -> int:
        skus = graph.get("subscribedSkus").json()["value"]
        return int(next(s["consumedUnits"] for s in skus if s["skuId"] == E1))

    before = e1_consumed()
    added = graph.post(
        "users/u-direct/assignLicense", json={"addLicenses": [{"skuId": E1}], "removeLicenses": []}
    )
    during = e1_consumed()
    removed = graph.post("users/u-direct/assignLicense", json={"addLicenses": [], "removeLicenses": [E1]})
    assert (added.status_code, removed.status_code) == (200, 200)
    assert (during, e1_consumed()) == (before + 1, before)


@pytest.mark.parametrize(
    "body",
    [
        {"addLicenses": []},
        {"addLicenses": [{"skuId": "00000000-0000-0000-0000-000000000001"}], "removeLicenses": []},
        {"addLicenses": [], "removeLicenses": [E3]},
    ],
    ids=["missing-remove", "unknown-sku", "remove-not-direct"],
)
def test_bad_assign_license_bodies_are_refused(graph: httpx.Client, body: dict[str, Any]) -> None:
    """assignLicense needs both lists, known SKUs, and removes only direct licenses."""
    uid = _first_user(graph)["id"]
    assert graph.post(f"users/{uid}/assignLicense", json=body).status_code == 400


def test_direct_assignment_past_the_last_seat_is_refused(graph: httpx.Client, control: httpx.Client) -> None:
    """With no free seat a direct assignment answers 400."""
    control.post(
        "users", json={"id": "u-direct", "userPrincipalName": "direct@contoso.example", "usageLocation": "US"}
    ).raise_for_status()
    skus = graph.get("subscribedSkus").json()["value"]
    used = next(s["consumedUnits"] for s in skus if s["skuId"] == E1)
    control.post(f"skus/{E1}/seats", json={"enabled": used}).raise_for_status()
    response = graph.post(
        "users/u-direct/assignLicense", json={"addLicenses": [{"skuId": E1}], "removeLicenses": []}
    )
    assert response.status_code == 400
