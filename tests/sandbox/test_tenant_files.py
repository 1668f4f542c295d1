"""Tenant files and rules, in-process: the committed default tenant, the generator, dynamic rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.dynamic_rules import RuleError, parse_rule
from sandbox.model import COPILOT_SKU_ID
from sandbox.state import SandboxState
from sandbox.tenant_file import TenantFileError, dump_tenant, load_tenant
from sandbox.tenant_gen import default_tenant, large_tenant

DEFAULT = Path(__file__).resolve().parents[2] / "sandbox" / "tenants" / "default.json"


def test_the_committed_default_tenant_is_what_the_generator_makes() -> None:
    """sandbox/tenants/default.json is regenerated deterministically (python -m sandbox default-tenant)."""
    assert json.loads(DEFAULT.read_text()) == default_tenant()


def test_the_default_tenant_has_every_situation() -> None:
    """About 200 users, fewer Copilot seats than candidates, and each awkward case present."""
    state = SandboxState(default_tenant())
    tenant = state.tenant
    copilot = tenant.skus[COPILOT_SKU_ID]
    candidates = [u for u in tenant.users.values() if u.held_skus() - {COPILOT_SKU_ID}]
    errors = {e.error for u in tenant.users.values() for e in u.licenses.values()}
    assert len(tenant.users) == 200
    assert copilot.prepaid_units["enabled"] < len(candidates)
    assert any(not u.held_skus() for u in tenant.users.values())
    assert any("usageLocation" not in u.props for u in tenant.users.values())
    assert any(u.props.get("accountEnabled") is False for u in tenant.users.values())
    assert any(s.capability_status == "Suspended" and s.holders for s in tenant.skus.values())
    assert {"MutuallyExclusiveViolation", "ProhibitedInUsageLocationViolation"} <= errors
    archive = "ee02fd1b-340e-4a4b-b355-4a514e4c8943"
    assert any((None, archive) in u.licenses and u.held_skus() - {archive} for u in tenant.users.values())
    assert any(g.dynamic for g in tenant.groups.values())
    assert any(g.mail_enabled_security for g in tenant.groups.values())
    assert any(m in tenant.groups for g in tenant.groups.values() for m in g.members)


def test_the_large_generator_makes_the_asked_size() -> None:
    """generate --users N --groups G gives N users and G groups that load."""
    state = SandboxState(large_tenant(2000, 10))
    assert (len(state.tenant.users), len(state.tenant.groups)) == (2000, 10)
    assert len(state.tenant.skus["05e9a617-0261-4cee-bb44-138d3ef5d965"].holders) == 2000


def test_export_keeps_direct_licenses_and_group_assignments() -> None:
    """dump_tenant writes direct licenses on users and licenses and members on groups."""
    doc = default_tenant()
    again = dump_tenant(load_tenant(doc)[0])
    assert [u["assignedLicenses"] for u in again["users"]] == [
        [{"skuId": lic["skuId"], "disabledPlans": lic["disabledPlans"]} for lic in u["assignedLicenses"]]
        for u in doc["users"]
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("tenant"),
        lambda d: d["users"].append(dict(d["users"][0])),
        lambda d: d["groups"][0]["members"].append("nobody"),
        lambda d: d["users"][0]["assignedLicenses"].append({"skuId": "00000000-0000-0000-0000-000000000000"}),
        lambda d: d["groups"][-1]["assignedLicenses"].pop(0),
    ],
    ids=["no-tenant", "duplicate-user", "unknown-member", "unknown-sku", "add-on-without-prerequisite"],
)
def test_invalid_tenant_files_are_refused(mutate: Any) -> None:
    """Broken documents raise TenantFileError with the reason."""
    doc = default_tenant()
    mutate(doc)
    with pytest.raises(TenantFileError):
        SandboxState(doc)


@pytest.mark.parametrize(
    ("rule", "props", "expected"),
    [
        ('user.department -eq "Sales"', {"department": "sales"}, True),
        ('(user.department -eq "Sales") -and (user.country -eq "Germany")', {"department": "Sales"}, False),
        ('user.usageLocation -in ["DE","FR"]', {"usageLocation": "FR"}, True),
        ('user.jobTitle -ne "Counsel" -or user.companyName -eq "Contoso"', {"jobTitle": "Counsel"}, False),
        ("user.accountEnabled -eq true", {"accountEnabled": True}, True),
    ],
)
def test_dynamic_rules(rule: str, props: dict[str, Any], expected: bool) -> None:
    """The supported rule subset evaluates as Entra's (values compare case-insensitively)."""
    assert parse_rule(rule)(props) is expected


@pytest.mark.parametrize(
    "rule", ['user.shoeSize -eq "9"', 'user.department -contains "S"', "(user.department"]
)
def test_unsupported_rules_are_refused(rule: str) -> None:
    """Rules outside the subset raise RuleError (the group then keeps no members)."""
    with pytest.raises(RuleError):
        parse_rule(rule)
