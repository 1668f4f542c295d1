"""Graph client rules the sandbox cannot provoke on demand, over an injected httpx transport: 429 without
Retry-After, HTTP-date Retry-After, replication lag, error mapping, foreign hosts, batch leftovers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from seatkeeper.adapters.graph.client import GraphClient
from seatkeeper.adapters.graph.operations import operation_name
from seatkeeper.adapters.graph.retrying import RetryPolicy, retry_after_seconds
from seatkeeper.core.errors import (
    ConcurrencyConflict,
    Forbidden,
    NotFound,
    Rejected,
    SeatkeeperError,
    Throttled,
    Unavailable,
)
from seatkeeper.core.graph_port import GraphRequest

BASE = "https://127.0.0.1:9/v1.0"
T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Answers requests from a list of responses (the last one repeats) and keeps what it was sent."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.delays: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def _run(
    recorder: Recorder | Handler, call: Callable[[GraphClient], Coroutine[Any, Any, T]], **retry: Any
) -> T:
    async def scenario() -> T:
        async def token() -> str:
            return "token"

        sleep = recorder.sleep if isinstance(recorder, Recorder) else _no_sleep
        graph = GraphClient(
            graph_url=BASE,
            http=httpx.AsyncClient(transport=httpx.MockTransport(recorder)),
            token=token,
            retry=RetryPolicy(**{"budget_seconds": 60.0, **retry}),
            sleep=sleep,
            rng=lambda: 0.5,
        )
        try:
            return await call(graph)
        finally:
            await graph.aclose()

    return asyncio.run(scenario())


async def _no_sleep(_: float) -> None:
    return None


def _error(status: int, code: str = "", message: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {"code": code, "message": message}})


OK = httpx.Response(200, json={"id": "u1"})


def test_429_without_retry_after_backs_off_exponentially_with_jitter() -> None:
    """No Retry-After: full jitter over 0.5, 1, 2 s (rng fixed at 0.5 here)."""
    recorder = Recorder(_error(429), _error(429), _error(429), OK)
    body = _run(recorder, lambda g: g.get("/users/u1"))
    assert body == {"id": "u1"}
    assert recorder.delays == [0.25, 0.5, 1.0]


def test_retry_after_as_an_http_date() -> None:
    """Retry-After may be a date; it is turned into seconds from now."""
    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Thu, 03 Dec 2026 12:00:07 GMT", now=lambda: now) == 7.0
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_attempts_are_limited_even_within_budget() -> None:
    """max_attempts caps retries; the last error propagates with the server's Retry-After."""
    recorder = Recorder(_error(429, **{"Retry-After": "1"}))
    with pytest.raises(Throttled) as caught:
        _run(recorder, lambda g: g.get("/users/u1"), max_attempts=3)
    assert (len(recorder.requests), caught.value.retry_after) == (3, 1.0)


def test_new_objects_are_waited_for_when_asked() -> None:
    """Replication lag: a 404 for an object just created is retried briefly, only when the caller asks."""
    recorder = Recorder(_error(404, "Request_ResourceNotFound"), OK)
    assert _run(recorder, lambda g: g.get("/users/u1", retry_not_found=True)) == {"id": "u1"}
    assert recorder.delays == [1.0]
    with pytest.raises(NotFound):
        _run(Recorder(_error(404), OK), lambda g: g.get("/users/u1"))


def test_bulk_add_waits_out_a_missing_reference_then_adds_all() -> None:
    """A 400 "objects being referenced do not exist" right after creation is lag: wait, then all are added."""
    lag = _error(
        400,
        "Request_BadRequest",
        "The source resource object or one of the objects being referenced do not exist",
    )
    recorder = Recorder(lag, httpx.Response(204))
    result = _run(recorder, lambda g: g.add_members("g1", ["u1", "u2", "u1"]))
    assert (result.added, result.already_members, result.not_found) == (("u1", "u2"), (), ())
    sent = json.loads(recorder.requests[-1].content)
    assert sent == {"members@odata.bind": [f"{BASE}/directoryObjects/u1", f"{BASE}/directoryObjects/u2"]}
    assert recorder.delays == [1.0]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(_error(403, "Authorization_RequestDenied"), Forbidden, id="403"),
        pytest.param(_error(401, "InvalidAuthenticationToken"), Forbidden, id="401"),
        pytest.param(_error(412, "PreconditionFailed"), ConcurrencyConflict, id="412"),
        pytest.param(_error(400, "Request_BadRequest"), Rejected, id="400"),
        pytest.param(_error(409, "Conflict"), Rejected, id="409"),
        pytest.param(_error(503), Unavailable, id="503-write"),
    ],
)
def test_errors_map_onto_the_core_tree(response: httpx.Response, expected: type[SeatkeeperError]) -> None:
    """Each answer becomes one error of the documented tree; a write is not repeated after a 5xx."""
    recorder = Recorder(response, OK)
    with pytest.raises(expected):
        _run(recorder, lambda g: g.send("POST", "/users/u1/reprocessLicenseAssignment"))
    assert len(recorder.requests) == 1


def test_rejected_carries_graph_code() -> None:
    """The Graph error code is kept for handlers to decide on."""
    with pytest.raises(Rejected) as caught:
        _run(Recorder(_error(400, "Request_UnsupportedQuery")), lambda g: g.get("/groups"))
    assert (caught.value.status, caught.value.code) == (400, "Request_UnsupportedQuery")


def test_links_to_another_host_are_refused() -> None:
    """A nextLink pointing elsewhere would carry the token away: refused before any request."""
    recorder = Recorder(OK)
    with pytest.raises(ValueError, match="another host"):
        _run(recorder, lambda g: g.get("https://evil.example/v1.0/users"))
    assert recorder.requests == []


def _batch_answer(request: httpx.Request, status_for: Callable[[str], int]) -> httpx.Response:
    items = json.loads(request.content)["requests"]
    return httpx.Response(
        200,
        json={
            "responses": [
                {"id": i["id"], "status": status_for(i["url"]), "headers": {"Retry-After": "2"}, "body": {}}
                for i in items
            ]
        },
    )


def test_batch_items_still_throttled_at_the_end_keep_their_status() -> None:
    """When the budget ends, the answers say which items are still throttled (429), the rest succeeded."""

    def handler(request: httpx.Request) -> httpx.Response:
        return _batch_answer(request, lambda url: 429 if url.endswith("/b") else 200)

    answers = _run(
        handler,
        lambda g: g.batch([GraphRequest("GET", "/users/a"), GraphRequest("GET", "/users/b")]),
        budget_seconds=5,
    )
    assert [a.status for a in answers] == [200, 429]


def test_batch_424_items_are_retried() -> None:
    """Older Graph answered a throttled batch with 424 items: they are retried like 429s."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(len(json.loads(request.content)["requests"]))
        return _batch_answer(request, lambda url: 424 if len(seen) == 1 else 200)

    answers = _run(
        handler,
        lambda g: g.batch([GraphRequest("POST", f"/users/{n}/reprocessLicenseAssignment") for n in "abc"]),
    )
    assert ([a.status for a in answers], seen) == ([200, 200, 200], [3, 3])


def test_batch_body_items_get_a_content_type() -> None:
    """Graph requires Content-Type on every batch item with a body."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content)["requests"])
        return _batch_answer(request, lambda url: 204)

    _run(handler, lambda g: g.batch([GraphRequest("PATCH", "/users/a", {"usageLocation": "DE"})]))
    assert sent == [
        {
            "id": "0",
            "method": "PATCH",
            "url": "/users/a",
            "body": {"usageLocation": "DE"},
            "headers": {"Content-Type": "application/json"},
        }
    ]


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", f"{BASE}/users/5e2f0c1a-7d3b-4c8e-9a10-1b2c3d4e5f60?$select=id", "GET /users/{id}"),
        ("GET", f"{BASE}/users/ann@contoso.com", "GET /users/{id}"),
        ("PATCH", f"{BASE}/groups/5e2f0c1a-7d3b-4c8e-9a10-1b2c3d4e5f60", "PATCH /groups/{id}"),
        (
            "GET",
            f"{BASE}/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')",
            "GET /servicePrincipals(appId={id})",
        ),
        ("get", "/groups/delta", "GET /groups/delta"),
    ],
)
def test_operation_names(method: str, url: str, expected: str) -> None:
    """Counters group requests by operation, ids folded to {id}."""
    assert operation_name(method, url, "/v1.0") == expected
