"""Graph's `/users` slice: list, get (id or UPN), `$select`/`$filter`/`$top`, PATCH, assignLicense,
reprocessLicenseAssignment and sendMail (captured)."""

from __future__ import annotations

import re
from typing import Any

from sandbox import directory
from sandbox.graph_errors import GraphError, bad_request, not_found
from sandbox.model import User, iso
from sandbox.odata import check_options, guid_literal, page, parse_filter, parse_select
from sandbox.router import GraphRequest, GraphResponse, Router
from sandbox.state import SandboxState

USER_DEFAULT = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
]
USER_PROPERTIES = [
    *USER_DEFAULT,
    "accountEnabled",
    "assignedLicenses",
    "licenseAssignmentStates",
    "usageLocation",
    "department",
    "companyName",
    "country",
    "city",
    "state",
    "streetAddress",
    "postalCode",
    "employeeId",
    "employeeType",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "createdDateTime",
    "mailNickname",
    "userType",
    "otherMails",
    "proxyAddresses",
]
USER_KNOWN = {p.lower(): p for p in USER_PROPERTIES}
USER_FILTER_EQ = {
    "id",
    "userPrincipalName",
    "employeeId",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "mailNickname",
    "accountEnabled",
    "usageLocation",
    "userType",
    "department",
    "jobTitle",
    "country",
    "companyName",
    "city",
    "employeeType",
}
WRITABLE = {
    "accountEnabled",
    "department",
    "jobTitle",
    "country",
    "usageLocation",
    "companyName",
    "city",
    "state",
    "streetAddress",
    "postalCode",
    "displayName",
    "givenName",
    "surname",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "employeeId",
    "employeeType",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "mail",
    "mailNickname",
    "preferredLanguage",
    "userPrincipalName",
    "otherMails",
}
READ_ONLY = {
    "id",
    "createdDateTime",
    "assignedLicenses",
    "licenseAssignmentStates",
    "proxyAddresses",
    "userType",
}
_EXACT = re.compile(r"^\s*(userPrincipalName|id)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_USAGE_LOCATION = re.compile(r"^[A-Z]{2}$")

READ = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
WRITE = {"User.ReadWrite.All", "Directory.ReadWrite.All"}
LICENSE_WRITE = {"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}


def render_user(user: User, selected: list[str] | None) -> dict[str, Any]:
    """A user in Graph's shape: the default properties, or exactly the selected ones."""
    out: dict[str, Any] = {}
    for prop in selected if selected is not None else USER_DEFAULT:
        if prop == "assignedLicenses":
            out[prop] = user.assigned_licenses()
        elif prop == "licenseAssignmentStates":
            out[prop] = [e.to_graph() for e in user.licenses.values()]
        elif prop in ("businessPhones", "otherMails", "proxyAddresses"):
            out[prop] = list(user.props.get(prop) or [])
        else:
            out[prop] = user.props.get(prop)
    return out


def _get_prop(user: User, prop: str) -> Any:
    return user.props.get(prop)


def _sku_lambda(text: str) -> Any:
    sku = guid_literal(text, "User", "assignedLicenses")
    return lambda u: sku in u.held_skus()


def register(router: Router, state: SandboxState, graph_url: str) -> None:  # noqa: PLR0915 - one small closure per route
    """Add the user operations to the router."""

    def find(request: GraphRequest) -> User:
        key = request.params["id"]
        user = state.tenant.find_user(key)
        if user is None:
            raise not_found(key)
        return user

    def context(selected: list[str] | None, entity: bool) -> str:
        sel = f"({','.join(selected)})" if selected else ""
        return f"{graph_url}/$metadata#users{sel}{'/$entity' if entity else ''}"

    async def list_users(request: GraphRequest) -> GraphResponse:
        check_options(request.query)
        selected = parse_select(request.query, USER_KNOWN, "user")
        users: list[User] = list(state.tenant.users.values())
        raw_filter = request.query.get("$filter")
        if raw_filter is not None:
            match = parse_filter(
                raw_filter,
                resource="User",
                known=USER_KNOWN,
                eq_props=USER_FILTER_EQ,
                getter=_get_prop,
                lambdas={"assignedLicenses/any/skuid": _sku_lambda},
            )
            exact = _EXACT.match(raw_filter)
            if exact:  # An exact UPN or id lookup needs no scan (the common case at 100,000 users).
                found = state.tenant.find_user(exact.group(2).replace("''", "'"))
                users = [found] if found is not None and match(found) else []
            else:
                users = [u for u in users if match(u)]
        chunk, next_link = page(users, request.query, f"{graph_url}/users")
        body: dict[str, Any] = {
            "@odata.context": context(selected, False),
            "value": [render_user(u, selected) for u in chunk],
        }
        if next_link:
            body["@odata.nextLink"] = next_link
        return GraphResponse(200, body)

    async def get_user(request: GraphRequest) -> GraphResponse:
        check_options(request.query)
        selected = parse_select(request.query, USER_KNOWN, "user")
        user = find(request)
        return GraphResponse(200, {"@odata.context": context(selected, True), **render_user(user, selected)})

    async def patch_user(request: GraphRequest) -> GraphResponse:
        user = find(request)
        changes = request.json_object()
        for prop, value in changes.items():
            canonical = USER_KNOWN.get(prop.lower(), prop)
            if canonical in READ_ONLY:
                raise bad_request(f"Property '{prop}' is read-only and cannot be set.")
            if canonical not in WRITABLE:
                raise bad_request(
                    f"Property '{prop}' does not exist as a declared property or extension property."
                )
            _validate(canonical, value)
            if canonical == "userPrincipalName":
                other = state.tenant.upn_index.get(str(value).lower())
                if other is not None and other != user.id:
                    raise bad_request(
                        "Another object with the same value for property userPrincipalName already exists."
                    )
        directory.update_user(state, user, {USER_KNOWN.get(k.lower(), k): v for k, v in changes.items()})
        return GraphResponse(204)

    async def assign_license(request: GraphRequest) -> GraphResponse:
        user = find(request)
        add, remove = parse_assign_body(request.json_object(), state)
        directory.assign_user_licenses(state, user, add, remove)
        return GraphResponse(200, {"@odata.context": context(None, True), **render_user(user, None)})

    async def reprocess(request: GraphRequest) -> GraphResponse:
        user = find(request)
        state.licensing.queue_user(user.id)
        return GraphResponse(200, {"@odata.context": context(None, True), **render_user(user, None)})

    async def send_mail(request: GraphRequest) -> GraphResponse:
        key = request.params["id"]
        user = state.tenant.find_user(key)
        if user is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        body = request.json_object()
        message = body.get("message")
        if not isinstance(message, dict):
            raise GraphError(400, "ErrorInvalidRequest", "The 'message' parameter is required.")
        recipients = [
            r.get("emailAddress", {}).get("address")
            for field in ("toRecipients", "ccRecipients", "bccRecipients")
            for r in message.get(field) or []
            if isinstance(r, dict)
        ]
        if not recipients or not all(isinstance(a, str) and "@" in a for a in recipients):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        state.captures.mail.append(
            {
                "from": user.props.get("userPrincipalName"),
                "userId": user.id,
                "message": message,
                "saveToSentItems": body.get("saveToSentItems", True),
                "receivedDateTime": iso(state.clock.now()),
            }
        )
        return GraphResponse(202)

    router.add("GET", "/users", list_users, permissions=READ, cost=2)
    router.add("GET", "/users/{id}", get_user, permissions=READ, cost=1)
    router.add("PATCH", "/users/{id}", patch_user, permissions=WRITE, write=True)
    router.add("POST", "/users/{id}/assignLicense", assign_license, permissions=LICENSE_WRITE, write=True)
    router.add("POST", "/users/{id}/reprocessLicenseAssignment", reprocess, permissions=WRITE, write=True)
    router.add("POST", "/users/{id}/sendMail", send_mail, permissions={"Mail.Send"}, write=True)


def _validate(prop: str, value: Any) -> None:
    if prop == "accountEnabled" and not isinstance(value, bool):
        raise bad_request("Invalid value specified for property 'accountEnabled' of resource 'User'.")
    if (
        prop == "usageLocation"
        and value is not None
        and not (isinstance(value, str) and _USAGE_LOCATION.match(value))
    ):
        raise bad_request("Invalid value specified for property 'usageLocation' of resource 'User'.")
    if prop in ("businessPhones", "otherMails") and not isinstance(value, list):
        raise bad_request(f"Invalid value specified for property '{prop}' of resource 'User'.")
    if prop == "userPrincipalName" and not (isinstance(value, str) and "@" in value):
        raise bad_request("Invalid value specified for property 'userPrincipalName' of resource 'User'.")


def parse_assign_body(body: dict[str, Any], state: SandboxState) -> tuple[dict[str, list[str]], list[str]]:
    """Validate an assignLicense body: both lists required, SKUs known, disabled plans from the SKU."""
    if "addLicenses" not in body or "removeLicenses" not in body:
        raise bad_request(
            "Invalid license assignment request: 'addLicenses' and 'removeLicenses' are required."
        )
    add_raw, remove_raw = body["addLicenses"], body["removeLicenses"]
    if not isinstance(add_raw, list) or not isinstance(remove_raw, list):
        raise bad_request("Invalid license assignment request.")
    add: dict[str, list[str]] = {}
    for item in add_raw:
        sku_id = str(item.get("skuId", "")).lower() if isinstance(item, dict) else ""
        sku = state.tenant.skus.get(sku_id)
        if sku is None:
            raise bad_request(f"License {sku_id} does not correspond to a valid company License.")
        disabled = [str(p).lower() for p in item.get("disabledPlans") or []]
        unknown = [p for p in disabled if p not in sku.plan_ids()]
        if unknown:
            raise bad_request(f"Service plan {unknown[0]} does not belong to license {sku_id}.")
        add[sku_id] = disabled
    remove = [str(s).lower() for s in remove_raw]
    for sku_id in remove:
        if sku_id not in state.tenant.skus:
            raise bad_request(f"License {sku_id} does not correspond to a valid company License.")
    return add, remove
