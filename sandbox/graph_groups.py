"""Graph's `/groups` slice: list (`displayName eq`, `hasMembersWithLicenseErrors eq true`), get with
`$select`, members (paged), member writes (`$ref`, `members@odata.bind` up to 20, removal) with Graph's
refusals, assignLicense (202) and membersWithLicenseErrors."""

from __future__ import annotations

import re
from typing import Any

from sandbox import directory
from sandbox.graph_errors import GraphError, bad_request, not_found
from sandbox.graph_users import USER_DEFAULT, USER_KNOWN, parse_assign_body, render_user
from sandbox.model import Group, User
from sandbox.odata import check_options, page, parse_filter, parse_select
from sandbox.router import GraphRequest, GraphResponse, Router
from sandbox.state import SandboxState

GROUP_DEFAULT = [
    "id",
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "securityEnabled",
    "visibility",
]
GROUP_PROPERTIES = [
    *GROUP_DEFAULT,
    "assignedLicenses",
    "licenseProcessingState",
    "hasMembersWithLicenseErrors",
]
GROUP_KNOWN = {p.lower(): p for p in GROUP_PROPERTIES}
GROUP_FILTER_EQ = {
    "id",
    "displayName",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "hasMembersWithLicenseErrors",
}
GROUP_WRITABLE = {
    "displayName",
    "description",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
}
_HAS_ERRORS_TRUE = re.compile(r"hasMembersWithLicenseErrors\s+eq\s+true\b", re.IGNORECASE)
MEMBER_BIND = "members@odata.bind"
ALREADY_MEMBER = (
    "One or more added object references already exist for the following modified properties: 'members'."
)

READ = {
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
}
MEMBER_READ = READ | {"GroupMember.ReadWrite.All"}
MEMBER_WRITE = {"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
LICENSE_WRITE = {"LicenseAssignment.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
GROUP_PROPS_WRITE = {"Group.ReadWrite.All", "Directory.ReadWrite.All"}


def _has_errors(group: Group, users: dict[str, User]) -> bool:
    return any(
        users[m].licenses.get((group.id, sku)) is not None
        and users[m].licenses[(group.id, sku)].state in ("Error", "ActiveWithError")
        for m in group.members
        if m in users
        for sku in group.licenses
    )


def register(router: Router, state: SandboxState, graph_url: str) -> None:  # noqa: PLR0915 - one small closure per route
    """Add the group operations to the router."""

    def render(group: Group, selected: list[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for prop in selected if selected is not None else GROUP_DEFAULT:
            if prop == "assignedLicenses":
                out[prop] = [{"disabledPlans": d, "skuId": s} for s, d in group.licenses.items()]
            elif prop == "licenseProcessingState":
                out[prop] = {"state": group.processing_state} if group.processing_state else None
            elif prop == "hasMembersWithLicenseErrors":
                out[prop] = None  # never returned by Graph, only filterable
            elif prop == "groupTypes":
                out[prop] = list(group.props.get("groupTypes") or [])
            else:
                out[prop] = group.props.get(prop)
        return out

    def find(request: GraphRequest) -> Group:
        gid = request.params["id"]
        group = state.tenant.groups.get(gid)
        if group is None:
            raise not_found(gid)
        return group

    def getter(group: Group, prop: str) -> Any:
        if prop == "hasMembersWithLicenseErrors":
            return _has_errors(group, state.tenant.users)
        return group.props.get(prop)

    def ctx(suffix: str) -> str:
        return f"{graph_url}/$metadata#{suffix}"

    async def list_groups(request: GraphRequest) -> GraphResponse:
        check_options(request.query)
        selected = parse_select(request.query, GROUP_KNOWN, "group")
        groups = list(state.tenant.groups.values())
        raw_filter = request.query.get("$filter")
        if raw_filter is not None:
            lowered = raw_filter.lower()
            if "hasmemberswithlicenseerrors" in lowered and not _HAS_ERRORS_TRUE.search(raw_filter):
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property "
                    "'hasMembersWithLicenseErrors' of resource 'Group'.",
                )
            match = parse_filter(
                raw_filter, resource="Group", known=GROUP_KNOWN, eq_props=GROUP_FILTER_EQ, getter=getter
            )
            groups = [g for g in groups if match(g)]
        chunk, next_link = page(groups, request.query, f"{graph_url}/groups")
        body: dict[str, Any] = {
            "@odata.context": ctx("groups"),
            "value": [render(g, selected) for g in chunk],
        }
        if next_link:
            body["@odata.nextLink"] = next_link
        return GraphResponse(200, body)

    async def get_group(request: GraphRequest) -> GraphResponse:
        check_options(request.query)
        selected = parse_select(request.query, GROUP_KNOWN, "group")
        group = find(request)
        return GraphResponse(200, {"@odata.context": ctx("groups/$entity"), **render(group, selected)})

    def render_member(member_id: str, selected_user: list[str] | None) -> dict[str, Any]:
        user = state.tenant.users.get(member_id)
        if user is not None:
            return {"@odata.type": "#microsoft.graph.user", **render_user(user, selected_user)}
        group = state.tenant.groups[member_id]
        fields = (
            [p for p in selected_user if p in GROUP_KNOWN.values()] if selected_user is not None else None
        )
        return {"@odata.type": "#microsoft.graph.group", **render(group, fields)}

    async def list_members(request: GraphRequest) -> GraphResponse:
        check_options(request.query)
        if "$filter" in request.query:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        group = find(request)
        selected = parse_select(request.query, {**GROUP_KNOWN, **USER_KNOWN}, "directoryObject")
        members = [m for m in group.members if m in state.tenant.users or m in state.tenant.groups]
        chunk, next_link = page(members, request.query, f"{graph_url}/groups/{group.id}/members")
        body: dict[str, Any] = {
            "@odata.context": ctx("directoryObjects"),
            "value": [render_member(m, selected) for m in chunk],
        }
        if next_link:
            body["@odata.nextLink"] = next_link
        return GraphResponse(200, body)

    async def members_with_errors(request: GraphRequest) -> GraphResponse:
        check_options(request.query)
        group = find(request)
        selected = parse_select(request.query, USER_KNOWN, "user")
        users = [
            u
            for m in group.members
            if (u := state.tenant.users.get(m)) is not None
            and any(
                e.group_id == group.id and e.state in ("Error", "ActiveWithError")
                for e in u.licenses.values()
            )
        ]
        chunk, next_link = page(
            users, request.query, f"{graph_url}/groups/{group.id}/membersWithLicenseErrors"
        )
        body: dict[str, Any] = {
            "@odata.context": ctx("directoryObjects"),
            "value": [{"@odata.type": "#microsoft.graph.user", **render_user(u, selected)} for u in chunk],
        }
        if next_link:
            body["@odata.nextLink"] = next_link
        return GraphResponse(200, body)

    def refuse_member_writes(group: Group) -> None:
        # Microsoft's support article "Troubleshoot 403 error when adding a user to a group using Microsoft
        # Graph API": groups Graph cannot manage (mail-enabled security, distribution; dynamic membership)
        # answer 403 Authorization_RequestDenied, whatever permission the app holds.
        if group.dynamic or group.mail_enabled_security:
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )

    def member_id_from(url: Any) -> str:
        if not isinstance(url, str) or "/" not in url:
            raise bad_request("Invalid URL format specified in @odata.bind for members")
        parts = url.rstrip("/").split("/")
        if len(parts) < 2 or parts[-2].lower() not in ("directoryobjects", "users", "groups"):
            raise bad_request("Invalid URL format specified in @odata.bind for members")
        return parts[-1]

    def check_new_members(group: Group, ids: list[str]) -> None:
        for member_id in ids:
            if member_id not in state.tenant.users and member_id not in state.tenant.groups:
                raise not_found(member_id)
            if member_id == group.id:
                raise bad_request("A group cannot be a member of itself.")
        if len(set(ids)) != len(ids) or any(m in group.members for m in ids):
            raise bad_request(ALREADY_MEMBER)

    async def add_member(request: GraphRequest) -> GraphResponse:
        group = find(request)
        body = request.json_object()
        refuse_member_writes(group)
        if "@odata.id" not in body:
            raise bad_request("Invalid request: the '@odata.id' reference is required.")
        member_id = member_id_from(body["@odata.id"])
        check_new_members(group, [member_id])
        directory.add_members(state, group, [member_id])
        return GraphResponse(204)

    async def remove_member(request: GraphRequest) -> GraphResponse:
        group = find(request)
        refuse_member_writes(group)
        member_id = request.params["member"]
        if member_id not in group.members:
            raise not_found(member_id)
        directory.remove_members(state, group, [member_id])
        return GraphResponse(204)

    async def patch_group(request: GraphRequest) -> GraphResponse:
        group = find(request)
        body = request.json_object()
        binds = body.get(MEMBER_BIND)
        props = {k: v for k, v in body.items() if k != MEMBER_BIND}
        for prop in props:
            if GROUP_KNOWN.get(prop.lower()) not in GROUP_WRITABLE:
                raise bad_request(
                    f"Property '{prop}' does not exist as a declared property or extension property."
                )
        if props and not (request.roles & GROUP_PROPS_WRITE):
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        ids: list[str] = []
        if binds is not None:
            if not isinstance(binds, list):
                raise bad_request("Invalid value for members@odata.bind: an array of URLs is expected.")
            if len(binds) > 20:
                raise bad_request(
                    "The request exceeds the maximum number of 20 references allowed in members@odata.bind."
                )
            refuse_member_writes(group)
            ids = [member_id_from(u) for u in binds]
            check_new_members(group, ids)
        if props:
            group.props.update({GROUP_KNOWN[k.lower()]: v for k, v in props.items()})
            state.emit("group_updated", group.id, None)
            if {"membershipRule", "membershipRuleProcessingState"} & {GROUP_KNOWN[k.lower()] for k in props}:
                directory.reevaluate_group(state, group)
        directory.add_members(state, group, ids)
        return GraphResponse(204)

    async def assign_license(request: GraphRequest) -> GraphResponse:
        group = find(request)
        add, remove = parse_assign_body(request.json_object(), state)
        if not group.props.get("securityEnabled"):
            raise bad_request("License assignment is only supported for security-enabled groups.")
        directory.set_group_licenses(state, group, add, remove)
        return GraphResponse(202, {"@odata.context": ctx("groups/$entity"), **render(group, None)})

    router.add("GET", "/groups", list_groups, permissions=READ, cost=1)
    router.add("GET", "/groups/{id}", get_group, permissions=READ, cost=1)
    router.add("PATCH", "/groups/{id}", patch_group, permissions=MEMBER_WRITE, write=True)
    router.add("GET", "/groups/{id}/members", list_members, permissions=MEMBER_READ, cost=3)
    router.add("POST", "/groups/{id}/members/$ref", add_member, permissions=MEMBER_WRITE, write=True)
    router.add(
        "DELETE", "/groups/{id}/members/{member}/$ref", remove_member, permissions=MEMBER_WRITE, write=True
    )
    router.add("POST", "/groups/{id}/assignLicense", assign_license, permissions=LICENSE_WRITE, write=True)
    router.add(
        "GET", "/groups/{id}/membersWithLicenseErrors", members_with_errors, permissions=MEMBER_READ, cost=1
    )


__all__ = ["GROUP_DEFAULT", "USER_DEFAULT", "register"]
