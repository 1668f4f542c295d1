"""JSON batching: validation, dependsOn order, 424 after a failure, per-item status and headers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sandbox.batch import parse_batch, run_batch
from sandbox.graph_errors import GraphError
from sandbox.router import GraphRequest, GraphResponse


class RecordingDispatch:
    """Answers inner requests from a table of (method, path) -> status and records what it ran."""

    def __init__(self, answers: dict[tuple[str, str], GraphResponse] | None = None) -> None:
        self.answers = answers or {}
        self.seen: list[GraphRequest] = []

    async def __call__(self, request: GraphRequest) -> GraphResponse:
        self.seen.append(request)
        return self.answers.get((request.method, request.path), GraphResponse(200, {"path": request.path}))


def _outer(requests: list[dict[str, Any]]) -> GraphRequest:
    return GraphRequest(
        method="POST",
        path="/$batch",
        headers={"authorization": "Bearer outer-token", "content-type": "application/json"},
        body=json.dumps({"requests": requests}).encode(),
    )


def _run(requests: list[dict[str, Any]], dispatch: RecordingDispatch) -> list[dict[str, Any]]:
    response = asyncio.run(run_batch(_outer(requests), dispatch))
    assert response.status == 200
    answers: list[dict[str, Any]] = response.body["responses"]
    return answers


def test_each_item_gets_its_own_status_headers_and_body() -> None:
    """A throttled item answers 429 with its own Retry-After; its neighbours answer normally."""
    throttled = GraphResponse(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "7"})
    dispatch = RecordingDispatch({("GET", "/users/u2"): throttled})
    answers = _run(
        [
            {"id": "1", "method": "GET", "url": "/users/u1?$select=id"},
            {"id": "2", "method": "GET", "url": "users/u2"},
        ],
        dispatch,
    )
    assert [(a["id"], a["status"]) for a in answers] == [("1", 200), ("2", 429)]
    assert answers[1]["headers"]["Retry-After"] == "7"
    assert dispatch.seen[0].query == {"$select": "id"}
    assert all(r.inner and r.headers["authorization"] == "Bearer outer-token" for r in dispatch.seen)


def test_depends_on_runs_dependencies_first_and_answers_424_after_a_failure() -> None:
    """Requests run after what they depend on; dependents of a failed request (and theirs) answer 424."""
    dispatch = RecordingDispatch({("POST", "/groups/g1/members/$ref"): GraphResponse(400, {"error": {}})})
    answers = _run(
        [
            {"id": "c", "method": "GET", "url": "/groups/g1", "dependsOn": ["b"]},
            {
                "id": "b",
                "method": "POST",
                "url": "/groups/g1/members/$ref",
                "dependsOn": ["a"],
                "headers": {"Content-Type": "application/json"},
                "body": {"@odata.id": "x"},
            },
            {"id": "a", "method": "GET", "url": "/users/u1"},
        ],
        dispatch,
    )
    assert [r.path for r in dispatch.seen] == ["/users/u1", "/groups/g1/members/$ref"]
    assert [(a["id"], a["status"]) for a in answers] == [("c", 424), ("b", 400), ("a", 200)]
    assert json.loads(dispatch.seen[1].body) == {"@odata.id": "x"}


@pytest.mark.parametrize(
    "requests",
    [
        [],
        [{"id": str(n), "method": "GET", "url": "/users"} for n in range(21)],
        [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/groups"}],
        [{"id": "1", "method": "POST", "url": "/users", "body": {"a": 1}}],
        [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}],
        [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}],
        [
            {"id": "1", "method": "GET", "url": "/a", "dependsOn": ["2"]},
            {"id": "2", "method": "GET", "url": "/b", "dependsOn": ["1"]},
        ],
        [{"id": "1", "method": "FETCH", "url": "/users"}],
    ],
    ids=[
        "empty",
        "21-requests",
        "duplicate-ids",
        "body-without-content-type",
        "absolute-url",
        "unknown-dependency",
        "cycle",
        "bad-method",
    ],
)
def test_malformed_batches_answer_400(requests: list[dict[str, Any]]) -> None:
    """At most 20 requests, unique ids, Content-Type with a body, relative urls, known acyclic dependsOn."""
    with pytest.raises(GraphError) as caught:
        parse_batch({"requests": requests})
    assert caught.value.status == 400


def test_twenty_requests_are_accepted() -> None:
    """The documented maximum passes."""
    assert (
        len(parse_batch({"requests": [{"id": str(n), "method": "GET", "url": "/users"} for n in range(20)]}))
        == 20
    )


def test_a_nested_batch_fails_on_its_own() -> None:
    """An inner `$batch` answers 400 without running; the rest of the batch still runs."""
    dispatch = RecordingDispatch()
    answers = _run(
        [
            {
                "id": "1",
                "method": "POST",
                "url": "/$batch",
                "headers": {"Content-Type": "application/json"},
                "body": {},
            },
            {"id": "2", "method": "GET", "url": "/users/u1"},
        ],
        dispatch,
    )
    assert [(a["id"], a["status"]) for a in answers] == [("1", 400), ("2", 200)]
