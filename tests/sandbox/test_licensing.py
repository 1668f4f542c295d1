"""Group-based licensing conformance: Entra's states, errors, seat accounting and the all-or-nothing rule."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.graph_session import COPILOT, consumed, group_id, license_states

E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
ARCHIVE = "ee02fd1b-340e-4a4b-b355-4a514e4c8943"


def _ref(object_id: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"}


def _users(graph: httpx.Client) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = graph.get(
        "users",
        params={"$select": "id,usageLocation,assignedLicenses,licenseAssignmentStates", "$top": "999"},
    ).json()["value"]
    return users


def _unlicensed_for_copilot(graph: httpx.Client) -> list[str]:
    """Users with a usage location, a base license and no Copilot entry at all."""
    return [
        u["id"]
        for u in _users(graph)
        if u["usageLocation"] in ("US", "DE", "GB", "FR")
        and u["assignedLicenses"]
        and not any(s["skuId"] == COPILOT for s in u["licenseAssignmentStates"])
    ]


def _entry(graph: httpx.Client, user_id: str, group: str | None, sku: str = COPILOT) -> dict[str, Any] | None:
    return next(
        (s for s in license_states(graph, user_id) if s["assignedByGroup"] == group and s["skuId"] == sku),
        None,
    )


def _fill_copilot_seats(graph: httpx.Client, control: httpx.Client, free: int = 0) -> None:
    control.post(
        f"skus/{COPILOT}/seats", json={"enabled": consumed(graph, COPILOT) + free}
    ).raise_for_status()


def test_a_new_member_gets_the_groups_license_and_loses_it_on_leaving(graph: httpx.Client) -> None:
    """The license flows to a direct member (one seat) and goes when they leave."""
    gid = group_id(graph, "Copilot - Americas")
    uid = _unlicensed_for_copilot(graph)[0]
    before = consumed(graph, COPILOT)
    graph.post(f"groups/{gid}/members/$ref", json=_ref(uid)).raise_for_status()
    entry = _entry(graph, uid, gid)
    during = consumed(graph, COPILOT)
    graph.delete(f"groups/{gid}/members/{uid}/$ref").raise_for_status()
    assert entry is not None
    assert (entry["state"], entry["error"], entry["disabledPlans"]) == ("Active", "None", [])
    assert (during, consumed(graph, COPILOT)) == (before + 1, before)
    assert _entry(graph, uid, gid) is None


def test_the_member_past_the_last_seat_gets_count_violation(
    graph: httpx.Client, control: httpx.Client
) -> None:
    """No free seat: state Error, error CountViolation, no license, and the group reports the member."""
    gid = group_id(graph, "Copilot - Americas")
    uid = _unlicensed_for_copilot(graph)[0]
    _fill_copilot_seats(graph, control)
    graph.post(f"groups/{gid}/members/$ref", json=_ref(uid)).raise_for_status()
    entry = _entry(graph, uid, gid)
    held = graph.get(f"users/{uid}", params={"$select": "assignedLicenses"}).json()["assignedLicenses"]
    with_errors = graph.get(f"groups/{gid}/membersWithLicenseErrors", params={"$select": "id"}).json()[
        "value"
    ]
    assert entry is not None
    assert (entry["state"], entry["error"]) == ("Error", "CountViolation")
    assert COPILOT not in {a["skuId"] for a in held}
    assert uid in {u["id"] for u in with_errors}


def test_a_freed_seat_goes_to_the_errored_user_only_when_reprocessed(
    graph: httpx.Client, control: httpx.Client
) -> None:
    """Freeing a seat does not fix an errored user until reprocessLicenseAssignment."""
    gid = group_id(graph, "Copilot - Americas")
    uid = _unlicensed_for_copilot(graph)[0]
    _fill_copilot_seats(graph, control)
    graph.post(f"groups/{gid}/members/$ref", json=_ref(uid)).raise_for_status()
    holder = next(m["id"] for m in graph.get(f"groups/{gid}/members").json()["value"] if m["id"] != uid)
    graph.delete(f"groups/{gid}/members/{holder}/$ref").raise_for_status()
    still = _entry(graph, uid, gid)
    reprocess = graph.post(f"users/{uid}/reprocessLicenseAssignment")
    after = _entry(graph, uid, gid)
    assert still is not None
    assert still["error"] == "CountViolation"
    assert reprocess.status_code == 200
    assert after is not None
    assert (after["state"], after["error"]) == ("Active", "None")


def test_a_sku_not_sold_in_the_usage_location_is_prohibited(graph: httpx.Client) -> None:
    """The default tenant's EMEA Copilot group has a member in RU, where Copilot is not sold."""
    gid = group_id(graph, "Copilot - EMEA")
    uid = graph.get("users", params={"$filter": "usageLocation eq 'RU'", "$select": "id"}).json()["value"][0][
        "id"
    ]
    entry = _entry(graph, uid, gid)
    assert entry is not None
    assert (entry["state"], entry["error"]) == ("Error", "ProhibitedInUsageLocationViolation")


def test_a_user_without_usage_location_inherits_the_tenants(
    graph: httpx.Client, control: httpx.Client
) -> None:
    """Group-based licensing uses the tenant's location when the user has none (and never sets it)."""
    control.post(
        "users", json={"id": "u-noloc", "userPrincipalName": "noloc@contoso.example"}
    ).raise_for_status()
    gid = group_id(graph, "Copilot - APAC")
    graph.post(f"groups/{gid}/members/$ref", json=_ref("u-noloc")).raise_for_status()
    entry = _entry(graph, "u-noloc", gid)
    location = graph.get("users/u-noloc", params={"$select": "usageLocation"}).json()["usageLocation"]
    assert entry is not None
    assert (entry["state"], location) == ("Active", None)


def test_conflicting_plans_give_mutually_exclusive_violation(graph: httpx.Client) -> None:
    """Users holding E1 directly cannot take E3 by group: Exchange Online Plan 1 and Plan 2 conflict."""
    gid = group_id(graph, "Licensing - Microsoft 365 E3")
    errored = graph.get(f"groups/{gid}/membersWithLicenseErrors", params={"$select": "id"}).json()["value"]
    errors = {
        e["error"] for u in errored for e in license_states(graph, u["id"]) if e["assignedByGroup"] == gid
    }
    assert len(errored) == 4
    assert errors == {"MutuallyExclusiveViolation"}


def test_an_add_on_with_its_prerequisite_in_the_same_group_is_assigned(graph: httpx.Client) -> None:
    """The archive group carries E3 (Exchange Online only) with the add-on, so its member gets both."""
    gid = group_id(graph, "Licensing - Archive add-on")
    member = graph.get(f"groups/{gid}/members").json()["value"][0]["id"]
    entries = {e["skuId"]: e for e in license_states(graph, member) if e["assignedByGroup"] == gid}
    assert {sku: (e["state"], e["error"]) for sku, e in entries.items()} == {
        E3: ("Active", "None"),
        ARCHIVE: ("Active", "None"),
    }


def test_a_group_add_on_without_its_prerequisite_is_refused(graph: httpx.Client) -> None:
    """Entra refuses to assign an add-on to a group that does not enable its prerequisite plan itself."""
    gid = group_id(graph, "Copilot - APAC")
    alone = graph.post(
        f"groups/{gid}/assignLicense", json={"addLicenses": [{"skuId": ARCHIVE}], "removeLicenses": []}
    )
    archive_group = group_id(graph, "Licensing - Archive add-on")
    stripped = graph.post(
        f"groups/{archive_group}/assignLicense", json={"addLicenses": [], "removeLicenses": [E3]}
    )
    licensed = graph.get(f"groups/{gid}", params={"$select": "assignedLicenses"}).json()["assignedLicenses"]
    assert (alone.status_code, alone.json()["error"]["code"]) == (400, "Request_BadRequest")
    assert stripped.status_code == 400
    assert [a["skuId"] for a in licensed] == [COPILOT]


def test_leaving_the_group_that_gives_a_prerequisite_gives_dependency_violation(
    graph: httpx.Client,
) -> None:
    """A user holding the archive add-on directly keeps E3 when removed from the E3 group: the entry stays,
    ActiveWithError / DependencyViolation, seat kept; once the add-on goes, reprocessing removes it."""
    gid = group_id(graph, "Licensing - Microsoft 365 E3")
    uid = next(
        u["id"]
        for u in _users(graph)
        if any(e["skuId"] == ARCHIVE and e["assignedByGroup"] is None for e in u["licenseAssignmentStates"])
    )
    before = consumed(graph, E3)
    graph.delete(f"groups/{gid}/members/{uid}/$ref").raise_for_status()
    stuck = _entry(graph, uid, gid, sku=E3)
    held = consumed(graph, E3)
    graph.post(
        f"users/{uid}/assignLicense", json={"addLicenses": [], "removeLicenses": [ARCHIVE]}
    ).raise_for_status()
    graph.post(f"users/{uid}/reprocessLicenseAssignment").raise_for_status()
    assert stuck is not None
    assert (stuck["state"], stuck["error"], held) == ("ActiveWithError", "DependencyViolation", before)
    assert _entry(graph, uid, gid, sku=E3) is None
    assert consumed(graph, E3) == before - 1


def test_a_direct_add_on_needs_its_prerequisite_on_the_user(graph: httpx.Client) -> None:
    """Direct assignment of the add-on to a user without any Exchange Online plan is refused."""
    uid = next(
        u["id"]
        for u in graph.get(
            "users", params={"$select": "id,usageLocation,assignedLicenses", "$top": "999"}
        ).json()["value"]
        if u["usageLocation"] not in (None, "RU") and not u["assignedLicenses"]
    )
    refused = graph.post(
        f"users/{uid}/assignLicense", json={"addLicenses": [{"skuId": ARCHIVE}], "removeLicenses": []}
    )
    assert refused.status_code == 400
    assert license_states(graph, uid) == []


def test_a_duplicate_proxy_address_gives_uniqueness_violation_for_exchange_products(
    graph: httpx.Client, control: httpx.Client
) -> None:
    """A user sharing a proxy address gets UniquenessViolation from a group with Exchange Online, none from
    Copilot alone; once the address is unique again, reprocessing assigns the license."""
    shared = ["SMTP:shared@contoso.example"]
    for uid in ("u-dup1", "u-dup2"):
        control.post(
            "users",
            json={
                "id": uid,
                "userPrincipalName": f"{uid}@contoso.example",
                "usageLocation": "US",
                "proxyAddresses": shared if uid == "u-dup1" else ["smtp:Shared@contoso.example"],
            },
        ).raise_for_status()
    e3_group = group_id(graph, "Licensing - Microsoft 365 E3")
    copilot_group = group_id(graph, "Copilot - Americas")
    for gid in (e3_group, copilot_group):
        graph.post(f"groups/{gid}/members/$ref", json=_ref("u-dup1")).raise_for_status()
    e3_entry = _entry(graph, "u-dup1", e3_group, sku=E3)
    copilot_entry = _entry(graph, "u-dup1", copilot_group)
    control.patch("users/u-dup2", json={"proxyAddresses": []}).raise_for_status()
    graph.post("users/u-dup1/reprocessLicenseAssignment").raise_for_status()
    fixed = _entry(graph, "u-dup1", e3_group, sku=E3)
    assert e3_entry is not None
    assert copilot_entry is not None
    assert fixed is not None
    assert (e3_entry["state"], e3_entry["error"]) == ("Error", "UniquenessViolation")
    assert (copilot_entry["state"], copilot_entry["error"]) == ("Active", "None")
    assert (fixed["state"], fixed["error"]) == ("Active", "None")


def test_if_one_product_fails_none_of_the_groups_products_is_assigned(
    graph: httpx.Client, control: httpx.Client
) -> None:
    """A group assigning Copilot and E5: with E5 full, the member gets neither."""
    uid = _unlicensed_for_copilot(graph)[0]
    control.post(
        "groups", json={"id": "g-bundle", "displayName": "Bundle", "securityEnabled": True, "members": [uid]}
    ).raise_for_status()
    control.post(f"skus/{E5}/seats", json={"enabled": consumed(graph, E5)}).raise_for_status()
    copilot_before = consumed(graph, COPILOT)
    response = graph.post(
        "groups/g-bundle/assignLicense",
        json={"addLicenses": [{"skuId": COPILOT, "disabledPlans": []}, {"skuId": E5}], "removeLicenses": []},
    )
    entries = {e["skuId"]: e for e in license_states(graph, uid) if e["assignedByGroup"] == "g-bundle"}
    held = {
        a["skuId"]
        for a in graph.get(f"users/{uid}", params={"$select": "assignedLicenses"}).json()["assignedLicenses"]
    }
    assert response.status_code == 202
    assert {sku: e["state"] for sku, e in entries.items()} == {COPILOT: "Error", E5: "Error"}
    assert entries[E5]["error"] == "CountViolation"
    assert COPILOT not in held
    assert consumed(graph, COPILOT) == copilot_before


def test_one_seat_per_sku_however_many_groups_assign_it(graph: httpx.Client) -> None:
    """A user licensed by two groups has two entries and consumes one seat."""
    americas, emea = group_id(graph, "Copilot - Americas"), group_id(graph, "Copilot - EMEA")
    uid = _unlicensed_for_copilot(graph)[0]
    before = consumed(graph, COPILOT)
    graph.post(f"groups/{americas}/members/$ref", json=_ref(uid)).raise_for_status()
    graph.post(f"groups/{emea}/members/$ref", json=_ref(uid)).raise_for_status()
    entries = [e for e in license_states(graph, uid) if e["skuId"] == COPILOT]
    assert sorted(e["assignedByGroup"] for e in entries) == sorted([americas, emea])
    assert {e["state"] for e in entries} == {"Active"}
    assert consumed(graph, COPILOT) == before + 1


def test_nested_group_members_get_nothing(graph: httpx.Client) -> None:
    """Licenses flow to direct members only: the nested group's members get no entry."""
    pilots, emea = group_id(graph, "Copilot Pilots"), group_id(graph, "Copilot - EMEA")
    response = graph.post(
        f"groups/{pilots}/assignLicense", json={"addLicenses": [{"skuId": COPILOT}], "removeLicenses": []}
    )
    direct = [m["id"] for m in graph.get(f"groups/{pilots}/members").json()["value"] if m["id"] != emea]
    nested = [m["id"] for m in graph.get(f"groups/{emea}/members").json()["value"]]
    assert response.status_code == 202
    assert all(_entry(graph, uid, pilots) is not None for uid in direct)
    assert all(_entry(graph, uid, pilots) is None for uid in nested)


def test_copilot_is_not_refused_to_a_user_without_a_base_license(graph: httpx.Client) -> None:
    """Entra does not enforce Copilot's base-license prerequisite; neither does the sandbox."""
    gid = group_id(graph, "Copilot - Americas")
    uid = next(
        u["id"] for u in _users(graph) if not u["assignedLicenses"] and u["usageLocation"] not in (None, "RU")
    )
    graph.post(f"groups/{gid}/members/$ref", json=_ref(uid)).raise_for_status()
    entry = _entry(graph, uid, gid)
    assert entry is not None
    assert entry["state"] == "Active"


def test_processing_waits_for_the_licensing_delay(graph: httpx.Client, control: httpx.Client) -> None:
    """With a delay the group is QueuedForProcessing and the member has no entry yet."""
    control.post("licensing", json={"delay_seconds": 3600}).raise_for_status()
    gid = group_id(graph, "Copilot - Americas")
    uid = _unlicensed_for_copilot(graph)[0]
    graph.post(f"groups/{gid}/members/$ref", json=_ref(uid)).raise_for_status()
    state = graph.get(f"groups/{gid}", params={"$select": "licenseProcessingState"}).json()
    assert state["licenseProcessingState"] == {"state": "QueuedForProcessing"}
    assert _entry(graph, uid, gid) is None


def test_removing_a_groups_license_removes_its_entries(graph: httpx.Client) -> None:
    """assignLicense with removeLicenses takes the SKU away from every member."""
    gid = group_id(graph, "Copilot - APAC")
    members = [m["id"] for m in graph.get(f"groups/{gid}/members").json()["value"]]
    response = graph.post(
        f"groups/{gid}/assignLicense", json={"addLicenses": [], "removeLicenses": [COPILOT]}
    )
    assert response.status_code == 202
    assert all(_entry(graph, uid, gid) is None for uid in members)


def test_a_held_license_that_now_fails_becomes_active_with_error(graph: httpx.Client) -> None:
    """Reprocessing an assignment the user already holds keeps the seat but reports the new error."""
    gid = group_id(graph, "Copilot - Americas")
    uid = _unlicensed_for_copilot(graph)[0]
    graph.post(f"groups/{gid}/members/$ref", json=_ref(uid)).raise_for_status()
    graph.patch(f"users/{uid}", json={"usageLocation": "RU"}).raise_for_status()
    graph.post(f"users/{uid}/reprocessLicenseAssignment").raise_for_status()
    entry = _entry(graph, uid, gid)
    held = graph.get(f"users/{uid}", params={"$select": "assignedLicenses"}).json()["assignedLicenses"]
    assert entry is not None
    assert (entry["state"], entry["error"]) == ("ActiveWithError", "ProhibitedInUsageLocationViolation")
    assert COPILOT in {a["skuId"] for a in held}
