"""Verification with a recording tenant: each license state leads to its documented action, and freed
seats reach waiting people in order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.admission import Result, admit
from handlers.verification import serve_waiting, verify_members
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.core.license_messages import AdmitRequest, Change, LicenseCheck
from seatkeeper.core.policy import UsageLocationFix, UsageLocationSource
from seatkeeper.core.seats import WaitlistEntry, WaitSource, reservation_timeout
from tests.unit.license_world import World, build_world, licensing_policy, sku_json, user_json
from tests.unit.test_gate_builders import COPILOT, GROUP, NOW

pytestmark = pytest.mark.anyio


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built, close = build_world(tmp_path)
    yield built
    close()


async def admitted(
    world: World, n: int, outcome: tuple[str, str | None] | None = None, *, usage_location: str | None = "US"
) -> str:
    """User `n`, admitted through the gate; group-based licensing then gives `outcome` (None: not yet)."""
    user_id = world.tenant.add_user(user_json(n, usage_location=usage_location))
    if outcome is not None:
        world.tenant.outcome[user_id] = outcome
    [admission] = await admit(
        [AdmitRequest(user_id, GROUP, "test", "tester")], world.deps, correlation_id="c", version="v"
    )
    assert admission.result is Result.ADDED
    world.sender.sent.clear()
    return user_id


async def check(world: World, user: str, *, change: Change = Change.RECHECK, reprocesses: int = 0) -> str:
    """Verify one member now; returns the status."""
    (checked,), _ = await verify_members(
        [LicenseCheck(user, GROUP, change, NOW, reprocesses)], world.deps, correlation_id="c", version="v"
    )
    return checked.status


async def test_an_active_license_is_done_and_resolves_its_incident(world: World) -> None:
    """Active: done, no re-check, the user-and-SKU incident is told the problem is gone."""
    user = await admitted(world, 1, ("Active", None))
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "done"
    assert world.sender.rechecks() == []
    assert world.sender.alerts() == [("license.not_active", "gone")]


async def test_an_active_seat_stops_counting_once_the_sku_snapshot_shows_it(world: World) -> None:
    """After activation, a fresh snapshot counting the seat frees the reservation (no double count)."""
    user = await admitted(world, 2, ("Active", None))
    world.clock.advance(timedelta(minutes=2))
    await check(world, user)
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=20, consumed=11)
    world.clock.advance(timedelta(minutes=5))
    fresh = await world.deps.reads.catalogue(fresh=True)
    assert await world.seats.headroom(fresh, (COPILOT,), now=world.clock.now()) == 9


async def test_a_license_not_there_yet_is_looked_at_again_later(world: World) -> None:
    """Nothing assigned yet at +2 min: pending, and a re-check at +4 min measured from the add."""
    user = await admitted(world, 3)
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "pending"
    [(subject, due, payload)] = world.sender.rechecks()
    assert (subject, due, payload["added_at"]) == (user, NOW + timedelta(minutes=4), NOW.isoformat())


async def test_past_the_deadline_the_license_is_stuck_and_alerted(world: World) -> None:
    """Still nothing after 24 h: stuck, an alert, the reservation released."""
    user = await admitted(world, 4)
    world.clock.advance(timedelta(hours=24))
    assert await check(world, user) == "stuck"
    assert world.sender.alerts() == [("license.not_active", "present")]
    assert await world.seats.reservations() == ()


async def test_count_violation_waits_for_a_seat_in_order(world: World) -> None:
    """CountViolation: the member joins the waitlist from its add time, its reservation is released."""
    user = await admitted(world, 5, ("Error", "CountViolation"))
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=10, consumed=10)
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "error"
    assert [(e.user_id, e.since, e.source) for e in await world.seats.waitlist()] == [
        (user, NOW, WaitSource.COUNT_VIOLATION)
    ]
    assert await world.seats.reservations() == ()


async def test_other_errors_are_reprocessed_once_then_reported(world: World) -> None:
    """`Other`: reprocessed once (re-check counts it); still failing after that: an alert, no reprocess."""
    user = await admitted(world, 6, ("Error", "Other"))
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "error"
    assert ("POST", f"/users/{user}/reprocessLicenseAssignment") in world.tenant.writes
    [(_, _, payload)] = world.sender.rechecks()
    assert payload["reprocesses"] == 1
    world.tenant.writes.clear()
    world.sender.sent.clear()
    assert await check(world, user, reprocesses=1) == "error"
    assert world.tenant.writes == []
    assert world.sender.alerts() == [("license.not_active", "present")]


async def test_a_prohibited_usage_location_is_fixed_and_reprocessed(world: World) -> None:
    """With a usage-location source allowed, the location is set and the user reprocessed (then active)."""
    world.with_policy(licensing_policy(usage_location_fix=UsageLocationFix(UsageLocationSource.FIXED, "DE")))
    user = await admitted(world, 7, ("Error", "ProhibitedInUsageLocationViolation"), usage_location="US")
    world.tenant.outcome[user] = ("Active", None)
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "error"
    assert world.tenant.users[user]["usageLocation"] == "DE"
    assert world.tenant.license(user) == ("Active", "None")


async def test_conflicting_plans_are_named_as_inferred(world: World) -> None:
    """MutuallyExclusiveViolation: an alert whose evidence names the conflicting plans, labelled inferred."""
    user = await admitted(world, 8, ("Error", "MutuallyExclusiveViolation"))
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "error"
    [alert] = world.sender.kinds("alert")
    assert "Conflicting plans (inferred)" in [label for label, _ in alert.payload["evidence"]]


async def test_protected_users_are_not_reprocessed(world: World) -> None:
    """Verification never writes for a protected user, even to reprocess."""
    user = await admitted(world, 9, ("Error", "Other"))
    world.with_policy(licensing_policy(protected_users=frozenset({user})))
    world.clock.advance(timedelta(minutes=2))
    await check(world, user)
    assert ("POST", f"/users/{user}/reprocessLicenseAssignment") not in world.tenant.writes


async def test_licensed_without_a_base_license_is_flagged(world: World) -> None:
    """Active Copilot but no base license: "licensed, but Copilot will not work" is alerted."""
    user = await admitted(world, 10, ("Active", None))
    world.tenant.users[user]["assignedLicenses"] = []
    world.tenant.users[user]["licenseAssignmentStates"] = [
        s for s in world.tenant.users[user]["licenseAssignmentStates"] if s["skuId"] == COPILOT
    ]
    world.clock.advance(timedelta(minutes=2))
    assert await check(world, user) == "done"
    assert ("gate.copilot_will_not_work", "present") in world.sender.alerts()


async def test_a_leaver_frees_a_seat_for_the_first_pending_person(world: World) -> None:
    """One seat left: A gets it, B and C wait; A leaves, so B (first in line) is admitted, C waits on."""
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=11, consumed=10)
    first = await admitted(world, 11)
    waiting = [world.tenant.add_user(user_json(n)) for n in (12, 13)]
    for n, user in enumerate(waiting):
        world.clock.advance(timedelta(minutes=n + 1))
        [admission] = await admit(
            [AdmitRequest(user, GROUP, "test", "tester")], world.deps, correlation_id="c", version="v"
        )
        assert admission.result is Result.PENDING
    world.tenant.members[GROUP].remove(first)
    _, served = await verify_members(
        [LicenseCheck(first, GROUP, Change.REMOVED)], world.deps, correlation_id="c", version="v"
    )
    assert [a.user_id for a in served.admitted if a.result is Result.ADDED] == [waiting[0]]
    assert world.tenant.members[GROUP] == [waiting[0]]
    assert [e.user_id for e in await world.seats.waitlist()] == [waiting[1]]


async def test_a_member_in_count_violation_is_reprocessed_when_a_seat_is_bought(world: World) -> None:
    """Seats bought while a member waits in CountViolation: a seat is reserved and it is reprocessed."""
    user = await admitted(world, 14, ("Error", "CountViolation"))
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=10, consumed=10)
    world.clock.advance(timedelta(minutes=2))
    await check(world, user)
    assert [e.user_id for e in await world.seats.waitlist()] == [user]
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=11, consumed=10)
    world.tenant.outcome[user] = ("Active", None)
    other = world.tenant.add_user(user_json(15))
    _, served = await verify_members(
        [LicenseCheck(other, GROUP, Change.REMOVED)], world.deps, correlation_id="c", version="v"
    )
    assert served.reprocessed == (user,)
    assert world.tenant.license(user) == ("Active", "None")
    assert await world.seats.waitlist() == ()


class SameMoment(StateSeatStore):
    """The real seat store, except that the waitlist is handed out only once `readers` servers have read
    it: a burst of freed seats, every trigger seeing the same people first in line."""

    def __init__(self, world: World, readers: int) -> None:
        super().__init__(world.state, timeout=reservation_timeout(world.deps.policy.verification_deadline))
        self.readers = readers
        self.everyone_read = asyncio.Event()

    async def waitlist(self, group_id: str | None = None) -> tuple[WaitlistEntry, ...]:
        found = await super().waitlist(group_id)
        self.readers -= 1
        if self.readers <= 0:
            self.everyone_read.set()
        await self.everyone_read.wait()
        return found


async def test_servers_racing_for_freed_seats_admit_each_waiting_person_once(world: World) -> None:
    """Two seats appear and three triggers serve the waitlist at the same moment: the first two waiting
    are admitted once each (one add, one result), the third keeps its place."""
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=10, consumed=10)
    waiting = [world.tenant.add_user(user_json(n)) for n in (21, 22, 23)]
    for user in waiting:
        world.clock.advance(timedelta(minutes=1))
        [admission] = await admit(
            [AdmitRequest(user, GROUP, "test", "tester")], world.deps, correlation_id="c", version="v"
        )
        assert admission.result is Result.PENDING
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=12, consumed=10)
    world.deps.seats = SameMoment(world, readers=3)

    served = await asyncio.gather(
        *(serve_waiting(world.deps, correlation_id="c", version=f"freed-{n}") for n in range(3))
    )
    admissions = sorted((a.user_id, a.result) for s in served for a in s.admitted)
    assert admissions == sorted([(waiting[0], Result.ADDED), (waiting[1], Result.ADDED)])
    assert sorted(world.tenant.members[GROUP]) == sorted(waiting[:2])
    assert [e.user_id for e in await world.seats.waitlist()] == [waiting[2]]
