"""The group-change consumer with a recording Graph: delta from the stored link, baseline, replays,
lost tokens recovered by a full read diffed against the stored set, one message per changed member."""

from __future__ import annotations

import asyncio

import pytest

from handlers.group_changes import GroupChangeDeps, catch_up, handle_message, reconcile
from seatkeeper.core.errors import Rejected
from seatkeeper.core.member_changes import MEMBER_CHANGED, DetectedBy
from seatkeeper.core.member_sets import MemberSets
from seatkeeper.core.messages import GROUP_CHANGES
from seatkeeper.core.notifications import Reason, catch_up_message
from tests.unit.notification_fakes import DeltaGraph, FakeClock, MemoryStore, RecordingQueue

G = "g1"


class Consumer:
    def __init__(self) -> None:
        self.graph = DeltaGraph()
        self.store = MemoryStore()
        self.queue = RecordingQueue()
        self.deps = GroupChangeDeps(
            self.graph, MemberSets(self.store), self.queue, FakeClock(), frozenset({G})
        )

    def run(self) -> None:
        asyncio.run(catch_up(G, self.deps, correlation_id="c"))

    def changes(self) -> list[tuple[str, str]]:
        return sorted((str(m.payload["change"]), m.subject) for m in self.queue.of_kind(MEMBER_CHANGED.name))

    def stored(self) -> frozenset[str]:
        sync = asyncio.run(self.deps.members.load(G))
        assert sync is not None
        return sync.members


@pytest.fixture
def consumer() -> Consumer:
    return Consumer()


def test_the_first_sync_records_a_baseline_and_emits_nothing(consumer: Consumer) -> None:
    """Existing members (over several pages, replayed, with a nested group) are stored, not announced."""
    consumer.graph.add(G, *(f"u{i}" for i in range(7)))
    consumer.run()
    assert consumer.changes() == []
    assert consumer.stored() == frozenset(f"u{i}" for i in range(7))


def test_each_added_and_removed_member_becomes_one_message(consumer: Consumer) -> None:
    """Delta from the stored link: one member.changed per change, replays and repeats collapsing."""
    consumer.graph.add(G, "a", "b")
    consumer.run()
    consumer.graph.add(G, "c", "d")
    consumer.graph.remove(G, "a")
    consumer.run()
    consumer.run()
    assert consumer.changes() == [("added", "c"), ("added", "d"), ("removed", "a")]
    assert consumer.stored() == frozenset({"b", "c", "d"})
    assert {m.session_id for m in consumer.queue.of_kind(MEMBER_CHANGED.name)} == {"a", "c", "d"}


def test_a_lost_token_is_recovered_by_a_full_read_without_losing_removals(consumer: Consumer) -> None:
    """410 on the stored link: the full read diffed against the stored set finds the add and the removal."""
    consumer.graph.add(G, "a", "b")
    consumer.run()
    consumer.graph.expired.add(f"delta:{G}:{consumer.graph.version}")
    consumer.graph.add(G, "c")
    consumer.graph.remove(G, "a")
    consumer.run()
    assert consumer.changes() == [("added", "c"), ("removed", "a")]
    detected = {m.payload["detected_by"] for m in consumer.queue.of_kind(MEMBER_CHANGED.name)}
    assert detected == {DetectedBy.FULL_SYNC.value}


def test_a_crash_before_saving_replays_onto_the_same_message_ids(consumer: Consumer) -> None:
    """Messages sent, state not saved: the redelivery sends the same ids, so nothing is doubled."""
    consumer.graph.add(G, "a")
    consumer.run()
    consumer.graph.add(G, "b")
    saved = dict(consumer.store.rows)
    consumer.run()
    first = set(consumer.queue.messages)
    consumer.store.rows = saved
    consumer.run()
    assert set(consumer.queue.messages) == first
    assert consumer.changes() == [("added", "b")]


def test_a_member_who_leaves_and_returns_is_announced_each_time(consumer: Consumer) -> None:
    """Later generations give new ids: a re-add is not mistaken for a duplicate."""
    consumer.run()
    for step in (consumer.graph.add, consumer.graph.remove, consumer.graph.add):
        step(G, "a")
        consumer.run()
    assert consumer.changes() == [("added", "a"), ("added", "a"), ("removed", "a")]


def test_other_graph_errors_propagate_so_the_message_is_retried(consumer: Consumer) -> None:
    """A 400 that is not about the token is not papered over with a full read."""

    consumer.run()
    consumer.graph.delta_error = Rejected("GET /groups/delta: 400 BadRequest", status=400, code="BadRequest")
    with pytest.raises(Rejected):
        consumer.run()


def test_messages_for_groups_outside_the_policy_and_invalid_ones_are_completed_untouched(
    consumer: Consumer,
) -> None:
    """Nothing is read or sent for them."""
    other = catch_up_message("not-licensing", Reason.NOTIFICATION, "1", "c")
    assert asyncio.run(handle_message(other.body(), consumer.deps)) is None
    assert asyncio.run(handle_message(b"{}", consumer.deps)) is None
    assert consumer.queue.messages == {}
    assert consumer.store.rows == {}


def test_reconciliation_queues_one_catch_up_per_group_per_tick(consumer: Consumer) -> None:
    """The timer's tick is part of the id: the same tick collapses, the next one does not."""
    asyncio.run(reconcile(["g1", "g2"], consumer.queue, consumer.deps.clock, correlation_id="c"))
    asyncio.run(reconcile(["g1", "g2"], consumer.queue, consumer.deps.clock, correlation_id="c"))
    assert sorted(m.session_id or "" for m in consumer.queue.messages.values()) == ["g1", "g2"]
    assert all(m.queue == GROUP_CHANGES for m in consumer.queue.messages.values())


def test_a_queued_catch_up_runs_through_handle_message(consumer: Consumer) -> None:
    """The consumer entry point: parse, check the policy, catch up."""
    consumer.run()
    consumer.graph.add(G, "x")
    message = catch_up_message(G, Reason.RECONCILE, "t1", "corr")
    result = asyncio.run(handle_message(message.body(), consumer.deps, message_id=message.message_id))
    assert result is not None
    assert consumer.changes() == [("added", "x")]
    assert {m.correlation_id for m in consumer.queue.of_kind(MEMBER_CHANGED.name)} == {"corr"}


def test_a_permanent_graph_error_completes_the_message_with_a_logged_reason(consumer: Consumer) -> None:
    """A refused delta read is not retried forever: the message completes, nothing is sent or stored."""
    consumer.graph.delta_error = Rejected("GET /groups/delta: 403", status=403, code="Forbidden")
    consumer.run()
    before = dict(consumer.store.rows)
    message = catch_up_message(G, Reason.RECONCILE, "t2", "c")
    assert asyncio.run(handle_message(message.body(), consumer.deps)) is None
    assert consumer.queue.of_kind(MEMBER_CHANGED.name) == []
    assert consumer.store.rows == before
