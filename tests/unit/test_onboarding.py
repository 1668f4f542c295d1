"""Onboarding with a recording tenant: joiners admitted on their day, movers without a gap, leavers' seats
back to the waitlist, events in HR's order, and removals only where Seatkeeper may and within the guard."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from handlers.admission import Result
from handlers.hr_intake import event_schema
from handlers.hr_removals import RemovalBook
from handlers.license_commands import LicenseDeps
from handlers.onboarding import OnboardingDeps, Step, handle_hr_message
from handlers.tenant_reads import TenantReads
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import Rejected, Unavailable
from seatkeeper.core.graph_port import MemberAddResult
from seatkeeper.core.hr_events import HrEvent, HrWork, hr_message, parse_event
from seatkeeper.core.hr_rules import Condition, HrRule, HrSettings, Op, RuleField
from seatkeeper.core.idempotency import IdempotencyRecord
from seatkeeper.core.messages import HR_EVENTS, Message
from seatkeeper.core.policy import BlastRadius, LicensingGroup, Policy, UsageLocationFix, UsageLocationSource
from seatkeeper.core.seat_ports import Addition
from seatkeeper.core.seats import reservation_timeout
from tests.unit.license_world import OTHER, FakeClock, RecordingSender, Tenant, group_json, user_json
from tests.unit.test_gate_builders import COPILOT, GROUP, NOW
from tests.unit.test_hr_events import event

pytestmark = pytest.mark.anyio

SALES = HrRule("sales", (Condition(RuleField.DEPARTMENT, Op.EQUALS, ("Sales",)),), GROUP)
LEGAL = HrRule("legal", (Condition(RuleField.DEPARTMENT, Op.EQUALS, ("Legal",)),), OTHER)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class HrTenant(Tenant):
    """The license tests' tenant plus the employeeId filter, removals that drop the group's license and free
    its seat, and a record of Lifecycle Workflows resumes."""

    resumed: list[tuple[str, str]] = field(default_factory=list)
    refuse_resume: bool = False
    unavailable_reads: int = 0

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        if self.unavailable_reads:
            self.unavailable_reads -= 1
            raise Unavailable(f"GET {path}: 503")
        if path == "/users" and params and "$filter" in params:
            wanted = params["$filter"].split("'")[1]
            return {"value": [dict(u) for u in self.users.values() if u.get("employeeId") == wanted]}
        return await super().get(path, params=params, retry_not_found=retry_not_found)

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        if path.startswith("/identityGovernance/"):
            if self.refuse_resume:
                raise Rejected("POST resume: 403", status=403, code="Authorization_RequestDenied")
            self.resumed.append((path, str((body or {})["data"]["operationStatus"])))
            return None
        return await super().send(method, path, body, idempotent=idempotent)

    def set_license(self, user: str, state: str, error: str | None = None, group: str = GROUP) -> None:
        """As Graph shows it, a group-inherited license is listed in `assignedLicenses` too."""
        super().set_license(user, state, error, group)
        self._sync_assigned(user)

    def _sync_assigned(self, user: str) -> None:
        data = self.users[user]
        held = any(s["skuId"] == COPILOT for s in data["licenseAssignmentStates"])
        others = [lic for lic in data["assignedLicenses"] if lic["skuId"] != COPILOT]
        data["assignedLicenses"] = others + ([{"skuId": COPILOT, "disabledPlans": []}] if held else [])

    def _copilot(self) -> dict[str, Any]:
        return next(s for s in self.skus if s["skuId"] == COPILOT)

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        answer = await super().add_members(group_id, user_ids)
        self._copilot()["consumedUnits"] += sum(1 for u in answer.added if self.license(u, group_id))
        return answer

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        removed = await super().remove_member(group_id, user_id)
        if removed:
            self.writes.append(("REMOVE", f"{group_id}/{user_id}"))
            data = self.users[user_id]
            before = len(data["licenseAssignmentStates"])
            data["licenseAssignmentStates"] = [
                s for s in data["licenseAssignmentStates"] if s.get("assignedByGroup") != group_id
            ]
            self._copilot()["consumedUnits"] -= before - len(data["licenseAssignmentStates"])
            self._sync_assigned(user_id)
        return removed

    def member_of(self, user: str) -> list[str]:
        return sorted(g for g, members in self.members.items() if user in members)


@dataclass
class Hr:
    """Onboarding over the recording tenant; `pump` runs every due hr-events message in time order."""

    tenant: HrTenant
    sender: RecordingSender
    clock: FakeClock
    deps: OnboardingDeps
    idempotency: IdempotencyRecord
    done: set[str] = field(default_factory=set)
    steps: list[Step] = field(default_factory=list)

    @property
    def license(self) -> LicenseDeps:
        return self.deps.license

    def user(self, n: int, employee: str, **fields: Any) -> str:
        data = user_json(n)
        data.update({"employeeId": employee, "department": "Sales", **fields})
        self.tenant.outcome[data["id"]] = ("Active", None)
        return self.tenant.add_user(data)

    def parsed(self, raw: object) -> HrEvent:
        return parse_event(raw, schema=event_schema(), zone=ZoneInfo("UTC"))

    async def post(self, raw: object, *, callback: str | None = None) -> Step:
        """Deliver one event as intake would, then run everything that is due now."""
        message = hr_message(HrWork(self.parsed(raw), callback=callback), correlation_id="c")
        step = await self._handle(message)
        await self.pump(self.clock.now())
        return step

    async def _handle(self, message: Message) -> Step:
        self.done.add(message.message_id)
        handled = await handle_hr_message(
            message.body(), self.deps, message_id=message.message_id, idempotency=self.idempotency
        )
        self.steps.append(handled.step)
        return handled.step

    async def pump(self, until: datetime) -> None:
        """Run due hr-events messages in order, moving the clock to each one's time."""
        while True:
            due = sorted(
                (m for m in self.sender.sent if m.queue == HR_EVENTS and m.message_id not in self.done),
                key=lambda m: m.scheduled_for or self.clock.now(),
            )
            due = [m for m in due if (m.scheduled_for or self.clock.now()) <= until]
            if not due:
                self.clock.current = max(self.clock.current, until)
                return
            message = due[0]
            if message.scheduled_for is not None:
                self.clock.current = max(self.clock.current, message.scheduled_for)
            await self._handle(message)

    def alerts(self) -> list[tuple[str, str]]:
        return self.sender.alerts()


def policy(**changes: Any) -> Policy:
    fields: dict[str, Any] = {
        "licensing_groups": (
            LicensingGroup(GROUP, "Copilot - Sales", (COPILOT,)),
            LicensingGroup(OTHER, "Copilot - Legal", (COPILOT,)),
        ),
        "hr_rules": (SALES, LEGAL),
    }
    fields.update(changes)
    return Policy(**fields)


def build_hr(tmp_path: Path) -> tuple[Hr, SqliteStateStore]:
    """Onboarding over a fresh recording tenant and SQLite state store (close the store at the end)."""
    clock = FakeClock()
    tenant = HrTenant(clock)
    tenant.groups[OTHER] = group_json(OTHER)
    sender = RecordingSender()
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    pol = policy()
    seats = StateSeatStore(state, timeout=reservation_timeout(pol.verification_deadline))
    deps = LicenseDeps(tenant, TenantReads(tenant, clock), seats, sender, clock, pol)
    return Hr(tenant, sender, clock, OnboardingDeps(deps, state), IdempotencyRecord(state)), state


@pytest.fixture
def hr(tmp_path: Path) -> Iterator[Hr]:
    built, state = build_hr(tmp_path)
    yield built
    state.close()


def joiner(employee: str = "E1", hire: datetime = NOW, **data: Any) -> dict[str, Any]:
    raw = event("joiner", employeeId=employee, userPrincipalName=None, hireDate=hire.isoformat(), **data)
    return {**raw, "id": f"join-{employee}-{hire.date()}", "time": (NOW - timedelta(days=1)).isoformat()}


def leaver(employee: str = "E1", at: datetime = NOW, recorded: datetime = NOW, **data: Any) -> dict[str, Any]:
    raw = event("leaver", employeeId=employee, userPrincipalName=None, leaveDate=at.isoformat(), **data)
    return {**raw, "id": f"leave-{employee}-{at}", "time": recorded.isoformat()}


def mover(employee: str, department: str, recorded: datetime = NOW) -> dict[str, Any]:
    raw = event(
        "mover",
        employeeId=employee,
        userPrincipalName=None,
        department=department,
        effectiveDate=NOW.isoformat(),
    )
    return {**raw, "id": f"move-{employee}-{department}", "time": recorded.isoformat()}


# -- joiners ---------------------------------------------------------------------------------------------


async def test_a_joiner_due_today_is_admitted_to_the_group_the_rules_choose(hr: Hr) -> None:
    """Found by employeeId, department Sales → the Sales group, added and recorded as Seatkeeper's."""
    user = hr.user(1, "E1")
    assert await hr.post(joiner()) is Step.ADMITTED
    assert hr.tenant.member_of(user) == [GROUP]
    assert await hr.license.seats.addition(user, GROUP) is not None


async def test_a_future_hire_waits_for_its_day(hr: Hr) -> None:
    """Nothing happens before the hire date; on the day the joiner is admitted."""
    user = hr.user(1, "E1")
    hire = NOW + timedelta(days=10)
    assert await hr.post(joiner(hire=hire)) is Step.SCHEDULED
    await hr.pump(hire - timedelta(minutes=1))
    assert hr.tenant.member_of(user) == []
    await hr.pump(hire)
    assert hr.tenant.member_of(user) == [GROUP]


async def test_the_policy_can_act_days_before_the_hire_date(hr: Hr) -> None:
    """hire_lead_days: 2 → ready two days early."""
    hr.license.policy = policy(hr=HrSettings(hire_lead_days=2))
    user = hr.user(1, "E1")
    hire = NOW + timedelta(days=10)
    await hr.post(joiner(hire=hire))
    await hr.pump(hire - timedelta(days=2))
    assert hr.tenant.member_of(user) == [GROUP]


async def test_no_matching_rule_means_no_copilot(hr: Hr) -> None:
    """Department Finance matches no rule: nothing is written."""
    hr.user(1, "E1")
    assert await hr.post(joiner(department="Finance")) is Step.NO_GROUP
    assert hr.tenant.writes == []


async def test_hr_fields_override_entra_for_the_rules(hr: Hr) -> None:
    """Entra says Sales, the HR event says Legal: the Legal group."""
    user = hr.user(1, "E1")
    await hr.post(joiner(department="Legal"))
    assert hr.tenant.member_of(user) == [OTHER]


async def test_usage_location_is_set_from_the_hr_country_when_the_policy_allows(hr: Hr) -> None:
    """No usageLocation in Entra, policy hr_country: PATCH from HR's country, then admitted."""
    hr.license.policy = policy(usage_location_fix=UsageLocationFix(UsageLocationSource.HR_COUNTRY))
    user = hr.user(1, "E1", usageLocation=None)
    await hr.post(joiner(country="fr"))
    assert hr.tenant.users[user]["usageLocation"] == "FR"
    assert hr.tenant.member_of(user) == [GROUP]


async def test_without_the_policy_a_missing_usage_location_leaves_the_joiner_pending(hr: Hr) -> None:
    """The default policy never writes a usage location: pending with the reason."""
    user = hr.user(1, "E1", usageLocation=None)
    await hr.post(joiner(country="fr"))
    [pending] = await hr.license.seats.pending(GROUP)
    assert (pending.user_id, [r.value for r in pending.reasons]) == (user, ["no_usage_location"])
    assert hr.tenant.member_of(user) == []


async def test_a_joiner_not_yet_in_entra_is_looked_for_until_found(hr: Hr) -> None:
    """No account: re-checked every hour; when it appears it is admitted."""
    assert await hr.post(joiner()) is Step.WAITING_FOR_ACCOUNT
    await hr.pump(NOW + timedelta(hours=3, minutes=30))
    user = hr.user(1, "E1")
    await hr.pump(NOW + timedelta(hours=5))
    assert hr.tenant.member_of(user) == [GROUP]
    assert hr.steps.count(Step.WAITING_FOR_ACCOUNT) == 4


async def test_a_joiner_never_in_entra_raises_one_alert_at_the_deadline(hr: Hr) -> None:
    """After 72 hours of looking: one account_missing alert, and the looking stops."""
    await hr.post(joiner())
    await hr.pump(NOW + timedelta(days=5))
    assert hr.alerts() == [("hr.account_missing", "present")]
    assert hr.steps[-1] is Step.ACCOUNT_MISSING


async def test_a_hire_posted_weeks_ahead_waits_for_its_account_from_the_hire_date(hr: Hr) -> None:
    """Posted 30 days ahead, account created 5 hours after the start: admitted, no alert, no Failed."""
    hire = NOW + timedelta(days=30)
    assert await hr.post(joiner(hire=hire)) is Step.SCHEDULED
    await hr.pump(hire + timedelta(hours=4))
    user = hr.user(1, "E1")
    await hr.pump(hire + timedelta(hours=6))
    assert hr.tenant.member_of(user) == [GROUP]
    assert ("hr.account_missing", "present") not in hr.alerts()


async def test_a_hire_posted_weeks_ahead_alerts_72_hours_after_the_hire_date(hr: Hr) -> None:
    """No account ever: the one alert comes at the deadline counted from the hire date, not before."""
    hire = NOW + timedelta(days=30)
    await hr.post(joiner(hire=hire))
    await hr.pump(hire + timedelta(hours=71))
    assert hr.alerts() == []
    await hr.pump(hire + timedelta(hours=74))
    assert hr.alerts() == [("hr.account_missing", "present")]


# -- ordering --------------------------------------------------------------------------------------------


async def test_a_leaver_recorded_after_a_future_hire_rescinds_it(hr: Hr) -> None:
    """The hire date comes and goes: nobody is added."""
    user = hr.user(1, "E1")
    hire = NOW + timedelta(days=10)
    await hr.post(joiner(hire=hire))
    await hr.post(leaver(at=NOW, recorded=NOW))
    await hr.pump(hire + timedelta(days=1))
    assert hr.tenant.member_of(user) == []
    assert Step.SUPERSEDED in hr.steps


async def test_an_older_event_arriving_late_changes_nothing(hr: Hr) -> None:
    """The leaver (recorded later) arrives first; the joiner arriving after it is stale."""
    user = hr.user(1, "E1")
    await hr.post(leaver(at=NOW, recorded=NOW))
    assert await hr.post(joiner()) is Step.STALE
    assert hr.tenant.member_of(user) == []


async def test_a_rehire_after_leaving_is_a_joiner_again(hr: Hr) -> None:
    """Joined, left, rejoined (each recorded later): a member again."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    await hr.post(leaver(at=NOW, recorded=NOW))
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []
    later = hr.clock.now()
    rehire = {**joiner(hire=later), "id": "rehire-E1", "time": later.isoformat()}
    await hr.post(rehire)
    assert hr.tenant.member_of(user) == [GROUP]


async def test_replayed_messages_change_nothing(hr: Hr) -> None:
    """The same message twice runs once; the same event under a new message id is a duplicate."""
    user = hr.user(1, "E1")
    message = hr_message(HrWork(hr.parsed(joiner())), correlation_id="c")
    first = await handle_hr_message(message.body(), hr.deps, message_id="m1", idempotency=hr.idempotency)
    again = await handle_hr_message(message.body(), hr.deps, message_id="m1", idempotency=hr.idempotency)
    replay = await handle_hr_message(message.body(), hr.deps, message_id="m2", idempotency=hr.idempotency)
    assert (first.step, again.step, replay.step) == (Step.ADMITTED, Step.DUPLICATE, Step.DUPLICATE)
    assert hr.tenant.add_requests == [(GROUP, 1)]
    assert hr.tenant.member_of(user) == [GROUP]


# -- movers ----------------------------------------------------------------------------------------------


async def test_a_mover_gets_the_new_group_before_leaving_the_old_one(hr: Hr) -> None:
    """Sales → Legal: member of both until the Legal license is Active, then only Legal; never none."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    assert await hr.post(mover("E1", "Legal")) is Step.MOVING
    assert hr.tenant.member_of(user) == sorted([GROUP, OTHER])
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == [OTHER]
    assert hr.tenant.license(user, OTHER) == ("Active", "None")


async def test_a_mover_needs_no_free_seat(hr: Hr) -> None:
    """Every seat taken: the move still happens (the same SKU through two groups is one seat)."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    copilot = hr.tenant._copilot()
    copilot["prepaidUnits"]["enabled"] = copilot["consumedUnits"]
    hr.clock.advance(timedelta(minutes=2))  # past the SKU cache
    await hr.post(mover("E1", "Legal", recorded=hr.clock.now()))
    await hr.pump(hr.clock.now() + timedelta(hours=1))
    assert hr.tenant.member_of(user) == [OTHER]
    assert copilot["consumedUnits"] <= copilot["prepaidUnits"]["enabled"]


async def test_a_mover_waits_while_the_new_license_is_not_active(hr: Hr) -> None:
    """The new group's license stays pending: the old group is kept (no gap), then one alert."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    hr.tenant.outcome[user] = ("Error", "CountViolation")
    await hr.post(mover("E1", "Legal"))
    await hr.pump(NOW + timedelta(hours=7))
    assert GROUP in hr.tenant.member_of(user)
    assert ("hr.move_stuck", "present") in hr.alerts()


async def test_a_mover_who_no_longer_qualifies_is_removed(hr: Hr) -> None:
    """Moved to Finance (no rule): removed from Sales, seat released."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    assert await hr.post(mover("E1", "Finance")) is Step.REMOVALS_PLANNED
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []


async def _seats_full_with_e2_waiting(hr: Hr) -> tuple[str, str]:
    """E1 joins and holds the last seat; E2 joins and waits for one. Their user ids."""
    first = hr.user(1, "E1")
    await hr.post(joiner())
    copilot = hr.tenant._copilot()
    copilot["prepaidUnits"]["enabled"] = copilot["consumedUnits"]
    hr.clock.advance(timedelta(minutes=2))  # past the SKU cache
    second = hr.user(2, "E2")
    await hr.post(joiner("E2"))
    return first, second


async def test_a_mover_who_no_longer_qualifies_gives_the_seat_to_the_next_without_an_alert(hr: Hr) -> None:
    """Moved to Finance with E2 waiting for a seat: E1 is removed, E2 gets the seat, and no `hr.move_stuck`
    incident follows hours later (there was no new license to wait for)."""
    first, second = await _seats_full_with_e2_waiting(hr)
    await hr.post(mover("E1", "Finance", recorded=hr.clock.now()))
    await hr.pump(hr.clock.now() + timedelta(hours=8))
    assert (hr.tenant.member_of(first), hr.tenant.member_of(second)) == ([], [GROUP])
    assert [a for a in hr.alerts() if a[0].startswith("hr.")] == []


async def test_a_pending_mover_waits_only_for_the_new_group(hr: Hr) -> None:
    """Pending for Sales, moved to Legal: the seat freed later goes to Legal, never to Sales as well."""
    first, second = await _seats_full_with_e2_waiting(hr)
    await hr.post(mover("E2", "Legal", recorded=hr.clock.now()))
    await hr.post(leaver(at=hr.clock.now(), recorded=hr.clock.now()))
    await hr.pump(hr.clock.now() + timedelta(hours=1))
    assert (hr.tenant.member_of(first), hr.tenant.member_of(second)) == ([], [OTHER])
    assert await hr.license.seats.pending(GROUP) == ()


async def test_a_mover_gives_back_the_seat_held_for_an_add_that_never_landed(hr: Hr) -> None:
    """The last seat reserved for E1's Sales add, which failed; E1 then moves to Legal. The Sales seat is
    given back, so Legal has one for E1 now, not once the reservation times out a day later."""
    user = hr.user(1, "E1")
    copilot = hr.tenant._copilot()
    copilot["prepaidUnits"]["enabled"] = copilot["consumedUnits"] + 1
    hr.tenant.fail_next_add = True
    with pytest.raises(Unavailable):
        await hr.post(joiner())
    assert hr.tenant.member_of(user) == []
    await hr.post(mover("E1", "Legal", recorded=hr.clock.now()))
    await hr.pump(hr.clock.now() + timedelta(hours=1))
    assert hr.tenant.member_of(user) == [OTHER]
    assert [(r.user_id, r.group_id) for r in await hr.license.seats.reservations()] == [(user, OTHER)]


# -- leavers and removal safety --------------------------------------------------------------------------


async def test_a_leaver_frees_the_seat_for_the_first_pending_person(hr: Hr) -> None:
    """No seat left: E2 waits pending; E1 leaves; E2 gets E1's seat."""
    first, second = await _seats_full_with_e2_waiting(hr)
    assert hr.tenant.member_of(second) == []
    await hr.post(leaver(at=NOW + timedelta(minutes=5), recorded=NOW))
    await hr.pump(NOW + timedelta(hours=1))
    assert (hr.tenant.member_of(first), hr.tenant.member_of(second)) == ([], [GROUP])


async def test_a_leaver_gives_back_a_seat_reserved_before_a_kill(hr: Hr) -> None:
    """A seat reserved for E1, the process killed before the addition was recorded: E1 leaves, and the seat
    goes back at once (E1 is no member, so there is nothing to remove that would give it back)."""
    user = hr.user(1, "E1")
    catalogue = await hr.license.reads.catalogue()
    assert await hr.license.seats.reserve(
        catalogue, user_id=user, group_id=GROUP, sku_ids=(COPILOT,), now=hr.clock.now()
    )
    await hr.post(leaver())
    assert await hr.license.seats.reservations() == ()


async def test_a_future_leaver_is_removed_at_the_effective_time(hr: Hr) -> None:
    """Leave date next week: still a member the day before, gone after."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    leave = NOW + timedelta(days=7)
    await hr.post(leaver(at=leave, recorded=NOW))
    await hr.pump(leave - timedelta(hours=1))
    assert hr.tenant.member_of(user) == [GROUP]
    await hr.pump(leave + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []


async def test_members_seatkeeper_did_not_add_are_not_removed(hr: Hr) -> None:
    """An admin's member of a non-authoritative group stays; in an authoritative group it goes."""
    user = hr.user(1, "E1")
    hr.tenant.members[GROUP] = [user]
    hr.tenant.set_license(user, "Active", group=GROUP)
    assert await hr.post(leaver()) is Step.NOTHING_TO_REMOVE
    assert hr.tenant.member_of(user) == [GROUP]
    groups = (LicensingGroup(GROUP, "Copilot - Sales", (COPILOT,), authoritative=True),)
    hr.license.policy = policy(licensing_groups=groups)
    await hr.post({**leaver(), "id": "again", "time": (NOW + timedelta(seconds=1)).isoformat()})
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []


async def test_a_mass_leaver_past_the_guard_removes_nobody_and_raises_one_incident(hr: Hr) -> None:
    """Limit 2, four leavers at once: all held, one incident key, no member removed."""
    hr.license.policy = policy(blast_radius=BlastRadius(max_removals_per_hour=2))
    users = [hr.user(n, f"E{n}") for n in range(1, 5)]
    for n in range(1, 5):
        await hr.post(joiner(f"E{n}"))
    for n in range(1, 5):
        await hr.post(leaver(f"E{n}"))
    await hr.pump(NOW + timedelta(hours=1))
    assert [hr.tenant.member_of(u) for u in users] == [[GROUP]] * 4
    assert set(hr.alerts()) == {("hr.removals_held", "present")}
    assert {m.subject for m in hr.sender.kinds("alert")} == {"service:removals:hr.removals_held"}
    book = RemovalBook(hr.deps.state)
    assert len(await book.held()) == 4


async def test_released_held_removals_happen_and_the_incident_resolves(hr: Hr) -> None:
    """`held release`: the members go, the guard resets, the incident is resolved."""
    hr.license.policy = policy(blast_radius=BlastRadius(max_removals_per_hour=0))
    user = hr.user(1, "E1")
    await hr.post(joiner())
    await hr.post(leaver())
    await hr.pump(NOW + timedelta(hours=1))
    book = RemovalBook(hr.deps.state)
    assert await book.release(await book.held(), hr.license, correlation_id="cli") == 1
    assert hr.tenant.member_of(user) == []
    assert (await book.tripped(), hr.alerts()[-1]) == (False, ("hr.removals_held", "gone"))


async def test_discarded_held_removals_keep_the_members(hr: Hr) -> None:
    """`held discard`: nobody is removed and nothing stays held."""
    hr.license.policy = policy(blast_radius=BlastRadius(max_removals_per_hour=0))
    user = hr.user(1, "E1")
    await hr.post(joiner())
    await hr.post(leaver())
    await hr.pump(NOW + timedelta(hours=1))
    book = RemovalBook(hr.deps.state)
    await book.discard(await book.held(), hr.license, correlation_id="cli")
    assert (hr.tenant.member_of(user), await book.held(), await book.tripped()) == ([GROUP], (), False)


async def test_protected_users_are_never_removed(hr: Hr) -> None:
    """A protected leaver keeps the membership Seatkeeper gave before they were protected."""
    user = hr.user(1, "E1")
    await hr.post(joiner())
    hr.license.policy = policy(protected_users=frozenset({user}))
    assert await hr.post(leaver()) is Step.NOTHING_TO_REMOVE
    assert hr.tenant.member_of(user) == [GROUP]


async def test_an_addition_record_alone_lets_a_leaver_be_removed(hr: Hr) -> None:
    """Seatkeeper added the member (its record says so) though no license shows yet: removed, and the record
    goes with the membership (whoever adds the person later, it is not Seatkeeper's by that record)."""
    user = hr.user(1, "E1")
    hr.tenant.members[GROUP] = [user]
    await hr.license.seats.record_addition(Addition(user, GROUP, NOW, "rollout"))
    await hr.post(leaver())
    await hr.pump(NOW + timedelta(hours=1))
    assert hr.tenant.member_of(user) == []
    assert await hr.license.seats.addition(user, GROUP) is None


async def test_lifecycle_workflow_events_resume_their_workflow_once_decided(hr: Hr) -> None:
    """A joiner from a workflow: admitted, then the callback is resumed with Completed."""
    hr.user(1, "E1")
    path = "/identityGovernance/lifecycleWorkflows/workflows/w/tasks/t/taskProcessingResults/r/resume"
    await hr.post(joiner(), callback=path)
    assert hr.tenant.resumed == [(path, "Completed")]


def test_admission_results_are_what_joiners_report() -> None:
    """The joiner's result is admission's own enum (one path, no second decision)."""
    assert Result.ADDED.value == "added"


async def test_a_permanent_failure_completes_the_message_with_its_reason(hr: Hr) -> None:
    """Graph refuses the workflow callback: the message completes as failed (no endless retry); the admission
    it made stands."""
    user = hr.user(1, "E1")
    hr.tenant.refuse_resume = True
    path = "/identityGovernance/lifecycleWorkflows/workflows/w/tasks/t/taskProcessingResults/r/resume"
    assert await hr.post(joiner(), callback=path) is Step.FAILED
    assert hr.tenant.member_of(user) == [GROUP]


async def test_a_delivery_that_failed_midway_is_taken_in_on_redelivery(hr: Hr) -> None:
    """Graph was down after the person's record was written: the redelivery still admits the joiner."""
    user = hr.user(1, "E1")
    hr.tenant.unavailable_reads = 1
    message = hr_message(HrWork(hr.parsed(joiner())), correlation_id="c")
    with pytest.raises(Unavailable):
        await handle_hr_message(message.body(), hr.deps, message_id="m1", idempotency=hr.idempotency)
    again = await handle_hr_message(message.body(), hr.deps, message_id="m1", idempotency=hr.idempotency)
    assert (again.step, hr.tenant.member_of(user)) == (Step.ADMITTED, [GROUP])
