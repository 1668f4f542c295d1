"""The sandbox's HTTPS server on 127.0.0.1: Graph under `/v1.0`, identity, the control plane under
`/_sandbox`, the Teams Workflows endpoint and the managed-identity endpoint; writes the ready file.

The aiohttp handlers are thin adapters around `GraphPipeline.dispatch` and `TokenService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trustme
from aiohttp import web

from sandbox import control, graph_groups, graph_skus, graph_users, teams_webhook
from sandbox.extension import SandboxApp, install_extensions
from sandbox.identity import TokenError, TokenService
from sandbox.router import DropConnection, GraphPipeline, GraphRequest, GraphResponse, Operation, Router
from sandbox.state import SandboxState

TICK_SECONDS = 0.05


@dataclass(frozen=True)
class Endpoints:
    """The URLs and secrets a started sandbox hands out (the ready file)."""

    base_url: str
    tenant_id: str
    identity_header: str
    workflow_id: str
    workflow_sig: str


def build(state: SandboxState, endpoints: Endpoints) -> SandboxApp:  # noqa: PLR0915 - one small closure per route
    """The aiohttp application with every route, part-2 extensions installed."""
    base = endpoints.base_url
    graph_url = f"{base}/v1.0"
    tokens = TokenService(base, endpoints.tenant_id)
    router = Router()
    pipeline = GraphPipeline(router, tokens.identify, state.run_due)
    for module in (graph_users, graph_groups, graph_skus):
        module.register(router, state, graph_url)

    def count(request: GraphRequest, op: Operation, _: GraphResponse) -> None:
        state.counters.add("inner_requests" if request.inner else "requests", op.name)

    pipeline.post_hooks.append(count)
    app = web.Application(client_max_size=256 * 1024 * 1024)
    sandbox = SandboxApp(state, router, pipeline, app, base, graph_url, f"{base}/_sandbox")
    control.register(sandbox)

    async def graph(request: web.Request) -> web.StreamResponse:
        graph_request = GraphRequest(
            method=request.method,
            path="/" + request.match_info["tail"],
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read() if request.can_read_body else b"",
        )
        try:
            response = await pipeline.dispatch(graph_request)
        except DropConnection:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError from None
        return web.Response(status=response.status, body=response.encoded(), headers=response.headers)

    def token_error(err: TokenError) -> web.Response:
        return web.json_response(err.body(), status=err.status)

    async def openid(request: web.Request) -> web.Response:
        return web.json_response(tokens.openid_configuration(request.match_info["tenant"]))

    async def keys(_: web.Request) -> web.Response:
        return web.json_response(tokens.jwks())

    async def token(request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            import base64

            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            form.setdefault("client_id", user)
            form.setdefault("client_secret", password)
        tenant_in_path = request.match_info["tenant"]
        token_url = f"{base}/{tenant_in_path}/oauth2/v2.0/token"
        try:
            return web.json_response(tokens.client_credentials(state.tenant, tenant_in_path, form, token_url))
        except TokenError as err:
            return token_error(err)

    async def managed_identity(request: web.Request) -> web.Response:
        import hmac

        if not hmac.compare_digest(request.headers.get("X-IDENTITY-HEADER", ""), endpoints.identity_header):
            return web.json_response(
                {"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER"}, status=401
            )
        if request.query.get("api-version") != "2019-08-01":
            return web.json_response({"statusCode": 400, "message": "Unsupported api-version"}, status=400)
        try:
            return web.json_response(
                tokens.managed_identity(
                    state.tenant, request.query.get("resource", ""), request.query.get("client_id")
                )
            )
        except TokenError as err:
            return web.json_response(
                {"statusCode": err.status, "message": err.description}, status=err.status
            )

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/_sandbox/ping", ping)
    install_extensions(sandbox)
    app.router.add_route("*", "/v1.0/{tail:.*}", graph)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", keys)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.router.add_get("/msi/token", managed_identity)
    app.router.add_post(
        "/workflows/{workflow}/triggers/manual/paths/invoke",
        teams_webhook.handler(state, endpoints.workflow_id, endpoints.workflow_sig),
    )

    async def ticker(_: web.Application) -> Any:
        async def loop() -> None:
            while True:
                await asyncio.sleep(TICK_SECONDS)
                await state.run_due()

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(ticker)
    return sandbox


def ready_info(state: SandboxState, endpoints: Endpoints, ca_file: Path) -> dict[str, Any]:
    """The ready file's JSON object (see DEVELOPERS.md "Sandbox ready file")."""
    base = endpoints.base_url
    app = state.tenant.default_app()
    return {
        "graph_url": f"{base}/v1.0",
        "token_url": f"{base}/{endpoints.tenant_id}/oauth2/v2.0/token",
        "authority": f"{base}/{endpoints.tenant_id}",
        "control_url": f"{base}/_sandbox",
        "ca_file": str(ca_file),
        "tenant_id": endpoints.tenant_id,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "teams_webhook_url": (
            f"{base}/workflows/{endpoints.workflow_id}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={endpoints.workflow_sig}"
        ),
        "identity_endpoint": f"{base}/msi/token",
        "identity_header": endpoints.identity_header,
        "pid": os.getpid(),
    }


async def serve(tenant_doc: dict[str, Any], port: int, ready_file: Path) -> None:
    """Serve until SIGTERM/SIGINT; write the ready file (and the CA beside it) once listening."""
    state = SandboxState(tenant_doc)
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ssl_ctx)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    actual_port = sock.getsockname()[1]
    endpoints = Endpoints(
        base_url=f"https://127.0.0.1:{actual_port}",
        tenant_id=state.tenant.id,
        identity_header=secrets.token_urlsafe(24),
        workflow_id=uuid.uuid4().hex,
        workflow_sig=secrets.token_urlsafe(24),
    )
    sandbox = build(state, endpoints)
    runner = web.AppRunner(sandbox.web_app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ssl_ctx)
    await site.start()
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    ca_file = ready_file.with_name(ready_file.stem + "-ca.pem")
    ca.cert_pem.write_to_path(str(ca_file))
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(ready_info(state, endpoints, ca_file), indent=2))
    tmp.replace(ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
