"""Tenant files: read a documented JSON document into a `Tenant`, and write one back.

Format (all keys Graph's own names where Graph has one; see sandbox/README.md "Tenant files"):
`tenant` {id, displayName, defaultDomain, usageLocation}; `apps` [{clientId, displayName, clientSecret,
roles, certificates (PEM), managedIdentity, default, tokenLifetimeSeconds}]; `skus` [subscribedSku fields
plus `prohibitedUsageLocations`]; `servicePlanConflicts` [[planId, planId]]; `servicePlanDependencies`
{planId: [required planIds]}; `users` [Graph user properties; `assignedLicenses` are the *direct*
assignments]; `groups` [Graph group properties plus `members` (ids) and `assignedLicenses`].
Group-based license states are not stored: the licensing engine derives them when the tenant loads.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sandbox.model import App, Group, LicenseState, Sku, Tenant, User

USER_RESERVED = {"id", "assignedLicenses", "licenseAssignmentStates"}
GROUP_RESERVED = {"id", "members", "assignedLicenses", "licenseProcessingState"}


class TenantFileError(ValueError):
    """The tenant document is not valid."""


def thumbprints(pem: str) -> list[str]:
    """The ways a client assertion names this certificate: x5t (SHA-1) and x5t#S256, base64url and hex."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise TenantFileError("an app certificate is not a PEM X.509 certificate") from exc
    der = cert.public_bytes(Encoding.DER)
    names = []
    for digest in (hashlib.sha1(der).digest(), hashlib.sha256(der).digest()):  # noqa: S324 - x5t is SHA-1 by definition
        names.append(base64.urlsafe_b64encode(digest).decode().rstrip("="))
        names.append(digest.hex().upper())
    return names


def _require(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise TenantFileError(f"{where}: missing '{key}'")
    return doc[key]


def load_tenant(doc: dict[str, Any]) -> tuple[Tenant, dict[str, list[dict[str, Any]]]]:
    """Build a tenant (users' direct licenses applied) and return the groups' license lists to process."""
    if not isinstance(doc, dict):
        raise TenantFileError("a tenant document is a JSON object")
    info = _require(doc, "tenant", "tenant file")
    tenant = Tenant(
        id=str(_require(info, "id", "tenant")),
        display_name=str(info.get("displayName", "Sandbox tenant")),
        default_domain=str(info.get("defaultDomain", "sandbox.example")),
        usage_location=str(info.get("usageLocation", "US")),
        apps={},
        skus={},
        users={},
        groups={},
        plan_conflicts={frozenset(map(str, pair)) for pair in doc.get("servicePlanConflicts", [])},
        plan_dependencies={
            str(plan): {str(r) for r in required}
            for plan, required in doc.get("servicePlanDependencies", {}).items()
        },
    )
    for raw in _require(doc, "apps", "tenant file"):
        app = _app(raw)
        tenant.apps[app.client_id] = app
    if not tenant.apps:
        raise TenantFileError("a tenant needs at least one app")
    for raw in doc.get("skus", []):
        sku = _sku(raw)
        tenant.skus[sku.sku_id] = sku
    for raw in doc.get("users", []):
        _add_user(tenant, raw)
    group_licenses: dict[str, list[dict[str, Any]]] = {}
    for raw in doc.get("groups", []):
        gid = str(_require(raw, "id", "group"))
        props = {k: v for k, v in raw.items() if k not in GROUP_RESERVED}
        props["id"] = gid
        group = Group(gid, props)
        group.members = dict.fromkeys(str(m) for m in raw.get("members", []))
        tenant.groups[gid] = group
        if raw.get("assignedLicenses"):
            group_licenses[gid] = list(raw["assignedLicenses"])
    for group in tenant.groups.values():
        for member in group.members:
            if member not in tenant.users and member not in tenant.groups:
                raise TenantFileError(f"group {group.id}: unknown member {member}")
    return tenant, group_licenses


def _app(raw: dict[str, Any]) -> App:
    certs = [str(c) for c in raw.get("certificates", [])]
    secret = raw.get("clientSecret")
    if not secret and raw.get("generateSecret"):
        secret = "sbx~" + secrets.token_urlsafe(30)
    return App(
        client_id=str(_require(raw, "clientId", "app")),
        display_name=str(raw.get("displayName", "")),
        client_secret=secret,
        roles=frozenset(raw.get("roles", [])),
        certificate_thumbprints={t: pem for pem in certs for t in thumbprints(pem)},
        managed_identity=bool(raw.get("managedIdentity", False)),
        default=bool(raw.get("default", False)),
        token_lifetime_seconds=int(raw.get("tokenLifetimeSeconds", 3599)),
        certificates=certs,
    )


def _sku(raw: dict[str, Any]) -> Sku:
    return Sku(
        sku_id=str(_require(raw, "skuId", "sku")).lower(),
        sku_part_number=str(_require(raw, "skuPartNumber", "sku")),
        applies_to=str(raw.get("appliesTo", "User")),
        capability_status=str(raw.get("capabilityStatus", "Enabled")),
        prepaid_units={
            k: int(raw.get("prepaidUnits", {}).get(k, 0))
            for k in ("enabled", "suspended", "warning", "lockedOut")
        },
        service_plans=[
            {**p, "servicePlanId": str(p["servicePlanId"]).lower()} for p in raw.get("servicePlans", [])
        ],
        subscription_ids=[str(s) for s in raw.get("subscriptionIds", [])],
        prohibited_usage_locations=frozenset(str(c).upper() for c in raw.get("prohibitedUsageLocations", [])),
    )


def _add_user(tenant: Tenant, raw: dict[str, Any]) -> None:
    uid = str(_require(raw, "id", "user"))
    upn = str(_require(raw, "userPrincipalName", f"user {uid}"))
    if uid in tenant.users or upn.lower() in tenant.upn_index:
        raise TenantFileError(f"user {uid}: duplicate id or userPrincipalName")
    props = {k: v for k, v in raw.items() if k not in USER_RESERVED}
    props["id"] = uid
    user = User(uid, props)
    for lic in raw.get("assignedLicenses", []):
        sku_id = str(lic["skuId"]).lower()
        if sku_id not in tenant.skus:
            raise TenantFileError(f"user {uid}: unknown sku {sku_id}")
        user.licenses[(None, sku_id)] = LicenseState(
            sku_id,
            None,
            [str(p).lower() for p in lic.get("disabledPlans", [])],
            "Active",
            "None",
            _created(raw),
        )
        tenant.skus[sku_id].holders.add(uid)
    tenant.users[uid] = user
    tenant.upn_index[upn.lower()] = uid


def _created(raw: dict[str, Any]) -> datetime:
    value = raw.get("createdDateTime")
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime(2024, 1, 1, tzinfo=UTC)


def dump_tenant(tenant: Tenant) -> dict[str, Any]:
    """The tenant as a tenant document (direct licenses on users, licenses and members on groups)."""
    return {
        "tenant": {
            "id": tenant.id,
            "displayName": tenant.display_name,
            "defaultDomain": tenant.default_domain,
            "usageLocation": tenant.usage_location,
        },
        "apps": [
            {
                "clientId": a.client_id,
                "displayName": a.display_name,
                "clientSecret": a.client_secret,
                "roles": sorted(a.roles),
                "certificates": a.certificates,
                "managedIdentity": a.managed_identity,
                "default": a.default,
                "tokenLifetimeSeconds": a.token_lifetime_seconds,
            }
            for a in tenant.apps.values()
        ],
        "skus": [
            {
                "skuId": s.sku_id,
                "skuPartNumber": s.sku_part_number,
                "appliesTo": s.applies_to,
                "capabilityStatus": s.capability_status,
                "prepaidUnits": dict(s.prepaid_units),
                "servicePlans": s.service_plans,
                "subscriptionIds": s.subscription_ids,
                "prohibitedUsageLocations": sorted(s.prohibited_usage_locations),
            }
            for s in tenant.skus.values()
        ],
        "servicePlanConflicts": sorted(sorted(pair) for pair in tenant.plan_conflicts),
        "servicePlanDependencies": {p: sorted(r) for p, r in sorted(tenant.plan_dependencies.items())},
        "users": [
            {
                **u.props,
                "assignedLicenses": [
                    {"skuId": e.sku_id, "disabledPlans": e.disabled_plans}
                    for (g, _), e in u.licenses.items()
                    if g is None
                ],
            }
            for u in tenant.users.values()
        ],
        "groups": [
            {
                **g.props,
                "members": list(g.members),
                "assignedLicenses": [{"skuId": s, "disabledPlans": d} for s, d in g.licenses.items()],
            }
            for g in tenant.groups.values()
        ],
    }
