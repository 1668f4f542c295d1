"""The seat store on both state adapters (embedded SQLite and Table Storage on Azurite): no overbooking under
a race, reservations that stop counting when they should, the waitlist, pending people and additions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.admission import Result, admit
from seatkeeper.adapters.seat_store import HEAD_ROW, LEDGER_TABLE, StateSeatStore, shard_of
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.adapters.table_state import TableStateStore
from seatkeeper.core.license_messages import AdmitRequest
from seatkeeper.core.policy import LicensingGroup
from seatkeeper.core.ports import StateStore
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seat_ports import Addition
from seatkeeper.core.seats import ReleaseReason, WaitlistEntry, WaitSource
from seatkeeper.core.skus import SkuCatalogue
from tests.unit.license_world import group_json, licensing_policy, sku_json, user_json, world_on
from tests.unit.test_gate_builders import COPILOT, NOW, catalogue, sku

pytestmark = pytest.mark.anyio

DAY = timedelta(hours=24)


@pytest.fixture(params=["sqlite", "table"])
async def seats(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateSeatStore]:
    if request.param == "sqlite":
        sqlite = SqliteStateStore(tmp_path / "state.db")
        yield StateSeatStore(sqlite, timeout=DAY)
        sqlite.close()
    else:
        connection_string: str = request.getfixturevalue("azurite")
        table = TableStateStore.from_connection_string(connection_string)
        yield StateSeatStore(table, timeout=DAY)
        await table.close()


def new_id() -> str:
    """Fresh ids per test keep tests apart on the shared Azurite (the tables are fixed)."""
    return str(uuid.uuid4())


def seats_of(sku_id: str, *, enabled: int, consumed: int) -> SkuCatalogue:
    return catalogue(sku(sku_id, "Microsoft_365_Copilot", enabled=enabled, consumed=consumed))


async def test_twenty_racing_for_the_last_five_seats_get_exactly_five(seats: StateSeatStore) -> None:
    """Twenty concurrent reservations against 5 free seats: exactly 5 are granted, 15 refused."""
    sku_id, group = new_id(), new_id()
    snapshot = seats_of(sku_id, enabled=100, consumed=95)
    users = [new_id() for _ in range(20)]
    granted = await asyncio.gather(
        *(seats.reserve(snapshot, user_id=u, group_id=group, sku_ids=(sku_id,), now=NOW) for u in users)
    )
    assert (granted.count(True), granted.count(False)) == (5, 15)
    held = {r.user_id for r in await seats.reservations() if r.sku_ids == (sku_id,)}
    assert held == {u for u, ok in zip(users, granted, strict=True) if ok}
    assert await seats.headroom(snapshot, (sku_id,), now=NOW) == 0


async def seed(state: StateStore, sku_id: str, group: str, count: int) -> None:
    """Write `count` open reservations straight into the SKU's shard rows (the ledger's stored format),
    as `count` reserves would have, without their quadratic seat arithmetic."""
    shards: dict[str, list[list[str | None]]] = {}
    for n in range(count):
        user = f"{n:08d}-0000-4000-8000-000000000000"
        shards.setdefault(shard_of(user, group), []).append([user, group, NOW.isoformat(), None])
    for row, held in shards.items():
        await state.upsert(LEDGER_TABLE, sku_id, row, {"r": held, "n": 1})
    await state.upsert(LEDGER_TABLE, sku_id, HEAD_ROW, {"v": 1, "n": dict.fromkeys(shards, 1)})


async def test_a_sku_holding_thousands_still_gives_exactly_its_last_seats(state: StateStore) -> None:
    """With 5,000 open reservations spread over the shards (one ledger row refused them past ~4,250),
    twenty racing for the last five seats still get exactly five, and every one is listed and counted."""
    sku_id, group, held = new_id(), new_id(), 5_000
    await seed(state, sku_id, group, held)
    seats = StateSeatStore(state, timeout=DAY)
    snapshot = seats_of(sku_id, enabled=held + 105, consumed=100)
    assert await seats.headroom(snapshot, (sku_id,), now=NOW) == 5
    users = [new_id() for _ in range(20)]
    granted = await asyncio.gather(
        *(seats.reserve(snapshot, user_id=u, group_id=group, sku_ids=(sku_id,), now=NOW) for u in users)
    )
    assert (granted.count(True), granted.count(False)) == (5, 15)
    mine = [r.user_id for r in await seats.reservations() if r.sku_ids == (sku_id,)]
    assert len(mine) == held + 5
    assert await seats.headroom(snapshot, (sku_id,), now=NOW) == 0
    winner = next(u for u, ok in zip(users, granted, strict=True) if ok)
    await seats.release(winner, group, ReleaseReason.ERRORED)
    assert await seats.headroom(snapshot, (sku_id,), now=NOW) == 1


async def test_five_thousand_reserves_one_by_one(tmp_path: Path) -> None:
    """A SKU takes 5,000 reservations through `reserve`: one ledger row refused new ones past ~4,250 open
    (~3,400 counting consumed ones kept for an hour)."""
    sqlite = SqliteStateStore(tmp_path / "state.db")
    try:
        seats = StateSeatStore(sqlite, timeout=DAY)
        sku_id, group = new_id(), new_id()
        snapshot = seats_of(sku_id, enabled=5_000, consumed=0)
        for n in range(5_000):
            user = f"{n:08d}-0000-4000-8000-000000000000"
            assert await seats.reserve(snapshot, user_id=user, group_id=group, sku_ids=(sku_id,), now=NOW)
        assert not await seats.reserve(snapshot, user_id="late", group_id=group, sku_ids=(sku_id,), now=NOW)
        assert len(await seats.reservations()) == 5_000
    finally:
        sqlite.close()


async def test_a_repeated_reservation_holds_one_seat(seats: StateSeatStore) -> None:
    """Reserving twice for the same user and group is one seat, not two."""
    sku_id, group, user = new_id(), new_id(), new_id()
    snapshot = seats_of(sku_id, enabled=10, consumed=5)
    for _ in range(2):
        assert await seats.reserve(snapshot, user_id=user, group_id=group, sku_ids=(sku_id,), now=NOW)
    assert await seats.headroom(snapshot, (sku_id,), now=NOW) == 4


async def test_a_full_second_sku_gives_the_first_back(seats: StateSeatStore) -> None:
    """A group with two Copilot SKUs gets both seats or neither."""
    roomy, full, group = new_id(), new_id(), new_id()
    snapshot = catalogue(sku(roomy, "A", enabled=10, consumed=0), sku(full, "B", enabled=3, consumed=3))
    granted = await seats.reserve(snapshot, user_id=new_id(), group_id=group, sku_ids=(roomy, full), now=NOW)
    assert granted is False
    assert await seats.headroom(snapshot, (roomy,), now=NOW) == 10


async def test_a_released_reservation_frees_its_seat(seats: StateSeatStore) -> None:
    """After an errored assignment the seat is free again for the next person."""
    sku_id, group, user = new_id(), new_id(), new_id()
    snapshot = seats_of(sku_id, enabled=1, consumed=0)
    assert await seats.reserve(snapshot, user_id=user, group_id=group, sku_ids=(sku_id,), now=NOW)
    assert not await seats.reserve(snapshot, user_id=new_id(), group_id=group, sku_ids=(sku_id,), now=NOW)
    await seats.release(user, group, ReleaseReason.ERRORED)
    assert await seats.reserve(snapshot, user_id=new_id(), group_id=group, sku_ids=(sku_id,), now=NOW)


async def test_an_active_seat_counts_once_a_later_snapshot_counts_it(seats: StateSeatStore) -> None:
    """Active since T: a snapshot read before T still needs the reservation, one read after T does not."""
    sku_id, group, user = new_id(), new_id(), new_id()
    before = seats_of(sku_id, enabled=5, consumed=0)
    assert await seats.reserve(before, user_id=user, group_id=group, sku_ids=(sku_id,), now=NOW)
    active_at = NOW + timedelta(minutes=3)
    await seats.mark_active(user, group, active_at)
    after = catalogue(sku(sku_id, "C", enabled=5, consumed=1), read_at=active_at + timedelta(seconds=1))
    assert await seats.headroom(before, (sku_id,), now=active_at) == 4
    assert await seats.headroom(after, (sku_id,), now=active_at) == 4


async def test_a_reservation_times_out_after_the_verification_deadline(seats: StateSeatStore) -> None:
    """A reservation never confirmed stops holding its seat after the timeout."""
    sku_id, group = new_id(), new_id()
    snapshot = seats_of(sku_id, enabled=1, consumed=0)
    assert await seats.reserve(snapshot, user_id=new_id(), group_id=group, sku_ids=(sku_id,), now=NOW)
    assert await seats.headroom(snapshot, (sku_id,), now=NOW + DAY) == 1


async def test_the_waitlist_keeps_the_first_place(seats: StateSeatStore) -> None:
    """A person listed again keeps the earlier place; order is first come first served."""
    group, first, second = new_id(), new_id(), new_id()
    await seats.join_waitlist(WaitlistEntry(second, group, NOW, WaitSource.PENDING))
    await seats.join_waitlist(
        WaitlistEntry(first, group, NOW - timedelta(hours=1), WaitSource.COUNT_VIOLATION)
    )
    await seats.join_waitlist(WaitlistEntry(second, group, NOW + timedelta(hours=1), WaitSource.PENDING))
    assert [(e.user_id, e.since) for e in await seats.waitlist(group)] == [
        (first, NOW - timedelta(hours=1)),
        (second, NOW),
    ]
    await seats.leave_waitlist(first, group)
    assert [e.user_id for e in await seats.waitlist(group)] == [second]


async def test_a_waitlist_place_is_claimed_by_one_server_at_a_time(seats: StateSeatStore) -> None:
    """Of servers racing for one place exactly one holds it; the hold runs out, is given back by its holder
    only, and never moves the person's place."""
    group, user = new_id(), new_id()
    until = NOW + timedelta(minutes=5)
    assert not await seats.claim_waitlist(user, group, claimant="a", until=until, now=NOW)  # nobody waits
    await seats.join_waitlist(WaitlistEntry(user, group, NOW, WaitSource.PENDING))
    claims = await asyncio.gather(
        *(seats.claim_waitlist(user, group, claimant=c, until=until, now=NOW) for c in "abcdefgh")
    )
    assert claims.count(True) == 1
    holder = "abcdefgh"[claims.index(True)]
    other = "b" if holder == "a" else "a"
    assert await seats.claim_waitlist(user, group, claimant=holder, until=until, now=NOW)  # a retry
    await seats.unclaim_waitlist(user, group, claimant=other)  # not its hold: nothing changes
    assert not await seats.claim_waitlist(user, group, claimant=other, until=until, now=NOW)
    later = until + timedelta(minutes=5)
    assert await seats.claim_waitlist(user, group, claimant=other, until=later, now=until)  # ran out

    await seats.join_waitlist(WaitlistEntry(user, group, NOW - timedelta(hours=1), WaitSource.PENDING))
    assert not await seats.claim_waitlist(user, group, claimant=holder, until=until, now=until)
    await seats.unclaim_waitlist(user, group, claimant=other)
    assert await seats.claim_waitlist(user, group, claimant=holder, until=until, now=until)
    assert [(e.user_id, e.since) for e in await seats.waitlist(group)] == [(user, NOW - timedelta(hours=1))]
    await seats.leave_waitlist(user, group)
    assert not await seats.claim_waitlist(user, group, claimant=holder, until=until, now=until)


async def test_pending_keeps_the_earliest_since_and_the_latest_reasons(seats: StateSeatStore) -> None:
    """A pending person recorded twice keeps its first time and shows the current blockers."""
    group, user = new_id(), new_id()
    await seats.record_pending(user, group, (Reason.NO_SEAT,), NOW, now=NOW)
    later = NOW + timedelta(hours=2)
    await seats.record_pending(user, group, (Reason.NO_BASE_LICENSE,), later, now=later)
    [pending] = await seats.pending(group)
    assert (pending.since, pending.reasons, pending.updated_at) == (NOW, (Reason.NO_BASE_LICENSE,), later)
    await seats.clear_pending(user, group)
    assert await seats.pending(group) == ()


async def test_an_addition_is_recorded(seats: StateSeatStore) -> None:
    """What Seatkeeper added is read back with when, why and who asked."""
    group, user = new_id(), new_id()
    assert await seats.addition(user, group) is None
    await seats.record_addition(Addition(user, group, NOW, "rollout wave 1", "admin@contoso.example"))
    assert await seats.addition(user, group) == Addition(
        user, group, NOW, "rollout wave 1", "admin@contoso.example"
    )


@pytest.fixture(params=["sqlite", "table"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "sqlite":
        sqlite = SqliteStateStore(tmp_path / "state.db")
        yield sqlite
        sqlite.close()
    else:
        table = TableStateStore.from_connection_string(request.getfixturevalue("azurite"))
        yield table
        await table.close()


async def test_twenty_admissions_racing_for_the_last_five_seats(state: StateStore) -> None:
    """Twenty concurrent admissions through the handler: exactly 5 added, 15 pending "no seat"."""
    world = world_on(state)
    group = new_id()
    world.tenant.groups[group] = group_json(group)
    world.deps.policy = licensing_policy(group=LicensingGroup(group, "Copilot", (COPILOT,)))
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=100, consumed=95)
    # The ledger is a partition per SKU and Azurite is shared: start from a clean one for this SKU.
    for row in [e.row async for e in state.query(LEDGER_TABLE, COPILOT)]:
        await state.delete(LEDGER_TABLE, COPILOT, row)
    users = [world.tenant.add_user(user_json(400 + n)) for n in range(20)]
    outcomes = await asyncio.gather(
        *(
            admit([AdmitRequest(u, group, "race", "test")], world.deps, correlation_id=u, version="v")
            for u in users
        )
    )
    results = [a.result for (a,) in outcomes]
    assert (results.count(Result.ADDED), results.count(Result.PENDING)) == (5, 15)
    assert len(world.tenant.members[group]) == 5
    assert [p.reasons for p in await world.seats.pending(group)] == [(Reason.NO_SEAT,)] * 15


async def test_another_worker_marks_and_releases_a_reservation_in_two_skus(state: StateStore) -> None:
    """A worker that never reserved (another process) finds a person's reservations in both of the group's
    SKUs: marking them active stops them counting for a later snapshot, releasing them frees both seats."""
    first, second, group, user = new_id(), new_id(), new_id(), new_id()
    snapshot = catalogue(sku(first, "A", enabled=3, consumed=0), sku(second, "B", enabled=3, consumed=0))
    assert await StateSeatStore(state, timeout=DAY).reserve(
        snapshot, user_id=user, group_id=group, sku_ids=(first, second), now=NOW
    )
    other = StateSeatStore(state, timeout=DAY)
    assert await other.headroom(snapshot, (first, second), now=NOW) == 2
    await other.mark_active(user, group, NOW)
    later = catalogue(
        sku(first, "A", enabled=3, consumed=0),
        sku(second, "B", enabled=3, consumed=0),
        read_at=NOW + DAY / 24,
    )
    assert await other.headroom(later, (first,), now=NOW) == 3
    await StateSeatStore(state, timeout=DAY).release(user, group, ReleaseReason.CANCELLED)
    assert await other.headroom(snapshot, (first, second), now=NOW) == 3
