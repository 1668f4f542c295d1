"""The control plane under `/_sandbox` (not Graph, no token): reset, tenant load/export, counters, seats,
users and groups behind the service's back, captured mail and Teams posts, licensing delay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from sandbox import directory
from sandbox.extension import SandboxApp
from sandbox.graph_errors import GraphError
from sandbox.graph_users import render_user
from sandbox.model import Group
from sandbox.tenant_file import TenantFileError, dump_tenant


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not JSON"}), content_type="application/json"
        ) from exc


def register(sandbox: SandboxApp) -> None:  # noqa: PLR0915 - one small closure per route
    """Add the part-1 control calls."""
    state = sandbox.state

    async def settle() -> None:
        await state.run_due()

    async def reset(_: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"status": "reset"})

    async def load(request: web.Request) -> web.Response:
        doc = await _body(request)
        try:
            state.load(doc)
        except (TenantFileError, KeyError, TypeError, ValueError) as exc:
            return _error(400, f"invalid tenant: {exc}")
        return web.json_response({"users": len(state.tenant.users), "groups": len(state.tenant.groups)})

    async def export(_: web.Request) -> web.Response:
        await settle()
        return web.json_response(dump_tenant(state.tenant))

    async def counters(_: web.Request) -> web.Response:
        return web.json_response(state.counters.snapshot())

    async def counters_reset(_: web.Request) -> web.Response:
        state.counters.reset()
        return web.json_response(state.counters.snapshot())

    async def seats(request: web.Request) -> web.Response:
        sku = state.tenant.skus.get(request.match_info["sku"])
        if sku is None:
            return _error(404, "unknown sku")
        body = await _body(request)
        units = {k: body[k] for k in ("enabled", "suspended", "warning", "lockedOut") if k in body}
        if not units or not all(isinstance(v, int) and v >= 0 for v in units.values()):
            return _error(400, "give non-negative integers for enabled/suspended/warning/lockedOut")
        sku.prepaid_units.update(units)
        if "capabilityStatus" in body:
            sku.capability_status = str(body["capabilityStatus"])
        return web.json_response(
            {"skuId": sku.sku_id, "prepaidUnits": sku.prepaid_units, "consumedUnits": len(sku.holders)}
        )

    async def patch_user(request: web.Request) -> web.Response:
        user = state.tenant.find_user(request.match_info["id"])
        if user is None:
            return _error(404, "unknown user")
        body = await _body(request)
        if not isinstance(body, dict) or {"id", "assignedLicenses", "licenseAssignmentStates"} & set(body):
            return _error(400, "give a JSON object of user properties (not id or licenses)")
        directory.update_user(state, user, body)
        await settle()
        return web.json_response(render_user(user, None))

    async def create_user(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict) or not body.get("id") or not body.get("userPrincipalName"):
            return _error(400, "id and userPrincipalName are required")
        if body["id"] in state.tenant.users or state.tenant.find_user(str(body["userPrincipalName"])):
            return _error(409, "a user with this id or userPrincipalName exists")
        user = directory.create_user(state, {k: v for k, v in body.items() if k not in ("assignedLicenses",)})
        await settle()
        return web.json_response(render_user(user, None), status=201)

    async def delete_user(request: web.Request) -> web.Response:
        user = state.tenant.find_user(request.match_info["id"])
        if user is None:
            return _error(404, "unknown user")
        directory.delete_user(state, user)
        return web.Response(status=204)

    async def members(request: web.Request) -> web.Response:
        group = state.tenant.groups.get(request.match_info["id"])
        if group is None:
            return _error(404, "unknown group")
        body = await _body(request)
        add = [str(x) for x in body.get("add", [])]
        remove = [str(x) for x in body.get("remove", [])]
        unknown = [m for m in add if m not in state.tenant.users and m not in state.tenant.groups]
        if unknown:
            return _error(400, f"unknown members: {unknown}")
        directory.add_members(state, group, add)
        directory.remove_members(state, group, remove)
        await settle()
        return web.json_response({"members": list(group.members)})

    async def create_group(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict) or not body.get("id") or not body.get("displayName"):
            return _error(400, "id and displayName are required")
        if body["id"] in state.tenant.groups:
            return _error(409, "a group with this id exists")
        props = {k: v for k, v in body.items() if k not in ("members", "assignedLicenses")}
        group = Group(str(body["id"]), props)
        state.tenant.groups[group.id] = group
        state.emit("group_updated", group.id, None)
        if group.dynamic:
            directory.reevaluate_group(state, group)
        else:
            directory.add_members(state, group, [str(m) for m in body.get("members", [])])
        await settle()
        return web.json_response({"id": group.id, "members": list(group.members)}, status=201)

    async def delete_group(request: web.Request) -> web.Response:
        group = state.tenant.groups.get(request.match_info["id"])
        if group is None:
            return _error(404, "unknown group")
        try:
            directory.delete_group(state, group)
        except GraphError as err:
            return _error(400, err.message)
        return web.Response(status=204)

    async def mail(_: web.Request) -> web.Response:
        return web.json_response({"value": state.captures.mail})

    async def teams(_: web.Request) -> web.Response:
        return web.json_response({"value": state.captures.teams})

    async def licensing(request: web.Request) -> web.Response:
        body = await _body(request)
        delay = body.get("delay_seconds") if isinstance(body, dict) else None
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            return _error(400, "delay_seconds must be a non-negative number")
        state.licensing_delay = timedelta(seconds=float(delay))
        return web.json_response({"delay_seconds": delay})

    add = sandbox.add_control_route
    add("POST", "/reset", reset)
    add("POST", "/tenant", load)
    add("GET", "/tenant", export)
    add("GET", "/counters", counters)
    add("POST", "/counters/reset", counters_reset)
    add("POST", "/skus/{sku}/seats", seats)
    add("PATCH", "/users/{id}", patch_user)
    add("POST", "/users", create_user)
    add("DELETE", "/users/{id}", delete_user)
    add("POST", "/groups", create_group)
    add("DELETE", "/groups/{id}", delete_group)
    add("POST", "/groups/{id}/members", members)
    add("GET", "/mail", mail)
    add("GET", "/teams", teams)
    add("POST", "/licensing", licensing)
