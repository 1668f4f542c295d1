"""Group-based licensing as Entra does it: direct members only, after a delay, all-or-nothing per group.

Work is queued on the sandbox `Scheduler` (business time; `state.licensing_delay`, 0 by default) and
processed in chunks so large groups show `ProcessingInProgress`. Per (group, user) the engine checks, for
each of the group's products in order: usage location (the user's, else the tenant's) →
`ProhibitedInUsageLocationViolation`; conflicting plans → `MutuallyExclusiveViolation`; an Exchange
Online plan for a user whose proxy address another user has ("Proxy address is already being used") →
`UniquenessViolation`; a free seat (only if the user does not hold the SKU already) → `CountViolation`.
If any product fails, none of the group's products is given: entries the user already had become
`ActiveWithError`, new ones `Error`. Seats freed later go to an errored user only when that user is
processed again (membership change, group change, reprocess).

Prerequisites, as Entra's "resolve group license assignment problems" page describes them: a group must
enable an add-on's prerequisite plan itself (`missing_prerequisite` refuses the assignment up front), and
`DependencyViolation` is what a *removal* gets when it would take away the plan another product the user
keeps depends on (e.g. the user leaves the group): the group's entries stay, `ActiveWithError`, seat kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.clock import Scheduler
from sandbox.model import Group, LicenseState, Sku, User

if TYPE_CHECKING:
    from sandbox.state import SandboxState

CHUNK = 2000


def missing_prerequisite(
    plans: AbstractSet[str], dependencies: Mapping[str, AbstractSet[str]]
) -> tuple[str, AbstractSet[str]] | None:
    """The first plan in `plans` none of whose prerequisite plans is in `plans`, with its prerequisites."""
    for plan in sorted(plans):
        required = dependencies.get(plan)
        if required and not (required & plans):
            return plan, required
    return None


def enabled_plans(entries: Iterable[LicenseState], skus: Mapping[str, Sku]) -> set[str]:
    """The service plans a set of assigned entries enables."""
    plans: set[str] = set()
    for entry in entries:
        sku = skus.get(entry.sku_id)
        if sku is not None and entry.assigned:
            plans |= sku.plan_ids() - set(entry.disabled_plans)
    return plans


class LicensingEngine:
    """Queues and performs group-based license processing for one sandbox state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._outstanding: dict[str, int] = {}
        self._entries: list[Any] = []

    def reset(self) -> None:
        """Cancel and forget queued work (other scheduled work stays)."""
        for entry in self._entries:
            Scheduler.cancel(entry)
        self._entries.clear()
        self._outstanding.clear()

    def _later(self, delay: timedelta, callback: Callable[[], None], group_id: str) -> None:
        self._entries = [e for e in self._entries if not e.cancelled and e.due > self.state.clock.now()]
        self._entries.append(self.state.scheduler.call_later(delay, callback, label=f"licensing:{group_id}"))

    # Queueing ---------------------------------------------------------------------------------------

    def queue(self, group_id: str, user_ids: list[str]) -> None:
        """Process these users for this group after the licensing delay."""
        group = self.state.tenant.groups.get(group_id)
        if group is None or not user_ids:
            return
        self._outstanding[group_id] = self._outstanding.get(group_id, 0) + 1
        if group.licenses or group.processing_state is not None:
            group.processing_state = "QueuedForProcessing"
        self._later(self.state.licensing_delay, lambda: self._run(group_id, list(user_ids), 0), group_id)

    def queue_group(self, group_id: str, also: list[str] | None = None) -> None:
        """Process every direct user member of the group (and `also`, e.g. users who left)."""
        group = self.state.tenant.groups.get(group_id)
        if group is None:
            return
        users = [m for m in group.members if m in self.state.tenant.users]
        self.queue(group_id, users + [u for u in (also or []) if u not in group.members])

    def queue_user(self, user_id: str) -> None:
        """Reprocess every group-based assignment of one user (reprocessLicenseAssignment)."""
        tenant = self.state.tenant
        user = tenant.users.get(user_id)
        if user is None:
            return
        groups = {g for g, _ in user.licenses if g is not None}
        groups |= {g.id for g in tenant.groups.values() if g.licenses and user_id in g.members}
        for gid in sorted(groups):
            self.queue(gid, [user_id])

    def _run(self, group_id: str, user_ids: list[str], start: int) -> None:
        group = self.state.tenant.groups.get(group_id)
        if group is None:
            return
        end = start + CHUNK
        now = self.state.clock.now()
        for uid in user_ids[start:end]:
            user = self.state.tenant.users.get(uid)
            if user is not None:
                self.process(group, user, now)
        if end < len(user_ids):
            if group.processing_state is not None:
                group.processing_state = "ProcessingInProgress"
            self._later(timedelta(0), lambda: self._run(group_id, user_ids, end), group_id)
            return
        left = self._outstanding.get(group_id, 1) - 1
        self._outstanding[group_id] = left
        if left <= 0 and group.processing_state is not None:
            group.processing_state = "ProcessingComplete"

    # Processing -------------------------------------------------------------------------------------

    def process_all(self) -> None:
        """Process every licensed group now (tenant load), in group order then member order."""
        now = self.state.clock.now()
        for group in self.state.tenant.groups.values():
            if group.licenses:
                group.processing_state = "ProcessingComplete"
                for uid in group.members:
                    user = self.state.tenant.users.get(uid)
                    if user is not None:
                        self.process(group, user, now, emit=False)

    def process(self, group: Group, user: User, now: datetime, *, emit: bool = True) -> bool:
        """Bring one user's entries for one group in line with the group; returns whether anything changed."""
        before_held = user.held_skus()
        before = {k: (v.state, v.error, tuple(v.disabled_plans)) for k, v in user.licenses.items()}
        if user.id in group.members:
            self._apply(group, user, now)
            leaving = [k for k in user.licenses if k[0] == group.id and k[1] not in group.licenses]
        else:
            leaving = [k for k in user.licenses if k[0] == group.id]
        self._remove(user, leaving, now)
        self._sync_holders(user, before_held)
        after = {k: (v.state, v.error, tuple(v.disabled_plans)) for k, v in user.licenses.items()}
        changed = before != after
        if changed and emit:
            self.state.emit("user_updated", None, user.id)
        return changed

    def _remove(self, user: User, keys: list[tuple[str | None, str]], now: datetime) -> None:
        """Take these group entries away, unless that strands a plan the user keeps (DependencyViolation)."""
        if not keys:
            return
        skus = self.state.tenant.skus
        dependencies = self.state.tenant.plan_dependencies
        kept = [e for k, e in user.licenses.items() if k not in keys]
        before = enabled_plans(user.licenses.values(), skus)
        after = enabled_plans(kept, skus)
        blocked = missing_prerequisite(after, dependencies) is not None and (
            missing_prerequisite(before, dependencies) is None
        )
        for key in keys:
            entry = user.licenses[key]
            if blocked and entry.assigned:
                if (entry.state, entry.error) != ("ActiveWithError", "DependencyViolation"):
                    entry.state, entry.error = "ActiveWithError", "DependencyViolation"
                    entry.last_updated = now
            else:
                del user.licenses[key]

    def _apply(self, group: Group, user: User, now: datetime) -> None:
        tenant = self.state.tenant
        location = tenant.effective_usage_location(user)
        own = {k[1] for k, e in user.licenses.items() if k[0] == group.id and e.assigned}
        other_entries = [e for k, e in user.licenses.items() if k[0] != group.id and e.assigned]
        held_other = {e.sku_id for e in other_entries}
        other_plans: set[str] = set()
        for entry in other_entries:
            sku = tenant.skus.get(entry.sku_id)
            if sku is not None:
                other_plans |= sku.plan_ids() - set(entry.disabled_plans)
        enabled_by_sku = {
            sku_id: (tenant.skus[sku_id].plan_ids() - set(disabled)) if sku_id in tenant.skus else set()
            for sku_id, disabled in group.licenses.items()
        }
        shares_proxy = tenant.shares_proxy_address(user)
        error = self._first_error(location, enabled_by_sku, own | held_other, other_plans, shares_proxy)
        for sku_id, disabled in group.licenses.items():
            key = (group.id, sku_id)
            existing = user.licenses.get(key)
            if error is None:
                state, err = "Active", "None"
            elif existing is not None and existing.assigned:
                state, err = "ActiveWithError", error
            else:
                state, err = "Error", error
            if existing is None:
                user.licenses[key] = LicenseState(sku_id, group.id, list(disabled), state, err, now)
            elif (existing.state, existing.error, existing.disabled_plans) != (state, err, list(disabled)):
                existing.state, existing.error, existing.disabled_plans = state, err, list(disabled)
                existing.last_updated = now

    def _first_error(
        self,
        location: str,
        enabled_by_sku: Mapping[str, AbstractSet[str]],
        held: set[str],
        other_plans: set[str],
        shares_proxy: bool = False,
    ) -> str | None:
        """The first reason this group's products cannot all be given to the user, in Entra's check order."""
        tenant = self.state.tenant
        group_plans = set().union(*enabled_by_sku.values()) if enabled_by_sku else set()
        reserved = 0
        for sku_id, enabled in enabled_by_sku.items():
            sku = tenant.skus.get(sku_id)
            if sku is None:
                return "Other"
            if location.upper() in sku.prohibited_usage_locations:
                return "ProhibitedInUsageLocationViolation"
            if self._conflicts(enabled, other_plans | (group_plans - enabled)):
                return "MutuallyExclusiveViolation"
            if shares_proxy and enabled & sku.mailbox_plan_ids():
                return "UniquenessViolation"
            if sku_id not in held:
                if sku.prepaid_units.get("enabled", 0) - len(sku.holders) - reserved <= 0:
                    return "CountViolation"
                reserved += 1
        return None

    def _conflicts(self, plans: AbstractSet[str], others: AbstractSet[str]) -> bool:
        if not others:
            return False
        conflicts_of = self.state.tenant.conflicts_of
        return any(conflicts_of(plan) & others for plan in plans)

    def _sync_holders(self, user: User, before: set[str]) -> None:
        after = user.held_skus()
        skus = self.state.tenant.skus
        for sku_id in before - after:
            if sku_id in skus:
                skus[sku_id].holders.discard(user.id)
        for sku_id in after - before:
            if sku_id in skus:
                skus[sku_id].holders.add(user.id)

    def sync_holders(self, user: User, before: set[str]) -> None:
        """Keep SKU seat holders in line after a direct license change."""
        self._sync_holders(user, before)
