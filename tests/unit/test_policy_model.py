"""The policy model's look-ups: groups, base licenses, Copilot SKUs, protected users, alert routing."""

from __future__ import annotations

import pytest

from seatkeeper.core.policy import (
    BOTH_PAGES,
    COPILOT_BUSINESS_CHAT_PLAN_ID,
    DEFAULT_BASE_LICENSES,
    KNOWN_BASE_LICENSES,
    AlertChannel,
    AlertRoute,
    CopilotSkus,
    LicensingGroup,
    Policy,
    Severity,
)

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
GROUP = LicensingGroup(id="AAAA-1", display_name="Copilot users", copilot_sku_ids=(COPILOT,))


def test_default_allow_list_is_what_both_microsoft_pages_agree_on() -> None:
    """Options-page-only SKUs (Apps for business, Exchange plans...) are known but not allowed by default."""
    parts = {b.sku_part_number for b in DEFAULT_BASE_LICENSES}
    assert "SPE_E3" in parts
    assert "OFFICESUBSCRIPTION" not in parts
    assert all(b.sources == BOTH_PAGES for b in DEFAULT_BASE_LICENSES)
    assert len(KNOWN_BASE_LICENSES) > len(DEFAULT_BASE_LICENSES)


def test_sku_ids_are_unique_in_the_known_list() -> None:
    """One skuId, one entry: a duplicate would make the page it came from ambiguous."""
    ids = [b.sku_id for b in KNOWN_BASE_LICENSES]
    assert len(ids) == len(set(ids))


def test_group_lookup_ignores_case() -> None:
    """Entra object ids are case-insensitive."""
    policy = Policy(licensing_groups=(GROUP,))
    assert policy.group("aaaa-1") == GROUP
    assert policy.group("other") is None


def test_base_license_lookup() -> None:
    """An E3 qualifies; a Copilot SKU itself does not."""
    policy = Policy(licensing_groups=(GROUP,))
    e3 = policy.base_license("05E9A617-0261-4CEE-BB44-138D3EF5D965")
    assert e3 is not None
    assert e3.sku_part_number == "SPE_E3"
    assert policy.base_license(COPILOT) is None


@pytest.mark.parametrize(
    ("sku_id", "plan_ids", "plan_names", "expected"),
    [
        pytest.param(COPILOT, (), (), True, id="listed-sku"),
        pytest.param("0000", (COPILOT_BUSINESS_CHAT_PLAN_ID,), (), True, id="carries-copilot-plan"),
        pytest.param("0000", ("1111",), ("M365_COPILOT_APPS",), False, id="unlisted-plan-name"),
        pytest.param("0000", (), (), False, id="nothing"),
    ],
)
def test_copilot_sku_matching(
    sku_id: str, plan_ids: tuple[str, ...], plan_names: tuple[str, ...], expected: bool
) -> None:
    """A SKU is Copilot by skuId or by a service plan it carries."""
    assert CopilotSkus().matches(sku_id, plan_ids, plan_names) is expected


def test_copilot_sku_matching_by_plan_name() -> None:
    """Plan names match when the policy lists them."""
    skus = CopilotSkus(sku_ids=(), service_plan_ids=(), service_plan_names=("M365_COPILOT_APPS",))
    assert skus.matches("0000", (), ("M365_COPILOT_APPS",))


def test_protected_users_match_by_id_or_upn() -> None:
    """Either identifier protects the user; None identifiers are ignored."""
    policy = Policy(licensing_groups=(GROUP,), protected_users=frozenset({"CEO@contoso.com", "id-9"}))
    assert policy.is_protected(None, "ceo@contoso.com")
    assert policy.is_protected("ID-9", None)
    assert not policy.is_protected("id-1", "someone@contoso.com")


def test_copilot_sold_in() -> None:
    """Unavailable locations are compared case-insensitively."""
    policy = Policy(licensing_groups=(GROUP,), copilot_unavailable_locations=frozenset({"CN"}))
    assert not policy.copilot_sold_in("cn")
    assert policy.copilot_sold_in("DE")


def test_route_accepts_at_or_above_its_minimum() -> None:
    """A warning route takes warnings and errors, not infos."""
    route = AlertRoute(name="ops", channel=AlertChannel.TEAMS, min_severity=Severity.WARNING)
    assert [route.accepts(s) for s in Severity] == [False, True, True, True]
