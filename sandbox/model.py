"""The tenant's objects in memory: apps, SKUs, users, groups and license assignment states.

Users and groups keep their Graph properties in a plain dict keyed by Graph property names, so `$select`,
`PATCH` and the tenant file all speak Graph's own names. Licenses live beside them: direct assignments and
one `LicenseState` per (assigning group or None, SKU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

COPILOT_SKU_ID = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
GRAPH_RESOURCE = "https://graph.microsoft.com"
EXCHANGE_PLAN_PREFIX = "EXCHANGE_S_"


@dataclass(slots=True)
class App:
    """An app registration (or managed identity) allowed to get tokens for Graph."""

    client_id: str
    display_name: str
    client_secret: str | None
    roles: frozenset[str]
    certificate_thumbprints: dict[str, str] = field(default_factory=dict)  # thumbprint (hex, upper) -> PEM
    managed_identity: bool = False
    default: bool = False
    token_lifetime_seconds: int = 3599
    certificates: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Sku:
    """A subscribed SKU; `holders` are the users who consume one of its seats."""

    sku_id: str
    sku_part_number: str
    applies_to: str
    capability_status: str
    prepaid_units: dict[str, int]
    service_plans: list[dict[str, Any]]
    subscription_ids: list[str]
    prohibited_usage_locations: frozenset[str]
    holders: set[str] = field(default_factory=set)
    _plans: frozenset[str] = frozenset()
    _mailbox_plans: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._plans = frozenset(str(p["servicePlanId"]) for p in self.service_plans)
        self._mailbox_plans = frozenset(
            str(p["servicePlanId"])
            for p in self.service_plans
            if str(p.get("servicePlanName") or "").startswith(EXCHANGE_PLAN_PREFIX)
        )

    def plan_ids(self) -> frozenset[str]:
        """Every service plan id of this SKU."""
        return self._plans

    def mailbox_plan_ids(self) -> frozenset[str]:
        """The Exchange Online plans of this SKU (`EXCHANGE_S_…`): those that need unique proxy addresses."""
        return self._mailbox_plans


@dataclass(slots=True)
class LicenseState:
    """One licenseAssignmentState: a SKU assigned to a user directly (group None) or by one group."""

    sku_id: str
    group_id: str | None
    disabled_plans: list[str]
    state: str
    error: str
    last_updated: datetime

    @property
    def assigned(self) -> bool:
        """Whether this entry gives the user the license (and a seat)."""
        return self.state in ("Active", "ActiveWithError", "Disabled")

    def to_graph(self) -> dict[str, Any]:
        """The Graph shape of licenseAssignmentState."""
        return {
            "assignedByGroup": self.group_id,
            "disabledPlans": list(self.disabled_plans),
            "error": self.error,
            "lastUpdatedDateTime": iso(self.last_updated),
            "skuId": self.sku_id,
            "state": self.state,
        }


@dataclass(slots=True)
class User:
    """A user: Graph properties plus license states keyed by (group id or None, sku id)."""

    id: str
    props: dict[str, Any]
    licenses: dict[tuple[str | None, str], LicenseState] = field(default_factory=dict)

    def assigned_licenses(self) -> list[dict[str, Any]]:
        """Graph's assignedLicenses: one entry per SKU held; a plan is off only if all sources disable it."""
        merged: dict[str, set[str] | None] = {}
        for entry in self.licenses.values():
            if not entry.assigned:
                continue
            disabled = set(entry.disabled_plans)
            before = merged.get(entry.sku_id)
            merged[entry.sku_id] = disabled if before is None else before & disabled
        return [{"disabledPlans": sorted(d or ()), "skuId": sku} for sku, d in merged.items()]

    def held_skus(self) -> set[str]:
        """SKUs for which the user consumes a seat."""
        return {e.sku_id for e in self.licenses.values() if e.assigned}


@dataclass(slots=True)
class Group:
    """A group: Graph properties, ordered direct members (users or groups), assigned licenses."""

    id: str
    props: dict[str, Any]
    members: dict[str, None] = field(default_factory=dict)
    licenses: dict[str, list[str]] = field(default_factory=dict)  # sku id -> disabled plans
    processing_state: str | None = None

    @property
    def dynamic(self) -> bool:
        """Membership follows a rule."""
        return "DynamicMembership" in (self.props.get("groupTypes") or [])

    @property
    def mail_enabled_security(self) -> bool:
        """A mail-enabled security group (membership is managed in Exchange, not Graph)."""
        unified = "Unified" in (self.props.get("groupTypes") or [])
        return bool(self.props.get("mailEnabled")) and bool(self.props.get("securityEnabled")) and not unified


@dataclass(slots=True)
class Tenant:
    """Everything the sandbox simulates for one tenant."""

    id: str
    display_name: str
    default_domain: str
    usage_location: str
    apps: dict[str, App]
    skus: dict[str, Sku]
    users: dict[str, User]
    groups: dict[str, Group]
    plan_conflicts: set[frozenset[str]]
    plan_dependencies: dict[str, set[str]]
    upn_index: dict[str, str] = field(default_factory=dict)

    def conflicts_of(self, plan: str) -> frozenset[str]:
        """The plans that cannot be enabled alongside `plan`."""
        table = self._conflict_table
        if table is None:
            built: dict[str, set[str]] = {}
            for pair in self.plan_conflicts:
                a, b = (*pair, *pair)[:2]
                built.setdefault(a, set()).add(b)
                built.setdefault(b, set()).add(a)
            table = self._conflict_table = {k: frozenset(v) for k, v in built.items()}
        return table.get(plan, frozenset())

    _conflict_table: dict[str, frozenset[str]] | None = None
    _proxy_owners: dict[str, set[str]] | None = None

    def shares_proxy_address(self, user: User) -> bool:
        """Whether another user has one of this user's proxy addresses (`smtp:` and case ignored)."""
        mine = _proxy_keys(user)
        if not mine:
            return False
        owners = self._proxy_owners
        if owners is None:
            owners = {}
            for other in self.users.values():
                for key in _proxy_keys(other):
                    owners.setdefault(key, set()).add(other.id)
            self._proxy_owners = owners
        return any(owners.get(key, set()) - {user.id} for key in mine)

    def proxy_addresses_changed(self) -> None:
        """Forget the proxy-address index (a user's proxyAddresses changed, or a user came or went)."""
        self._proxy_owners = None

    def default_app(self) -> App:
        """The app whose credentials the ready file hands out."""
        for app in self.apps.values():
            if app.default:
                return app
        return next(iter(self.apps.values()))

    def managed_identity_app(self) -> App | None:
        """The app the App Service managed-identity endpoint issues tokens for."""
        return next((a for a in self.apps.values() if a.managed_identity), None)

    def find_user(self, key: str) -> User | None:
        """A user by object id or userPrincipalName (case-insensitive)."""
        user = self.users.get(key)
        if user is None:
            uid = self.upn_index.get(key.lower())
            user = self.users.get(uid) if uid else None
        return user

    def effective_usage_location(self, user: User) -> str:
        """The user's usage location, or the tenant's (as group-based licensing does)."""
        return str(user.props.get("usageLocation") or self.usage_location)


def _proxy_keys(user: User) -> set[str]:
    values = user.props.get("proxyAddresses") or []
    return {str(v).lower().removeprefix("smtp:") for v in values if isinstance(v, str) and v}


def iso(moment: datetime) -> str:
    """Graph's UTC timestamp form."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
