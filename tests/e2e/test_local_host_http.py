"""The local host serves HTTP triggers and the admin API over real HTTP, with keys as in Azure."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.host_process import RunningHost, wait_for


def test_function_level_route_without_key_is_refused(basic_host: RunningHost) -> None:
    """An auth-level `function` route answers 401 to a caller without a key."""
    response = httpx.get(f"{basic_host.api_url}/echo/alice")
    assert response.status_code == 401


def test_wrong_key_is_refused(basic_host: RunningHost) -> None:
    """A key that is not one of the host's is no key at all."""
    response = httpx.get(f"{basic_host.api_url}/echo/alice", params={"code": "not-a-key"})
    assert response.status_code == 401


def test_function_key_in_query_reaches_a_real_http_request(basic_host: RunningHost) -> None:
    """With `?code=`, the function gets an azure.functions HttpRequest with route and query parameters."""
    response = httpx.get(
        f"{basic_host.api_url}/echo/alice", params={"code": basic_host.function_key, "x": "1"}
    )
    assert response.status_code == 200
    assert response.headers["x-echo"] == "1"
    assert response.json() == {
        "name": "alice",
        "method": "GET",
        "params": {"x": "1"},
        "body": "",
        "request_type": "azure.functions._http.HttpRequest",
    }


def test_function_key_in_header_and_body_are_passed(basic_host: RunningHost) -> None:
    """`x-functions-key` works like `?code=`; the body arrives as sent."""
    response = httpx.post(
        f"{basic_host.api_url}/echo/bob",
        content=b"hello",
        headers={"x-functions-key": basic_host.function_key},
    )
    assert (response.status_code, response.json()["body"]) == (200, "hello")


def test_named_host_key_is_accepted(basic_host: RunningHost) -> None:
    """The named `graph-webhook` host key (carried by the Graph notification URL) is a function key."""
    key = basic_host.keys["hostKeys"]["graph-webhook"]
    response = httpx.get(f"{basic_host.api_url}/echo/carol", params={"code": key})
    assert response.status_code == 200


def test_anonymous_async_route_gets_a_context(basic_host: RunningHost) -> None:
    """An anonymous async function runs without a key and receives an invocation id."""
    response = httpx.get(f"{basic_host.api_url}/open")
    assert response.status_code == 200
    assert len(response.json()["invocation_id"]) == 36


@pytest.mark.parametrize(("key_name", "expected"), [("default", 401), ("master", 200)])
def test_admin_level_route_needs_the_master_key(
    basic_host: RunningHost, key_name: str, expected: int
) -> None:
    """Auth level `admin` accepts the master key only."""
    key = basic_host.master_key if key_name == "master" else basic_host.function_key
    response = httpx.get(f"{basic_host.api_url}/admin-only", params={"code": key})
    assert response.status_code == expected


def test_unknown_route_is_404(basic_host: RunningHost) -> None:
    """No function, no answer."""
    assert httpx.get(f"{basic_host.api_url}/nowhere").status_code == 404


def test_failing_function_is_a_bare_500(basic_host: RunningHost) -> None:
    """An exception becomes a 500 without the exception's text."""
    response = httpx.get(f"{basic_host.api_url}/boom")
    assert (response.status_code, response.content) == (500, b"")


def test_timer_runs_on_demand_with_a_real_timer_request(basic_host: RunningHost) -> None:
    """`POST /admin/functions/{name}` with the master key runs a timer function with a TimerRequest."""
    response = httpx.post(
        f"{basic_host.base_url}/admin/functions/yearly",
        json={"input": ""},
        headers={"x-functions-key": basic_host.master_key},
    )
    assert response.status_code == 202
    record = wait_for(
        "the timer's journal record",
        lambda: next((r for r in basic_host.journal_records() if r["function"] == "yearly"), None),
    )
    assert record == {"function": "yearly", "past_due": False, "type": "azure.functions.timer"}


def test_admin_api_refuses_a_function_key(basic_host: RunningHost) -> None:
    """Running a function on demand is for the master key only."""
    response = httpx.post(
        f"{basic_host.base_url}/admin/functions/yearly",
        json={"input": ""},
        headers={"x-functions-key": basic_host.function_key},
    )
    assert response.status_code == 401


def test_idle_when_nothing_is_due(basic_host: RunningHost) -> None:
    """With no timer due and no message, the host says it is idle."""
    answer = wait_for("an idle host", lambda: httpx.get(f"{basic_host.base_url}/admin/idle").json()["idle"])
    assert answer is True
