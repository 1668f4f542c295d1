"""Groups conformance: filters, `$select`, members paging, member writes and Graph's refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.graph_session import group_id

ALREADY = (
    "One or more added object references already exist for the following modified properties: 'members'."
)


def _ref(object_id: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"}


def _members(graph: httpx.Client, gid: str) -> list[str]:
    body = graph.get(f"groups/{gid}/members", params={"$select": "id", "$top": "999"}).json()
    return [m["id"] for m in body["value"]]


def _outsiders(graph: httpx.Client, gid: str, count: int) -> list[str]:
    inside = set(_members(graph, gid))
    users = graph.get("users", params={"$select": "id", "$top": "999"}).json()["value"]
    return [u["id"] for u in users if u["id"] not in inside][:count]


def test_filter_by_display_name(graph: httpx.Client) -> None:
    """displayName eq finds the group."""
    body = graph.get("groups", params={"$filter": "displayName eq 'Copilot - EMEA'"}).json()
    assert [g["displayName"] for g in body["value"]] == ["Copilot - EMEA"]


def test_has_members_with_license_errors_is_filterable_but_never_returned(graph: httpx.Client) -> None:
    """hasMembersWithLicenseErrors eq true lists the groups with errors; the property is not returned."""
    body = graph.get("groups", params={"$filter": "hasMembersWithLicenseErrors eq true"}).json()
    names = {g["displayName"] for g in body["value"]}
    assert "Licensing - Microsoft 365 E3" in names
    assert "Licensing - Archive add-on" not in names
    assert "Copilot Pilots" not in names
    assert all("hasMembersWithLicenseErrors" not in g for g in body["value"])


def test_has_members_with_license_errors_eq_false_is_refused(graph: httpx.Client) -> None:
    """Only `eq true` is supported."""
    assert graph.get("groups", params={"$filter": "hasMembersWithLicenseErrors eq false"}).status_code == 400


def test_select_licensing_properties(graph: httpx.Client) -> None:
    """assignedLicenses and licenseProcessingState come back when selected."""
    gid = group_id(graph, "Copilot - EMEA")
    body = graph.get(
        f"groups/{gid}", params={"$select": "assignedLicenses,licenseProcessingState,groupTypes"}
    ).json()
    assert body["assignedLicenses"] == [
        {"disabledPlans": [], "skuId": "639dec6b-bb19-468b-871c-c5c441c4b0cb"}
    ]
    assert body["licenseProcessingState"] == {"state": "ProcessingComplete"}
    assert body["groupTypes"] == []


def test_default_group_properties_leave_out_licenses(graph: httpx.Client) -> None:
    """assignedLicenses is returned only on $select."""
    gid = group_id(graph, "Copilot - EMEA")
    body = graph.get(f"groups/{gid}").json()
    assert "assignedLicenses" not in body
    assert {"id", "displayName", "securityEnabled", "mailEnabled", "groupTypes"} <= set(body)


def test_members_page_with_next_links(graph: httpx.Client) -> None:
    """Members page with $top and @odata.nextLink; every member once."""
    gid = group_id(graph, "Licensing - Microsoft 365 E3")
    body = graph.get(f"groups/{gid}/members", params={"$top": "30", "$select": "id"}).json()
    ids = [m["id"] for m in body["value"]]
    while "@odata.nextLink" in body:
        body = graph.get(body["@odata.nextLink"]).json()
        ids += [m["id"] for m in body["value"]]
    assert len(ids) == len(set(ids)) == 104


def test_members_carry_their_type(graph: httpx.Client) -> None:
    """A nested group appears as #microsoft.graph.group, users as #microsoft.graph.user."""
    gid = group_id(graph, "Copilot Pilots")
    types = sorted(m["@odata.type"] for m in graph.get(f"groups/{gid}/members").json()["value"])
    assert types == ["#microsoft.graph.group", "#microsoft.graph.user"]


def test_add_member_answers_204_then_400_when_already_a_member(graph: httpx.Client) -> None:
    """POST members/$ref adds (204); adding the same member again answers 400 with Graph's message."""
    gid = group_id(graph, "Copilot Pilots")
    uid = _outsiders(graph, gid, 1)[0]
    first = graph.post(f"groups/{gid}/members/$ref", json=_ref(uid))
    second = graph.post(f"groups/{gid}/members/$ref", json=_ref(uid))
    assert first.status_code == 204
    assert (second.status_code, second.json()["error"]["message"]) == (400, ALREADY)
    assert uid in _members(graph, gid)


def test_add_unknown_object_is_404(graph: httpx.Client) -> None:
    """A reference to an object that does not exist answers 404."""
    gid = group_id(graph, "Copilot Pilots")
    response = graph.post(f"groups/{gid}/members/$ref", json=_ref("00000000-0000-0000-0000-00000000dead"))
    assert response.status_code == 404


def test_remove_member_answers_204_then_404(graph: httpx.Client) -> None:
    """DELETE members/{id}/$ref removes (204); removing a non-member answers 404."""
    gid = group_id(graph, "Copilot Pilots")
    uid = next(m for m in _members(graph, gid) if m != group_id(graph, "Copilot - EMEA"))
    first = graph.delete(f"groups/{gid}/members/{uid}/$ref")
    second = graph.delete(f"groups/{gid}/members/{uid}/$ref")
    assert (first.status_code, second.status_code) == (204, 404)
    assert uid not in _members(graph, gid)


def test_bind_adds_up_to_20_members_at_once(graph: httpx.Client) -> None:
    """PATCH with members@odata.bind adds every listed member (204)."""
    gid = group_id(graph, "Copilot Pilots")
    new = _outsiders(graph, gid, 20)
    urls = [_ref(u)["@odata.id"] for u in new]
    response = graph.patch(f"groups/{gid}", json={"members@odata.bind": urls})
    assert response.status_code == 204
    assert set(new) <= set(_members(graph, gid))


def test_bind_of_more_than_20_is_refused(graph: httpx.Client) -> None:
    """At most 20 references per request."""
    gid = group_id(graph, "Copilot Pilots")
    urls = [_ref(u)["@odata.id"] for u in _outsiders(graph, gid, 21)]
    assert graph.patch(f"groups/{gid}", json={"members@odata.bind": urls}).status_code == 400


def test_bind_fails_as_a_whole_when_one_is_already_a_member(graph: httpx.Client) -> None:
    """One existing member fails the whole PATCH with 400: nobody is added."""
    gid = group_id(graph, "Copilot Pilots")
    before = _members(graph, gid)
    new = _outsiders(graph, gid, 3)
    urls = [_ref(u)["@odata.id"] for u in [*new, before[-1]]]
    response = graph.patch(f"groups/{gid}", json={"members@odata.bind": urls})
    assert (response.status_code, response.json()["error"]["message"]) == (400, ALREADY)
    assert _members(graph, gid) == before


@pytest.mark.parametrize(
    "group", ["Sales (dynamic)", "Finance Team"], ids=["dynamic", "mail-enabled-security"]
)
@pytest.mark.parametrize("write", ["ref", "bind", "delete"])
def test_member_writes_are_refused_for_dynamic_and_mail_enabled_security_groups(
    graph: httpx.Client, group: str, write: str
) -> None:
    """Graph refuses member writes on dynamic groups and on mail-enabled security groups: 403
    Authorization_RequestDenied, as Microsoft's support article on this error shows."""
    gid = group_id(graph, group)
    members = _members(graph, gid)
    outsider = _outsiders(graph, gid, 1)[0]
    if write == "ref":
        response = graph.post(f"groups/{gid}/members/$ref", json=_ref(outsider))
    elif write == "bind":
        response = graph.patch(f"groups/{gid}", json={"members@odata.bind": [_ref(outsider)["@odata.id"]]})
    else:
        response = graph.delete(f"groups/{gid}/members/{members[0]}/$ref")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "Authorization_RequestDenied")
    assert _members(graph, gid) == members


def test_dynamic_group_follows_user_attributes(graph: httpx.Client) -> None:
    """Changing a user's department moves them in or out of the dynamic group."""
    gid = group_id(graph, "Sales (dynamic)")
    users: list[dict[str, Any]] = graph.get(
        "users", params={"$select": "id,department,accountEnabled", "$top": "999"}
    ).json()["value"]
    outsider = next(u["id"] for u in users if u["department"] != "Sales" and u["accountEnabled"])
    insider = next(u["id"] for u in users if u["department"] == "Sales" and u["accountEnabled"])
    assert insider in _members(graph, gid)
    graph.patch(f"users/{outsider}", json={"department": "Sales"}).raise_for_status()
    graph.patch(f"users/{insider}", json={"department": "Legal"}).raise_for_status()
    members = _members(graph, gid)
    assert (outsider in members, insider in members) == (True, False)


def test_member_reads_need_a_group_permission(graph: httpx.Client) -> None:
    """Unknown groups answer 404 on members too."""
    assert graph.get("groups/00000000-0000-0000-0000-000000000000/members").status_code == 404
