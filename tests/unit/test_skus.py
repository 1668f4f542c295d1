"""Parsing `subscribedSkus` into the SKU catalogue, and matching SKUs by id or service plan."""

from __future__ import annotations

from typing import Any

import pytest

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.skus import CapabilityStatus, PrepaidUnits, ServicePlan, Sku, catalogue_from_graph
from tests.unit.test_gate_builders import NOW

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
CHAT = "3f30311c-6b1e-48a4-ab79-725b469da960"


def _copilot(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "tenant_639dec6b",
        "accountId": "tenant",
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": 180,
        "prepaidUnits": {"enabled": 200, "suspended": 0, "warning": 5, "lockedOut": 0},
        "skuId": COPILOT.upper(),
        "skuPartNumber": "Microsoft_365_Copilot",
        "subscriptionIds": ["s1"],
        "servicePlans": [
            {
                "servicePlanId": CHAT,
                "servicePlanName": "M365_COPILOT_BUSINESS_CHAT",
                "provisioningStatus": "Success",
                "appliesTo": "User",
            }
        ],
    }
    data.update(changes)
    return data


def test_the_documented_shape_parses() -> None:
    """Graph's example SKU becomes a Sku with its units, plans and status; ids lower-cased."""
    parsed = catalogue_from_graph({"value": [_copilot()]}, NOW)
    assert parsed.read_at == NOW
    assert parsed.skus == (
        Sku(
            sku_id=COPILOT,
            sku_part_number="Microsoft_365_Copilot",
            capability_status=CapabilityStatus.ENABLED,
            prepaid_units=PrepaidUnits(enabled=200, warning=5),
            consumed_units=180,
            service_plans=(ServicePlan(CHAT, "M365_COPILOT_BUSINESS_CHAT", "Success", "User"),),
            applies_to="User",
        ),
    )


def test_a_bare_list_parses_too() -> None:
    """The `value` list alone (as a pager yields it) is accepted."""
    assert catalogue_from_graph([_copilot()], NOW).get(COPILOT) is not None


@pytest.mark.parametrize(
    ("raw", "status", "works"),
    [
        pytest.param("Enabled", CapabilityStatus.ENABLED, True, id="enabled"),
        pytest.param("Warning", CapabilityStatus.WARNING, True, id="warning-grace-still-works"),
        pytest.param("Suspended", CapabilityStatus.SUSPENDED, False, id="suspended"),
        pytest.param("Deleted", CapabilityStatus.DELETED, False, id="deleted"),
        pytest.param("LockedOut", CapabilityStatus.LOCKED_OUT, False, id="locked-out"),
        pytest.param("Frozen", CapabilityStatus.UNKNOWN, False, id="undocumented"),
    ],
)
def test_capability_status(raw: str, status: CapabilityStatus, works: bool) -> None:
    """Every documented status parses; an undocumented one is UNKNOWN."""
    parsed = catalogue_from_graph([_copilot(capabilityStatus=raw)], NOW).skus[0]
    assert (parsed.capability_status, parsed.capability_status.services_work) == (status, works)


def test_missing_counts_read_as_zero() -> None:
    """A SKU read without units or plans has zero seats and no plans."""
    parsed = catalogue_from_graph([{"skuId": COPILOT}], NOW).skus[0]
    assert (parsed.prepaid_units, parsed.consumed_units, parsed.service_plans) == (PrepaidUnits(), 0, ())


def test_malformed_skus_are_named() -> None:
    """Negative counts, a missing skuId and a plan without id are each reported."""
    bad = [_copilot(consumedUnits=-1), {"skuPartNumber": "X", "servicePlans": [{"servicePlanName": "P"}]}]
    with pytest.raises(InvalidInput) as raised:
        catalogue_from_graph(bad, NOW)
    assert raised.value.errors == (
        "subscribedSkus.value[0].consumedUnits: expected a non-negative integer",
        "subscribedSkus.value[1].skuId: expected a non-empty string",
        "subscribedSkus.value[1].servicePlans[0].servicePlanId: expected a non-empty string",
    )


def test_matching_by_id_or_service_plan() -> None:
    """A catalogue finds SKUs by listed id, or by a listed service plan id or name (any case)."""
    other = _copilot(skuId="11111111-2222-4333-8444-555555555555", skuPartNumber="BUNDLE")
    plain = {"skuId": "22222222-2222-4333-8444-555555555555", "servicePlans": []}
    parsed = catalogue_from_graph([_copilot(), other, plain], NOW)
    assert [s.sku_part_number for s in parsed.matching([COPILOT.upper()])] == ["Microsoft_365_Copilot"]
    by_name = parsed.matching([], ["m365_copilot_business_chat"])
    assert [s.sku_part_number for s in by_name] == ["Microsoft_365_Copilot", "BUNDLE"]
    assert len(parsed.matching([], [CHAT])) == 2
    assert parsed.matching([], []) == ()
