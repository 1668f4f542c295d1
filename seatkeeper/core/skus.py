"""The tenant's SKU catalogue (`GET /subscribedSkus`) as frozen models, and its pure parser.

The catalogue remembers when it was read: a seat reservation closes only when the license is active *and*
the snapshot used for the count was read after that (design §3, issue 7 item 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from seatkeeper.core.graph_fields import FieldReader

SKU_SELECT: Final = (
    "skuId",
    "skuPartNumber",
    "capabilityStatus",
    "prepaidUnits",
    "consumedUnits",
    "servicePlans",
    "appliesTo",
)
"""The `subscribedSkus` fields the gate and the seat count need."""


class CapabilityStatus(StrEnum):
    """`subscribedSku.capabilityStatus`; UNKNOWN stands for a value Graph did not document."""

    ENABLED = "Enabled"
    WARNING = "Warning"
    SUSPENDED = "Suspended"
    DELETED = "Deleted"
    LOCKED_OUT = "LockedOut"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, raw: str | None) -> CapabilityStatus:
        """Case-insensitive; anything unrecognised (or missing) is UNKNOWN."""
        for member in cls:
            if raw is not None and member.value.lower() == raw.strip().lower():
                return member
        return cls.UNKNOWN

    @property
    def services_work(self) -> bool:
        """Whether the subscription's services are on (`Warning` is the renewal grace period: still on)."""
        return self in (CapabilityStatus.ENABLED, CapabilityStatus.WARNING)


@dataclass(frozen=True)
class PrepaidUnits:
    """`prepaidUnits`: seats by subscription status."""

    enabled: int = 0
    suspended: int = 0
    warning: int = 0
    locked_out: int = 0


@dataclass(frozen=True)
class ServicePlan:
    """One service plan of a SKU (ids lower-cased, names as Graph spells them)."""

    service_plan_id: str
    service_plan_name: str = ""
    provisioning_status: str | None = None
    applies_to: str | None = None


@dataclass(frozen=True)
class Sku:
    """One subscribed SKU of the tenant."""

    sku_id: str
    sku_part_number: str = ""
    capability_status: CapabilityStatus = CapabilityStatus.ENABLED
    prepaid_units: PrepaidUnits = PrepaidUnits()
    consumed_units: int = 0
    service_plans: tuple[ServicePlan, ...] = ()
    applies_to: str | None = None

    def has_plan(self, ids_or_names: frozenset[str]) -> bool:
        """Whether any of the SKU's plans matches one of the given ids (lower case) or names (any case)."""
        wanted = {value.lower() for value in ids_or_names}
        return any(
            plan.service_plan_id in wanted or plan.service_plan_name.lower() in wanted
            for plan in self.service_plans
        )


@dataclass(frozen=True)
class SkuCatalogue:
    """Every subscribed SKU, and when the snapshot was read (business time)."""

    skus: tuple[Sku, ...]
    read_at: datetime

    def get(self, sku_id: str) -> Sku | None:
        """The SKU with this id, if the tenant has it."""
        key = sku_id.lower()
        return next((sku for sku in self.skus if sku.sku_id == key), None)

    def matching(self, sku_ids: Iterable[str], service_plans: Iterable[str] = ()) -> tuple[Sku, ...]:
        """SKUs listed by id, or holding one of the listed service plans (by id or name)."""
        ids = {value.lower() for value in sku_ids}
        plans = frozenset(service_plans)
        return tuple(sku for sku in self.skus if sku.sku_id in ids or (plans and sku.has_plan(plans)))


def _sku(data: object, where: str, reader: FieldReader) -> Sku | None:
    item = FieldReader(data, where)
    sku_id = item.required_str("skuId")
    units_reader = FieldReader(item.data.get("prepaidUnits") or {}, f"{where}.prepaidUnits")
    units = PrepaidUnits(
        enabled=units_reader.int_or_zero("enabled"),
        suspended=units_reader.int_or_zero("suspended"),
        warning=units_reader.int_or_zero("warning"),
        locked_out=units_reader.int_or_zero("lockedOut"),
    )
    item.absorb(units_reader)
    plans: list[ServicePlan] = []
    for i, raw_plan in enumerate(item.object_list("servicePlans")):
        plan_reader = FieldReader(raw_plan, f"{where}.servicePlans[{i}]")
        plan_id = plan_reader.required_str("servicePlanId")
        name = plan_reader.optional_str("servicePlanName") or ""
        status = plan_reader.optional_str("provisioningStatus")
        applies = plan_reader.optional_str("appliesTo")
        item.absorb(plan_reader)
        if plan_id:
            plans.append(ServicePlan(plan_id.strip().lower(), name, status, applies))
    sku = Sku(
        sku_id=sku_id.strip().lower(),
        sku_part_number=item.optional_str("skuPartNumber") or "",
        capability_status=CapabilityStatus.parse(item.optional_str("capabilityStatus")),
        prepaid_units=units,
        consumed_units=item.int_or_zero("consumedUnits"),
        service_plans=tuple(plans),
        applies_to=item.optional_str("appliesTo"),
    )
    reader.absorb(item)
    return sku if sku_id else None


def catalogue_from_graph(data: Mapping[str, Any] | Sequence[object], read_at: datetime) -> SkuCatalogue:
    """Parse `subscribedSkus` (the response object with `value`, or the list itself) into a catalogue.

    Raises InvalidInput naming every malformed field; missing counts read as 0, unknown statuses as UNKNOWN.
    """
    if isinstance(data, Mapping):
        reader = FieldReader(data, "subscribedSkus")
        items: Sequence[object] = reader.object_list("value")
    else:
        reader = FieldReader({}, "subscribedSkus")
        items = data
    parsed = [_sku(item, f"subscribedSkus.value[{i}]", reader) for i, item in enumerate(items)]
    reader.raise_if_invalid("the Graph subscribedSkus response is malformed")
    return SkuCatalogue(skus=tuple(sku for sku in parsed if sku is not None), read_at=read_at)
