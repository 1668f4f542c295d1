"""The licensing engine and directory events in-process: scheduling, chunks, an event for every change."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sandbox import directory
from sandbox.directory_events import DirectoryEvent
from sandbox.model import COPILOT_SKU_ID
from sandbox.state import SandboxState
from sandbox.tenant_gen import default_tenant, large_tenant


def _group(state: SandboxState, name: str) -> str:
    return next(g.id for g in state.tenant.groups.values() if g.props["displayName"] == name)


def test_large_groups_move_through_the_processing_states() -> None:
    """QueuedForProcessing, then ProcessingInProgress between chunks, then ProcessingComplete."""
    state = SandboxState(large_tenant(5000, 10))
    group = state.tenant.groups[_group(state, "Licensing - Microsoft 365 E3")]
    directory.set_group_licenses(state, group, {COPILOT_SKU_ID: []}, [])
    seen = [group.processing_state]
    while state.scheduler.next_due() is not None:
        asyncio.run(state.scheduler.run_due())
        seen.append(group.processing_state)
    assert seen[0] == "QueuedForProcessing"
    assert seen[-1] == "ProcessingComplete"
    assert "ProcessingInProgress" in seen


def test_the_licensing_delay_is_business_time() -> None:
    """Work waits for the delay on the sandbox clock, then runs."""
    state = SandboxState(default_tenant())
    state.licensing_delay = timedelta(minutes=10)
    group = state.tenant.groups[_group(state, "Copilot - APAC")]
    user = next(
        u for u in state.tenant.users.values() if u.id not in group.members and u.props.get("usageLocation")
    )
    directory.add_members(state, group, [user.id])
    asyncio.run(state.run_due())
    before = (group.id, COPILOT_SKU_ID) in user.licenses
    state.clock.move(timedelta(minutes=10))
    asyncio.run(state.run_due())
    assert (before, user.licenses[(group.id, COPILOT_SKU_ID)].state) == (False, "Active")


def test_every_change_emits_a_directory_event_in_business_time() -> None:
    """Membership writes, dynamic re-evaluation and licensing all reach subscribers."""
    state = SandboxState(default_tenant())
    events: list[DirectoryEvent] = []
    state.events.subscribe(events.append)
    state.clock.move(timedelta(days=3))
    copilot = state.tenant.groups[_group(state, "Copilot - APAC")]
    dynamic = _group(state, "Sales (dynamic)")
    user = next(
        u
        for u in state.tenant.users.values()
        if u.props["department"] == "Legal" and u.id not in copilot.members
    )
    directory.add_members(state, copilot, [user.id])
    directory.update_user(state, user, {"department": "Sales"})
    asyncio.run(state.run_due())
    kinds = {(e.kind, e.group_id, e.user_id) for e in events}
    assert ("member_added", copilot.id, user.id) in kinds
    assert ("member_added", dynamic, user.id) in kinds
    assert ("user_updated", None, user.id) in kinds
    assert all(e.at >= state.clock.now() - timedelta(minutes=1) for e in events)


def test_removing_a_group_emits_group_deleted_and_refuses_licensed_groups() -> None:
    """A group with licenses cannot be deleted; one without can, with group_deleted."""
    state = SandboxState(default_tenant())
    events: list[DirectoryEvent] = []
    state.events.subscribe(events.append)
    pilots = state.tenant.groups[_group(state, "Copilot Pilots")]
    directory.delete_group(state, pilots)
    assert [(e.kind, e.group_id) for e in events] == [("group_deleted", pilots.id)]
