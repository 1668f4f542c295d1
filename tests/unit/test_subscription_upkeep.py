"""Subscription upkeep: the pure plan, then the handler against a recording Graph and store."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.subscription_upkeep import SubscriptionTarget, UpkeepDeps, run_upkeep
from seatkeeper.cli.subscriptions import status_rows
from seatkeeper.core.client_state import client_state_matches
from seatkeeper.core.errors import ConfigurationError, Forbidden
from seatkeeper.core.notifications import GROUP_CHANGED
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_plan import (
    LIFETIME,
    CreateSubscription,
    DeleteReason,
    DeleteSubscription,
    ForgetRecord,
    ListedSubscription,
    RenewSubscription,
    SubscriptionRecord,
    plan_upkeep,
)
from seatkeeper.core.subscription_records import SubscriptionRecords
from seatkeeper.notification_wiring import subscription_target
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from tests.unit.notification_fakes import T0, DeltaGraph, FakeClock, MemoryStore, RecordingQueue

URL = "https://sk.example/api/graph/notifications"
KEY = Secret("k" * 32)
TARGET = SubscriptionTarget(
    Secret(URL + "?code=webhook-key"), Secret(URL.replace("notifications", "lifecycle") + "?code=webhook-key")
)


def record(group: str, sid: str, generation: int = 1, days_left: float = 20) -> SubscriptionRecord:
    return SubscriptionRecord(group, sid, generation, T0 + timedelta(days=days_left), T0 - timedelta(days=5))


def listed(group: str, sid: str, days_left: float = 20, url: str = URL) -> ListedSubscription:
    return ListedSubscription(sid, f"/groups/{group}", T0 + timedelta(days=days_left), url + "?code=x")


def test_a_group_without_a_record_gets_a_subscription_at_generation_one() -> None:
    """A new licensing group: one create, nothing else."""
    plan = plan_upkeep(["g1"], {}, [], T0, notification_url=URL)
    assert plan.actions == (CreateSubscription("g1", 1, T0 + LIFETIME, recreate=False),)


def test_a_healthy_subscription_is_left_alone_and_renewed_once_half_its_life_is_gone() -> None:
    """20 days left: nothing to do; 10 days left: renew to the full lifetime."""
    fresh = plan_upkeep(["g1"], {"g1": record("g1", "s1")}, [listed("g1", "s1")], T0, notification_url=URL)
    old = plan_upkeep(
        ["g1"], {"g1": record("g1", "s1")}, [listed("g1", "s1", days_left=10)], T0, notification_url=URL
    )
    assert (fresh.actions, fresh.healthy) == ((), ("g1",))
    assert old.actions == (RenewSubscription("g1", "s1", T0 + LIFETIME),)


def test_a_subscription_graph_no_longer_knows_is_recreated_at_the_next_generation() -> None:
    """Deleted behind our back (or expired): recreate, with a new clientState generation."""
    plan = plan_upkeep(["g1"], {"g1": record("g1", "s1", generation=4)}, [], T0, notification_url=URL)
    assert plan.actions == (CreateSubscription("g1", 5, T0 + LIFETIME, recreate=True),)


def test_groups_that_left_the_policy_and_duplicates_are_deleted_foreign_ones_never() -> None:
    """Ours but unwanted: deleted (and the record forgotten); another endpoint's: counted, untouched."""
    records = {"g1": record("g1", "s1"), "gone": record("gone", "s9"), "stale": record("stale", "s8")}
    subs = [
        listed("g1", "s1"),
        listed("g1", "s2"),
        listed("gone", "s9"),
        listed("g1", "s3", url="https://other.example/hook"),
    ]
    plan = plan_upkeep(["g1"], records, subs, T0, notification_url=URL)
    assert set(plan.actions) == {
        DeleteSubscription("s2", "g1", DeleteReason.DUPLICATE),
        DeleteSubscription("s9", "gone", DeleteReason.LEFT_POLICY),
        ForgetRecord("stale"),
    }
    assert (plan.foreign, plan.quota.in_use) == (1, 2)


def test_creations_beyond_the_quota_are_not_attempted_and_the_groups_are_named() -> None:
    """With 99 subscriptions of another endpoint, one of three new groups fits; two are reported."""
    others = [listed(f"o{i}", f"x{i}", url="https://other.example/hook") for i in range(99)]
    plan = plan_upkeep(["a", "b", "c"], {}, others, T0, notification_url=URL)
    assert [a.group_id for a in plan.actions if isinstance(a, CreateSubscription)] == ["a"]
    assert (plan.quota.exceeded, plan.quota.blocked_groups, plan.quota.in_use) == (True, ("b", "c"), 100)


def _deps(graph: DeltaGraph, store: MemoryStore, queue: RecordingQueue, clock: FakeClock) -> UpkeepDeps:
    return UpkeepDeps(graph, SubscriptionRecords(store), queue, clock, KEY, TARGET)


def test_upkeep_creates_records_and_queues_a_catch_up_then_is_idempotent() -> None:
    """The first run subscribes each group (derived clientState, lifecycle URL) and asks for a catch-up;
    the second run changes nothing."""
    graph, store, queue, clock = DeltaGraph(), MemoryStore(), RecordingQueue(), FakeClock()
    deps = _deps(graph, store, queue, clock)
    first = asyncio.run(run_upkeep(["g1", "g2"], deps, correlation_id="c"))
    second = asyncio.run(run_upkeep(["g1", "g2"], deps, correlation_id="c"))
    assert (first.created, second.created, second.healthy) == (["g1", "g2"], [], ("g1", "g2"))
    subs = graph.listed()
    assert len(subs) == 2
    assert all(
        s["lifecycleNotificationUrl"].startswith(URL.replace("notifications", "lifecycle")) for s in subs
    )
    by_group = {s["resource"].split("/")[-1]: s for s in subs}
    assert client_state_matches(by_group["g1"]["clientState"], KEY, "g1", 1)
    assert sorted(m.subject for m in queue.of_kind(GROUP_CHANGED.name)) == ["g1", "g2"]
    stored = asyncio.run(SubscriptionRecords(store).key(by_group["g2"]["id"]))
    assert stored is not None
    assert (stored.group_id, stored.generation) == ("g2", 1)


def test_ninety_days_of_hourly_upkeep_never_lets_a_subscription_lapse() -> None:
    """Every check over 90 days finds the subscription still valid, renewed in place."""
    graph, store, queue, clock = DeltaGraph(), MemoryStore(), RecordingQueue(), FakeClock()
    deps = _deps(graph, store, queue, clock)
    for _ in range(90 * 4):
        asyncio.run(run_upkeep(["g1"], deps, correlation_id="c"))
        [sub] = graph.listed()
        assert sub["expirationDateTime"] > clock.now().isoformat()
        clock.advance(timedelta(hours=6))
    assert [m for m in graph.writes if m[0] == "POST"] == [("POST", "/subscriptions")]


def test_a_subscription_deleted_behind_our_back_is_recreated_with_a_new_generation() -> None:
    """Graph lost it: the next run creates a new one at generation 2 and queues a catch-up for it."""
    graph, store, queue, clock = DeltaGraph(), MemoryStore(), RecordingQueue(), FakeClock()
    deps = _deps(graph, store, queue, clock)
    asyncio.run(run_upkeep(["g1"], deps, correlation_id="c"))
    graph.subscriptions.clear()
    report = asyncio.run(run_upkeep(["g1"], deps, correlation_id="c"))
    [sub] = graph.listed()
    assert report.recreated == ["g1"]
    assert client_state_matches(sub["clientState"], KEY, "g1", 2)
    assert len(queue.of_kind(GROUP_CHANGED.name)) == 2


def test_a_refused_creation_is_reported_and_alerted_without_stopping_upkeep() -> None:
    """A 403 at create for a missing permission leaves the group unsubscribed, logged and alerted; the
    quota's 403 is its own alert (`test_subscription_quota.py`)."""
    graph, store, queue, clock = (
        DeltaGraph(create_error=Forbidden("POST /subscriptions: 403 Authorization_RequestDenied")),
        MemoryStore(),
        RecordingQueue(),
        FakeClock(),
    )
    report = asyncio.run(run_upkeep(["g1", "g2"], _deps(graph, store, queue, clock), correlation_id="c"))
    assert list(report.failed) == ["g1", "g2"]
    alerts = queue.of_kind("alert")
    assert sorted(str(a.payload["problem"]) for a in alerts) == [
        "subscription.unhealthy",
        "subscription.unhealthy",
    ]


def test_a_group_subscribed_again_resolves_its_failure_alert() -> None:
    """After a refused creation, the next run that subscribes the group sends its `unhealthy` as gone."""
    graph, store, queue, clock = (
        DeltaGraph(create_error=Forbidden("403")),
        MemoryStore(),
        RecordingQueue(),
        FakeClock(),
    )
    asyncio.run(run_upkeep(["g1"], _deps(graph, store, queue, clock), correlation_id="c"))
    graph.create_error = None
    clock.advance(timedelta(hours=1))
    asyncio.run(run_upkeep(["g1"], _deps(graph, store, queue, clock), correlation_id="c"))
    unhealthy = [a for a in queue.of_kind("alert") if a.payload["problem"] == "subscription.unhealthy"]
    assert [a.payload["cause"] for a in unhealthy] == ["present", "gone"]


def test_the_cli_status_names_each_groups_health_and_what_upkeep_would_delete() -> None:
    """Healthy, renewal due, lost, missing by quota, and a leftover subscription, one row each."""
    records = {"ok": record("ok", "s1"), "old": record("old", "s2"), "lost": record("lost", "s3")}
    subs = [listed("ok", "s1"), listed("old", "s2", days_left=3), listed("gone", "s9")]
    plan = plan_upkeep(["ok", "old", "lost", "new"], records, subs, T0, notification_url=URL, quota_limit=3)
    rows = status_rows(plan, records, ["ok", "old", "lost", "new"], {"ok": "Copilot OK"})
    assert [(r["group_id"], r["status"]) for r in rows] == [
        ("ok", "healthy"),
        ("old", "renewal due"),
        ("lost", "lost: will be recreated"),
        ("new", "missing: quota of Graph subscriptions reached"),
        ("gone", "to delete (left_policy)"),
    ]
    assert rows[0]["group"] == "Copilot OK"


def _settings(**overrides: object) -> Settings:
    graph = GraphSettings("t", "https://127.0.0.1:1/v1.0", "https://127.0.0.1:1/t", CredentialKind.SECRET)
    base = Settings(Mode.SANDBOX, graph, Path("p.yaml"), KEY, None, Path("d"), "json", "INFO")
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_the_notification_urls_carry_the_webhook_key_and_missing_settings_are_named() -> None:
    """Both URLs under /api with ?code=<key>; without key or base URL, a ConfigurationError names them."""
    target = subscription_target(
        _settings(graph_webhook_key=Secret("a/b+c"), public_base_url="https://sk.example")
    )
    assert target.notification_url.reveal() == "https://sk.example/api/graph/notifications?code=a%2Fb%2Bc"
    assert target.lifecycle_url.reveal() == "https://sk.example/api/graph/lifecycle?code=a%2Fb%2Bc"
    assert target.endpoint == "https://sk.example/api/graph/notifications"
    with pytest.raises(ConfigurationError) as missing:
        subscription_target(_settings())
    assert [p.split(" ")[0] for p in missing.value.problems] == [
        "SEATKEEPER_PUBLIC_BASE_URL",
        "SEATKEEPER_GRAPH_WEBHOOK_KEY",
    ]
