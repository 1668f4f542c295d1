"""Builders shared by the gate, verification and seat tests: a small tenant as data (no tests here)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.people import AssignedLicense, AssignmentState, LicenseAssignment, Person
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.skus import CapabilityStatus, PrepaidUnits, ServicePlan, Sku, SkuCatalogue

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
COPILOT_EDU = "ad9c22b3-52d7-4e7e-973c-88121ea96436"
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
VISIO = "c5928f49-12ba-48f7-ada3-0d743a3601d5"
PROJECT = "09015f9f-377f-4538-bbb5-f75ceb09358a"
SPB = "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46"

BUSINESS_CHAT = ServicePlan("3f30311c-6b1e-48a4-ab79-725b469da960", "M365_COPILOT_BUSINESS_CHAT")
COPILOT_APPS = ServicePlan("a62f8878-1111-4e2b-9d0a-0c1b1b1b1b1b", "M365_COPILOT_APPS")
EXO_PLAN_2 = ServicePlan("efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE")
EXO_PLAN_1 = ServicePlan("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "EXCHANGE_S_STANDARD")
EXO_FOUNDATION = ServicePlan("113feb6c-3fe4-4440-bddc-54d774bf0318", "EXCHANGE_S_FOUNDATION")
OFFICE_APPS = ServicePlan("43de0ff5-c92c-492b-9116-175376d08c38", "OFFICESUBSCRIPTION")
VISIO_PLAN = ServicePlan("663a804f-1c30-4ff0-9915-9db84f0d1cea", "VISIO_CLIENT_SUBSCRIPTION")

USER = "a1b2c3d4-0000-4000-8000-000000000001"
UPN = "ada@contoso.example"
GROUP = "0b6e0000-0000-4000-8000-00000000c0de"
OTHER_GROUP = "0b6e0000-0000-4000-8000-0000000000ff"


def sku(
    sku_id: str,
    part: str,
    *plans: ServicePlan,
    status: CapabilityStatus = CapabilityStatus.ENABLED,
    enabled: int = 100,
    consumed: int = 10,
) -> Sku:
    """One subscribed SKU."""
    return Sku(sku_id, part, status, PrepaidUnits(enabled=enabled), consumed, plans, "User")


def catalogue(*skus: Sku, read_at: datetime = NOW) -> SkuCatalogue:
    """A catalogue of the given SKUs, or the default tenant's when none are given."""
    return SkuCatalogue(skus or DEFAULT_SKUS, read_at)


DEFAULT_SKUS = (
    sku(COPILOT, "Microsoft_365_Copilot", BUSINESS_CHAT, COPILOT_APPS, enabled=20, consumed=10),
    sku(E3, "SPE_E3", EXO_PLAN_2, OFFICE_APPS, EXO_FOUNDATION),
    sku(E5, "SPE_E5", EXO_PLAN_2, OFFICE_APPS),
    sku(VISIO, "VISIOCLIENT", VISIO_PLAN, EXO_FOUNDATION),
)


def active(
    sku_id: str, *, group: str | None = None, updated: datetime = NOW, **changes: Any
) -> LicenseAssignment:
    """An active assignment state (direct unless `group` is given)."""
    state = LicenseAssignment(sku_id, AssignmentState.ACTIVE, group, last_updated=updated)
    return replace(state, **changes)


def person(
    *licenses: str,
    states: tuple[LicenseAssignment, ...] | None = None,
    disabled: dict[str, frozenset[str]] | None = None,
    **changes: Any,
) -> Person:
    """Ada, holding `licenses` (default E3) directly and actively unless `states` says otherwise."""
    held = licenses if licenses else (E3,)
    disabled = disabled or {}
    base = Person(
        id=USER,
        user_principal_name=UPN,
        account_enabled=True,
        usage_location="US",
        assigned_licenses=tuple(AssignedLicense(s, disabled.get(s, frozenset())) for s in held),
        license_assignments=states
        if states is not None
        else tuple(active(s, disabled_plans=disabled.get(s, frozenset())) for s in held),
    )
    return replace(base, **changes)


def licensing_group(**changes: Any) -> LicensingGroup:
    """The Copilot licensing group of the default policy."""
    return replace(LicensingGroup(GROUP, "Copilot - Sales", (COPILOT,)), **changes)


def policy(group: LicensingGroup | None = None, **changes: Any) -> Policy:
    """The default policy: one licensing group, default allow-list, usage location required."""
    return replace(Policy(licensing_groups=(group or licensing_group(),)), **changes)


def snapshot(**changes: Any) -> GroupSnapshot:
    """The licensing group as Graph shows it: an assigned-membership security group."""
    return replace(GroupSnapshot(GROUP, "Copilot - Sales", frozenset(), False, True), **changes)
