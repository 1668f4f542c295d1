"""A recorded rollout is a rule the HR path reads: a mover the HR rules would drop keeps the seat the
rollout gave, and once the rollout is removed the HR rules decide again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.onboarding import Step
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.rollout import IdKind, ListedPerson, PersonPlan, Planned
from seatkeeper.core.rollout_records import RolloutHeader, RolloutRecords
from tests.unit.test_gate_builders import GROUP, NOW
from tests.unit.test_onboarding import Hr, build_hr, joiner, mover

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Hr, SqliteStateStore]]:
    hr, state = build_hr(tmp_path)
    yield hr, state
    state.close()


async def record_rollout(state: SqliteStateStore, user: str) -> RolloutRecords:
    records = RolloutRecords(state)
    await records.start(RolloutHeader("pilot", GROUP, "cli:test", NOW, "pilot.csv"))
    listed = ListedPerson(2, IdKind.OBJECT_ID, user)
    await records.save("pilot", [PersonPlan(listed, user, None, Planned.ADDED)], now=NOW)
    return records


async def test_a_mover_kept_by_a_rollout_keeps_the_seat(world: tuple[Hr, SqliteStateStore]) -> None:
    """Moved to Finance (no HR rule): the rollout keeps the person in the group, nothing is removed."""
    hr, state = world
    user = hr.user(1, "E1")
    await hr.post(joiner())
    await record_rollout(state, user)
    assert await hr.post(mover("E1", "Finance")) is not Step.REMOVALS_PLANNED
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == [GROUP]


async def test_after_the_rollout_is_removed_the_hr_rules_decide(world: tuple[Hr, SqliteStateStore]) -> None:
    """`rollout remove`: the same move now takes the seat back, as the HR rules say."""
    hr, state = world
    user = hr.user(1, "E1")
    await hr.post(joiner())
    records = await record_rollout(state, user)
    await records.remove("pilot")
    assert await hr.post(mover("E1", "Finance")) is Step.REMOVALS_PLANNED
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []
