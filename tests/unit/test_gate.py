"""The license gate as tables: every branch of decide(), then the commands each kind of decision carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from seatkeeper.core.commands import (
    AddToGroup,
    ClearPending,
    Command,
    JoinWaitlist,
    RaiseAlert,
    RecordPending,
    ReserveSeat,
    ScheduleRecheck,
    SetUsageLocation,
)
from seatkeeper.core.gate import Decision, Outcome, decide
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import SEAT_HEADROOM_PROBLEM, Scope, alert_payload, parse_alert
from seatkeeper.core.license_errors import LicenseError
from seatkeeper.core.people import AssignmentState, LicenseAssignment, Person
from seatkeeper.core.policy import Policy, UsageLocationFix, UsageLocationSource
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import WaitSource
from seatkeeper.core.skus import CapabilityStatus, SkuCatalogue
from seatkeeper.policy_file import parse_policy
from tests.unit.test_gate_builders import (
    BUSINESS_CHAT,
    COPILOT,
    DEFAULT_SKUS,
    E3,
    E5,
    EXO_PLAN_2,
    GROUP,
    NOW,
    OTHER_GROUP,
    UPN,
    USER,
    VISIO,
    active,
    catalogue,
    licensing_group,
    person,
    policy,
    sku,
    snapshot,
)

CUSTOM_COPILOT = "11111111-2222-4333-8444-555555555555"
CUSTOM_BASE = "66666666-7777-4888-8999-000000000000"
UNLISTED = "77777777-7777-4777-8777-777777777777"


def _with_status(sku_id: str, status: CapabilityStatus) -> SkuCatalogue:
    skus = tuple(
        sku(s.sku_id, s.sku_part_number, *s.service_plans, status=status) if s.sku_id == sku_id else s
        for s in DEFAULT_SKUS
    )
    return catalogue(*skus)


@dataclass(frozen=True)
class Case:
    """One row of the gate's table."""

    person: Person = field(default_factory=person)
    policy: Policy = field(default_factory=policy)
    catalogue: SkuCatalogue = field(default_factory=catalogue)
    group: GroupSnapshot = field(default_factory=snapshot)
    free_seats: int = 10
    outcome: Outcome = Outcome.ELIGIBLE
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()


def _error_state(sku_id: str, group: str | None, error: LicenseError) -> LicenseAssignment:
    return LicenseAssignment(sku_id, AssignmentState.ERROR, group, error, error.value)


CASES = {
    "eligible": Case(),
    "protected-by-id": Case(
        policy=policy(protected_users=frozenset({USER})),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.PROTECTED_USER,),
    ),
    "protected-by-upn-any-case": Case(
        policy=policy(protected_users=frozenset({UPN.upper()})),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.PROTECTED_USER,),
    ),
    "already-licensed-through-another-group": Case(
        person=person(E3, COPILOT, states=(active(E3), active(COPILOT, group=OTHER_GROUP))),
        outcome=Outcome.ALREADY_LICENSED,
        reasons=(Reason.ALREADY_LICENSED,),
    ),
    "already-licensed-directly": Case(
        person=person(E3, COPILOT),
        outcome=Outcome.ALREADY_LICENSED,
        reasons=(Reason.ALREADY_LICENSED, Reason.COPILOT_ASSIGNED_DIRECTLY),
    ),
    "already-licensed-copilot-recognised-by-service-plan": Case(
        person=person(E3, CUSTOM_COPILOT),
        catalogue=catalogue(*DEFAULT_SKUS, sku(CUSTOM_COPILOT, "COPILOT_BUNDLE", BUSINESS_CHAT)),
        outcome=Outcome.ALREADY_LICENSED,
        reasons=(Reason.ALREADY_LICENSED, Reason.COPILOT_ASSIGNED_DIRECTLY),
    ),
    "already-licensed-assigned-licenses-without-states": Case(
        person=person(E3, COPILOT, states=()),
        outcome=Outcome.ALREADY_LICENSED,
        reasons=(Reason.ALREADY_LICENSED, Reason.COPILOT_ASSIGNED_DIRECTLY),
    ),
    "already-member-with-failed-assignment": Case(
        person=person(states=(active(E3), _error_state(COPILOT, GROUP, LicenseError.COUNT_VIOLATION))),
        outcome=Outcome.ALREADY_MEMBER,
        reasons=(Reason.ALREADY_MEMBER,),
    ),
    "account-disabled": Case(
        person=person(account_enabled=False),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.ACCOUNT_DISABLED,),
    ),
    "account-enabled-unknown-does-not-block": Case(person=person(account_enabled=None)),
    "no-usage-location-where-required": Case(
        person=person(usage_location=None),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.NO_USAGE_LOCATION,),
    ),
    "no-usage-location-not-required": Case(
        person=person(usage_location=None), policy=policy(require_usage_location=False)
    ),
    "no-usage-location-fixed-from-policy": Case(
        person=person(usage_location=None),
        policy=policy(usage_location_fix=UsageLocationFix(UsageLocationSource.FIXED, "DE")),
    ),
    "no-usage-location-fixed-from-hr-country": Case(
        person=person(usage_location=None, hr_country="fr"),
        policy=policy(usage_location_fix=UsageLocationFix(UsageLocationSource.HR_COUNTRY)),
    ),
    "no-usage-location-fix-to-unsold-country-refused": Case(
        person=person(usage_location=None),
        policy=policy(
            usage_location_fix=UsageLocationFix(UsageLocationSource.FIXED, "CU"),
            copilot_unavailable_locations=frozenset({"CU"}),
        ),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.NO_USAGE_LOCATION,),
    ),
    "usage-location-where-copilot-is-not-sold": Case(
        person=person(usage_location="CU"),
        policy=policy(copilot_unavailable_locations=frozenset({"cu"})),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.USAGE_LOCATION_NOT_SOLD,),
    ),
    "no-qualifying-base-license": Case(
        person=person(VISIO), outcome=Outcome.BLOCKED, reasons=(Reason.NO_BASE_LICENSE,)
    ),
    "no-license-at-all": Case(
        person=person(assigned_licenses=(), license_assignments=()),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.NO_BASE_LICENSE,),
    ),
    "base-license-in-error": Case(
        person=person(states=(_error_state(E3, OTHER_GROUP, LicenseError.COUNT_VIOLATION),)),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.BASE_LICENSE_NOT_ACTIVE,),
    ),
    "base-license-disabled": Case(
        person=person(states=(LicenseAssignment(E3, AssignmentState.DISABLED),)),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.BASE_LICENSE_NOT_ACTIVE,),
    ),
    "base-license-without-state-entries-counts": Case(person=person(E3, states=())),
    "base-sku-missing-from-catalogue-still-counts": Case(person=person(E3, UNLISTED)),
    "base-license-active-with-error-counts": Case(
        person=person(states=(LicenseAssignment(E3, AssignmentState.ACTIVE_WITH_ERROR),)),
    ),
    "base-license-by-service-plan": Case(
        person=person(CUSTOM_BASE),
        catalogue=catalogue(*DEFAULT_SKUS, sku(CUSTOM_BASE, "CONTOSO_BUNDLE", EXO_PLAN_2)),
        policy=policy(base_license_service_plans=("exchange_s_enterprise",)),
    ),
    "base-sku-suspended": Case(
        catalogue=_with_status(E3, CapabilityStatus.SUSPENDED),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.BASE_SKU_SUSPENDED,),
    ),
    "base-sku-locked-out": Case(
        catalogue=_with_status(E3, CapabilityStatus.LOCKED_OUT),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.BASE_SKU_SUSPENDED,),
    ),
    "base-sku-unknown-status-does-not-block": Case(catalogue=_with_status(E3, CapabilityStatus.UNKNOWN)),
    "base-sku-in-warning-admits-with-warning": Case(
        catalogue=_with_status(E3, CapabilityStatus.WARNING), warnings=(Reason.BASE_SKU_IN_WARNING,)
    ),
    "one-base-in-warning-another-enabled-no-warning": Case(
        person=person(E3, E5), catalogue=_with_status(E3, CapabilityStatus.WARNING)
    ),
    "exchange-online-plan-disabled-admits-with-warning": Case(
        person=person(E3, disabled={E3: frozenset({EXO_PLAN_2.service_plan_id})}),
        warnings=(Reason.EXCHANGE_ONLINE_PLAN_DISABLED,),
    ),
    "exchange-online-plan-disabled-in-the-assignment-state": Case(
        person=person(
            assigned_licenses=(),
            license_assignments=(active(E3, disabled_plans=frozenset({EXO_PLAN_2.service_plan_id})),),
        ),
        warnings=(Reason.EXCHANGE_ONLINE_PLAN_DISABLED,),
    ),
    "no-mailbox-plan-anywhere-no-warning": Case(
        person=person(VISIO), policy=policy(base_license_service_plans=("VISIO_CLIENT_SUBSCRIPTION",))
    ),
    "exchange-online-plan-from-another-license-no-warning": Case(
        person=person(E3, E5, disabled={E3: frozenset({EXO_PLAN_2.service_plan_id})}),
    ),
    "no-seat": Case(free_seats=0, outcome=Outcome.BLOCKED, reasons=(Reason.NO_SEAT,)),
    "negative-headroom-is-no-seat": Case(free_seats=-3, outcome=Outcome.BLOCKED, reasons=(Reason.NO_SEAT,)),
    "every-blocker-is-reported": Case(
        person=person(VISIO, account_enabled=False, usage_location=None),
        free_seats=0,
        outcome=Outcome.BLOCKED,
        reasons=(Reason.ACCOUNT_DISABLED, Reason.NO_USAGE_LOCATION, Reason.NO_BASE_LICENSE, Reason.NO_SEAT),
    ),
    "dynamic-group-is-never-written": Case(
        group=snapshot(group_types=frozenset({"DynamicMembership"})),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.GROUP_NOT_WRITABLE,),
    ),
    "mail-enabled-security-group-is-never-written": Case(
        group=snapshot(mail_enabled=True, security_enabled=True),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.GROUP_NOT_WRITABLE,),
    ),
    "microsoft-365-group-is-writable": Case(
        group=snapshot(group_types=frozenset({"Unified"}), mail_enabled=True, security_enabled=True)
    ),
    "not-a-licensing-group": Case(
        group=snapshot(id=OTHER_GROUP), outcome=Outcome.BLOCKED, reasons=(Reason.NOT_A_LICENSING_GROUP,)
    ),
    "observe-only-group-decides-all-the-same": Case(
        policy=policy(licensing_group(observe_only=True)), reasons=(Reason.OBSERVE_ONLY,)
    ),
    "observe-only-group-blocked-person": Case(
        policy=policy(licensing_group(observe_only=True)),
        person=person(VISIO),
        outcome=Outcome.BLOCKED,
        reasons=(Reason.NO_BASE_LICENSE, Reason.OBSERVE_ONLY),
    ),
}


def _decide(case: Case) -> Decision:
    return decide(
        case.person,
        group=case.group,
        policy=case.policy,
        catalogue=case.catalogue,
        free_seats=case.free_seats,
        now=NOW,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide_outcome_reasons_and_warnings(case: Case) -> None:
    """Each branch of the gate gives its outcome, its machine-readable reasons and its warnings."""
    decision = _decide(case)
    assert (decision.outcome, decision.reasons, decision.warnings) == (
        case.outcome,
        case.reasons,
        case.warnings,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_decision_has_one_human_sentence(case: Case) -> None:
    """The summary is a single sentence that names the person (or says what the group is)."""
    summary = _decide(case).summary
    assert summary.endswith(".")
    assert UPN in summary
    assert "\n" not in summary


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_alert_travels_on_the_alerts_queue_intact(case: Case) -> None:
    """Each alert the gate raises is a valid `alerts` payload that parses back to the same signal."""
    for alert in _alerts(_decide(case)):
        assert parse_alert(alert_payload(alert.signal)) == alert.signal


def _kinds(commands: tuple[Command, ...]) -> list[type]:
    return [type(c) for c in commands]


def _alerts(decision: Decision) -> list[RaiseAlert]:
    return [c for c in decision.commands if isinstance(c, RaiseAlert)]


def test_eligible_person_is_reserved_added_and_handed_to_verification() -> None:
    """Eligible: reserve a seat, then add (with why), clear pending, schedule the first re-check."""
    decision = _decide(Case())
    assert decision.commands == (
        ReserveSeat(USER, GROUP, (COPILOT,)),
        AddToGroup(USER, GROUP, "admit"),
        ClearPending(USER, GROUP),
        ScheduleRecheck(USER, GROUP, NOW + timedelta(minutes=2), NOW),
    )
    assert decision.writes_tenant


def test_usage_location_is_set_before_the_add() -> None:
    """With a fix source, the usage location is written before the member is added (GBL reads it)."""
    case = CASES["no-usage-location-fixed-from-policy"]
    kinds = _kinds(_decide(case).commands)
    assert kinds.index(SetUsageLocation) < kinds.index(AddToGroup)
    assert SetUsageLocation(USER, "DE") in _decide(case).commands


def test_blocked_person_is_recorded_pending_with_every_reason_and_alerted() -> None:
    """Blocked: pending with the blockers, one alert per alerted blocker, and no tenant write."""
    decision = _decide(CASES["every-blocker-is-reported"])
    assert decision.commands[0] == RecordPending(USER, GROUP, CASES["every-blocker-is-reported"].reasons, NOW)
    problems = {(a.signal.key.scope, a.signal.key.problem) for a in _alerts(decision)}
    assert problems == {
        (Scope.USER, "gate.account_disabled"),
        (Scope.USER, "gate.no_usage_location"),
        (Scope.USER, "gate.no_base_license"),
        (Scope.SKU, SEAT_HEADROOM_PROBLEM),
    }
    assert not decision.writes_tenant
    assert not any(isinstance(c, JoinWaitlist) for c in decision.commands)


def test_no_seat_alone_joins_the_waitlist_and_measures_headroom() -> None:
    """Only a person blocked by nothing but seats waits in line; the seat alert carries the free count."""
    decision = _decide(CASES["no-seat"])
    assert JoinWaitlist(USER, GROUP, NOW, WaitSource.PENDING) in decision.commands
    (alert,) = _alerts(decision)
    assert (alert.signal.key.subject, alert.signal.measure) == (COPILOT, 0.0)


def test_suspended_base_sku_alert_is_about_the_sku() -> None:
    """A suspended subscription is one incident for the SKU, not one per user."""
    (alert,) = _alerts(_decide(CASES["base-sku-suspended"]))
    assert (alert.signal.key.scope, alert.signal.key.subject) == (Scope.SKU, E3)


def test_warnings_admit_and_alert() -> None:
    """Warnings keep the add and raise an alert: grace period per SKU, disabled mailbox plan per user."""
    grace = _decide(CASES["base-sku-in-warning-admits-with-warning"])
    mailbox = _decide(CASES["exchange-online-plan-disabled-admits-with-warning"])
    assert AddToGroup(USER, GROUP, "admit") in grace.commands
    assert [(a.signal.key.scope, a.signal.key.subject) for a in _alerts(grace)] == [(Scope.SKU, E3)]
    assert [(a.signal.key.scope, a.signal.key.problem) for a in _alerts(mailbox)] == [
        (Scope.USER, "gate.exchange_online_plan_disabled")
    ]


def test_protected_user_is_never_touched_nor_alerted() -> None:
    """A protected user is only recorded: no write, no alert."""
    decision = _decide(CASES["protected-by-id"])
    assert _kinds(decision.commands) == [RecordPending]


def test_already_licensed_writes_nothing() -> None:
    """A direct Copilot assignment is reported in the reasons and left alone."""
    decision = _decide(CASES["already-licensed-directly"])
    assert decision.commands == (ClearPending(USER, GROUP),)


def test_already_member_is_left_to_verification() -> None:
    """A member whose group assignment is pending or failed gets no second add."""
    assert _decide(CASES["already-member-with-failed-assignment"]).commands == ()


@pytest.mark.parametrize(
    "name", ["dynamic-group-is-never-written", "mail-enabled-security-group-is-never-written"]
)
def test_group_graph_will_not_let_us_write_gets_one_group_alert(name: str) -> None:
    """A group Seatkeeper only watches: a group-scoped alert and nothing else."""
    decision = _decide(CASES[name])
    (alert,) = _alerts(decision)
    assert len(decision.commands) == 1
    assert (alert.signal.key.scope, alert.signal.key.subject) == (Scope.GROUP, GROUP)


def test_not_a_licensing_group_is_refused_with_an_alert() -> None:
    """A group the policy does not know is refused: an alert, no write."""
    decision = _decide(CASES["not-a-licensing-group"])
    assert _kinds(decision.commands) == [RaiseAlert]


@pytest.mark.parametrize(
    "name", ["observe-only-group-decides-all-the-same", "observe-only-group-blocked-person"]
)
def test_observe_only_group_writes_nothing(name: str) -> None:
    """Observe-only: the decision is made and reported, and only alerts remain."""
    decision = _decide(CASES[name])
    assert all(isinstance(c, RaiseAlert) for c in decision.commands)
    assert decision.summary.startswith("Observe-only")


def test_custom_why_is_recorded_with_the_add() -> None:
    """The reason for the add (admit, HR joiner, rollout) travels with the AddToGroup command."""
    decision = decide(
        person(),
        group=snapshot(),
        policy=policy(),
        catalogue=catalogue(),
        free_seats=1,
        now=NOW,
        why="hr.joiner",
    )
    assert AddToGroup(USER, GROUP, "hr.joiner") in decision.commands


def test_base_license_service_plans_from_the_policy_file_reach_the_gate() -> None:
    """A SKU qualifying only by a service plan named in the YAML policy admits the user."""
    text = f"""
version: 1
licensing_groups:
  - id: {GROUP}
    display_name: Copilot - Sales
    copilot_sku_ids: [{COPILOT}]
base_license_service_plans: [EXCHANGE_S_ENTERPRISE]
"""
    bundle = catalogue(*DEFAULT_SKUS, sku(CUSTOM_BASE, "CONTOSO_BUNDLE", EXO_PLAN_2))
    decision = decide(
        person(CUSTOM_BASE),
        group=snapshot(),
        policy=parse_policy(text),
        catalogue=bundle,
        free_seats=1,
        now=NOW,
    )
    assert decision.outcome is Outcome.ELIGIBLE
