"""What-if: the current and a new policy over the same people — gains, losses, group changes, blocks, the
seat balance and a membershipRule preview, as tables of cases over Graph user JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.hr_rules import Condition, HrRule, Op, RuleField
from seatkeeper.core.membership_rule import parse_rule
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.rollout import RolloutRule
from seatkeeper.core.skus import catalogue_from_graph
from seatkeeper.core.whatif import Change, RulePreview, WhatIf
from tests.unit.license_world import sku_json, user_id, user_json
from tests.unit.test_gate_builders import COPILOT, NOW

E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
SALES = "0b6e0000-0000-4000-8000-00000000c0de"
EMEA = "0b6e0000-0000-4000-8000-0000000000ff"
GROUPS = {
    SALES: LicensingGroup(SALES, "Copilot - Sales", (COPILOT,)),
    EMEA: LicensingGroup(EMEA, "Copilot - EMEA", (COPILOT,)),
}


def person(
    n: int, *, department: str = "Sales", member_of: str | None = None, base: bool = True
) -> dict[str, Any]:
    """User n with E3 (or nothing), a department, and an active Copilot seat through `member_of`."""
    states = (
        [{"skuId": COPILOT, "state": "Active", "error": "None", "assignedByGroup": member_of}]
        if member_of
        else []
    )
    user = user_json(n, licenses=(E3,) if base else (), states=states)
    if member_of:
        user["assignedLicenses"].append({"skuId": COPILOT, "disabledPlans": []})
    return {
        **user,
        "department": department,
        "jobTitle": "Seller",
        "country": "Germany",
        "companyName": "Contoso",
    }


def policy(*, rules: Sequence[HrRule] = (), observe_only: bool = False) -> Policy:
    groups = tuple(replace(g, observe_only=observe_only) for g in GROUPS.values())
    return Policy(licensing_groups=groups, hr_rules=tuple(rules))


def rule(name: str, department: str, group: str | None) -> HrRule:
    return HrRule(name, (Condition(RuleField.DEPARTMENT, Op.EQUALS, (department,)),), group)


def run(current: Policy, new: Policy, users: Sequence[dict[str, Any]], *, enabled: int = 10) -> WhatIf:
    consumed = sum(1 for u in users for s in u["licenseAssignmentStates"] if s["skuId"] == COPILOT)
    catalogue = catalogue_from_graph(
        {"value": [sku_json(COPILOT, "Microsoft_365_Copilot", enabled=enabled, consumed=consumed)]}, NOW
    )
    groups = {g: GroupSnapshot(g, g) for g in GROUPS}
    whatif = WhatIf(current, new, groups, catalogue, NOW)
    for user in users:
        whatif.observe(user)
    return whatif


@pytest.mark.parametrize(
    ("current", "new", "user", "change", "reasons"),
    [
        pytest.param(
            policy(), policy(rules=[rule("sales", "Sales", SALES)]), person(1), Change.GAIN, [], id="gain"
        ),
        pytest.param(
            policy(),
            policy(rules=[rule("legal", "Legal", SALES)]),
            person(1, member_of=SALES),
            Change.LOSE,
            [],
            id="lose-when-no-rule-matches",
        ),
        pytest.param(
            policy(rules=[rule("sales", "Sales", SALES)]),
            policy(rules=[rule("sales", "Sales", EMEA)]),
            person(1, member_of=SALES),
            Change.CHANGE_GROUP,
            ["already_licensed"],
            id="change-group",
        ),
        pytest.param(
            policy(),
            policy(rules=[rule("sales", "Sales", SALES)]),
            person(1, base=False),
            Change.BLOCKED,
            ["no_base_license"],
            id="blocked-by-the-gate",
        ),
        pytest.param(policy(), policy(), person(1, member_of=SALES), None, [], id="no-rules-members-stay"),
        pytest.param(
            policy(),
            policy(rules=[rule("sales", "Sales", SALES)], observe_only=True),
            person(1),
            Change.BLOCKED,
            ["observe_only"],
            id="observe-only-seats-nobody-new",
        ),
    ],
)
def test_each_person_is_compared_through_the_same_gate(
    current: Policy, new: Policy, user: dict[str, Any], change: Change | None, reasons: list[str]
) -> None:
    """The change and the new policy's reasons come from choose_target() and decide(), not a copy of them."""
    whatif = WhatIf(
        current, new, {g: GroupSnapshot(g, g) for g in GROUPS}, run(current, new, []).catalogue, NOW
    )
    found = whatif.observe(user)
    assert (found.change if found else None, list(found.after.reasons) if found else []) == (change, reasons)


def test_a_rollout_keeps_people_the_new_rules_would_drop() -> None:
    """People a recorded rollout lists keep their seat when a rule edit no longer matches them."""
    new = replace(
        policy(rules=[rule("legal", "Legal", SALES)]),
        rollouts=(RolloutRule("pilot", SALES, frozenset({user_id(1)})),),
    )
    whatif = run(policy(), new, [person(1, member_of=SALES), person(2, member_of=SALES)])
    assert whatif.summary()["lose"] == 1


def test_seat_balance_after_the_change() -> None:
    """Gains take seats, losses give them back, group changes on the same SKU move none."""
    users = [
        person(1, department="Sales"),  # gains
        person(2, department="Sales"),  # gains
        person(3, department="Legal", member_of=SALES),  # loses
        person(4, department="Sales", member_of=EMEA),  # changes group
    ]
    whatif = run(policy(), policy(rules=[rule("sales", "Sales", SALES)]), users, enabled=3)
    summary = whatif.summary()
    assert (summary["gain"], summary["lose"], summary["change_group"]) == (2, 1, 1)
    assert summary["seats"] == [
        {
            "sku_id": COPILOT,
            "sku_part_number": "Microsoft_365_Copilot",
            "enabled": 3,
            "consumed": 2,
            "after": 3,
            "free_after": 0,
        }
    ]
    assert summary["groups"] == {EMEA: {"in": 0, "out": 1}, SALES: {"in": 3, "out": 1}}


def test_membership_rule_preview_counts_joins_and_leaves() -> None:
    """A dynamic group's rule edit is previewed against the current attributes of every user."""
    preview = RulePreview(
        "dyn",
        new=parse_rule('user.department -in ["Sales","Legal"]'),
        old=parse_rule('user.department -eq "Sales" -or user.department -eq "Finance"'),
    )
    users = [person(1, department="Sales"), person(2, department="Legal"), person(3, department="Finance")]
    assert [preview.observe(u) for u in users] == [None, "join", "leave"]
    assert (preview.joins, preview.leaves, preview.matches_after) == (1, 1, 2)


def group_of(policy: Policy, group_id: str, **changes: Any) -> Policy:
    """The policy with one licensing group changed (authoritative, observe-only)."""
    groups = tuple(replace(g, **changes) if g.id == group_id else g for g in policy.licensing_groups)
    return replace(policy, licensing_groups=groups)


def without_group(policy: Policy, group_id: str) -> Policy:
    """The policy without one licensing group (Seatkeeper no longer manages it)."""
    return replace(policy, licensing_groups=tuple(g for g in policy.licensing_groups if g.id != group_id))


DROP_LEGAL = policy(rules=[rule("legal", "Legal", SALES)])  # the Sales member in SALES loses the seat
ADDED, NOT_ADDED = frozenset({SALES}), frozenset[str]()


@pytest.mark.parametrize(
    ("new", "added", "dynamic", "why_not"),
    [
        pytest.param(DROP_LEGAL, ADDED, False, None, id="added-by-seatkeeper-removed"),
        pytest.param(DROP_LEGAL, NOT_ADDED, False, "not_added_by_seatkeeper", id="not-added-left"),
        pytest.param(
            group_of(DROP_LEGAL, SALES, authoritative=True),
            NOT_ADDED,
            False,
            None,
            id="authoritative-removed",
        ),
        pytest.param(
            replace(DROP_LEGAL, protected_users=frozenset({user_id(1)})),
            ADDED,
            False,
            "protected_user",
            id="protected-left",
        ),
        pytest.param(
            group_of(DROP_LEGAL, SALES, observe_only=True),
            ADDED,
            False,
            "observe_only",
            id="observe-only-left",
        ),
        pytest.param(DROP_LEGAL, ADDED, True, "group_not_writable", id="dynamic-group-left"),
        pytest.param(
            without_group(DROP_LEGAL, SALES),
            ADDED,
            False,
            "not_a_licensing_group",
            id="group-dropped-left",
        ),
    ],
)
def test_a_loser_is_removed_only_where_removal_safety_allows(
    new: Policy, added: frozenset[str], dynamic: bool, why_not: str | None
) -> None:
    """Of the people who would lose the seat, Seatkeeper removes only members it added (unless the group is
    authoritative), never protected users, observe-only or read-only groups: the rest stay for an admin."""
    groups = {
        g: GroupSnapshot(g, g, group_types=frozenset({"DynamicMembership"}) if dynamic else frozenset())
        for g in GROUPS
    }
    whatif = WhatIf(policy(), new, groups, run(policy(), new, []).catalogue, NOW)
    change = whatif.observe(person(1, member_of=SALES))
    assert change is not None
    assert change.leaving == (SALES,)
    settled = whatif.settle(change, added_by_seatkeeper=added)
    assert (settled.change, settled.seatkeeper_removes, settled.as_dict()["removal"]["groups"]) == (
        Change.LOSE,
        why_not is None,
        [{"group_id": SALES, "seatkeeper_removes": why_not is None, "why_not": why_not}],
    )


def test_the_summary_counts_who_seatkeeper_removes_and_who_is_left_for_an_admin() -> None:
    """Three losers (one added by Seatkeeper) and one mover: counts per change and per reason."""
    users = [
        person(1, department="Legal", member_of=SALES),
        person(2, department="Legal", member_of=SALES),
        person(3, department="Legal", member_of=EMEA),
        person(4, department="Sales", member_of=EMEA),
    ]
    new = policy(rules=[rule("sales", "Sales", SALES)])
    whatif = WhatIf(
        policy(), new, {g: GroupSnapshot(g, g) for g in GROUPS}, run(policy(), new, []).catalogue, NOW
    )
    ours = {user_id(1): frozenset({SALES}), user_id(4): frozenset({EMEA})}
    settled = [
        whatif.settle(c, added_by_seatkeeper=ours.get(c.user_id, frozenset()))
        for c in (whatif.observe(u) for u in users)
        if c is not None
    ]
    assert [(c.change, c.seatkeeper_removes) for c in settled] == [
        (Change.LOSE, True),
        (Change.LOSE, False),
        (Change.LOSE, False),
        (Change.CHANGE_GROUP, True),
    ]
    assert whatif.summary()["removals"] == {
        "lose": {
            "seatkeeper_removes": 1,
            "left_for_an_admin": 2,
            "left_because": {"not_added_by_seatkeeper": 2},
        },
        "change_group": {"seatkeeper_removes": 1, "left_for_an_admin": 0, "left_because": {}},
    }


def test_a_loser_licensed_outside_the_licensing_groups_is_left_for_an_admin() -> None:
    """A Copilot license held directly is never Seatkeeper's to take: the loss is left for an admin."""
    user = person(1)
    user["assignedLicenses"].append({"skuId": COPILOT, "disabledPlans": []})
    current = policy(rules=[rule("sales", "Sales", SALES)])
    whatif = WhatIf(
        current,
        DROP_LEGAL,
        {g: GroupSnapshot(g, g) for g in GROUPS},
        run(current, DROP_LEGAL, []).catalogue,
        NOW,
    )
    change = whatif.observe(user)
    assert change is not None
    settled = whatif.settle(change, added_by_seatkeeper=frozenset())
    assert (settled.change, settled.seatkeeper_removes, settled.left_because()) == (
        Change.LOSE,
        False,
        ("licensed_outside_licensing_groups",),
    )
