"""Whether a person holds a qualifying base license that actually works, and what is worth a warning.

A base license counts when its assignment is active and its subscription's services are on (not
`Suspended`, `LockedOut` or `Deleted`); `Warning` (renewal grace) and a disabled Exchange Online mailbox
plan still count but are worth an alert (design §4). Shared by the gate and by verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from seatkeeper.core.incidents import Fact
from seatkeeper.core.people import Person
from seatkeeper.core.policy import Policy
from seatkeeper.core.reasons import Reason
from seatkeeper.core.skus import CapabilityStatus, SkuCatalogue

# Service plans that give an Exchange Online mailbox (names; government and education variants share the
# prefixes). EXCHANGE_S_FOUNDATION is deliberately absent: it carries no mailbox.
EXCHANGE_MAILBOX_PLAN_PREFIXES: Final = (
    "EXCHANGE_S_ENTERPRISE",
    "EXCHANGE_S_STANDARD",
    "EXCHANGE_S_DESKLESS",
    "EXCHANGE_S_ESSENTIALS",
)


@dataclass(frozen=True)
class BaseLicenseCheck:
    """The verdict on the person's base licenses: usable SKUs, blockers if none is usable, and warnings."""

    usable_sku_ids: tuple[str, ...]
    blockers: tuple[Reason, ...]
    warnings: tuple[Reason, ...]
    suspended_sku_ids: tuple[str, ...] = ()
    warning_sku_ids: tuple[str, ...] = ()
    evidence: tuple[Fact, ...] = ()

    @property
    def qualifies(self) -> bool:
        """At least one qualifying base license works."""
        return bool(self.usable_sku_ids)


def _is_mailbox_plan(name: str) -> bool:
    return name.upper().startswith(EXCHANGE_MAILBOX_PLAN_PREFIXES)


def _qualifying_sku_ids(person: Person, catalogue: SkuCatalogue, policy: Policy) -> tuple[str, ...]:
    by_plan = frozenset(policy.base_license_service_plans)
    found: list[str] = []
    for sku_id in sorted(person.held_sku_ids()):
        sku = catalogue.get(sku_id)
        if policy.base_license(sku_id) is not None or (by_plan and sku is not None and sku.has_plan(by_plan)):
            found.append(sku_id)
    return tuple(found)


def _assignment_active(person: Person, sku_id: str) -> bool:
    states = person.assignments_for(frozenset({sku_id}))
    if not states:
        # No state entry at all: trust `assignedLicenses`, which lists licenses that were applied.
        return person.assigned_license(sku_id) is not None
    return any(state.is_active for state in states)


def _enabled_plans(person: Person, sku_id: str, plan_ids: frozenset[str]) -> frozenset[str]:
    """Plans of the SKU the user has enabled: `assignedLicenses` holds the effective set; without it, a plan
    enabled in any active assignment counts."""
    assigned = person.assigned_license(sku_id)
    if assigned is not None:
        return plan_ids - assigned.disabled_plans
    enabled: set[str] = set()
    for state in person.assignments_for(frozenset({sku_id})):
        if state.is_active:
            enabled |= plan_ids - state.disabled_plans
    return frozenset(enabled)


def _mailbox_warning(person: Person, catalogue: SkuCatalogue) -> bool:
    """True when the person's active licenses carry a mailbox plan but every one of them is disabled."""
    seen_mailbox_plan = False
    for sku_id in sorted(person.held_sku_ids()):
        sku = catalogue.get(sku_id)
        if sku is None or not _assignment_active(person, sku_id):
            continue
        mailbox = frozenset(
            p.service_plan_id for p in sku.service_plans if _is_mailbox_plan(p.service_plan_name)
        )
        if not mailbox:
            continue
        seen_mailbox_plan = True
        if _enabled_plans(person, sku_id, mailbox):
            return False
    return seen_mailbox_plan


def check_base_license(person: Person, catalogue: SkuCatalogue, policy: Policy) -> BaseLicenseCheck:
    """Judge the person's base licenses against the policy's allow-list and the SKU catalogue."""
    qualifying = _qualifying_sku_ids(person, catalogue, policy)
    usable: list[str] = []
    inactive: list[str] = []
    suspended: list[str] = []
    in_warning: list[str] = []
    for sku_id in qualifying:
        sku = catalogue.get(sku_id)
        status = sku.capability_status if sku is not None else CapabilityStatus.UNKNOWN
        if not _assignment_active(person, sku_id):
            inactive.append(sku_id)
        elif status in (CapabilityStatus.SUSPENDED, CapabilityStatus.LOCKED_OUT, CapabilityStatus.DELETED):
            suspended.append(sku_id)
        else:
            # UNKNOWN (undocumented, or the SKU missing from a stale snapshot) does not block.
            usable.append(sku_id)
            if status is CapabilityStatus.WARNING:
                in_warning.append(sku_id)
    blockers: list[Reason] = []
    warnings: list[Reason] = []
    if not qualifying:
        blockers.append(Reason.NO_BASE_LICENSE)
    elif not usable:
        if inactive:
            blockers.append(Reason.BASE_LICENSE_NOT_ACTIVE)
        if suspended:
            blockers.append(Reason.BASE_SKU_SUSPENDED)
    else:
        if len(in_warning) == len(usable):
            warnings.append(Reason.BASE_SKU_IN_WARNING)
        if _mailbox_warning(person, catalogue):
            warnings.append(Reason.EXCHANGE_ONLINE_PLAN_DISABLED)
    evidence = tuple(
        Fact("Base license", _sku_label(catalogue, sku_id) + (f" ({note})" if note else ""))
        for sku_id, note in (
            *((s, "") for s in usable if s not in in_warning),
            *((s, "grace period") for s in in_warning),
            *((s, "not active") for s in inactive),
            *((s, "subscription suspended") for s in suspended),
        )
    )
    return BaseLicenseCheck(
        usable_sku_ids=tuple(usable),
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        suspended_sku_ids=tuple(suspended),
        warning_sku_ids=tuple(in_warning),
        evidence=evidence,
    )


def _sku_label(catalogue: SkuCatalogue, sku_id: str) -> str:
    sku = catalogue.get(sku_id)
    return sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id
