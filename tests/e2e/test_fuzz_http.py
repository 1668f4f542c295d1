"""Fuzzing every HTTP endpoint of function_app.py over real HTTP against the local host on the sandbox.

Arbitrary bodies, headers, sizes and encodings, plus almost-valid documents of each endpoint's shape:
never a 5xx, never a message enqueued from a refused request (the host runs without queue consumers, so
every enqueued message stays readable), never a secret in a response or in the host's output.
`make test` runs 2,000 cases per endpoint; `python -m bench.fuzz` runs 10,000. Each Hypothesis example is
a batch of requests sent at once over kept-alive connections, so the host works while the next batch is drawn.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.fuzz_requests import GUIDS, FuzzRequest, documents, maybe, requests
from tests.e2e.fuzz_target import FUZZ_WORKFLOW_ID, FuzzTarget, fuzz_examples, fuzz_target
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.timeout(1_800)

BATCH = 4  # requests per example, sent concurrently
FUZZ = settings(
    max_examples=-(-fuzz_examples() // BATCH),
    deadline=None,
    derandomize=False,
    database=None,
    # A shared, slow machine: generation and HTTP round trips may be slow; that is not a finding.
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


@pytest.fixture(scope="module")
def target(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """One service host for the whole module, reached over a few keep-alive connections."""
    with fuzz_target(sandbox, tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads that send one batch's requests at once."""
    with ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="fuzz") as executor:
        yield executor


def send(target: FuzzTarget, method: str, route: str, request: FuzzRequest) -> httpx.Response:
    """Send one fuzz request (chunked when asked: the host must read a body without Content-Length)."""
    content: bytes | Iterator[bytes] = request.body
    if request.chunked and request.body:
        body = request.body
        content = iter([body[: len(body) // 2], body[len(body) // 2 :]])
    # Header values go as Latin-1 bytes: httpx would refuse non-ASCII text, HTTP/1.1 carries octets.
    headers = [(name.encode("ascii"), value.encode("latin-1")) for name, value in request.headers.items()]
    return target.client.request(method, f"/{route}", params=request.params, headers=headers, content=content)


def send_batch(
    target: FuzzTarget, pool: ThreadPoolExecutor, method: str, route: str, batch: list[FuzzRequest]
) -> list[tuple[FuzzRequest, httpx.Response]]:
    """Send a batch at once; each answer checked for what every endpoint keeps (no 5xx, no secret)."""
    answers = list(pool.map(lambda r: send(target, method, route, r), batch))
    for request, response in zip(batch, answers, strict=True):
        assert response.status_code < 500, f"{response.status_code} for {request.describe()}"
        assert not target.leaked(response.content), f"a secret in the answer to {request.describe()}"
        assert not target.leaked(json.dumps(dict(response.headers))), "a secret in the response headers"
    return list(zip(batch, answers, strict=True))


def batches(strategy: st.SearchStrategy[FuzzRequest]) -> st.SearchStrategy[list[FuzzRequest]]:
    """A batch of requests for one example."""
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)


def describe(answers: list[tuple[FuzzRequest, httpx.Response]]) -> str:
    """Statuses and requests of a batch, for a failure message."""
    return "\n".join(f"{response.status_code}: {request.describe()}" for request, response in answers)


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
_INSTANT = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())


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
    valid_event = st.builds(
        _valid_event,
        st.sampled_from(("joiner", "mover", "leaver")),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=30),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10),
        _INSTANT,
        _DAY,
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
    return st.one_of(
        valid_event,
        st.lists(st.one_of(valid_event, event), min_size=1, max_size=5),
        documents(st.one_of(event, event, st.lists(event, min_size=0, max_size=5))),
    )


def _valid_event(kind: str, event_id: str, employee: str, recorded: str, day: str) -> dict[str, Any]:
    """A schema-valid HR CloudEvent (joiner, mover or leaver), so the fuzzer reaches acceptance too."""
    date_field = {"joiner": "hireDate", "mover": "effectiveDate", "leaver": "leaveDate"}[kind]
    return {
        "specversion": "1.0",
        "id": f"fuzz-{event_id}",
        "source": "urn:seatkeeper:fuzz",
        "type": f"com.seatkeeper.hr.{kind}",
        "time": recorded,
        "data": {"employeeId": f"F{employee}", "country": "US", date_field: day},
    }


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
    valid = st.fixed_dictionaries(
        {
            "data": st.fixed_dictionaries(
                {
                    "callbackUriPath": path,
                    "subject": st.fixed_dictionaries({"id": GUIDS}),
                    "taskProcessingResult": st.fixed_dictionaries({"id": GUIDS}),
                    "workflow": st.fixed_dictionaries(
                        {"id": st.sampled_from((FUZZ_WORKFLOW_ID, FUZZ_WORKFLOW_ID.upper()))}
                    ),
                }
            )
        }
    )
    return st.one_of(
        valid,
        documents(
            st.fixed_dictionaries(
                {
                    "source": maybe(st.just("sample")),
                    "type": maybe(st.just("lifecycleEvent")),
                    "data": maybe(data),
                }
            )
        ),
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
        return {k: v.strip() for k, v in headers.items() if v.strip() and all(" " <= c <= "\xff" for c in v)}

    return make


# -- properties --------------------------------------------------------------------------------------


def accepted_count(response: httpx.Response) -> int:
    """How many events an intake answer says it accepted (a batch may accept some and refuse others)."""
    if response.status_code not in (202, 400, 409):
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


HEALTH_BATCHES = batches(requests(st.none(), ("application/json",)))
HR_MEDIA = ("application/cloudevents+json", "application/cloudevents-batch+json", "application/json")
HR_UNSIGNED_BATCHES = batches(requests(hr_event_documents(), HR_MEDIA))
WORKFLOW_BATCHES = batches(requests(workflow_documents(), ("application/json",)))
_HANDSHAKES = st.lists(
    st.one_of(st.none(), st.none(), st.none(), st.text(max_size=3_000)), min_size=BATCH, max_size=BATCH
)


@functools.cache
def signed_batches(secret: str) -> st.SearchStrategy[list[FuzzRequest]]:
    """HR intake requests signed with this host's secret (built once per secret)."""
    media = ("application/cloudevents+json", "application/cloudevents-batch+json")
    return batches(requests(hr_event_documents(), media, extra_headers=signed_headers(secret)))


@FUZZ
@given(data=st.data())
def test_health_never_fails_on_any_request(
    target: FuzzTarget, pool: ThreadPoolExecutor, data: st.DataObject
) -> None:
    """`GET /api/health` with any query, headers and body: 200 (the sandbox is healthy), no secret."""
    answers = send_batch(target, pool, "GET", "health", data.draw(HEALTH_BATCHES))
    assert [r.status_code for _, r in answers] == [200] * BATCH, describe(answers)


@pytest.mark.parametrize("route", ["graph/notifications", "graph/lifecycle"])
def test_graph_webhook_never_fails_nor_enqueues_forged_notifications(
    target: FuzzTarget, pool: ThreadPoolExecutor, route: str
) -> None:
    """Any POST to the notification or lifecycle URL: no 5xx, no secret, and nothing enqueued (no
    forged clientState can match one of this host's subscriptions, real ids included)."""
    webhook_batches = batches(requests(notification_documents(target), ("application/json", "text/plain")))

    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        batch = data.draw(webhook_batches)
        for request, token in zip(batch, data.draw(_HANDSHAKES), strict=True):
            if token is not None:  # the validation handshake, with any token
                request.params["validationToken"] = token
        before = target.last_seq()
        answers = send_batch(target, pool, "POST", route, batch)
        forged = [m for m in target.enqueued_since(before) if m.from_webhook]
        assert forged == [], describe(answers)

    fuzz()


@FUZZ
@given(data=st.data())
def test_hr_intake_unsigned_is_refused_and_enqueues_nothing(
    target: FuzzTarget, pool: ThreadPoolExecutor, data: st.DataObject
) -> None:
    """HR intake without a valid signature: always a 4xx and nothing enqueued."""
    before = target.last_seq()
    answers = send_batch(target, pool, "POST", "hr/events", data.draw(HR_UNSIGNED_BATCHES))
    assert all(400 <= r.status_code < 500 for _, r in answers), describe(answers)
    assert [m for m in target.enqueued_since(before) if m.from_hr_intake] == [], describe(answers)


@FUZZ
@given(data=st.data())
def test_hr_intake_signed_enqueues_only_what_it_accepts(
    target: FuzzTarget, pool: ThreadPoolExecutor, data: st.DataObject
) -> None:
    """Signed HR intake with any body: no 5xx, no secret, and no more messages than accepted events."""
    before = target.last_seq()
    answers = send_batch(target, pool, "POST", "hr/events", data.draw(signed_batches(target.hr_secret)))
    new = [m for m in target.enqueued_since(before) if m.from_hr_intake]
    accepted = sum(accepted_count(r) for _, r in answers)
    assert len(new) <= accepted, describe(answers)
    target.accepted += accepted


@FUZZ
@given(data=st.data())
def test_lifecycle_workflows_intake_enqueues_only_what_it_accepts(
    target: FuzzTarget, pool: ThreadPoolExecutor, data: st.DataObject
) -> None:
    """Lifecycle Workflows intake with any body: no 5xx, no secret, nothing enqueued unless accepted."""
    before = target.last_seq()
    answers = send_batch(target, pool, "POST", "hr/lifecycle-workflows", data.draw(WORKFLOW_BATCHES))
    new = [m for m in target.enqueued_since(before) if m.from_hr_intake]
    accepted = sum(accepted_count(r) for _, r in answers)
    assert len(new) <= accepted, describe(answers)
    target.accepted += accepted


FINDINGS = {
    "nested 100,000 deep": (b"[" * 100_000, {}),
    "an integer of 4,301 digits": (b"1" * 4_301, {}),
    "Content-Encoding gzip over plain bytes": (b'{"value": []}', {"Content-Encoding": "gzip"}),
}
ROUTES = ("graph/notifications", "graph/lifecycle", "hr/events", "hr/lifecycle-workflows")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("finding", sorted(FINDINGS))
def test_what_the_fuzzer_found_stays_fixed(target: FuzzTarget, route: str, finding: str) -> None:
    """The bodies that once got a 500 (or a dropped connection) now get a 4xx (or 202 for an empty batch)."""
    body, extra = FINDINGS[finding]
    headers = {"Content-Type": "application/json", **extra}
    if route == "hr/events":  # signed, so the body is parsed
        stamp, message_id = str(int(time.time())), f"msg_{uuid.uuid4().hex}"
        key = base64.b64decode(target.hr_secret.removeprefix("whsec_"))
        signed = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers |= {
            "Content-Type": "application/cloudevents+json",
            "webhook-id": message_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(signed).decode("ascii"),
        }
    answer = send(target, "POST", route, FuzzRequest(headers=headers, body=body))
    assert answer.status_code < 500, answer.text


def test_unauthenticated_requests_are_refused(target: FuzzTarget) -> None:
    """Without the function key every fuzzed route answers 401 (404 for a method it does not serve) and
    nothing is enqueued."""
    before = target.last_seq()
    with httpx.Client(base_url=target.host.api_url, timeout=30) as client:
        for route in (
            "health",
            "graph/notifications",
            "graph/lifecycle",
            "hr/events",
            "hr/lifecycle-workflows",
        ):
            for key in (None, "", "wrong", target.host.function_key[:-1]):
                headers = {"x-functions-key": key} if key is not None else {}
                for method in ("GET", "POST"):
                    answer = client.request(method, f"/{route}", headers=headers, content=b"{}")
                    assert answer.status_code in (401, 404), (route, method, answer.status_code)
    assert target.enqueued_since(before) == []


def test_fuzzing_reached_acceptance(target: FuzzTarget) -> None:
    """The signed and workflow fuzzers did get events accepted and enqueued: their bound was exercised."""
    enqueued = [m for m in target.enqueued_since(0) if m.from_hr_intake]
    assert target.accepted > 0
    assert 0 < len(enqueued) <= target.accepted


def test_host_output_holds_no_secret_and_no_unhandled_error(target: FuzzTarget) -> None:
    """After every fuzz case above: the host's captured output never printed a secret nor a failed request."""
    output = target.host_output()
    assert target.leaked(output) == []
    assert "localhost.http_failed" not in output
    assert "Unhandled exception" not in output
    # aiohttp prints a traceback with each request it refuses as malformed HTTP (a 400 before any function
    # runs: a DEL in a header value, say); any other traceback is a finding.
    tracebacks = output.split("Traceback (most recent call last):")[1:]
    assert [t[:400] for t in tracebacks if "BadHttpMessage: 400" not in t.split("\n\n", 1)[0]] == []
