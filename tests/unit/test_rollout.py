"""The rollout core: the CSV format, bad rows with their lines, progress for resuming, the named rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import PolicyConflict
from seatkeeper.core.hr_rules import Condition, HrRule, Op, RuleField
from seatkeeper.core.people import Person
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.rollout import (
    IdKind,
    ListedPerson,
    PersonPlan,
    Planned,
    RolloutRule,
    check_name,
    choose_target,
    chunks,
    parse_rollout_csv,
    remaining,
    totals,
    waitlist_positions,
)
from seatkeeper.core.rollout_records import RolloutHeader, RolloutRecords, target_with_rollouts, with_rollouts
from tests.unit.test_gate_builders import COPILOT, NOW

pytestmark = pytest.mark.anyio

GUID = "15e94b56-4f30-4b5e-8562-57924f6f0184"
SALES = "a3193522-ecd3-4c1a-80cd-b107376dc077"
EMEA = "43767abd-c08a-4ccf-b141-a0a274d91aa4"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def kinds(text: str) -> list[tuple[int, IdKind, str]]:
    parsed = parse_rollout_csv(text.splitlines())
    return [(p.line, p.kind, p.value) for p in parsed.people]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"{GUID}\n", [(1, IdKind.OBJECT_ID, GUID)], id="bare-guid"),
        pytest.param("ana@contoso.example\n", [(1, IdKind.UPN, "ana@contoso.example")], id="bare-upn"),
        pytest.param("E10001\n", [(1, IdKind.EMPLOYEE_ID, "E10001")], id="bare-employee-id"),
        pytest.param(
            "userPrincipalName,department\nana@contoso.example,Sales\n",
            [(2, IdKind.UPN, "ana@contoso.example")],
            id="header-upn-extra-column-ignored",
        ),
        pytest.param("UPN\nana@contoso.example\n", [(2, IdKind.UPN, "ana@contoso.example")], id="alias-upn"),
        pytest.param(
            f"id,userPrincipalName,employeeId\n{GUID},ana@contoso.example,E1\n,bo@contoso.example,E2\n,,E3\n",
            [
                (2, IdKind.OBJECT_ID, GUID),
                (3, IdKind.UPN, "bo@contoso.example"),
                (4, IdKind.EMPLOYEE_ID, "E3"),
            ],
            id="precedence-id-upn-employee-id",
        ),
        pytest.param(
            "# pilot list\n\nEmployee ID\nE1\n", [(4, IdKind.EMPLOYEE_ID, "E1")], id="comments-blank-lines"
        ),
        pytest.param("\ufeffupn\nana@contoso.example\n", [(2, IdKind.UPN, "ana@contoso.example")], id="bom"),
    ],
)
def test_rows_are_read_by_the_documented_format(text: str, expected: list[tuple[int, IdKind, str]]) -> None:
    """Each documented header and value shape names the person it should, with its line number."""
    assert kinds(text) == expected


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        pytest.param("id\nnot-a-guid\n", 2, "is not an object id", id="bad-guid"),
        pytest.param("upn\nana.contoso\n", 2, "is not a user principal name", id="bad-upn"),
        pytest.param("upn,department\n,Sales\n", 2, "no identifier", id="empty-identifier"),
        pytest.param(
            "ana@contoso.example\nANA@contoso.example\n", 2, "same person as line 1", id="duplicate"
        ),
        pytest.param("# only a comment\n", 1, "lists nobody", id="empty-file"),
    ],
)
def test_bad_rows_are_reported_with_their_line(text: str, line: int, problem: str) -> None:
    """A row that names nobody usable is reported with its line number, never silently dropped."""
    parsed = parse_rollout_csv(text.splitlines())
    assert [(b.line, problem in b.problem) for b in parsed.bad_rows] == [(line, True)]


def test_good_rows_survive_bad_ones() -> None:
    """Bad rows do not hide good ones: both are reported."""
    parsed = parse_rollout_csv(["upn", "ana@contoso.example", "nope", "bo@contoso.example"])
    assert [p.line for p in parsed.people] == [2, 4]
    assert [b.line for b in parsed.bad_rows] == [3]


def plan(line: int, state: Planned, *reasons: str) -> PersonPlan:
    listed = ListedPerson(line, IdKind.UPN, f"user{line}@contoso.example")
    return PersonPlan(listed, f"{line:08d}-0000-4000-8000-000000000000", listed.value, state, reasons)


def test_resuming_skips_everyone_already_done() -> None:
    """Only people still to send through admission remain (eligible, or blocked by seats alone), in file
    order, whatever the order they were recorded in."""
    plans = [
        plan(3, Planned.TO_ADMIT),
        plan(1, Planned.ADDED),
        plan(5, Planned.TO_WAITLIST, "no_seat"),
        plan(2, Planned.TO_ADMIT),
        plan(4, Planned.BLOCKED),
        plan(6, Planned.PENDING, "no_seat"),
    ]
    assert [p.listed.line for p in remaining(plans)] == [2, 3, 5]


def test_waiting_people_get_their_place_on_the_waitlist() -> None:
    """A waiting person has their place on the group's waitlist; a dry run's would-be waiters come after
    everyone already waiting, in file order; someone no longer on the list, or not waiting, has none."""
    waiting, served = plan(2, Planned.PENDING, "no_seat"), plan(3, Planned.PENDING, "no_seat")
    would = [plan(4, Planned.TO_WAITLIST, "no_seat"), plan(5, Planned.TO_WAITLIST, "no_seat")]
    other = plan(6, Planned.PENDING, "no_base_license")
    queue = ["someone-else", str(waiting.user_id).upper()]
    positions = waitlist_positions([would[1], other, served, waiting, would[0]], queue)
    assert positions == {waiting.row_key: 2, would[0].row_key: 3, would[1].row_key: 4}


def test_people_are_admitted_twenty_at_a_time() -> None:
    """Progress is saved after every bulk add of at most 20 people."""
    plans = [plan(n, Planned.TO_ADMIT) for n in range(1, 46)]
    assert [len(c) for c in chunks(plans)] == [20, 20, 5]


def test_totals_count_states_blockers_and_seats() -> None:
    """The footer counts states, blockers by reason, the seats the rollout uses and who waits for one."""
    plans = [
        plan(1, Planned.TO_ADMIT),
        plan(2, Planned.ADDED),
        plan(3, Planned.BLOCKED, "no_base_license"),
        plan(4, Planned.BLOCKED, "no_base_license", "no_usage_location"),
        plan(5, Planned.ALREADY_LICENSED),
        plan(6, Planned.TO_WAITLIST, "no_seat"),
        plan(7, Planned.PENDING, "no_seat"),
    ]
    result = totals(plans, bad_rows=2, free_seats=10)
    assert result.as_dict() == {
        "by_state": {
            "added": 1,
            "already_licensed": 1,
            "blocked": 2,
            "pending": 1,
            "to_admit": 1,
            "to_waitlist": 1,
        },
        "blocked_by_reason": {"no_base_license": 2, "no_seat": 2, "no_usage_location": 1},
        "bad_rows": 2,
        "seats_used": 2,
        "free_seats": 10,
        "waiting_for_seat": 2,
    }


@pytest.mark.parametrize("name", ["pilot", "wave-2", "Sales_EMEA.2026"])
def test_rollout_names_that_key_the_store(name: str) -> None:
    """Names made of letters, digits, '.', '_' and '-' are accepted as they are."""
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a#b", "x" * 64])
def test_rollout_names_that_cannot_key_the_store_are_refused(name: str) -> None:
    """Anything a state-store key cannot hold is refused."""
    with pytest.raises(ValueError, match="not a rollout name"):
        check_name(name)


def policy_with_rules() -> Policy:
    return Policy(
        licensing_groups=(
            LicensingGroup(SALES, "Copilot - Sales", (COPILOT,)),
            LicensingGroup(EMEA, "EMEA", (COPILOT,)),
        ),
        hr_rules=(HrRule("sales", (Condition(RuleField.DEPARTMENT, Op.EQUALS, ("Sales",)),), SALES),),
    )


def test_a_recorded_rollout_wins_over_the_hr_rules() -> None:
    """A person listed by a rollout stays in its group even when the HR rules choose otherwise."""
    person = Person(id=GUID, department="Sales")
    policy = replace(policy_with_rules(), rollouts=(RolloutRule("pilot", EMEA, frozenset({GUID})),))
    choice = choose_target(policy, person)
    assert (choice.group_id, choice.rule) == (EMEA, "rollout:pilot")


def test_without_a_rollout_the_hr_rules_choose() -> None:
    """People no rollout lists are placed by the HR rules, as before."""
    policy = replace(policy_with_rules(), rollouts=(RolloutRule("pilot", EMEA, frozenset({"someone-else"})),))
    choice = choose_target(policy, Person(id=GUID, department="Sales"))
    assert (choice.group_id, choice.rule) == (SALES, "sales")


@pytest.fixture
def records(tmp_path: Path) -> Iterator[RolloutRecords]:
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        yield RolloutRecords(store)
    finally:
        store.close()


async def test_progress_is_recorded_and_read_back(records: RolloutRecords) -> None:
    """What a run saved is what a resumed run reads."""
    await records.start(RolloutHeader("pilot", SALES, "cli:ana", NOW, "pilot.csv"))
    saved = [plan(1, Planned.ADDED), plan(2, Planned.TO_ADMIT), plan(3, Planned.BLOCKED, "no_seat")]
    await records.save("pilot", saved, now=NOW)
    assert sorted((await records.plans("pilot")).values(), key=lambda p: p.listed.line) == saved


async def test_a_rollout_name_keeps_its_group(records: RolloutRecords) -> None:
    """Resuming under the same name with another group is refused, not merged."""
    await records.start(RolloutHeader("pilot", SALES, "cli:ana", NOW, "pilot.csv"))
    with pytest.raises(PolicyConflict, match="targets group"):
        await records.start(RolloutHeader("pilot", EMEA, "cli:ana", NOW, "pilot.csv"))


async def test_recorded_rollouts_become_the_policy_s_named_rules(records: RolloutRecords) -> None:
    """Everyone found is kept by the rule; people not found or refused are not."""
    await records.start(RolloutHeader("pilot", SALES, "cli:ana", NOW, "pilot.csv"))
    kept, missing = plan(1, Planned.ADDED), plan(2, Planned.NOT_FOUND)
    blocked = plan(3, Planned.BLOCKED, "no_base_license")
    await records.save("pilot", [kept, missing, blocked], now=NOW)
    policy = await with_rollouts(policy_with_rules(), records)
    assert policy.rollouts == (
        RolloutRule("pilot", SALES, frozenset({str(kept.user_id), str(blocked.user_id)})),
    )


async def test_removing_a_rollout_forgets_its_rule(records: RolloutRecords) -> None:
    """After `rollout remove` the rule is gone and the name is free again."""
    await records.start(RolloutHeader("pilot", SALES, "cli:ana", NOW, "pilot.csv"))
    await records.save("pilot", [plan(1, Planned.ADDED)], now=NOW)
    assert await records.remove("pilot") == 2
    assert (await records.rules(), await records.header("pilot")) == ((), None)


async def test_a_mover_decision_finds_the_rollout_that_keeps_a_person(records: RolloutRecords) -> None:
    """One point read tells a mover or reconciliation decision that a rollout keeps this person."""
    await records.start(RolloutHeader("pilot", EMEA, "cli:ana", NOW, "pilot.csv"))
    kept = plan(1, Planned.ADDED)
    await records.save("pilot", [kept], now=NOW)
    sales_person = Person(id=str(kept.user_id), department="Sales")
    choice = await target_with_rollouts(policy_with_rules(), sales_person, records)
    assert (choice.group_id, choice.rule) == (EMEA, "rollout:pilot")
    await records.remove("pilot")
    after = await target_with_rollouts(policy_with_rules(), sales_person, records)
    assert (after.group_id, after.rule) == (SALES, "sales")


async def test_a_refused_person_is_not_kept(records: RolloutRecords) -> None:
    """Someone the write guard refused is not kept by the rollout's rule."""
    await records.start(RolloutHeader("pilot", EMEA, "cli:ana", NOW, "pilot.csv"))
    await records.save("pilot", [plan(1, Planned.TO_ADMIT)], now=NOW)
    await records.save("pilot", [plan(1, Planned.REFUSED)], now=NOW)
    assert await records.rollout_of(str(plan(1, Planned.REFUSED).user_id)) is None
