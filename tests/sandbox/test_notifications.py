"""Webhook delivery to a real receiver on 127.0.0.1: handshake, batching, query strings, 3 s rule, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from sandbox.notifications import DeliveryLimits, Notifier, SlowTracker, validate_endpoint
from tests.sandbox.webhook_receiver import Handshake, Receiver, running_receiver

# Graph's timings scaled down (3 s -> 1 s) so the suite stays fast; the rules are the same.
FAST = DeliveryLimits(
    timeout=1.0,
    slow_after=0.95,
    validation_timeout=1.0,
    first_retry=0.05,
    max_retry_interval=0.2,
    give_up_after=2.5,
)


def _run(scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            await scenario(client)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("handshake", "delay", "passes"),
    [
        ("echo", 0.0, True),
        ("encoded", 0.0, False),
        ("json", 0.0, False),
        ("refuse", 0.0, False),
        ("echo", 2.0, False),
    ],
    ids=["decoded-text", "still-encoded", "not-text-plain", "403", "too-slow"],
)
def test_validation_handshake_needs_200_text_plain_with_the_decoded_token(
    handshake: Handshake, delay: float, passes: bool
) -> None:
    """Only a prompt 200 text/plain echo of the decoded token passes; the URL's own query string is kept."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver(Receiver(handshake=handshake, handshake_delay=delay)) as receiver:
            failure = await validate_endpoint(client, receiver.url(query="code=fn-key"), FAST)
            assert (failure is None) is passes
            assert receiver.validations[0]["code"] == "fn-key"
            assert " " in receiver.validations[0]["validationToken"]

    _run(scenario)


def test_a_burst_shares_one_post_and_keeps_the_query_string() -> None:
    """Notifications queued together arrive in one POST's value[], at the registered URL with its query."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver() as receiver:
            notifier = Notifier(client, FAST)
            url = receiver.url(query="code=fn-key")
            for n in range(3):
                notifier.enqueue(url, {"n": n})
            assert await notifier.drain(5)
            assert [(query, [i["n"] for i in body["value"]]) for query, body in receiver.deliveries] == [
                ({"code": "fn-key"}, [0, 1, 2])
            ]

    _run(scenario)


def test_a_reply_slower_than_the_limit_fails_and_is_retried() -> None:
    """A 2xx that comes after the time limit counts as failed; the retry delivers the same batch again."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver(Receiver(script=[(1.5, 202), (0.0, 500)])) as receiver:
            notifier = Notifier(client, FAST)
            notifier.enqueue(receiver.url(), {"n": 1})
            for _ in range(100):
                if notifier.stats.get(receiver.url()) and notifier.stats[receiver.url()].delivered:
                    break
                await asyncio.sleep(0.05)
            stats = notifier.stats[receiver.url()]
            assert (stats.posts, stats.failed_attempts, stats.delivered, stats.slow) == (3, 2, 1, 1)
            assert [body["value"] for _, body in receiver.deliveries] == [[{"n": 1}]] * 3

    _run(scenario)


def test_retries_stop_after_the_bounded_time_and_the_batch_is_dropped() -> None:
    """An endpoint that keeps failing is retried with back-off, then the notification is dropped."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver(Receiver(script=[(0.0, 503)] * 100)) as receiver:
            notifier = Notifier(client, FAST)
            notifier.enqueue(receiver.url(), {"n": 1})
            for _ in range(100):
                if notifier.stats.get(receiver.url()) and notifier.stats[receiver.url()].dropped:
                    break
                await asyncio.sleep(0.05)
            stats = notifier.stats[receiver.url()]
            assert (stats.delivered, stats.dropped) == (0, 1)
            assert 3 <= stats.posts < 40

    _run(scenario)


def test_a_reset_during_a_back_off_leaves_nothing_busy() -> None:
    """A control-plane reset while a failing delivery waits out its back-off: drain is done at once after."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver(Receiver(script=[(0.0, 503)] * 100)) as receiver:
            notifier = Notifier(client, replace(FAST, first_retry=30.0, give_up_after=60.0))
            notifier.enqueue(receiver.url(), {"n": 1})
            for _ in range(200):  # until the first post has failed
                if notifier.stats.get(receiver.url()):
                    break
                await asyncio.sleep(0.01)
            assert await notifier.drain(1)  # waiting out the back-off is not work in progress
            notifier.reset()
            await asyncio.sleep(0.05)  # the cancelled worker runs its cleanup
            assert await notifier.drain(0.5)

    _run(scenario)


def test_switched_off_deliveries_send_nothing() -> None:
    """With notifications off, nothing reaches the receiver."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver() as receiver:
            notifier = Notifier(client, FAST)
            notifier.enabled = False
            notifier.enqueue(receiver.url(), {"n": 1})
            assert await notifier.drain(1)
            await asyncio.sleep(0.1)
            assert receiver.deliveries == []

    _run(scenario)


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _tracker_after(total: int, slow: int) -> tuple[SlowTracker, FakeTime]:
    clock = FakeTime()
    tracker = SlowTracker(DeliveryLimits(), clock)
    for n in range(total):
        tracker.record("https://127.0.0.1/hook", n < slow)
    return tracker, clock


@pytest.mark.parametrize(
    ("total", "slow", "state"),
    [
        (99, 99, "normal"),
        (100, 9, "normal"),
        (100, 10, "delayed"),
        (100, 14, "delayed"),
        (100, 15, "dropping"),
    ],
    ids=["under-100", "9pc", "10pc", "14pc", "15pc"],
)
def test_slow_endpoint_rule(total: int, slow: int, state: str) -> None:
    """After 100 deliveries, 10 % slow replies delay the endpoint and 15 % drop its notifications."""
    tracker, _ = _tracker_after(total, slow)
    assert tracker.state("https://127.0.0.1/hook") == state


def test_slow_endpoint_accounting_is_flushed_every_ten_minutes() -> None:
    """A flagged endpoint starts afresh in the next 10-minute window."""
    tracker, clock = _tracker_after(100, 20)
    clock.now += 600
    assert tracker.state("https://127.0.0.1/hook") == "normal"


def test_a_dropping_endpoint_gets_nothing() -> None:
    """Once an endpoint is in the dropping state, queued notifications are dropped, not posted."""

    async def scenario(client: httpx.AsyncClient) -> None:
        async with running_receiver() as receiver:
            notifier = Notifier(client, FAST)
            for n in range(100):
                notifier.slow.record(receiver.url(), n < 20)
            notifier.enqueue(receiver.url(query="code=k"), {"n": 1})
            assert await notifier.drain(5)
            stats: Any = notifier.stats[receiver.url(query="code=k")]
            assert (receiver.deliveries, stats.dropped) == ([], 1)

    _run(scenario)
