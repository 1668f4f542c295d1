"""Part of the composition root: the dependencies of the license handlers (admission, verification,
reprocess), built once per process so the SKU and group caches are shared by every invocation."""

from __future__ import annotations

from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import TenantReads
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.policy import Policy
from seatkeeper.core.ports import Clock, MessageSender, StateStore
from seatkeeper.core.seats import reservation_timeout


def build_license_deps(
    *, graph: GraphPort, clock: Clock, sender: MessageSender, state: StateStore, policy: Policy
) -> LicenseDeps:
    """The license handlers' dependencies over the process's adapters."""
    return LicenseDeps(
        graph=graph,
        reads=TenantReads(graph, clock),
        seats=StateSeatStore(state, timeout=reservation_timeout(policy.verification_deadline)),
        sender=sender,
        clock=clock,
        policy=policy,
    )
