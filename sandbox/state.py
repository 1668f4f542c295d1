"""`SandboxState`: the one object the server, the Graph handlers and the control plane share.

Seam for part 2 (stable): `tenant` (replaced on load/reset: always read it through the state),
`clock` and `scheduler` (sandbox/clock.py), `events` (directory events, see directory_events.py),
`counters`, `captures` (mail, Teams posts), `licensing_delay`, and `on_reset` (callbacks run after every
reset, e.g. to drop subscriptions and faults). `emit(kind, group_id, user_id)` stamps business time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sandbox.clock import SandboxClock, Scheduler
from sandbox.counters import Counters
from sandbox.directory_events import DirectoryEvent, DirectoryEvents, EventKind
from sandbox.dynamic_rules import RuleError, parse_rule
from sandbox.licensing import LicensingEngine, missing_prerequisite
from sandbox.model import Tenant
from sandbox.tenant_file import TenantFileError, load_tenant


@dataclass
class Captures:
    """What the service sent outward: `sendMail` messages and Teams Workflows posts."""

    mail: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        """Forget everything captured."""
        self.mail.clear()
        self.teams.clear()


class SandboxState:
    """The tenant and everything around it, for one running sandbox."""

    def __init__(self, tenant_doc: dict[str, Any]) -> None:
        self.initial_doc = tenant_doc
        self.clock = SandboxClock()
        self.scheduler = Scheduler(self.clock)
        self.events = DirectoryEvents()
        self.counters = Counters()
        self.captures = Captures()
        self.licensing_delay = timedelta(0)
        self.licensing = LicensingEngine(self)
        self.on_reset: list[Callable[[], None]] = []
        self.tenant: Tenant = self._build(tenant_doc)

    def _build(self, doc: dict[str, Any]) -> Tenant:
        tenant, group_licenses = load_tenant(doc)
        self.tenant = tenant
        for group in tenant.groups.values():
            rule = group.props.get("membershipRule")
            if group.dynamic and rule and group.props.get("membershipRuleProcessingState", "On") == "On":
                try:
                    matches = parse_rule(str(rule))
                except RuleError:
                    continue
                group.members = {u.id: None for u in tenant.users.values() if matches(u.props)}
        for gid, licenses in group_licenses.items():
            assigned = {
                str(x["skuId"]).lower(): [str(p).lower() for p in x.get("disabledPlans", [])]
                for x in licenses
            }
            unknown = set(assigned) - set(tenant.skus)
            if unknown:
                raise TenantFileError(f"group {gid}: unknown sku {sorted(unknown)[0]}")
            plans = {p for s, off in assigned.items() for p in tenant.skus[s].plan_ids() - set(off)}
            missing = missing_prerequisite(plans, tenant.plan_dependencies)
            if missing is not None:  # Entra refuses such a group assignment, so no real tenant holds one
                raise TenantFileError(f"group {gid}: plan {missing[0]} lacks its prerequisite in the group")
            tenant.groups[gid].licenses = assigned
        self.licensing.process_all()
        return tenant

    def load(self, doc: dict[str, Any]) -> None:
        """Replace the tenant with this document (queued licensing work is dropped, nothing else)."""
        tenant_before = self.tenant
        try:
            self._build(doc)
        except Exception:
            self.tenant = tenant_before
            raise
        self.licensing.reset()

    def reset(self) -> None:
        """Back to the tenant the server started with; counters, captures, clock and delay cleared."""
        self.scheduler.clear()
        self.clock.reset()
        self.load(self.initial_doc)
        self.counters.reset()
        self.captures.clear()
        self.licensing_delay = timedelta(0)
        for callback in self.on_reset:
            callback()

    def emit(self, kind: EventKind, group_id: str | None, user_id: str | None) -> None:
        """Publish a directory event stamped with business time."""
        self.events.emit(DirectoryEvent(kind, group_id, user_id, self.clock.now()))

    async def run_due(self) -> None:
        """Fire scheduled work that is due (cheap when nothing is)."""
        due = self.scheduler.next_due()
        if due is not None and due <= self.clock.now():
            await self.scheduler.run_due()
