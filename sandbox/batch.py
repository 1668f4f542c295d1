"""JSON batching (`POST /$batch`): at most 20 requests, `dependsOn`, one status, headers and body per item.

Inner requests run one by one, in `dependsOn` order, through the same pipeline as outer calls (so each is
authorised, faulted, throttled and counted on its own, and may answer its own 429 with `Retry-After`).
A request that depends on a failed one answers 424 without running. Answers keep the order of the requests.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.graph_errors import GraphError, error_body
from sandbox.router import GraphRequest, GraphResponse

if TYPE_CHECKING:
    from sandbox.extension import SandboxApp

MAX_REQUESTS = 20
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})

Dispatch = Callable[[GraphRequest], Awaitable[GraphResponse]]


@dataclass(frozen=True)
class BatchItem:
    """One validated inner request."""

    id: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    depends_on: tuple[str, ...]


def _malformed(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def parse_batch(payload: Any) -> list[BatchItem]:
    """Validate a `$batch` body and return its items in request order; 400 for anything malformed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _malformed("Invalid batch payload format: a 'requests' array is required.")
    raw_items: list[Any] = payload["requests"]
    if not raw_items:
        raise _malformed("Invalid batch payload format: 'requests' is empty.")
    if len(raw_items) > MAX_REQUESTS:
        raise _malformed(f"The number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    items: list[BatchItem] = []
    for raw in raw_items:
        items.append(_parse_item(raw))
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise _malformed("Invalid batch payload format: request ids must be unique.")
    known = set(ids)
    for item in items:
        missing = [dep for dep in item.depends_on if dep not in known]
        if missing:
            raise _malformed(f"Request '{item.id}' depends on unknown request ids {missing}.")
    execution_order(items)  # raises on a cycle
    return items


def _parse_item(raw: Any) -> BatchItem:
    if not isinstance(raw, dict):
        raise _malformed("Invalid batch payload format: every request must be an object.")
    item_id = raw.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id:
        raise _malformed("Invalid batch payload format: every request needs an 'id'.")
    method = raw.get("method")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise _malformed(f"Request '{item_id}' has an invalid or missing 'method'.")
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise _malformed(f"Request '{item_id}' has no 'url'.")
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise _malformed(
            f"Request '{item_id}': the url must be relative to the version (e.g. /users/{{id}})."
        )
    raw_headers = raw.get("headers") or {}
    if not isinstance(raw_headers, dict) or not all(isinstance(v, str) for v in raw_headers.values()):
        raise _malformed(f"Request '{item_id}': headers must be an object of strings.")
    headers = {str(k).lower(): v for k, v in raw_headers.items()}
    body = b""
    if "body" in raw and raw["body"] is not None:
        if "content-type" not in headers:
            raise _malformed(f"Request '{item_id}': a request with a body needs a Content-Type header.")
        body = json.dumps(raw["body"]).encode()
    depends = raw.get("dependsOn") or []
    if not isinstance(depends, list) or not all(isinstance(d, str | int) for d in depends):
        raise _malformed(f"Request '{item_id}': dependsOn must be a list of request ids.")
    return BatchItem(
        id=item_id,
        method=method.upper(),
        path="/" + unquote(parts.path).lstrip("/"),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=body,
        depends_on=tuple(str(d) for d in depends),
    )


def execution_order(items: list[BatchItem]) -> list[BatchItem]:
    """A stable topological order (request order where dependencies allow); 400 on a cycle."""
    by_id = {item.id: item for item in items}
    ordered: list[BatchItem] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(item: BatchItem) -> None:
        mark = state.get(item.id)
        if mark == 2:
            return
        if mark == 1:
            raise _malformed(f"Request '{item.id}' is part of a dependsOn cycle.")
        state[item.id] = 1
        for dep in item.depends_on:
            visit(by_id[dep])
        state[item.id] = 2
        ordered.append(item)

    for item in items:
        visit(item)
    return ordered


def _item_answer(item_id: str, response: GraphResponse) -> dict[str, Any]:
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in ("request-id", "client-request-id")
    }
    answer: dict[str, Any] = {"id": item_id, "status": response.status, "headers": headers}
    if response.body is not None:
        answer["body"] = response.body
    return answer


async def run_batch(outer: GraphRequest, dispatch: Dispatch) -> GraphResponse:
    """Answer one `$batch` call: 200 with one answer per request, or 400 when the batch is malformed."""
    items = parse_batch(outer.json())
    results: dict[str, GraphResponse] = {}
    for item in execution_order(items):
        failed = [dep for dep in item.depends_on if results[dep].status >= 400]
        if failed:
            results[item.id] = GraphResponse(
                424,
                error_body(
                    "FailedDependency",
                    f"The request depends on request '{failed[0]}', which failed.",
                    outer.request_id,
                    outer.headers.get("client-request-id", ""),
                ),
                {"Content-Type": "application/json"},
            )
            continue
        headers = dict(item.headers)
        if "authorization" in outer.headers:
            headers["authorization"] = outer.headers["authorization"]
        if item.path.rstrip("/").lower() == "/$batch":
            results[item.id] = GraphResponse(
                400,
                error_body(
                    "BadRequest", "A $batch request cannot contain another $batch.", outer.request_id, ""
                ),
            )
            continue
        inner = GraphRequest(
            method=item.method,
            path=item.path,
            query=item.query,
            headers=headers,
            body=item.body,
            inner=True,
        )
        results[item.id] = await dispatch(inner)
    return GraphResponse(200, {"responses": [_item_answer(item.id, results[item.id]) for item in items]})


def install(sandbox: SandboxApp) -> None:
    """Register `POST /$batch`; any Graph permission opens the envelope, each inner call checks its own."""
    permissions = frozenset().union(*(op.permissions for op in sandbox.router.operations()))
    pipeline = sandbox.pipeline

    async def batch(request: GraphRequest) -> GraphResponse:
        return await run_batch(request, pipeline.dispatch)

    sandbox.router.add("POST", "/$batch", batch, permissions=permissions, cost=0)
