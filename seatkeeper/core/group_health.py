"""Licensing-group health as a pure function: what about a group stops group-based licensing from giving
its members Copilot, each finding with its remediation and the group-scoped alert signal it raises.

Graph facts (graph-facts E, B3): licensing needs a security-enabled group; only direct *user* members get
licenses (nested groups' users get nothing, devices never); a paused dynamic rule freezes membership; one
failing product in a multi-product group blocks every product of that group for the user; a group's
`licenseProcessingState` carries no timestamp, so "stuck" is measured from when Seatkeeper first saw it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from seatkeeper.core.graph_fields import FieldReader
from seatkeeper.core.groups import GroupSnapshot, group_from_graph
from seatkeeper.core.incidents import AlertSignal, Cause, Fact, IncidentKey, Scope
from seatkeeper.core.policy import LicensingGroup, Policy, Severity
from seatkeeper.core.skus import SkuCatalogue

HEALTH_SELECT: Final = (
    "id",
    "displayName",
    "groupTypes",
    "mailEnabled",
    "securityEnabled",
    "membershipRule",
    "membershipRuleProcessingState",
    "assignedLicenses",
    "licenseProcessingState",
)
"""The group fields the health check reads (`assignedLicenses`, `licenseProcessingState` only on $select)."""

PROCESSING_COMPLETE: Final = "ProcessingComplete"
DEFAULT_STUCK_AFTER: Final = timedelta(hours=24)
"""Microsoft's own threshold: license changes past 24 hours for a group call for a support ticket."""

USER_TYPE: Final = "#microsoft.graph.user"
GROUP_TYPE: Final = "#microsoft.graph.group"
DEVICE_TYPE: Final = "#microsoft.graph.device"
_DEVICE_RULE: Final = re.compile(r"\bdevice\.", re.IGNORECASE)
_USER_KINDS: Final = frozenset({"user", "unknown"})


class Problem(StrEnum):
    """What can be wrong with a licensing group (the `problem` of its incident)."""

    MISSING = "group.missing"
    NOT_SECURITY_ENABLED = "group.not_security_enabled"
    DYNAMIC_DEVICE_GROUP = "group.dynamic_device_group"
    NESTED_GROUPS = "group.nested_groups"
    COPILOT_NOT_ASSIGNED = "group.copilot_not_assigned"
    OTHER_PRODUCTS_BUNDLED = "group.other_products_bundled"
    DYNAMIC_RULE_PAUSED = "group.dynamic_rule_paused"
    LICENSE_PROCESSING_STUCK = "group.license_processing_stuck"


@dataclass(frozen=True)
class ProblemText:
    """How a problem reads to an admin: title, severity, and exactly what to do."""

    title: str
    severity: Severity
    remediation: str


PROBLEMS: Final[Mapping[Problem, ProblemText]] = MappingProxyType(
    {
        Problem.MISSING: ProblemText(
            "Licensing group not found",
            Severity.ERROR,
            "The policy names a group that does not exist (deleted, or a wrong id). Restore the group from "
            "Entra's deleted groups, or correct `licensing_groups` in the policy.",
        ),
        Problem.NOT_SECURITY_ENABLED: ProblemText(
            "Licensing group is not security-enabled",
            Severity.ERROR,
            "Group-based licensing works only with security-enabled groups. Use a security group (or a "
            "Microsoft 365 group with securityEnabled=true) for Copilot, and point the policy at it.",
        ),
        Problem.DYNAMIC_DEVICE_GROUP: ProblemText(
            "Licensing group is a dynamic device group",
            Severity.ERROR,
            "Licenses go to users only; a dynamic group whose rule selects devices licenses nobody. Use a "
            "user group (assigned, or a dynamic rule on user attributes) for Copilot.",
        ),
        Problem.NESTED_GROUPS: ProblemText(
            "Licensing group has groups as members",
            Severity.WARNING,
            "Group-based licensing does not flow through nested groups: the users of the member groups "
            "get no Copilot license. Add those users to the licensing group directly (or assign the "
            "license to the nested group as well), then remove the nested group.",
        ),
        Problem.COPILOT_NOT_ASSIGNED: ProblemText(
            "Copilot is not assigned to the licensing group",
            Severity.ERROR,
            "The group no longer carries the Copilot license the policy expects, so its members get no "
            "seat. Assign the Copilot SKU to the group in the Microsoft 365 admin center (Billing → "
            "Licenses), or correct `copilot_sku_ids` in the policy.",
        ),
        Problem.OTHER_PRODUCTS_BUNDLED: ProblemText(
            "Other products are assigned in the Copilot group",
            Severity.WARNING,
            "When one product of a group fails for a user (no seats, a conflict), none of the group's "
            "products is assigned to that user. Keep Copilot alone in its licensing group and assign the "
            "other products through their own groups.",
        ),
        Problem.DYNAMIC_RULE_PAUSED: ProblemText(
            "Dynamic membership processing is paused",
            Severity.WARNING,
            "The group's dynamic rule is paused (membershipRuleProcessingState = Paused): joiners are not "
            "added and leavers keep their seat. Resume processing in Entra (group → Dynamic membership "
            "rules) once the rule is right.",
        ),
        Problem.LICENSE_PROCESSING_STUCK: ProblemText(
            "License processing of the group is stuck",
            Severity.ERROR,
            "Group-based licensing has not finished processing the group for longer than the threshold. "
            "Check the group's licenses in the Microsoft 365 admin center and reprocess affected users "
            "(`seatkeeper reprocess`); past 24 hours Microsoft asks for a support ticket.",
        ),
    }
)


@dataclass(frozen=True)
class Member:
    """One direct member of a group: its object type (`user`, `group`, `device`, …), id and label."""

    id: str
    kind: str
    label: str = ""


@dataclass(frozen=True)
class GroupState:
    """What Graph says of a licensing group (read with HEALTH_SELECT) and of its direct members.

    `processing_since` is when Seatkeeper first saw the current unfinished `licenseProcessingState`
    (Graph gives no time); None when processing is complete or the state is unknown. `members` need hold
    only the members that are not users (`health_members`): the health check reads nothing else.
    """

    group: GroupSnapshot
    membership_rule: str | None = None
    rule_processing_state: str | None = None
    assigned_sku_ids: tuple[str, ...] = ()
    license_processing_state: str | None = None
    processing_since: datetime | None = None
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One problem of one group, with the evidence that shows it."""

    group_id: str
    group_label: str
    problem: Problem
    detail: str
    evidence: tuple[Fact, ...] = ()

    @property
    def text(self) -> ProblemText:
        """Title, severity and remediation of the problem."""
        return PROBLEMS[self.problem]


def member_kind(odata_type: str | None) -> str:
    """`user`, `group`, `device`… of a member's `@odata.type` (`unknown` when Graph did not say)."""
    if not odata_type:
        return "unknown"
    return odata_type.rsplit(".", 1)[-1].lower()


def members_from_graph(items: Sequence[Mapping[str, Any]]) -> tuple[Member, ...]:
    """Direct members from a `/groups/{id}/members` listing (any `$select` that includes `id`)."""
    found: list[Member] = []
    for item in items:
        member_id = item.get("id")
        if not isinstance(member_id, str) or not member_id:
            continue
        label = item.get("userPrincipalName") or item.get("displayName") or ""
        found.append(Member(member_id.lower(), member_kind(item.get("@odata.type")), str(label)))
    return tuple(found)


def health_members(members: Iterable[Member]) -> tuple[Member, ...]:
    """The members `check_group` looks at: every one that is not a user (nested groups, devices, …).

    Users (and members Graph gave no type, taken for users) are not kept: a sweep pages through a group of
    100,000 without holding it (issue 12 item 3); each user is checked as its page is read.
    """
    return tuple(m for m in members if m.kind not in _USER_KINDS)


def state_from_graph(
    data: Mapping[str, Any],
    members: Sequence[Member] = (),
    *,
    processing_since: datetime | None = None,
) -> GroupState:
    """Parse a group read with HEALTH_SELECT; raises InvalidInput on a malformed object."""
    group = group_from_graph(data)
    reader = FieldReader(data, "group")
    skus = []
    for i, item in enumerate(reader.object_list("assignedLicenses")):
        lic = FieldReader(item, f"group.assignedLicenses[{i}]")
        sku_id = lic.required_str("skuId")
        reader.absorb(lic)
        if sku_id:
            skus.append(sku_id.strip().lower())
    raw_processing = data.get("licenseProcessingState")
    processing = raw_processing.get("state") if isinstance(raw_processing, Mapping) else None
    state = GroupState(
        group=group,
        membership_rule=reader.optional_str("membershipRule"),
        rule_processing_state=reader.optional_str("membershipRuleProcessingState"),
        assigned_sku_ids=tuple(skus),
        license_processing_state=processing if isinstance(processing, str) and processing else None,
        processing_since=processing_since,
        members=tuple(members),
    )
    reader.raise_if_invalid("the Graph group object is malformed")
    return state


def processing_since(
    state: str | None, previous_state: str | None, previous_since: datetime | None, now: datetime
) -> datetime | None:
    """When the current unfinished processing state was first seen: kept while unchanged, reset otherwise."""
    if state is None or state == PROCESSING_COMPLETE:
        return None
    if state == previous_state and previous_since is not None:
        return previous_since
    return now


def is_copilot_sku(sku_id: str, policy: Policy, group: LicensingGroup, catalogue: SkuCatalogue) -> bool:
    """A Copilot SKU: named for the group, or a Copilot SKU by the policy (skuId or service plan)."""
    if sku_id.lower() in {s.lower() for s in group.copilot_sku_ids}:
        return True
    sku = catalogue.get(sku_id)
    plan_ids = tuple(p.service_plan_id for p in sku.service_plans) if sku is not None else ()
    plan_names = tuple(p.service_plan_name for p in sku.service_plans) if sku is not None else ()
    return policy.copilot_skus.matches(sku_id, plan_ids, plan_names)


def _sku_label(catalogue: SkuCatalogue, sku_id: str) -> str:
    sku = catalogue.get(sku_id)
    return sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id


def _listed(labels: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def check_group(
    state: GroupState,
    *,
    licensing: LicensingGroup,
    policy: Policy,
    catalogue: SkuCatalogue,
    now: datetime,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
) -> tuple[Finding, ...]:
    """Every problem of one licensing group, in the order of `Problem`."""
    group = state.group
    label = group.display_name or licensing.display_name or group.id
    findings: list[Finding] = []

    def add(problem: Problem, detail: str, *evidence: Fact) -> None:
        findings.append(Finding(group.id, label, problem, detail, evidence))

    if not group.security_enabled:
        add(
            Problem.NOT_SECURITY_ENABLED,
            f"{label} has securityEnabled=false: group-based licensing ignores it.",
            Fact("securityEnabled", "false"),
        )
    devices = [m for m in state.members if m.kind == "device"]
    if group.is_dynamic and (_DEVICE_RULE.search(state.membership_rule or "") or devices):
        add(
            Problem.DYNAMIC_DEVICE_GROUP,
            f"{label} is a dynamic group of devices: licenses go to users only.",
            Fact("Rule", state.membership_rule or "(none)"),
        )
    nested = [m for m in state.members if m.kind == "group"]
    if nested:
        names = [m.label or m.id for m in nested]
        add(
            Problem.NESTED_GROUPS,
            f"{label} has {len(nested)} group(s) as members; their users get no Copilot license.",
            Fact("Nested groups", _listed(names)),
        )
    expected = [s.lower() for s in licensing.copilot_sku_ids]
    assigned = set(state.assigned_sku_ids)
    missing = [s for s in expected if s not in assigned]
    if missing or not expected:
        shown = [_sku_label(catalogue, s) for s in missing] or ["(the policy names no Copilot SKU)"]
        add(
            Problem.COPILOT_NOT_ASSIGNED,
            f"{label} does not carry {', '.join(shown)}: its members get no Copilot seat from it.",
            Fact("Expected", ", ".join(shown)),
            Fact("Assigned", _listed([_sku_label(catalogue, s) for s in state.assigned_sku_ids]) or "(none)"),
        )
    others = [s for s in state.assigned_sku_ids if not is_copilot_sku(s, policy, licensing, catalogue)]
    if others:
        names = [_sku_label(catalogue, s) for s in others]
        add(
            Problem.OTHER_PRODUCTS_BUNDLED,
            f"{label} also assigns {_listed(names)}: one failing product blocks all of them for a user.",
            Fact("Other products", _listed(names)),
        )
    if group.is_dynamic and (state.rule_processing_state or "").lower() == "paused":
        add(
            Problem.DYNAMIC_RULE_PAUSED,
            f"Dynamic membership processing of {label} is paused.",
            Fact("membershipRuleProcessingState", state.rule_processing_state or "Paused"),
        )
    since = state.processing_since
    if (
        state.license_processing_state not in (None, PROCESSING_COMPLETE)
        and since is not None
        and now - since >= stuck_after
    ):
        hours = (now - since).total_seconds() / 3600
        add(
            Problem.LICENSE_PROCESSING_STUCK,
            f"License processing of {label} has been {state.license_processing_state} for {hours:.0f} h.",
            Fact("licenseProcessingState", state.license_processing_state or ""),
            Fact("Seen since", since.isoformat(timespec="minutes")),
        )
    return tuple(findings)


def missing_group(licensing: LicensingGroup) -> Finding:
    """The finding for a policy group Graph does not know (404)."""
    label = licensing.display_name or licensing.id
    return Finding(
        licensing.id.lower(),
        label,
        Problem.MISSING,
        f"The licensing group {label} ({licensing.id}) does not exist.",
        (Fact("Group id", licensing.id),),
    )


def health_signal(finding: Finding, now: datetime) -> AlertSignal:
    """The group-scoped alert signal of a finding (cause present)."""
    text = finding.text
    return AlertSignal(
        key=IncidentKey(Scope.GROUP, finding.group_id, finding.problem.value),
        cause=Cause.PRESENT,
        severity=text.severity,
        title=text.title,
        reason=finding.detail,
        remediation=text.remediation,
        subject_label=finding.group_label,
        observed_at=now,
        evidence=(Fact("Group", finding.group_label), *finding.evidence),
        group_id=finding.group_id,
    )


def healthy_signal(group_id: str, group_label: str, problem: Problem, now: datetime) -> AlertSignal:
    """The signal that a group's problem is gone (resolves its incident if one is open)."""
    text = PROBLEMS[problem]
    return AlertSignal(
        key=IncidentKey(Scope.GROUP, group_id.lower(), problem.value),
        cause=Cause.GONE,
        severity=text.severity,
        title=text.title,
        reason=f"{group_label}: the problem is no longer seen.",
        remediation="Nothing to do.",
        subject_label=group_label,
        observed_at=now,
        group_id=group_id.lower(),
    )
