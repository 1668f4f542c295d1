"""Directory changes, whoever makes them (Graph writes, control plane): each change emits its
`DirectoryEvent`s, re-evaluates dynamic groups and queues group-based licensing."""

from __future__ import annotations

from typing import Any

from sandbox.dynamic_rules import RuleError, parse_rule
from sandbox.graph_errors import GraphError, bad_request
from sandbox.licensing import enabled_plans, missing_prerequisite
from sandbox.model import Group, LicenseState, Tenant, User
from sandbox.state import SandboxState


def update_user(state: SandboxState, user: User, changes: dict[str, Any]) -> None:
    """Apply property changes to a user, then let dynamic groups follow."""
    if "userPrincipalName" in changes:
        state.tenant.upn_index.pop(str(user.props.get("userPrincipalName", "")).lower(), None)
        state.tenant.upn_index[str(changes["userPrincipalName"]).lower()] = user.id
    user.props.update(changes)
    if "proxyAddresses" in changes:
        state.tenant.proxy_addresses_changed()
    state.emit("user_updated", None, user.id)
    evaluate_dynamic(state, user)


def create_user(state: SandboxState, props: dict[str, Any]) -> User:
    """Add a user (id and userPrincipalName required, unique)."""
    user = User(str(props["id"]), dict(props))
    state.tenant.users[user.id] = user
    state.tenant.upn_index[str(props["userPrincipalName"]).lower()] = user.id
    if props.get("proxyAddresses"):
        state.tenant.proxy_addresses_changed()
    state.emit("user_updated", None, user.id)
    evaluate_dynamic(state, user)
    return user


def delete_user(state: SandboxState, user: User) -> None:
    """Remove a user: out of every group, seats freed."""
    for group in state.tenant.groups.values():
        if user.id in group.members:
            del group.members[user.id]
            state.emit("member_removed", group.id, user.id)
    before = user.held_skus()
    user.licenses.clear()
    state.licensing.sync_holders(user, before)
    del state.tenant.users[user.id]
    state.tenant.upn_index.pop(str(user.props.get("userPrincipalName", "")).lower(), None)
    if user.props.get("proxyAddresses"):
        state.tenant.proxy_addresses_changed()
    state.emit("user_updated", None, user.id)


def evaluate_dynamic(state: SandboxState, user: User) -> None:
    """Re-evaluate every active dynamic group's rule for one user."""
    for group in state.tenant.groups.values():
        if not group.dynamic or group.props.get("membershipRuleProcessingState", "On") != "On":
            continue
        try:
            rule = parse_rule(str(group.props.get("membershipRule") or ""))
        except RuleError:
            continue
        inside = user.id in state.tenant.users and rule(user.props)
        if inside and user.id not in group.members:
            _add(state, group, user.id)
        elif not inside and user.id in group.members:
            _remove(state, group, user.id)


def reevaluate_group(state: SandboxState, group: Group) -> None:
    """Recompute a dynamic group's members from its rule (after the rule or its state changed)."""
    try:
        rule = parse_rule(str(group.props.get("membershipRule") or ""))
    except RuleError:
        return
    if group.props.get("membershipRuleProcessingState", "On") != "On":
        return
    for user in state.tenant.users.values():
        inside = rule(user.props)
        if inside and user.id not in group.members:
            _add(state, group, user.id)
        elif not inside and user.id in group.members:
            _remove(state, group, user.id)


def _add(state: SandboxState, group: Group, member_id: str) -> None:
    group.members[member_id] = None
    state.emit("member_added", group.id, member_id)
    if group.licenses and member_id in state.tenant.users:
        state.licensing.queue(group.id, [member_id])


def _remove(state: SandboxState, group: Group, member_id: str) -> None:
    del group.members[member_id]
    state.emit("member_removed", group.id, member_id)
    if member_id in state.tenant.users and any(
        g == group.id for g, _ in state.tenant.users[member_id].licenses
    ):
        state.licensing.queue(group.id, [member_id])


def add_members(state: SandboxState, group: Group, member_ids: list[str]) -> None:
    """Add direct members (already validated) in order."""
    for member_id in member_ids:
        if member_id not in group.members:
            _add(state, group, member_id)


def remove_members(state: SandboxState, group: Group, member_ids: list[str]) -> None:
    """Remove direct members (already validated)."""
    for member_id in member_ids:
        if member_id in group.members:
            _remove(state, group, member_id)


def set_group_licenses(
    state: SandboxState, group: Group, add: dict[str, list[str]], remove: list[str]
) -> None:
    """Change a group's assigned licenses and queue its members for processing."""
    for sku_id in remove:
        if sku_id not in group.licenses:
            raise bad_request(f"License {sku_id} is not assigned to the group.")
    licenses = {k: v for k, v in group.licenses.items() if k not in remove}
    licenses.update(add)
    problem = group_prerequisite_problem(state.tenant, licenses)
    if problem is not None:
        raise problem
    group.licenses.clear()
    group.licenses.update(licenses)
    group.processing_state = "QueuedForProcessing"
    state.emit("group_updated", group.id, None)
    users = [m for m in group.members if m in state.tenant.users]
    if users:
        state.licensing.queue(group.id, users)
    else:
        group.processing_state = "ProcessingComplete"


def group_prerequisite_problem(tenant: Tenant, licenses: dict[str, list[str]]) -> GraphError | None:
    """Why Entra refuses a group license set that enables an add-on without its prerequisite plan in the
    same group ("make sure that the group has necessary services…"), or None when it is fine."""
    plans: set[str] = set()
    for sku_id, disabled in licenses.items():
        if sku_id in tenant.skus:
            plans |= tenant.skus[sku_id].plan_ids() - set(disabled)
    missing = missing_prerequisite(plans, tenant.plan_dependencies)
    if missing is None:
        return None
    plan, required = missing
    return bad_request(
        "License operation failed. Make sure that the group has necessary services before adding or removing "
        f"a dependent service. The service {plan} requires one of {sorted(required)} to be enabled as well."
    )


def delete_group(state: SandboxState, group: Group) -> None:
    """Delete a group (refused while it still assigns licenses, as Entra refuses)."""
    if group.licenses:
        raise bad_request("Cannot delete a group that has licenses assigned.")
    for other in state.tenant.groups.values():
        if group.id in other.members:
            del other.members[group.id]
            state.emit("member_removed", other.id, group.id)
    del state.tenant.groups[group.id]
    state.emit("group_deleted", group.id, None)


def assign_user_licenses(
    state: SandboxState, user: User, add: dict[str, list[str]], remove: list[str]
) -> None:
    """Direct assignLicense: checked synchronously, refused with 400 as Graph refuses it."""
    tenant = state.tenant
    for sku_id in remove:
        if (None, sku_id) not in user.licenses:
            raise bad_request("User does not have a corresponding license.")
    if add and not user.props.get("usageLocation"):
        raise bad_request("License assignment cannot be done for user with invalid usage location.")
    location = str(user.props.get("usageLocation") or "").upper()
    remaining = [e for k, e in user.licenses.items() if e.assigned and not (k[0] is None and k[1] in remove)]
    held = {e.sku_id for e in remaining}
    plans: set[str] = set()
    for entry in remaining:
        if entry.sku_id in tenant.skus and (entry.group_id is not None or entry.sku_id not in add):
            plans |= tenant.skus[entry.sku_id].plan_ids() - set(entry.disabled_plans)
    new_plans: set[str] = set()
    for sku_id, disabled in add.items():
        sku = tenant.skus[sku_id]
        if location in sku.prohibited_usage_locations:
            raise bad_request(
                f"License {sku_id} cannot be assigned to a user with usage location {location}."
            )
        if sku_id not in held and sku.prepaid_units.get("enabled", 0) - len(sku.holders) <= 0:
            raise bad_request("License assignment failed because no more licenses are available.")
        new_plans |= sku.plan_ids() - set(disabled)
    for pair in tenant.plan_conflicts:
        a, b = sorted(pair) if len(pair) == 2 else (next(iter(pair)),) * 2
        if (a in new_plans and b in plans | new_plans) or (b in new_plans and a in plans | new_plans):
            raise bad_request(f"Conflicting service plans: {a}, {b}")
    _check_prerequisites(tenant, user, plans | new_plans)
    before = user.held_skus()
    now = state.clock.now()
    for sku_id in remove:
        del user.licenses[(None, sku_id)]
    for sku_id, disabled in add.items():
        user.licenses[(None, sku_id)] = LicenseState(sku_id, None, disabled, "Active", "None", now)
    state.licensing.sync_holders(user, before)
    state.emit("user_updated", None, user.id)


def _check_prerequisites(tenant: Tenant, user: User, plans_after: set[str]) -> None:
    """A direct change may not leave a plan without its prerequisite (unless it was already so)."""
    missing = missing_prerequisite(plans_after, tenant.plan_dependencies)
    before = enabled_plans(user.licenses.values(), tenant.skus)
    if missing is not None and missing_prerequisite(before, tenant.plan_dependencies) is None:
        plan, required = missing
        raise bad_request(
            f"License assignment failed: service plan {plan} depends on one of {sorted(required)}, which the "
            "user would not have."
        )
