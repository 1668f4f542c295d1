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
