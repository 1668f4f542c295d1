"""The local host's HTTP front: `/api/<route>` for HTTP triggers and `/admin/...` as the Functions host has.

The prefix is host.json's `extensions.http.routePrefix` ("api" unless set), as in Azure.

Keys work as in Azure (`?code=` or `x-functions-key`; function, host and master keys by auth level).
`GET /admin/idle` is anonymous on purpose: it only says whether work is pending, and the sandbox's clock
calls it between steps.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import azure.functions as func
import structlog
from aiohttp import web

from seatkeeper.localhost.bindings import http_request
from seatkeeper.localhost.catalog import Catalog, HttpFunction, IndexedFunction
from seatkeeper.localhost.invoker import Invoker
from seatkeeper.localhost.keys import AuthLevel, HostKeys

log = structlog.get_logger(__name__)

IdleCheck = Callable[[], Awaitable[bool]]
RunOnDemand = Callable[[IndexedFunction, str], Awaitable[None]]

KEY_HEADER = "x-functions-key"


def _presented_key(request: web.Request) -> str | None:
    return request.headers.get(KEY_HEADER) or request.query.get("code")


def _find(catalog: Catalog, path: str, method: str) -> tuple[HttpFunction, dict[str, str]] | None:
    for function in catalog.http:
        params = function.route.match(path)
        if params is not None and (not function.methods or method in function.methods):
            return function, params
    return None


def _to_aiohttp(response: object) -> web.Response:
    """An HttpResponse (or a plain str/bytes return value) as the aiohttp response to send."""
    if isinstance(response, str | bytes):
        response = func.HttpResponse(response)
    if response is None:
        return web.Response(status=204)
    if not isinstance(response, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(response).__name__}, not HttpResponse")
    headers = {str(k): str(v) for k, v in response.headers.items()}
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = f"{response.mimetype}; charset={response.charset}"
    return web.Response(status=response.status_code, body=response.get_body(), headers=headers)


def build_app(
    catalog: Catalog,
    keys: HostKeys,
    invoker: Invoker,
    *,
    idle: IdleCheck,
    run_on_demand: RunOnDemand,
    route_prefix: str = "api",
) -> web.Application:
    """The aiohttp application serving every HTTP trigger of `catalog` (under `/{route_prefix}/`) and
    the admin endpoints."""

    async def api(request: web.Request) -> web.StreamResponse:
        found = _find(catalog, request.match_info["tail"], request.method.upper())
        if found is None:
            return web.Response(status=404)
        function, route_params = found
        if not keys.allows(function.auth_level, _presented_key(request), function.name):
            log.info("localhost.http_unauthorized", function=function.name)
            return web.Response(status=401)
        try:
            body = await request.read()
        except web.RequestPayloadError:  # a malformed chunked body, say
            log.info("localhost.http_body_undecodable", function=function.name)
            return web.Response(status=400, text="the request body could not be decoded")
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        req = http_request(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=dict(request.query),
            route_params=route_params,
            body=body,
        )
        try:
            result = await invoker.invoke(function, req)
            return _to_aiohttp(result)
        except Exception as exc:  # an unhandled error is a bare 500, as the Functions host answers
            log.exception("localhost.http_failed", function=function.name, error=type(exc).__name__)
            return web.Response(status=500)

    async def admin_function(request: web.Request) -> web.StreamResponse:
        if not keys.allows(AuthLevel.ADMIN, _presented_key(request)):
            return web.Response(status=401)
        function = catalog.by_name(request.match_info["name"])
        if function is None or isinstance(function, HttpFunction):
            return web.Response(status=404)
        raw = await request.read()
        try:
            document = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return web.json_response({"error": 'body must be JSON: {"input": "..."}'}, status=400)
        value = document.get("input", "") if isinstance(document, dict) else ""
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            await run_on_demand(function, text)
        except Exception as exc:  # reported to the caller; the host keeps running
            log.exception("localhost.admin_run_failed", function=function.name, error=type(exc).__name__)
            return web.json_response({"function": function.name, "error": type(exc).__name__}, status=500)
        # Core Tools answers 202 at once; here the run has finished, so a caller knows it happened.
        return web.Response(status=202)

    async def admin_idle(_: web.Request) -> web.StreamResponse:
        return web.json_response({"idle": await idle()})

    async def admin_status(request: web.Request) -> web.StreamResponse:
        if not keys.allows(AuthLevel.ADMIN, _presented_key(request)):
            return web.Response(status=401)
        return web.json_response({"state": "Running", "functions": _names(catalog)})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/admin/idle", admin_idle)
    app.router.add_get("/admin/host/status", admin_status)
    app.router.add_post("/admin/functions/{name}", admin_function)
    prefix = route_prefix.strip("/")
    app.router.add_route("*", f"/{prefix}/{{tail:.*}}" if prefix else "/{tail:.*}", api)
    return app


def _names(catalog: Catalog) -> list[str]:
    return sorted(f.name for f in (*catalog.http, *catalog.timers, *catalog.queues, *catalog.others))
