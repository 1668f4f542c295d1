"""The neutral Graph router: `GraphRequest` in, `GraphResponse` out, one pipeline for every caller.

Seam for part 2 (stable): each route is an `Operation` (counter name such as `GET /users/{id}`, the
application permissions Microsoft accepts, base resource-unit cost, whether it writes).
`GraphPipeline.dispatch` runs, in order: identify the caller from the bearer token (fills `app_id`/`roles`, or
`auth_error`) →
`pre_hooks` (fault injection, throttling; a hook may return a response to short-circuit) → 401 / 403
`Authorization_RequestDenied` → work due on the scheduler → the handler → `post_hooks` (counters: RU,
writes). `$batch` runs its inner requests through the same `dispatch` with `inner=True` and the outer
`Authorization` header. A hook may raise `DropConnection` to make the HTTP adapter drop the connection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.graph_errors import GraphError, error_body

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)


class DropConnection(Exception):
    """Raised by a hook to have the HTTP adapter close the connection without an answer."""


@dataclass(slots=True)
class GraphRequest:
    """One Graph call below `/v1.0` (path decoded, header names lower-case)."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    inner: bool = False
    app_id: str | None = None
    roles: frozenset[str] = frozenset()
    auth_error: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    request_id: str = ""

    def json(self) -> Any:
        """The body as JSON; 400 as Graph answers when it is not."""
        if not self.body:
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; 400 otherwise."""
        value = self.json()
        if not isinstance(value, dict):
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
        return value


@dataclass(slots=True)
class GraphResponse:
    """A Graph answer: status, headers, and a JSON body (None for an empty body)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        """The body as bytes (empty when there is none)."""
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()


Handler = Callable[[GraphRequest], Awaitable[GraphResponse]]
PreHook = Callable[[GraphRequest, "Operation | None"], Awaitable[GraphResponse | None]]
PostHook = Callable[[GraphRequest, "Operation", GraphResponse], None]


@dataclass(frozen=True, slots=True)
class Operation:
    """A Graph route and its metadata; `name` is the counter key."""

    method: str
    template: str
    permissions: frozenset[str]
    cost: int
    write: bool
    handler: Handler = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        """Counter key, e.g. `GET /users/{id}`."""
        return f"{self.method} {self.template}"


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


class Router:
    """Matches (method, path) to an operation; literal segments win over `{param}` segments."""

    def __init__(self) -> None:
        self._routes: dict[int, list[tuple[Operation, list[str]]]] = {}

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        permissions: frozenset[str] | set[str],
        cost: int = 1,
        write: bool = False,
    ) -> Operation:
        """Register a route; `template` uses `{name}` for variable segments."""
        op = Operation(method.upper(), template, frozenset(permissions), cost, write, handler)
        segs = [s.lower() if not s.startswith("{") else s for s in _segments(template)]
        routes = self._routes.setdefault(len(segs), [])
        routes.append((op, segs))
        # Most literal segments first, so `/groups/delta` beats `/groups/{id}`.
        routes.sort(key=lambda r: -sum(not s.startswith("{") for s in r[1]))
        return op

    def operations(self) -> list[Operation]:
        """Every registered operation."""
        return [op for routes in self._routes.values() for op, _ in routes]

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for this call, with its path parameters; 405 when only the method differs."""
        segs = _segments(path)
        method_mismatch = False
        for op, tsegs in self._routes.get(len(segs), ()):
            params: dict[str, str] = {}
            for seg, tseg in zip(segs, tsegs, strict=True):
                if tseg.startswith("{"):
                    params[tseg[1:-1]] = seg
                elif seg.lower() != tseg:
                    break
            else:
                if op.method == method:
                    return op, params
                method_mismatch = True
        if method_mismatch:
            raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed.")
        return None


class GraphPipeline:
    """Runs every Graph call, outer or inner, through hooks, token checks, handler and counters."""

    def __init__(
        self,
        router: Router,
        identify: Callable[[GraphRequest], None],
        before_handler: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.router = router
        self.identify = identify
        self.before_handler = before_handler
        self.pre_hooks: list[PreHook] = []
        self.post_hooks: list[PostHook] = []

    async def dispatch(self, request: GraphRequest) -> GraphResponse:
        """Answer one Graph call; never raises except `DropConnection`."""
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        op: Operation | None = None
        try:
            try:
                found = self.router.match(request.method, request.path)
            finally:
                self.identify(request)
            if found is not None:
                op, request.params = found
            for hook in self.pre_hooks:
                short = await hook(request, op)
                if short is not None:
                    return self._finish(request, op, short)
            admitted = self._admit(request, op)
            if self.before_handler is not None:
                await self.before_handler()
            response = await admitted.handler(request)
        except GraphError as err:
            response = GraphResponse(
                err.status,
                error_body(
                    err.code,
                    err.message,
                    request.request_id,
                    request.headers.get("client-request-id", request.request_id),
                ),
                dict(err.headers),
            )
        return self._finish(request, op, response)

    @staticmethod
    def _admit(request: GraphRequest, op: Operation | None) -> Operation:
        """401 for a bad token, 400 for an unknown path, 403 without an accepted permission."""
        if request.auth_error is not None:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                request.auth_error,
                {"WWW-Authenticate": 'Bearer realm="", authorization_uri="", client_id=""'},
            )
        if op is None:
            first = _segments(request.path)[:1] or [""]
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{first[0]}'.")
        if not (op.permissions & request.roles):
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        return op

    def _finish(self, request: GraphRequest, op: Operation | None, response: GraphResponse) -> GraphResponse:
        response.headers.setdefault("request-id", request.request_id)
        response.headers.setdefault(
            "client-request-id", request.headers.get("client-request-id", request.request_id)
        )
        if response.body is not None:
            response.headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
        if op is not None:
            for hook in self.post_hooks:
                hook(request, op, response)
        return response
