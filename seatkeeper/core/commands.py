"""The commands decisions carry, as data: imperatives a handler performs through its ports, in order.

Only AddToGroup, Reprocess and SetUsageLocation write to the tenant; the others touch Seatkeeper's own
state (reservations, pending people, the waitlist), schedule work, or raise alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from seatkeeper.core.incidents import AlertSignal
from seatkeeper.core.reasons import Reason
from seatkeeper.core.seats import ReleaseReason, WaitSource


@dataclass(frozen=True)
class ReserveSeat:
    """Hold one seat of each of the group's Copilot SKUs for the user, before the add (no overbooking).

    If the store refuses (the last seat went to someone else), the handler records the user as pending
    with Reason.NO_SEAT instead of adding.
    """

    user_id: str
    group_id: str
    sku_ids: tuple[str, ...]


@dataclass(frozen=True)
class AddToGroup:
    """Add the user to the group and record that Seatkeeper added this member, when and why."""

    user_id: str
    group_id: str
    why: str


@dataclass(frozen=True)
class SetUsageLocation:
    """Set the user's `usageLocation` (only where the policy allows Seatkeeper to fix it)."""

    user_id: str
    usage_location: str


@dataclass(frozen=True)
class Reprocess:
    """`POST /users/{id}/reprocessLicenseAssignment`: re-run group-based licensing for the user."""

    user_id: str


@dataclass(frozen=True)
class RecordPending:
    """Remember the person as pending for the group, with the blockers, since `since` (keeps the place)."""

    user_id: str
    group_id: str
    reasons: tuple[Reason, ...]
    since: datetime


@dataclass(frozen=True)
class ClearPending:
    """Forget a pending record (and waitlist place) of the person for the group, if any."""

    user_id: str
    group_id: str


@dataclass(frozen=True)
class JoinWaitlist:
    """Put the person on the first-come-first-served waitlist for a seat in the group."""

    user_id: str
    group_id: str
    since: datetime
    source: WaitSource


@dataclass(frozen=True)
class MarkSeatActive:
    """The user's license is active since `active_since`: the reservation stops counting once a SKU
    snapshot read after that time is used (the seat then shows in `consumedUnits`)."""

    user_id: str
    group_id: str
    active_since: datetime


@dataclass(frozen=True)
class ReleaseReservation:
    """Stop holding the user's seat for the group (the assignment errored, was cancelled, or timed out)."""

    user_id: str
    group_id: str
    reason: ReleaseReason


@dataclass(frozen=True)
class ScheduleRecheck:
    """Send a `license-checks` message for the user and group, due at `due_at` (business time).

    `added_at` travels with it so that the next verification measures the deadline from the add;
    `reprocesses` counts the reprocesses already done for this add. `removed` re-checks a member who left
    (is the seat back?), `added_at` then being when the removal was first seen.
    """

    user_id: str
    group_id: str
    due_at: datetime
    added_at: datetime
    reprocesses: int = 0
    removed: bool = False


@dataclass(frozen=True)
class RaiseAlert:
    """Emit this signal on the `alerts` queue (a present problem, or one seen gone)."""

    signal: AlertSignal


Command = (
    ReserveSeat
    | AddToGroup
    | SetUsageLocation
    | Reprocess
    | RecordPending
    | ClearPending
    | JoinWaitlist
    | MarkSeatActive
    | ReleaseReservation
    | ScheduleRecheck
    | RaiseAlert
)

TENANT_WRITES: tuple[type[Command], ...] = (AddToGroup, SetUsageLocation, Reprocess)
"""Commands that change the tenant: never emitted for observe-only groups or protected users."""
