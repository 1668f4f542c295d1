"""Lifecycle events through the group-changes consumer: renew or recreate, then catch the group up."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from handlers.group_changes import GroupChangeDeps, handle_message
from handlers.subscription_upkeep import SubscriptionTarget, UpkeepDeps, run_upkeep
from seatkeeper.core.client_state import client_state_matches
from seatkeeper.core.errors import Forbidden
from seatkeeper.core.member_changes import MEMBER_CHANGED
from seatkeeper.core.member_sets import MemberSets
from seatkeeper.core.messages import GROUP_CHANGES, Message
from seatkeeper.core.notifications import SUBSCRIPTION_LIFECYCLE
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_records import SubscriptionRecords
from tests.unit.notification_fakes import DeltaGraph, FakeClock, MemoryStore, RecordingQueue

G = "g1"
KEY = Secret("k" * 32)
URL = "https://sk.example/api/graph/notifications"


class World:
    """Upkeep has subscribed G and recorded its baseline members."""

    def __init__(self) -> None:
        self.graph = DeltaGraph()
        self.store = MemoryStore()
        self.queue = RecordingQueue()
        self.clock = FakeClock()
        target = SubscriptionTarget(Secret(URL + "?code=k"), Secret(URL + "?code=k"))
        self.upkeep = UpkeepDeps(
            self.graph, SubscriptionRecords(self.store), self.queue, self.clock, KEY, target
        )
        self.deps = GroupChangeDeps(
            self.graph, MemberSets(self.store), self.queue, self.clock, frozenset({G}), upkeep=self.upkeep
        )
        self.graph.add(G, "a")
        asyncio.run(run_upkeep([G], self.upkeep, correlation_id="c"))
        asyncio.run(handle_message(self.queue.of_kind("group.changed")[0].body(), self.deps))

    @property
    def subscription(self) -> dict[str, object]:
        [sub] = self.graph.listed()
        return sub

    def event(self, name: str, subscription_id: str | None = None) -> None:
        message = Message(
            queue=GROUP_CHANGES,
            kind=SUBSCRIPTION_LIFECYCLE.name,
            subject=G,
            version=name,
            correlation_id="c",
            payload={
                "group_id": G,
                "subscription_id": subscription_id or str(self.subscription["id"]),
                "lifecycle_event": name,
            },
        )
        asyncio.run(handle_message(message.body(), self.deps))


def test_reauthorization_required_renews_in_place_and_catches_up() -> None:
    """Same subscription, later expiry; a member added meanwhile is announced."""
    world = World()
    before = dict(world.subscription)
    world.graph.add(G, "b")
    world.clock.advance(timedelta(days=20))
    world.event("reauthorizationRequired")
    after = world.subscription
    assert after["id"] == before["id"]
    assert str(after["expirationDateTime"]) > str(before["expirationDateTime"])
    assert [m.subject for m in world.queue.of_kind(MEMBER_CHANGED.name)] == ["b"]


def test_reauthorization_of_a_subscription_graph_lost_recreates_it() -> None:
    """The renewal answers 404: a new subscription at the next generation replaces it."""
    world = World()
    sid = str(world.subscription["id"])
    world.graph.subscriptions.clear()
    world.event("reauthorizationRequired", sid)
    assert world.subscription["id"] != sid
    assert client_state_matches(world.subscription["clientState"], KEY, G, 2)


def test_subscription_removed_recreates_and_catches_up_the_changes_made_meanwhile() -> None:
    """Recreated (the old one deleted), and a removal made while it was gone is still processed."""
    world = World()
    old = str(world.subscription["id"])
    world.graph.remove(G, "a")
    world.event("subscriptionRemoved")
    assert [s["id"] for s in world.graph.listed()] != [old]
    assert len(world.graph.listed()) == 1
    assert [(m.payload["change"], m.subject) for m in world.queue.of_kind(MEMBER_CHANGED.name)] == [
        ("removed", "a")
    ]


def test_missed_only_catches_up_and_a_stale_subscription_changes_nothing() -> None:
    """`missed` reads the delta; an event for a subscription we no longer keep touches no subscription."""
    world = World()
    sid = str(world.subscription["id"])
    world.graph.add(G, "c")
    world.event("missed")
    world.event("subscriptionRemoved", "someone-elses")
    assert [str(s["id"]) for s in world.graph.listed()] == [sid]
    assert [m.subject for m in world.queue.of_kind(MEMBER_CHANGED.name)] == ["c"]


def test_a_recreation_graph_refuses_still_catches_the_group_up() -> None:
    """`subscriptionRemoved` while Graph refuses the creation (403): the removal made meanwhile is announced
    anyway; the group is left to upkeep, which retries and alerts."""
    world = World()
    sid = str(world.subscription["id"])
    world.graph.subscriptions.clear()
    world.graph.create_error = Forbidden("POST /subscriptions: 403 Authorization_RequestDenied")
    world.graph.remove(G, "a")
    world.event("subscriptionRemoved", sid)
    assert world.graph.writes.count(("POST", "/subscriptions")) == 2  # the refused recreation was tried
    assert world.graph.listed() == []
    assert [(m.payload["change"], m.subject) for m in world.queue.of_kind(MEMBER_CHANGED.name)] == [
        ("removed", "a")
    ]
