"""The webhook with recording fakes: handshake, 202 after persisting, 5xx when the queue fails, 4xx for
bad input, duplicates and foreign items enqueue nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from handlers.graph_webhook import WebhookDeps, WebhookRequest, WebhookResponse, receive
from seatkeeper.core.client_state import derive_client_state
from seatkeeper.core.notifications import GROUP_CHANGED, SUBSCRIPTION_LIFECYCLE
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_plan import SubscriptionRecord
from seatkeeper.core.subscription_records import CachedSubscriptionKeys, SubscriptionRecords
from tests.unit.notification_fakes import T0, MemoryStore, RecordingQueue

KEY = Secret("k" * 32)
GROUP = "0b6e1f7a-0000-4000-8000-000000000001"
SUB = "7f1c0000-0000-4000-8000-00000000000a"
JSON = "application/json"
_sequence = itertools.count(638700000000000001)


def item(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "subscriptionId": SUB,
        "changeType": "updated",
        "clientState": derive_client_state(KEY, GROUP, 2).reveal(),
        "tenantId": "t",
        "resource": f"Groups/{GROUP}",
        "resourceData": {"id": GROUP, "sequenceNumber": next(_sequence)},
    }
    value.update(overrides)
    return value


class Webhook:
    """The handler over a store holding one subscription record (group GROUP, generation 2)."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.queue = RecordingQueue()
        records = SubscriptionRecords(self.store)
        asyncio.run(records.save(SubscriptionRecord(GROUP, SUB, 2, T0, T0), replaces=None))
        self.deps = WebhookDeps(self.queue, CachedSubscriptionKeys(records, monotonic=lambda: 0.0), KEY)

    def post(
        self,
        body: bytes | dict[str, Any],
        *,
        content_type: str | None = JSON,
        params: dict[str, str] | None = None,
    ) -> WebhookResponse:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        return asyncio.run(
            receive(WebhookRequest(params or {}, content_type, raw), self.deps, correlation_id="c")
        )


@pytest.fixture
def hook() -> Webhook:
    return Webhook()


def test_the_validation_handshake_answers_the_decoded_token_as_plain_text(hook: Webhook) -> None:
    """200, text/plain, the token as given (even if it looks like HTML), nothing enqueued."""
    token = "Validation: Testing <script>alert(1)</script> & more"
    answer = hook.post(b"", content_type=None, params={"validationToken": token})
    assert (answer.status, answer.body, answer.content_type) == (200, token, "text/plain; charset=utf-8")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert hook.queue.messages == {}


def test_valid_items_are_persisted_then_acknowledged_with_202(hook: Webhook) -> None:
    """Two changes of one group in one delivery: one group.changed (one catch-up) in its session, then 202."""
    answer = hook.post({"value": [item(), item(changeType="deleted")]})
    assert answer.status == 202
    messages = hook.queue.of_kind(GROUP_CHANGED.name)
    assert [(m.subject, m.session_id, m.payload["change_type"]) for m in messages] == [
        (GROUP, GROUP, "deleted,updated")
    ]


def test_a_redelivery_in_another_order_collapses_and_new_changes_give_a_new_message(hook: Webhook) -> None:
    """The id follows the set of sequence numbers: reordered redelivery adds nothing, a later batch does."""
    first, second = item(), item()
    hook.post({"value": [first, second]})
    hook.post({"value": [second, first]})
    assert len(hook.queue.of_kind(GROUP_CHANGED.name)) == 1
    hook.post({"value": [item(), item()]})
    assert len(hook.queue.of_kind(GROUP_CHANGED.name)) == 2


def test_an_exact_duplicate_delivery_gets_202_again_and_adds_nothing(hook: Webhook) -> None:
    """Graph retries a delivery: same answer, the queue holds the same messages."""
    delivery = {"value": [item(), item()]}
    first = hook.post(delivery)
    before = dict(hook.queue.messages)
    second = hook.post(delivery)
    assert (first.status, second.status) == (202, 202)
    assert hook.queue.messages == before


def test_a_queue_failure_answers_503_so_that_graph_retries(hook: Webhook) -> None:
    """Never a 2xx for something not persisted."""
    hook.queue.fail = 1
    assert hook.post({"value": [item()]}).status == 503
    assert hook.queue.messages == {}
    assert hook.post({"value": [item()]}).status == 202


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (item(clientState="forged"), "foreign"),
        (item(clientState=derive_client_state(KEY, GROUP, 1).reveal()), "foreign"),
        (item(clientState=derive_client_state(Secret("x" * 32), GROUP, 2).reveal()), "foreign"),
        (item(clientState=None), "foreign"),
        (item(resource="Groups/other", resourceData={"id": "other"}), "foreign"),
        (item(subscriptionId="ffffffff-0000-4000-8000-000000000000"), "unknown_subscription"),
        ({"subscriptionId": SUB}, "malformed"),
    ],
    ids=[
        "forged",
        "old-generation",
        "other-key",
        "no-state",
        "other-group",
        "unknown-subscription",
        "malformed",
    ],
)
def test_foreign_unknown_and_malformed_items_are_dropped_and_counted(
    hook: Webhook, bad: dict[str, Any], reason: str
) -> None:
    """The batch is acknowledged; the bad item enqueues nothing and is counted by reason."""
    with capture_logs() as logs:
        answer = hook.post({"value": [bad]})
    assert answer.status == 202
    assert hook.queue.messages == {}
    [summary] = [e for e in logs if e["event"] == "graph.notifications_received"]
    assert (summary["accepted"], summary[reason]) == (0, 1)
    assert "clientState" not in json.dumps(logs, default=str)


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b"{oops", JSON, 400),
        (b'{"value": [], "x": 1}', "text/html", 415),
        (b"[" * 1_000_001, JSON, 413),
    ],
    ids=["malformed-json", "wrong-type", "too-large"],
)
def test_bad_deliveries_get_a_4xx_with_a_reason_and_enqueue_nothing(
    hook: Webhook, raw: bytes, content_type: str, status: int
) -> None:
    """4xx, a reason in plain text, nothing persisted."""
    answer = hook.post(raw, content_type=content_type)
    assert answer.status == status
    assert answer.body
    assert hook.queue.messages == {}


def test_lifecycle_events_are_queued_for_the_subscription_group_unknown_ones_only_logged(
    hook: Webhook,
) -> None:
    """reauthorizationRequired becomes a subscription.lifecycle message; an unknown event is acknowledged."""
    state = derive_client_state(KEY, GROUP, 2).reveal()
    known = {"subscriptionId": SUB, "clientState": state, "lifecycleEvent": "reauthorizationRequired"}
    unknown = {"subscriptionId": SUB, "clientState": state, "lifecycleEvent": "somethingNew"}
    with capture_logs() as logs:
        answer = hook.post({"value": [known, unknown]})
    assert answer.status == 202
    [message] = hook.queue.messages.values()
    assert (message.kind, message.subject, message.payload["lifecycle_event"]) == (
        SUBSCRIPTION_LIFECYCLE.name,
        GROUP,
        "reauthorizationRequired",
    )
    assert any(e["event"] == "graph.lifecycle_event_unknown" for e in logs)


def test_a_clean_delivery_logs_its_summary_at_debug_level_only(hook: Webhook) -> None:
    """The hot path stays quiet: nothing at info or above when every item was accepted."""
    with capture_logs() as logs:
        assert hook.post({"value": [item(), item()]}).status == 202
    assert [(e["event"], e["log_level"]) for e in logs] == [("graph.notifications_received", "debug")]
