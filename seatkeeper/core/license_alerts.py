"""Alert signals for license problems, built from the catalogue: which incident key, how severe, what text.

Keys follow design §3: a user and SKU (`{user}/{sku}`) for the state of one Copilot assignment, a user for
gate findings, a SKU for seats and subscription status, a group for what cannot be done to a group.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Final

from seatkeeper.core.incidents import SEAT_HEADROOM_PROBLEM, AlertSignal, Cause, Fact, IncidentKey, Scope
from seatkeeper.core.license_errors import LicenseError, entry_for
from seatkeeper.core.people import Person
from seatkeeper.core.policy import Severity
from seatkeeper.core.reasons import Reason

LICENSE_NOT_ACTIVE: Final = "license.not_active"
"""One incident per user and Copilot SKU while its assignment is in error or stuck; resolved when active."""


# Scope and severity per finding; a finding missing here is never alerted (e.g. a protected user).
_FINDING_ALERTS: Final[Mapping[Reason, tuple[Scope, Severity]]] = MappingProxyType(
    {
        Reason.ACCOUNT_DISABLED: (Scope.USER, Severity.INFO),
        Reason.NO_USAGE_LOCATION: (Scope.USER, Severity.WARNING),
        Reason.USAGE_LOCATION_NOT_SOLD: (Scope.USER, Severity.WARNING),
        Reason.NO_BASE_LICENSE: (Scope.USER, Severity.WARNING),
        Reason.BASE_LICENSE_NOT_ACTIVE: (Scope.USER, Severity.WARNING),
        Reason.BASE_SKU_SUSPENDED: (Scope.SKU, Severity.ERROR),
        Reason.BASE_SKU_IN_WARNING: (Scope.SKU, Severity.WARNING),
        Reason.EXCHANGE_ONLINE_PLAN_DISABLED: (Scope.USER, Severity.WARNING),
        Reason.NOT_A_LICENSING_GROUP: (Scope.GROUP, Severity.ERROR),
        Reason.GROUP_NOT_WRITABLE: (Scope.GROUP, Severity.ERROR),
        Reason.COPILOT_WILL_NOT_WORK: (Scope.USER, Severity.WARNING),
    }
)


def alerted_findings() -> frozenset[Reason]:
    """The findings that raise an alert (the others are only recorded and logged)."""
    return frozenset(_FINDING_ALERTS)


def _label(person: Person) -> str:
    return person.user_principal_name or person.id


def finding_alert(
    reason: Reason,
    *,
    person: Person,
    now: datetime,
    sentence: str,
    group_id: str | None = None,
    sku_id: str | None = None,
    evidence: tuple[Fact, ...] = (),
) -> AlertSignal | None:
    """The signal for a gate or verification finding, or None when that finding is not alerted.

    SKU-scoped findings need `sku_id`, group-scoped ones `group_id`; without it they fall back to the user.
    """
    routing = _FINDING_ALERTS.get(reason)
    if routing is None:
        return None
    scope, severity = routing
    entry = entry_for(reason)
    subject, label = person.id, _label(person)
    if scope is Scope.SKU and sku_id is not None:
        subject, label = sku_id, sku_id
    elif scope is Scope.GROUP and group_id is not None:
        subject, label = group_id, group_id
    else:
        scope = Scope.USER
    return AlertSignal(
        key=IncidentKey(scope, subject, f"gate.{reason.value}"),
        cause=Cause.PRESENT,
        severity=severity,
        title=entry.title,
        reason=sentence,
        remediation=entry.admin_does,
        subject_label=label,
        observed_at=now,
        evidence=evidence,
        user_id=person.id if scope is Scope.USER else None,
        user_principal_name=person.user_principal_name if scope is Scope.USER else None,
        group_id=group_id,
        sku_id=sku_id,
    )


def license_problem_alert(
    problem: LicenseError | Reason,
    *,
    person: Person,
    sku_id: str,
    group_id: str,
    now: datetime,
    sentence: str,
    evidence: tuple[Fact, ...] = (),
) -> AlertSignal:
    """The user-and-SKU incident for a Copilot assignment in error or stuck."""
    entry = entry_for(problem)
    return AlertSignal(
        key=IncidentKey(Scope.USER, f"{person.id}/{sku_id}", LICENSE_NOT_ACTIVE),
        cause=Cause.PRESENT,
        severity=Severity.ERROR,
        title=entry.title,
        reason=sentence,
        remediation=entry.admin_does,
        subject_label=_label(person),
        observed_at=now,
        evidence=evidence,
        user_id=person.id,
        user_principal_name=person.user_principal_name,
        group_id=group_id,
        sku_id=sku_id,
    )


def license_active_signal(*, person: Person, sku_id: str, group_id: str, now: datetime) -> AlertSignal:
    """The user's Copilot assignment is active: resolves its `license.not_active` incident if one is open."""
    return AlertSignal(
        key=IncidentKey(Scope.USER, f"{person.id}/{sku_id}", LICENSE_NOT_ACTIVE),
        cause=Cause.GONE,
        severity=Severity.INFO,
        title="Copilot license active",
        reason=f"The Copilot license of {_label(person)} is active.",
        remediation="Nothing to do.",
        subject_label=_label(person),
        observed_at=now,
        user_id=person.id,
        user_principal_name=person.user_principal_name,
        group_id=group_id,
        sku_id=sku_id,
    )


def license_returned_signal(*, person: Person, sku_id: str, group_id: str, now: datetime) -> AlertSignal:
    """The user left the group and its Copilot license from it is gone: resolves a `license.not_active`
    incident left open (an error while a member, or a DependencyViolation that kept the seat)."""
    return AlertSignal(
        key=IncidentKey(Scope.USER, f"{person.id}/{sku_id}", LICENSE_NOT_ACTIVE),
        cause=Cause.GONE,
        severity=Severity.INFO,
        title="Copilot seat returned",
        reason=f"{_label(person)} left the group and no longer holds its Copilot license: the seat is free.",
        remediation="Nothing to do.",
        subject_label=_label(person),
        observed_at=now,
        user_id=person.id,
        user_principal_name=person.user_principal_name,
        group_id=group_id,
        sku_id=sku_id,
    )


def seat_shortage_alert(
    *, sku_id: str, sku_label: str, free: int, now: datetime, sentence: str
) -> AlertSignal:
    """The SKU's seat-headroom incident, with the free-seat count as its measure (the policy's threshold,
    with hysteresis, decides whether it is open)."""
    entry = entry_for(Reason.NO_SEAT)
    return AlertSignal(
        key=IncidentKey(Scope.SKU, sku_id, SEAT_HEADROOM_PROBLEM),
        cause=Cause.PRESENT,
        severity=Severity.WARNING,
        title=entry.title,
        reason=sentence,
        remediation=entry.admin_does,
        subject_label=sku_label,
        observed_at=now,
        evidence=(Fact("Free seats", str(free)),),
        sku_id=sku_id,
        measure=float(free),
    )
