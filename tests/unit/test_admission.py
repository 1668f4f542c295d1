"""Admission with a recording tenant: who gets in, who is left pending and why, what is never written, and
the last seats going to exactly as many people as there are seats."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.admission import Result, admit
from handlers.license_checks import handle_license_message
from handlers.license_commands import refusal
from seatkeeper.core.errors import Unavailable
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.idempotency import IdempotencyRecord
from seatkeeper.core.license_messages import AdmitRequest, admit_message
from seatkeeper.core.people import Person
from seatkeeper.core.policy import LicensingGroup, UsageLocationFix, UsageLocationSource
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seat_ports import Addition
from tests.unit.license_world import World, build_world, group_json, licensing_policy, sku_json, user_json
from tests.unit.test_gate_builders import COPILOT, E3, GROUP, NOW

pytestmark = pytest.mark.anyio


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built, close = build_world(tmp_path)
    yield built
    close()


def request(user: str, group: str = GROUP) -> AdmitRequest:
    return AdmitRequest(user, group, "rollout wave 1", "admin@contoso.example")


async def run(world: World, *users: str) -> list[Result]:
    done = await admit([request(u) for u in users], world.deps, correlation_id="c1", version="v1")
    return [a.result for a in done]


async def test_an_eligible_user_is_added_recorded_and_handed_to_verification(world: World) -> None:
    """Added to the group, recorded as added by Seatkeeper (when, why, who), re-check due in 2 minutes."""
    user = world.tenant.add_user(user_json(1))
    assert await run(world, user) == [Result.ADDED]
    assert world.tenant.members[GROUP] == [user]
    assert await world.seats.addition(user, GROUP) == Addition(
        user, GROUP, NOW, "rollout wave 1", "admin@contoso.example"
    )
    [(subject, due, payload)] = world.sender.rechecks()
    assert (subject, due, payload["added_at"]) == (user, NOW + timedelta(minutes=2), NOW.isoformat())
    assert await world.seats.pending() == ()


async def test_an_add_whose_answer_was_lost_stays_seatkeepers_own(world: World) -> None:
    """The add happened but its answer never came: the redelivery finds a member, and the record written
    before the write still says Seatkeeper added it (so a leaver's or mover's removal may take it back)."""
    user = world.tenant.add_user(user_json(1))
    world.tenant.lose_next_add_answer = True
    with pytest.raises(Unavailable):
        await run(world, user)
    assert world.tenant.members[GROUP] == [user]
    assert await run(world, user) in ([Result.ALREADY_MEMBER], [Result.ALREADY_LICENSED])
    assert await world.seats.addition(user, GROUP) == Addition(
        user, GROUP, NOW, "rollout wave 1", "admin@contoso.example"
    )


async def test_a_retried_admission_holding_the_last_seat_is_added_not_left_waiting(world: World) -> None:
    """One free seat, reserved; the add fails and the message comes again: the seat it holds is its own, so
    the retry adds the person instead of putting them on the waitlist behind a seat nobody else can take."""
    user = world.tenant.add_user(user_json(1))
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=10, consumed=9)
    world.tenant.fail_next_add = True
    with pytest.raises(Unavailable):
        await run(world, user)
    assert world.tenant.members.get(GROUP, []) == []
    assert await run(world, user) == [Result.ADDED]
    assert world.tenant.members[GROUP] == [user]
    assert (await world.seats.waitlist(), await world.seats.pending()) == ((), ())
    assert [r.user_id for r in await world.seats.reservations()] == [user]


async def test_a_member_whose_license_shows_is_not_recorded_as_an_addition(world: World) -> None:
    """Someone an admin put in the group, license processed: the gate sees it; not Seatkeeper's, no record."""
    user = world.tenant.add_user(user_json(1))
    world.tenant.members[GROUP] = [user]
    world.tenant.set_license(user, "Active")
    assert await run(world, user) == [Result.ALREADY_LICENSED]
    assert await world.seats.addition(user, GROUP) is None


async def test_an_add_graph_refuses_leaves_no_addition_and_no_seat(world: World) -> None:
    """Graph refuses the write: the record written before it is dropped with the reservation."""
    user = world.tenant.add_user(user_json(1))
    world.tenant.refuse_adds = True
    assert await run(world, user) == [Result.REFUSED]
    assert await world.seats.addition(user, GROUP) is None
    assert await world.seats.reservations() == ()


async def test_a_user_is_found_by_upn(world: World) -> None:
    """The person may be named by UPN; the add uses the object id."""
    user = world.tenant.add_user(user_json(2))
    assert await run(world, "user2@contoso.example") == [Result.ADDED]
    assert world.tenant.members[GROUP] == [user]


async def test_without_a_base_license_the_user_waits_pending_and_an_admin_is_told(world: World) -> None:
    """No qualifying base license: not added, pending with the reason, one alert."""
    user = world.tenant.add_user(user_json(3, licenses=()))
    assert await run(world, user) == [Result.PENDING]
    assert world.tenant.members.get(GROUP, []) == []
    assert [(p.user_id, p.reasons) for p in await world.seats.pending(GROUP)] == [
        (user, (Reason.NO_BASE_LICENSE,))
    ]
    assert world.sender.alerts() == [("gate.no_base_license", "present")]


async def test_an_unknown_user_is_reported_and_nothing_is_written(world: World) -> None:
    """A person the tenant does not know is `not_found`; no write, no reservation."""
    assert await run(world, "nobody@contoso.example") == [Result.NOT_FOUND]
    assert (world.tenant.writes, await world.seats.reservations()) == ([], ())


async def test_observe_only_groups_are_decided_but_never_written(world: World) -> None:
    """Observe-only: the decision is made and reported, nothing reaches the tenant or the seat ledger."""
    world.with_policy(licensing_policy(group=LicensingGroup(GROUP, "Copilot", (COPILOT,), observe_only=True)))
    user = world.tenant.add_user(user_json(4))
    assert await run(world, user) == [Result.OBSERVED]
    assert (world.tenant.writes, await world.seats.reservations()) == ([], ())


async def test_protected_users_are_never_touched(world: World) -> None:
    """A protected user is not added, however eligible."""
    user = world.tenant.add_user(user_json(5))
    world.with_policy(licensing_policy(protected_users=frozenset({"user5@contoso.example"})))
    assert await run(world, user) == [Result.PENDING]
    assert world.tenant.writes == []


@pytest.mark.parametrize(
    "group", [group_json(dynamic=True), group_json(mail_enabled=True)], ids=["dynamic", "mail-enabled"]
)
async def test_groups_graph_will_not_write_are_watched_only(world: World, group: dict[str, object]) -> None:
    """Dynamic and mail-enabled security groups get no member write (the tenant fake fails on one)."""
    world.tenant.groups[GROUP] = dict(group)
    user = world.tenant.add_user(user_json(6))
    assert await run(world, user) == [Result.PENDING]
    assert world.tenant.writes == []
    assert world.sender.alerts() == [("gate.group_not_writable", "present")]


async def test_many_people_are_added_in_one_bulk_request_in_order(world: World) -> None:
    """Forty-five eligible people: all added through one bulk add (the client sends 20 a request)."""
    users = [world.tenant.add_user(user_json(100 + n)) for n in range(45)]
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=100, consumed=0)
    assert await run(world, *users) == [Result.ADDED] * 45
    assert (world.tenant.members[GROUP], world.tenant.add_requests) == (users, [(GROUP, 45)])


async def test_the_last_seats_go_to_the_first_in_a_batch(world: World) -> None:
    """Three free seats, five people in one request: the first three are added, the others wait in order."""
    users = [world.tenant.add_user(user_json(200 + n)) for n in range(5)]
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=10, consumed=7)
    assert await run(world, *users) == [Result.ADDED] * 3 + [Result.PENDING] * 2
    assert [e.user_id for e in await world.seats.waitlist(GROUP)] == users[3:]


async def test_twenty_racing_for_the_last_five_seats(world: World) -> None:
    """Twenty concurrent admissions, five free seats: exactly five added, fifteen pending "no seat"."""
    users = [world.tenant.add_user(user_json(300 + n)) for n in range(20)]
    world.tenant.skus[0] = sku_json(COPILOT, "Microsoft_365_Copilot", enabled=100, consumed=95)
    outcomes = await asyncio.gather(
        *(admit([request(u)], world.deps, correlation_id=u, version="v") for u in users)
    )
    results = [a.result for (a,) in outcomes]
    assert (results.count(Result.ADDED), results.count(Result.PENDING)) == (5, 15)
    assert len(world.tenant.members[GROUP]) == 5
    pending = await world.seats.pending(GROUP)
    assert [p.reasons for p in pending] == [(Reason.NO_SEAT,)] * 15


async def test_a_missing_usage_location_is_set_when_the_policy_allows(world: World) -> None:
    """With a fixed usage-location source, Seatkeeper sets it, then adds the user."""
    world.with_policy(licensing_policy(usage_location_fix=UsageLocationFix(UsageLocationSource.FIXED, "DE")))
    user = world.tenant.add_user(user_json(7, usage_location=None))
    assert await run(world, user) == [Result.ADDED]
    assert world.tenant.users[user]["usageLocation"] == "DE"


async def test_an_admit_message_runs_once(world: World) -> None:
    """The `admit` message is validated and handled; a redelivery of the same id is not run again."""
    user = world.tenant.add_user(user_json(8))
    message = admit_message(request(user), request_id="hr-42", correlation_id="c")
    record = IdempotencyRecord(world.state)
    first = await handle_license_message(
        message.body(), world.deps, message_id=message.message_id, idempotency=record
    )
    second = await handle_license_message(
        message.body(), world.deps, message_id=message.message_id, idempotency=record
    )
    assert (first.ran, second.ran, world.tenant.members[GROUP]) == (True, False, [user])


async def test_an_invalid_admit_message_completes_with_its_problems(world: World) -> None:
    """A payload without a group is refused with the field named, and nothing is written."""
    message = replace(
        admit_message(request("x"), request_id="1", correlation_id="c"), payload={"person": "x"}
    )
    record = IdempotencyRecord(world.state)
    handled = await handle_license_message(
        message.body(), world.deps, message_id=message.message_id, idempotency=record
    )
    assert handled.ran is False
    assert any("group_id" in problem for problem in handled.invalid)
    assert world.tenant.writes == []


@pytest.mark.parametrize(
    ("group", "protected", "expected"),
    [
        (GroupSnapshot(GROUP), (), None),
        (GroupSnapshot(GROUP, group_types=frozenset({"DynamicMembership"})), (), "group_not_writable"),
        (GroupSnapshot(GROUP, mail_enabled=True), (), "group_not_writable"),
        (GroupSnapshot("0b6e0000-0000-4000-8000-000000000bad"), (), "not_a_licensing_group"),
        (GroupSnapshot(GROUP), ("a1",), "protected_user"),
    ],
    ids=["writable", "dynamic", "mail-enabled", "unknown", "protected"],
)
def test_the_write_guard(group: GroupSnapshot, protected: tuple[str, ...], expected: str | None) -> None:
    """The write path refuses what design §1 forbids, whatever a decision said."""
    policy = licensing_policy(protected_users=frozenset(protected))
    assert refusal(policy, Person("a1"), group, adding=True) == expected


def test_the_write_guard_refuses_observe_only_groups() -> None:
    """Observe-only groups get no write of any kind."""
    policy = licensing_policy(group=LicensingGroup(GROUP, "Copilot", (COPILOT, E3), observe_only=True))
    assert refusal(policy, Person("a1"), GroupSnapshot(GROUP), adding=False) == "observe_only"
