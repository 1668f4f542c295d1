"""The pure notification core: batch parsing, the derived clientState, deterministic message ids,
and the membership fold and diff."""

from __future__ import annotations

import json
from typing import Any

import pytest

from seatkeeper.core.client_state import client_state_matches, derive_client_state
from seatkeeper.core.member_changes import (
    DetectedBy,
    apply_fold,
    diff,
    fold_delta,
    full_members,
    member_messages,
)
from seatkeeper.core.messages import validate
from seatkeeper.core.notifications import (
    MAX_BODY_BYTES,
    NotificationBatch,
    Reason,
    Refusal,
    catch_up_message,
    change_message,
    group_changes_message,
    lifecycle_message,
    parse_batch,
)
from seatkeeper.core.sensitive import Secret

KEY = Secret("k" * 32)
GROUP = "0b6e1f7a-0000-4000-8000-000000000001"
JSON = "application/json; charset=utf-8"


def change(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "subscriptionId": "7f1c0000-0000-4000-8000-00000000000a",
        "subscriptionExpirationDateTime": "2026-12-30T10:00:00Z",
        "changeType": "updated",
        "clientState": "state",
        "tenantId": "t",
        "resource": f"Groups/{GROUP}",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Group",
            "id": GROUP,
            "sequenceNumber": 638700000000000001,
        },
    }
    item.update(overrides)
    return item


def body(*items: Any) -> bytes:
    return json.dumps({"value": list(items)}).encode()


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (body(change()), "text/plain", 415),
        (body(change()), None, 415),
        (b"{not json", JSON, 400),
        (b"[]", JSON, 400),
        (b'{"value": {}}', JSON, 400),
        (b"\xff\xfe", JSON, 400),
        (b" " * (MAX_BODY_BYTES + 1), JSON, 413),
        (b"[" * 100_000, JSON, 400),
    ],
    ids=["wrong-type", "no-type", "bad-json", "array", "value-not-list", "not-utf8", "too-large", "too-deep"],
)
def test_unusable_deliveries_are_refused_with_a_status(
    raw: bytes, content_type: str | None, status: int
) -> None:
    """Wrong content type, malformed JSON and oversized bodies are refused as a whole."""
    refused = parse_batch(raw, content_type)
    assert isinstance(refused, Refusal)
    assert refused.status == status


def test_a_change_notification_is_parsed_into_its_group_and_sequence() -> None:
    """The group comes from resourceData.id, the sequence number is kept as text."""
    batch = parse_batch(body(change()), JSON)
    assert isinstance(batch, NotificationBatch)
    [item] = batch.items
    assert (item.group_id, item.sequence_number, item.change_type) == (GROUP, "638700000000000001", "updated")
    assert "state" not in repr(item)


@pytest.mark.parametrize(
    "bad",
    [
        "not an object",
        {**change(), "subscriptionId": None},
        {**change(), "subscriptionId": "../../etc"},
        {**change(), "lifecycleEvent": "missed"},
        {k: v for k, v in change().items() if k != "changeType"},
        change(resource="Users/abc", resourceData={}),
        change(clientState=7),
    ],
    ids=[
        "string",
        "no-subscription",
        "bad-id",
        "both-kinds",
        "neither-kind",
        "not-a-group",
        "state-not-text",
    ],
)
def test_malformed_items_are_dropped_and_the_rest_kept(bad: Any) -> None:
    """One malformed item does not spoil its batch: it is reported, the good item survives."""
    batch = parse_batch(body(bad, change()), JSON)
    assert isinstance(batch, NotificationBatch)
    assert (len(batch.items), len(batch.malformed)) == (1, 1)


def test_a_lifecycle_notification_has_no_group_of_its_own() -> None:
    """Lifecycle items carry no resource; their group comes from the subscription record."""
    raw = {
        "subscriptionId": "abc",
        "clientState": "s",
        "tenantId": "t",
        "lifecycleEvent": "reauthorizationRequired",
    }
    batch = parse_batch(body(raw), JSON)
    assert isinstance(batch, NotificationBatch)
    assert [(i.is_lifecycle, i.group_id) for i in batch.items] == [(True, None)]


def test_the_client_state_is_derived_per_group_and_generation() -> None:
    """The same inputs give the same value; another group, generation or key does not match."""
    state = derive_client_state(KEY, GROUP, 3).reveal()
    assert len(state) <= 128
    assert client_state_matches(state, KEY, GROUP.upper(), 3)
    assert not client_state_matches(state, KEY, GROUP, 4)
    assert not client_state_matches(state, KEY, "other", 3)
    assert not client_state_matches(state, Secret("x" * 32), GROUP, 3)
    assert not client_state_matches(None, KEY, GROUP, 3)
    assert not client_state_matches("é" * 200, KEY, GROUP, 3)


def test_a_redelivered_item_gives_the_same_message_id_and_another_sequence_a_new_one() -> None:
    """Ids follow (subscription, sequence number): duplicates collapse, later changes do not."""
    first = parse_batch(body(change()), JSON)
    again = parse_batch(body(change(clientState="other")), JSON)
    later = parse_batch(body(change(resourceData={"id": GROUP, "sequenceNumber": 638700000000000002})), JSON)
    assert isinstance(first, NotificationBatch)
    assert isinstance(again, NotificationBatch)
    assert isinstance(later, NotificationBatch)
    ids = [change_message(b.items[0], GROUP, "c").message_id for b in (first, again, later)]
    assert ids[0] == ids[1] != ids[2]


def test_the_changes_of_one_delivery_become_one_valid_message_and_one_alone_keeps_its_id() -> None:
    """Several items: one schema-valid group.changed; a single item: the same id as change_message."""
    seq = [{"id": GROUP, "sequenceNumber": n} for n in (638700000000000005, 638700000000000006)]
    batch = parse_batch(body(change(resourceData=seq[0]), change(resourceData=seq[1])), JSON)
    assert isinstance(batch, NotificationBatch)
    joined = group_changes_message(batch.items, GROUP, "c")
    validate(joined)
    single = group_changes_message(batch.items[:1], GROUP, "c")
    assert single.message_id == change_message(batch.items[0], GROUP, "c").message_id != joined.message_id


def test_messages_match_their_registered_schemas() -> None:
    """group.changed, subscription.lifecycle and member.changed validate against their kinds."""
    batch = parse_batch(
        body(change(), {"subscriptionId": "abc", "clientState": "s", "lifecycleEvent": "missed"}), JSON
    )
    assert isinstance(batch, NotificationBatch)
    messages = [
        change_message(batch.items[0], GROUP, "c"),
        lifecycle_message(batch.items[1], GROUP, "c"),
        catch_up_message(GROUP, Reason.RECONCILE, "2026-12-01T09:00", "c"),
        *member_messages(
            GROUP,
            diff(frozenset({"u1"}), frozenset({"u2"})),
            generation=2,
            detected_by=DetectedBy.DELTA,
            correlation_id="c",
        ),
    ]
    for message in messages:
        validate(message)
    assert [m.session_id for m in messages] == [GROUP, GROUP, GROUP, "u2", "u1"]


def test_an_incremental_round_folds_replays_and_the_last_word_wins() -> None:
    """Added, removed, re-added and replayed entries fold into one set change; nested groups are ignored."""
    items: list[dict[str, Any]] = [
        {
            "id": GROUP,
            "members@delta": [{"id": "a"}, {"id": "b"}, {"id": "c", "@removed": {"reason": "deleted"}}],
        },
        {"id": "another-group", "members@delta": [{"id": "x"}]},
        {"id": GROUP, "members@delta": [{"id": "b", "@removed": {"reason": "changed"}}, {"id": "a"}]},
        {"id": GROUP, "members@delta": [{"id": "g", "@odata.type": "#microsoft.graph.group"}]},
    ]
    fold = fold_delta(items, GROUP)
    assert apply_fold(frozenset({"b", "c", "d"}), fold) == frozenset({"a", "d"})


def test_a_removed_group_has_no_members_left() -> None:
    """A group reported `@removed` empties the set: every member is removed."""
    fold = fold_delta([{"id": GROUP, "@removed": {"reason": "deleted"}}], GROUP)
    assert apply_fold(frozenset({"a"}), fold) == frozenset()


def test_a_full_round_diffed_against_the_stored_set_finds_removals_too() -> None:
    """What the stored set has and the full read lacks is a removal; the reverse an addition."""
    after = full_members([{"id": GROUP, "members@delta": [{"id": "A"}, {"id": "b"}]}], GROUP)
    changes = diff(frozenset({"b", "gone"}), after)
    assert (changes.added, changes.removed) == (("a",), ("gone",))
