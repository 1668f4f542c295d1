"""Fuzzing every HTTP endpoint of function_app.py over real HTTP against the local host on the sandbox.

Arbitrary bodies, headers, sizes and encodings, plus almost-valid documents of each endpoint's shape:
never a 5xx, never a message enqueued from a refused request (the host runs without queue consumers, so
every enqueued message stays readable), never a secret in a response or in the host's output.
`make test` runs 2,000 cases per endpoint; `python -m bench.fuzz` runs 10,000.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.fuzz_requests import GUIDS, FuzzRequest, documents, maybe, requests
from tests.e2e.fuzz_target import Enqueued, FuzzTarget, fuzz_examples, fuzz_target
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.timeout(1_800)

FUZZ = settings(
    max_examples=fuzz_examples(),
    deadline=None,
    derandomize=False,
    database=None,
    # A shared, slow machine: generation and HTTP round trips may be slow; that is not a finding.
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


@pytest.fixture(scope="module")
def target(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """One service host for the whole module, reached over one keep-alive connection."""
    with fuzz_target(sandbox, tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def send(target: FuzzTarget, method: str, route: str, request: FuzzRequest) -> httpx.Response:
    """Send one fuzz request (chunked when asked: the host must read a body without Content-Length)."""
    content: bytes | Iterator[bytes] = request.body
    if request.chunked and request.body:
        body = request.body
        content = iter([body[: len(body) // 2], body[len(body) // 2 :]])
    # Header values go as Latin-1 bytes: httpx would refuse non-ASCII text, HTTP/1.1 carries octets.
    headers = {name: value.encode("latin-1") for name, value in request.headers.items()}
    return target.client.request(method, f"/{route}", params=request.params, headers=headers, content=content)


def check_answer(target: FuzzTarget, response: httpx.Response, request: FuzzRequest) -> None:
    """The properties every endpoint keeps: no 5xx (bar 503 with a reason), and no secret in the answer."""
    assert response.status_code < 500, f"{response.status_code} for {request.describe()}"
    assert not target.leaked(response.content), f"a secret in the answer to {request.describe()}"
    assert not target.leaked(json.dumps(dict(response.headers))), "a secret in the response headers"


# -- shapes of almost-valid documents ---------------------------------------------------------------


def notification_documents(target: FuzzTarget) -> st.SearchStrategy[Any]:
    """Graph change or lifecycle notification collections, with real subscription ids of this host."""
    subscription = st.one_of(
        st.sampled_from(target.subscription_ids or ("none",)), GUIDS, st.text(max_size=40)
    )
    item = st.fixed_dictionaries(
        {
            "subscriptionId": maybe(subscription),
            "clientState": maybe(st.text(max_size=80)),
            "changeType": maybe(st.sampled_from(("updated", "deleted", "created", "UPDATED", ""))),
            "resource": maybe(GUIDS.map(lambda g: f"Groups/{g}")),
            "tenantId": maybe(GUIDS),
            "subscriptionExpirationDateTime": maybe(st.datetimes().map(lambda d: d.isoformat() + "Z")),
            "lifecycleEvent": maybe(
                st.sampled_from(("reauthorizationRequired", "subscriptionRemoved", "missed", "other"))
            ),
            "sequenceNumber": maybe(st.integers()),
            "resourceData": maybe(
                st.fixed_dictionaries(
                    {
                        "id": maybe(GUIDS),
                        "@odata.type": st.just("#Microsoft.Graph.Group"),
                        "members@delta": maybe(
                            st.lists(st.fixed_dictionaries({"id": maybe(GUIDS)}), max_size=3)
                        ),
                    }
                )
            ),
        }
    )
    return documents(st.fixed_dictionaries({"value": maybe(st.lists(item, max_size=4))}))


_DAY = st.dates().map(lambda d: d.isoformat())
_INSTANT = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat())


def hr_event_documents() -> st.SearchStrategy[Any]:
    """HR CloudEvents (joiner, mover, leaver) with plausible and implausible fields; sometimes a batch."""
    person = st.fixed_dictionaries(
        {"employeeId": maybe(st.text(min_size=1, max_size=70))},
        optional={
            "objectId": maybe(GUIDS),
            "userPrincipalName": maybe(st.emails()),
            "department": maybe(st.text(max_size=30)),
            "country": maybe(st.sampled_from(("US", "DE", "JP", "XX", "usa"))),
            "hireDate": maybe(_DAY),
            "leaveDate": maybe(st.one_of(_DAY, _INSTANT)),
            "effectiveDate": maybe(_DAY),
        },
    )
    event = st.fixed_dictionaries(
        {
            "specversion": maybe(st.sampled_from(("1.0", "0.3"))),
            "id": maybe(st.text(min_size=1, max_size=40)),
            "source": maybe(st.sampled_from(("urn:hr:workday", "/hr", "")) | st.text(max_size=20)),
            "type": maybe(
                st.sampled_from(
                    ("com.seatkeeper.hr.joiner", "com.seatkeeper.hr.mover", "com.seatkeeper.hr.leaver", "x")
                )
            ),
            "time": maybe(_INSTANT),
            "data": maybe(person),
        },
        optional={
            "datacontenttype": maybe(st.just("application/json")),
            "subject": maybe(st.text(max_size=20)),
        },
    )
    return documents(st.one_of(event, event, st.lists(event, min_size=0, max_size=5)))


def workflow_documents() -> st.SearchStrategy[Any]:
    """Lifecycle Workflows custom task extension payloads."""
    path = st.builds(
        lambda w, t, r: (
            f"/identityGovernance/lifecycleWorkflows/workflows/{w}/tasks/{t}/taskProcessingResults/{r}/resume"
        ),
        GUIDS,
        GUIDS,
        GUIDS,
    )
    data = st.fixed_dictionaries(
        {
            "callbackUriPath": maybe(path),
            "subject": maybe(
                st.fixed_dictionaries({"id": maybe(GUIDS), "userPrincipalName": maybe(st.emails())})
            ),
            "taskProcessingResult": maybe(
                st.fixed_dictionaries({"id": maybe(GUIDS), "createdDateTime": maybe(_INSTANT)})
            ),
            "workflow": maybe(st.fixed_dictionaries({"id": maybe(GUIDS)})),
            "task": maybe(st.fixed_dictionaries({"id": maybe(GUIDS)})),
        }
    )
    return documents(
        st.fixed_dictionaries(
            {
                "source": maybe(st.just("sample")),
                "type": maybe(st.just("lifecycleEvent")),
                "data": maybe(data),
            }
        )
    )


# -- signing ---------------------------------------------------------------------------------------


def signed_headers(secret: str) -> Any:
    """Standard Webhooks headers over the body: mostly valid, sometimes stale, wrong or malformed."""

    def make(body: bytes, draw: st.DrawFn) -> dict[str, str]:
        message_id = draw(st.one_of(st.just(f"msg_{uuid.uuid4().hex}"), st.text(max_size=20)))
        skew = draw(st.sampled_from((0, 0, 0, -400, 400, 10**12)))
        stamp = draw(
            st.one_of(
                st.just(str(int(time.time()) + skew)), st.sampled_from(("inf", "nan", "", "-1", "1e400"))
            )
        )
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        good = "v1," + base64.b64encode(signed).decode("ascii")
        signature = draw(
            st.one_of(
                st.just(good),
                st.just(good),
                st.just(f"v2,abc {good}"),
                st.text(alphabet="v1,=+/ abcXYZ019", max_size=60),
            )
        )
        headers = {"webhook-id": message_id, "webhook-timestamp": stamp, "webhook-signature": signature}
        return {k: v for k, v in headers.items() if v and all(" " <= c <= "\xff" for c in v)}

    return make


# -- properties --------------------------------------------------------------------------------------


def check_no_intake(target: FuzzTarget, before: int, response: httpx.Response, request: FuzzRequest) -> None:
    """A refused request enqueued nothing; an accepted one at most what the answer says it accepted."""
    new = [m for m in target.enqueued_since(before) if m.from_hr_intake]
    accepted = _accepted_count(response)
    assert len(new) <= accepted, f"{len(new)} enqueued, {accepted} accepted, for {request.describe()}"


def _accepted_count(response: httpx.Response) -> int:
    if response.status_code >= 400 and response.status_code != 400:
        return 0
    try:
        document = response.json()
    except ValueError:
        return 0
    if not isinstance(document, dict):
        return 0
    results = document.get("results")
    outcomes = [r.get("outcome") for r in results] if isinstance(results, list) else [document.get("outcome")]
    return sum(1 for o in outcomes if o == "accepted")


@FUZZ
@given(data=st.data())
def test_health_never_fails_on_any_request(target: FuzzTarget, data: st.DataObject) -> None:
    """`GET /api/health` with any query, headers and body: 200 (the sandbox is healthy), or 400 for a body
    the host cannot decode (a Content-Encoding it does not speak); no secret."""
    request = data.draw(requests(st.none(), ("application/json",)))
    response = send(target, "GET", "health", request)
    check_answer(target, response, request)
    encoded = request.headers.get("Content-Encoding", "identity") != "identity"
    assert response.status_code in ((200, 400) if encoded else (200,)), response.text


@pytest.mark.parametrize("route", ["graph/notifications", "graph/lifecycle"])
def test_graph_webhook_never_fails_nor_enqueues_forged_notifications(target: FuzzTarget, route: str) -> None:
    """Any POST to the notification or lifecycle URL: no 5xx, no secret, and nothing enqueued (no
    forged clientState can match one of this host's subscriptions)."""

    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        request = data.draw(requests(notification_documents(target), ("application/json", "text/plain")))
        if data.draw(st.integers(0, 9)) == 0:  # the validation handshake with any token
            request.params["validationToken"] = data.draw(st.text(max_size=3_000))
        before = target.last_seq()
        response = send(target, "POST", route, request)
        check_answer(target, response, request)
        forged: list[Enqueued] = [m for m in target.enqueued_since(before) if m.from_webhook]
        assert forged == [], request.describe()

    fuzz()


@FUZZ
@given(data=st.data())
def test_hr_intake_unsigned_is_refused_and_enqueues_nothing(target: FuzzTarget, data: st.DataObject) -> None:
    """HR intake without a valid signature: always a 4xx and nothing enqueued."""
    media = ("application/cloudevents+json", "application/cloudevents-batch+json", "application/json")
    request = data.draw(requests(hr_event_documents(), media))
    before = target.last_seq()
    response = send(target, "POST", "hr/events", request)
    check_answer(target, response, request)
    assert 400 <= response.status_code < 500, request.describe()
    assert [m for m in target.enqueued_since(before) if m.from_hr_intake] == [], request.describe()


@FUZZ
@given(data=st.data())
def test_hr_intake_signed_enqueues_only_what_it_accepts(target: FuzzTarget, data: st.DataObject) -> None:
    """Signed HR intake with any body: no 5xx, no secret, and no more messages than accepted events."""
    media = ("application/cloudevents+json", "application/cloudevents-batch+json")
    request = data.draw(requests(hr_event_documents(), media, extra_headers=signed_headers(target.hr_secret)))
    before = target.last_seq()
    response = send(target, "POST", "hr/events", request)
    check_answer(target, response, request)
    check_no_intake(target, before, response, request)


@FUZZ
@given(data=st.data())
def test_lifecycle_workflows_intake_enqueues_only_what_it_accepts(
    target: FuzzTarget, data: st.DataObject
) -> None:
    """Lifecycle Workflows intake with any body: no 5xx, no secret, nothing enqueued unless accepted."""
    request = data.draw(requests(workflow_documents(), ("application/json",)))
    before = target.last_seq()
    response = send(target, "POST", "hr/lifecycle-workflows", request)
    check_answer(target, response, request)
    check_no_intake(target, before, response, request)


def test_unauthenticated_requests_are_refused(target: FuzzTarget) -> None:
    """Without the function key every fuzzed route answers 401 and enqueues nothing."""
    before = target.last_seq()
    for route in ("health", "graph/notifications", "graph/lifecycle", "hr/events", "hr/lifecycle-workflows"):
        for key in (None, "", "wrong", target.host.function_key[:-1]):
            headers = {"x-functions-key": key} if key is not None else {}
            client = httpx.Client(base_url=target.host.api_url, timeout=30)
            try:
                answer = client.post(f"/{route}", headers=headers, content=b"{}")
            finally:
                client.close()
            assert answer.status_code in (401, 404), (route, answer.status_code)
    assert target.enqueued_since(before) == []


def test_host_output_holds_no_secret_and_no_unhandled_error(target: FuzzTarget) -> None:
    """After every fuzz case above: the host's captured output never printed a secret nor a failed request."""
    output = target.host_output()
    assert target.leaked(output) == []
    assert "localhost.http_failed" not in output
