"""Reprocessing: per user and per group's members in error, protected users and observe-only groups left
alone, the pace under Graph's write quota, and throttled users reported rather than dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.reprocess import (
    ReprocessReport,
    Target,
    WritePacer,
    reprocess_groups,
    reprocess_targets,
    user_target,
)
from seatkeeper.core.policy import LicensingGroup
from tests.unit.license_world import OTHER, World, build_world, licensing_policy, user_json
from tests.unit.test_gate_builders import COPILOT, GROUP

pytestmark = pytest.mark.anyio


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built, close = build_world(tmp_path)
    yield built
    close()


class ManualTime:
    """Wall time that only moves when the pacer sleeps; keeps each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer_on(time: ManualTime, rate: float = 16.0) -> WritePacer:
    return WritePacer(rate=rate, monotonic=time.monotonic, sleep=time.sleep)


def members_in_error(world: World, *numbers: int) -> list[str]:
    users = [world.tenant.add_user(user_json(n)) for n in numbers]
    world.tenant.members[GROUP] = list(users)
    for user in users:
        world.tenant.set_license(user, "Error", "CountViolation")
        world.tenant.outcome[user] = ("Active", None)
    return users


async def test_the_pacer_keeps_below_the_write_quota() -> None:
    """1,000 writes at 16 a second after a burst of 20 take (1000 - 20) / 16 seconds of waiting."""
    time = ManualTime()
    pacer = pacer_on(time)
    for _ in range(50):
        await pacer.take(20)
    assert sum(time.slept) == pytest.approx((1000 - 20) / 16)


async def test_the_default_pace_is_below_graphs_write_quota() -> None:
    """The default rate spends at most 3,000 writes in 150 seconds."""
    assert WritePacer().rate * 150 < 3000


async def test_a_groups_members_in_error_are_reprocessed(world: World) -> None:
    """Every member in error is reprocessed (and the toy engine then activates them)."""
    users = members_in_error(world, 1, 2, 3)
    report = await reprocess_groups(world.tenant, world.deps.policy, [GROUP], pacer=pacer_on(ManualTime()))
    assert sorted(report.reprocessed) == sorted(users)
    assert [world.tenant.license(u) for u in users] == [("Active", "None")] * 3


async def test_protected_users_are_skipped(world: World) -> None:
    """A protected member in error is left alone and reported as skipped."""
    protected, other = members_in_error(world, 4, 5)
    policy = licensing_policy(protected_users=frozenset({"user4@contoso.example"}))
    report = await reprocess_groups(world.tenant, policy, [GROUP], pacer=pacer_on(ManualTime()))
    assert (report.reprocessed, report.skipped) == ((other,), ((protected, "protected_user"),))


async def test_observe_only_and_unknown_groups_are_not_written(world: World) -> None:
    """Observe-only groups and groups outside the policy get no reprocess at all."""
    members_in_error(world, 6)
    policy = licensing_policy(group=LicensingGroup(GROUP, "Copilot", (COPILOT,), observe_only=True))
    report = await reprocess_groups(world.tenant, policy, [GROUP, OTHER], pacer=pacer_on(ManualTime()))
    assert report == ReprocessReport(skipped=((GROUP, "observe_only"), (OTHER, "not_a_licensing_group")))
    assert world.tenant.writes == []


async def test_throttled_users_are_reported_not_dropped(world: World) -> None:
    """A user still throttled after the client's retries is reported with 429."""
    throttled, fine = members_in_error(world, 7, 8)
    world.tenant.throttled.add(throttled)
    report = await reprocess_groups(world.tenant, world.deps.policy, [GROUP], pacer=pacer_on(ManualTime()))
    assert (report.reprocessed, report.failed) == ((fine,), ((throttled, 429),))


async def test_one_user_by_upn(world: World) -> None:
    """A user named by UPN is found and reprocessed by object id."""
    [user] = members_in_error(world, 9)
    target = await user_target(world.tenant, "user9@contoso.example")
    assert target == Target(user, "user9@contoso.example")
    report = await reprocess_targets(world.tenant, world.deps.policy, [target], pacer=pacer_on(ManualTime()))
    assert report.reprocessed == (user,)
    assert await user_target(world.tenant, "nobody@contoso.example") is None
