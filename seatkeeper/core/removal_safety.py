"""Removal safety (design §1): whom Seatkeeper may remove from which group, and the blast-radius guard that
holds every removal when more than the policy's limit would happen within an hour.

Removals are planned first and carried out a short settle time later, so that a mass-leaver delivery is
counted whole before the first member goes: past the limit, nobody is removed and one incident is raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import AlertSignal, Cause, Fact, IncidentKey, Scope
from seatkeeper.core.policy import Policy, Severity

WINDOW: Final = timedelta(hours=1)
SETTLE: Final = timedelta(minutes=2)
"""How long a planned removal waits before it is carried out (the guard sees a whole burst first)."""
BLAST_RADIUS_PROBLEM: Final = "hr.removals_held"


class RemovalRefusal(StrEnum):
    """Why a member must not be removed from a group by Seatkeeper."""

    PROTECTED_USER = "protected_user"
    NOT_A_LICENSING_GROUP = "not_a_licensing_group"
    OBSERVE_ONLY = "observe_only"
    GROUP_NOT_WRITABLE = "group_not_writable"
    NOT_ADDED_BY_SEATKEEPER = "not_added_by_seatkeeper"


def removal_refusal(
    policy: Policy,
    *,
    user_id: str,
    user_principal_name: str | None,
    group: GroupSnapshot,
    added_by_seatkeeper: bool,
) -> RemovalRefusal | None:
    """Why this removal may not happen, or None: only members Seatkeeper added, unless `authoritative`."""
    if policy.is_protected(user_id, user_principal_name):
        return RemovalRefusal.PROTECTED_USER
    licensing = policy.group(group.id)
    if licensing is None:
        return RemovalRefusal.NOT_A_LICENSING_GROUP
    if licensing.observe_only:
        return RemovalRefusal.OBSERVE_ONLY
    if not group.membership_writable:
        return RemovalRefusal.GROUP_NOT_WRITABLE
    if not (licensing.authoritative or added_by_seatkeeper):
        return RemovalRefusal.NOT_ADDED_BY_SEATKEEPER
    return None


class GuardVerdict(StrEnum):
    """What the blast-radius guard says about a planned removal."""

    PROCEED = "proceed"
    HOLD = "hold"


def guard(*, tripped: bool, planned_at: Sequence[datetime], now: datetime, limit: int) -> GuardVerdict:
    """HOLD while the guard is tripped, or when the removals planned or done within the last hour (this
    one included) are more than `limit`; PROCEED otherwise."""
    if tripped:
        return GuardVerdict.HOLD
    recent = sum(1 for at in planned_at if now - at < WINDOW)
    return GuardVerdict.HOLD if recent > limit else GuardVerdict.PROCEED


def blast_radius_alert(*, held: int, limit: int, now: datetime, cause: Cause = Cause.PRESENT) -> AlertSignal:
    """The one incident of held removals (resolved with Cause.GONE once an admin released or discarded)."""
    return AlertSignal(
        key=IncidentKey(Scope.SERVICE, "removals", BLAST_RADIUS_PROBLEM),
        cause=cause,
        severity=Severity.CRITICAL,
        title="Copilot removals held by the blast-radius guard",
        reason=f"More than {limit} removals would have happened within an hour; {held} are held and "
        "no member is removed until an admin decides.",
        remediation="Check the HR feed for a mass-leaver or a wrong rule, then run `seatkeeper held list` "
        "and `seatkeeper held release --all` (remove them) or `seatkeeper held discard --all` (keep them).",
        subject_label="Seatkeeper removals",
        observed_at=now,
        evidence=(Fact("Held", str(held)), Fact("Limit per hour", str(limit))),
    )


@dataclass(frozen=True)
class PlannedRemoval:
    """A member to remove from a group, why, and when it was planned (counts against the hour's limit)."""

    user_id: str
    group_id: str
    employee_id: str
    why: str
    planned_at: datetime
