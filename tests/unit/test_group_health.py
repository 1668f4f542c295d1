"""Licensing-group health as a table: each group shape yields exactly the findings Graph's rules imply."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.group_health import (
    PROBLEMS,
    GroupState,
    Member,
    Problem,
    check_group,
    health_signal,
    healthy_signal,
    members_from_graph,
    missing_group,
    processing_since,
    state_from_graph,
)
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import Cause, Scope
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.skus import Sku, SkuCatalogue

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
GROUP_ID = "a3193522-ecd3-4c1a-80cd-b107376dc077"
LICENSING = LicensingGroup(GROUP_ID, "Copilot - Americas", (COPILOT,))
POLICY = Policy(licensing_groups=(LICENSING,))
CATALOGUE = SkuCatalogue(
    (Sku(COPILOT, "Microsoft_365_Copilot"), Sku(E3, "SPE_E3")),
    read_at=NOW,
)
HEALTHY = GroupState(
    group=GroupSnapshot(GROUP_ID, "Copilot - Americas"),
    assigned_sku_ids=(COPILOT,),
    license_processing_state="ProcessingComplete",
    members=(Member("u-1", "user", "adele@contoso.example"),),
)
DYNAMIC = frozenset({"DynamicMembership"})

CASES: list[tuple[str, GroupState, set[Problem]]] = [
    ("healthy", HEALTHY, set()),
    (
        "not security-enabled",
        replace(HEALTHY, group=GroupSnapshot(GROUP_ID, "G", security_enabled=False)),
        {Problem.NOT_SECURITY_ENABLED},
    ),
    (
        "dynamic device group by rule",
        replace(
            HEALTHY,
            group=GroupSnapshot(GROUP_ID, "G", group_types=DYNAMIC),
            membership_rule='(device.deviceOSType -eq "Windows")',
            rule_processing_state="On",
            members=(),
        ),
        {Problem.DYNAMIC_DEVICE_GROUP},
    ),
    (
        "dynamic device group by its members",
        replace(
            HEALTHY,
            group=GroupSnapshot(GROUP_ID, "G", group_types=DYNAMIC),
            membership_rule=None,
            members=(Member("d-1", "device"),),
        ),
        {Problem.DYNAMIC_DEVICE_GROUP},
    ),
    (
        "dynamic user group is fine",
        replace(
            HEALTHY,
            group=GroupSnapshot(GROUP_ID, "G", group_types=DYNAMIC),
            membership_rule='(user.department -eq "Sales")',
            rule_processing_state="On",
        ),
        set(),
    ),
    (
        "nested groups",
        replace(HEALTHY, members=(Member("u-1", "user"), Member("g-2", "group", "Pilots"))),
        {Problem.NESTED_GROUPS},
    ),
    ("copilot not assigned", replace(HEALTHY, assigned_sku_ids=()), {Problem.COPILOT_NOT_ASSIGNED}),
    (
        "other products bundled",
        replace(HEALTHY, assigned_sku_ids=(COPILOT, E3)),
        {Problem.OTHER_PRODUCTS_BUNDLED},
    ),
    (
        "copilot replaced by another product",
        replace(HEALTHY, assigned_sku_ids=(E3,)),
        {Problem.COPILOT_NOT_ASSIGNED, Problem.OTHER_PRODUCTS_BUNDLED},
    ),
    (
        "dynamic rule paused",
        replace(
            HEALTHY,
            group=GroupSnapshot(GROUP_ID, "G", group_types=DYNAMIC),
            membership_rule='(user.department -eq "Sales")',
            rule_processing_state="Paused",
        ),
        {Problem.DYNAMIC_RULE_PAUSED},
    ),
    (
        "processing for 25 h: stuck",
        replace(
            HEALTHY,
            license_processing_state="ProcessingInProgress",
            processing_since=NOW - timedelta(hours=25),
        ),
        {Problem.LICENSE_PROCESSING_STUCK},
    ),
    (
        "processing for 1 h: not yet stuck",
        replace(
            HEALTHY,
            license_processing_state="QueuedForProcessing",
            processing_since=NOW - timedelta(hours=1),
        ),
        set(),
    ),
    (
        "everything wrong at once",
        GroupState(
            group=GroupSnapshot(GROUP_ID, "G", group_types=DYNAMIC, security_enabled=False),
            membership_rule='(device.displayName -eq "kiosk")',
            rule_processing_state="Paused",
            assigned_sku_ids=(E3,),
            license_processing_state="ProcessingInProgress",
            processing_since=NOW - timedelta(days=2),
            members=(Member("g-2", "group"),),
        ),
        set(Problem) - {Problem.MISSING},
    ),
]


@pytest.mark.parametrize(("state", "expected"), [(s, e) for _, s, e in CASES], ids=[c[0] for c in CASES])
def test_findings_per_group_shape(state: GroupState, expected: set[Problem]) -> None:
    """Each group shape gives exactly the problems Graph's licensing rules imply."""
    findings = check_group(state, licensing=LICENSING, policy=POLICY, catalogue=CATALOGUE, now=NOW)
    assert {f.problem for f in findings} == expected


def test_stuck_threshold_is_configurable() -> None:
    """A shorter threshold calls the same processing stuck sooner."""
    state = replace(
        HEALTHY, license_processing_state="ProcessingInProgress", processing_since=NOW - timedelta(hours=2)
    )
    findings = check_group(
        state,
        licensing=LICENSING,
        policy=POLICY,
        catalogue=CATALOGUE,
        now=NOW,
        stuck_after=timedelta(hours=1),
    )
    assert [f.problem for f in findings] == [Problem.LICENSE_PROCESSING_STUCK]


@pytest.mark.parametrize(
    ("state", "previous", "previous_since", "expected"),
    [
        ("ProcessingInProgress", None, None, NOW),
        ("ProcessingInProgress", "ProcessingInProgress", NOW - timedelta(hours=3), NOW - timedelta(hours=3)),
        ("ProcessingInProgress", "QueuedForProcessing", NOW - timedelta(hours=3), NOW),
        ("ProcessingComplete", "ProcessingInProgress", NOW - timedelta(hours=3), None),
        (None, "ProcessingInProgress", NOW - timedelta(hours=3), None),
    ],
    ids=["first seen", "unchanged keeps", "changed restarts", "complete clears", "unknown clears"],
)
def test_processing_since(
    state: str | None, previous: str | None, previous_since: datetime | None, expected: datetime | None
) -> None:
    """The unfinished state's first sighting is kept while it lasts and forgotten once it changes."""
    assert processing_since(state, previous, previous_since, NOW) == expected


def test_every_problem_has_text_and_remediation() -> None:
    """No finding reaches an admin without a title and exactly what to do."""
    assert set(PROBLEMS) == set(Problem)
    assert all(t.title and len(t.remediation) > 40 for t in PROBLEMS.values())


def test_parse_group_and_members_from_graph() -> None:
    """A group read with HEALTH_SELECT and its member listing parse into the state the check reads."""
    body: dict[str, Any] = {
        "id": GROUP_ID.upper(),
        "displayName": "Copilot - Americas",
        "groupTypes": [],
        "mailEnabled": False,
        "securityEnabled": True,
        "membershipRule": None,
        "membershipRuleProcessingState": None,
        "assignedLicenses": [{"skuId": COPILOT.upper(), "disabledPlans": []}],
        "licenseProcessingState": {"state": "ProcessingComplete"},
    }
    members = members_from_graph(
        [
            {"@odata.type": "#microsoft.graph.user", "id": "U-1", "userPrincipalName": "a@c.example"},
            {"@odata.type": "#microsoft.graph.group", "id": "g-2", "displayName": "Pilots"},
            {"id": ""},
        ]
    )
    state = state_from_graph(body, members)
    assert state.group.id == GROUP_ID
    assert state.assigned_sku_ids == (COPILOT,)
    assert state.license_processing_state == "ProcessingComplete"
    assert state.members == (Member("u-1", "user", "a@c.example"), Member("g-2", "group", "Pilots"))


def test_malformed_group_is_invalid_input() -> None:
    """A group object without an id is refused with a named problem."""
    with pytest.raises(InvalidInput):
        state_from_graph({"assignedLicenses": [{"disabledPlans": []}]})


def test_signals_key_the_group_and_carry_the_fix() -> None:
    """A finding opens a group-scoped incident with its remediation; a healthy look resolves it."""
    [finding] = check_group(
        replace(HEALTHY, assigned_sku_ids=()),
        licensing=LICENSING,
        policy=POLICY,
        catalogue=CATALOGUE,
        now=NOW,
    )
    signal = health_signal(finding, NOW)
    gone = healthy_signal(GROUP_ID, "Copilot - Americas", Problem.COPILOT_NOT_ASSIGNED, NOW)
    assert (signal.key.scope, signal.key.subject, signal.key.problem) == (
        Scope.GROUP,
        GROUP_ID,
        "group.copilot_not_assigned",
    )
    assert signal.cause is Cause.PRESENT
    assert signal.remediation == PROBLEMS[finding.problem].remediation
    assert gone.key == signal.key
    assert gone.cause is Cause.GONE
    assert missing_group(LICENSING).problem is Problem.MISSING
