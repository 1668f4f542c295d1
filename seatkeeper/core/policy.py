"""The policy an organisation writes for Seatkeeper, as frozen data: which groups carry Copilot, what a
qualifying base license is, who is never touched, how far Seatkeeper may go, and whom to tell.

Pure data and small pure look-ups; `seatkeeper.policy_file` reads it from YAML, `decide()` consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from enum import StrEnum
from typing import Final

from seatkeeper.core.hr_rules import HrRule, HrSettings
from seatkeeper.core.rollout import RolloutRule

# The two Microsoft pages that list qualifying base licenses; they disagree (graph-facts C2).
LICENSE_OPTIONS_PAGE: Final = (
    "https://learn.microsoft.com/microsoft-365-copilot/microsoft-365-copilot-licensing"
)
MINIMUM_REQUIREMENTS_PAGE: Final = (
    "https://learn.microsoft.com/microsoft-365-copilot/microsoft-365-copilot-minimum-requirements"
)
BOTH_PAGES: Final = (LICENSE_OPTIONS_PAGE, MINIMUM_REQUIREMENTS_PAGE)

# Microsoft 365 Copilot SKUs (graph-facts C1) and the plan every Copilot SKU carries.
COPILOT_SKU_IDS: Final = (
    "639dec6b-bb19-468b-871c-c5c441c4b0cb",  # Microsoft_365_Copilot
    "ad9c22b3-52d7-4e7e-973c-88121ea96436",  # Microsoft_365_Copilot_EDU
    "a809996b-059e-42e2-9866-db24b99a9782",  # M365_Copilot
)
COPILOT_BUSINESS_CHAT_PLAN_ID: Final = "3f30311c-6b1e-48a4-ab79-725b469da960"


@dataclass(frozen=True)
class BaseLicense:
    """A SKU that qualifies a user for Copilot, and the Microsoft page(s) that say so."""

    sku_id: str
    sku_part_number: str
    product: str = ""
    sources: tuple[str, ...] = BOTH_PAGES


def _both(sku_id: str, part: str, product: str) -> BaseLicense:
    return BaseLicense(sku_id, part, product, BOTH_PAGES)


def _options_only(sku_id: str, part: str, product: str) -> BaseLicense:
    return BaseLicense(sku_id, part, product, (LICENSE_OPTIONS_PAGE,))


# Every base license of graph-facts C2 with its source page(s). The default allow-list is the part both
# pages agree on; the rest an organisation may add to its policy knowingly.
KNOWN_BASE_LICENSES: Final = (
    _both("05e9a617-0261-4cee-bb44-138d3ef5d965", "SPE_E3", "Microsoft 365 E3"),
    _both(
        "dcf0408c-aaec-446c-afd4-43e3683943ea", "Microsoft_365_E3_(no_Teams)", "Microsoft 365 E3 (no Teams)"
    ),
    _both("06ebc4ee-1bb5-47dd-8120-11324bc54e06", "SPE_E5", "Microsoft 365 E5"),
    _both(
        "3271cf8e-2be5-4a09-a549-70fd05baaa17", "O365_w/o_Teams_Bundle_M5", "Microsoft 365 E5 (no Teams) EEA"
    ),
    _both("18181a46-0d4e-45cd-891e-60aabd171b4e", "STANDARDPACK", "Office 365 E1"),
    _both("6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK", "Office 365 E3"),
    _both("46c3a859-c90d-40b3-9551-6178a48d5c18", "Office_365_E3_(no_Teams)", "Office 365 E3 (no Teams)"),
    _both("c7df2760-2c81-4ef7-b578-5b5392b571df", "ENTERPRISEPREMIUM", "Office 365 E5"),
    _both(
        "26d45bd9-adf1-46cd-a9e1-51e9a5524128",
        "ENTERPRISEPREMIUM_NOPSTNCONF",
        "Office 365 E5 w/o Audio Conf.",
    ),
    _both("4b585984-651b-448a-9e53-3b10f069cf7f", "DESKLESSPACK", "Office 365 F3"),
    _both("50f60901-3181-4b75-8a2c-4c8e4c1d5a72", "M365_F1_COMM", "Microsoft 365 F1"),
    _both("44575883-256e-4a79-9da4-ebe9acabe2b2", "M365_F1", "Microsoft 365 F1"),
    _both("66b55226-6b4f-492c-910c-a3b7a3c9d993", "SPE_F1", "Microsoft 365 F3"),
    _both("3b555118-da6a-4418-894f-7df1e2096870", "O365_BUSINESS_ESSENTIALS", "Microsoft 365 Business Basic"),
    _both("f245ecc8-75af-4f8e-b61f-27d8114de5f3", "O365_BUSINESS_PREMIUM", "Microsoft 365 Business Standard"),
    _both("cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "SPB", "Microsoft 365 Business Premium"),
    _both("3ab6abff-666f-4424-bfb7-f0bc274ec7bc", "TEAMS_ESSENTIALS_AAD", "Teams Essentials (AAD identity)"),
    _both("4b590615-0888-425a-a965-b3bf7789848d", "M365EDU_A3_FACULTY", "Microsoft 365 A3 faculty"),
    _both("7cfd9a2b-e110-4c39-bf20-c6a3f36a3121", "M365EDU_A3_STUDENT", "Microsoft 365 A3 students"),
    _both("e97c048c-37a4-45fb-ab50-922fbf07a370", "M365EDU_A5_FACULTY", "Microsoft 365 A5 faculty"),
    _both("46c119d4-0379-4a9d-85e4-97c66d3f909e", "M365EDU_A5_STUDENT", "Microsoft 365 A5 students"),
    _both("94763226-9b3c-4e75-a931-5c89701abe66", "STANDARDWOFFPACK_FACULTY", "Office 365 A1 faculty"),
    _both("e578b273-6db4-4691-bba0-8d691f4da603", "ENTERPRISEPACKPLUS_FACULTY", "Office 365 A3 faculty"),
    _both("a4585165-0533-458a-97e3-c400570268c4", "ENTERPRISEPREMIUM_FACULTY", "Office 365 A5 faculty"),
    _options_only("b17653a4-2443-4e8c-a550-18249dda78bb", "M365EDU_A1", "Microsoft 365 A1"),
    _options_only("cdd28e44-67e3-425e-be4c-737fab2899d3", "O365_BUSINESS", "Microsoft 365 Apps for business"),
    _options_only(
        "c2273bd0-dff7-4215-9ef5-2c7bcfb06425", "OFFICESUBSCRIPTION", "Microsoft 365 Apps for enterprise"
    ),
    _options_only("4b9405b0-7788-4568-add1-99614e613b69", "EXCHANGESTANDARD", "Exchange Online (Plan 1)"),
    _options_only("19ec0d23-8335-4cbd-94ac-6050e30712fa", "EXCHANGEENTERPRISE", "Exchange Online (Plan 2)"),
    _options_only("80b2d799-d2ba-4d2a-8842-fb0d0f3a4b82", "EXCHANGEDESKLESS", "Exchange Online Kiosk"),
    _options_only("7e74bd05-2c47-404e-829a-ba95c66fe8e5", "Microsoft_Teams_EEA_New", "Microsoft Teams EEA"),
)
DEFAULT_BASE_LICENSES: Final = tuple(b for b in KNOWN_BASE_LICENSES if b.sources == BOTH_PAGES)


@dataclass(frozen=True)
class CopilotSkus:
    """What counts as a Copilot SKU: any listed skuId, or any SKU carrying a listed service plan."""

    sku_ids: tuple[str, ...] = COPILOT_SKU_IDS
    service_plan_ids: tuple[str, ...] = (COPILOT_BUSINESS_CHAT_PLAN_ID,)
    service_plan_names: tuple[str, ...] = ()

    def matches(self, sku_id: str, plan_ids: tuple[str, ...] = (), plan_names: tuple[str, ...] = ()) -> bool:
        """True when this SKU (with the service plans `subscribedSkus` lists for it) is a Copilot SKU."""
        return (
            _norm(sku_id) in {_norm(s) for s in self.sku_ids}
            or bool({_norm(p) for p in plan_ids} & {_norm(p) for p in self.service_plan_ids})
            or bool(set(plan_names) & set(self.service_plan_names))
        )


@dataclass(frozen=True)
class LicensingGroup:
    """A group that carries Copilot through group-based licensing, and how far Seatkeeper may manage it.

    `observe_only`: decide, log and report, write nothing. `authoritative`: Seatkeeper may remove any member,
    not only those it added itself. `copilot_sku_ids`: the Copilot SKU(s) assigned to the group.
    """

    id: str
    display_name: str
    copilot_sku_ids: tuple[str, ...]
    observe_only: bool = False
    authoritative: bool = False


class UsageLocationSource(StrEnum):
    """Where Seatkeeper may take a missing or wrong usage location from (it writes one only if allowed)."""

    NONE = "none"
    HR_COUNTRY = "hr_country"
    FIXED = "fixed"


@dataclass(frozen=True)
class UsageLocationFix:
    """How to fix a missing usage location: not at all, from the HR record's country, or a fixed code."""

    source: UsageLocationSource = UsageLocationSource.NONE
    fixed_code: str | None = None


@dataclass(frozen=True)
class BlastRadius:
    """Hold every removal and alert when more than `max_removals_per_hour` would happen within an hour."""

    max_removals_per_hour: int = 50


class Severity(StrEnum):
    """How urgent an alert is; routes pick the alerts at or above their minimum."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order of severities, lowest first."""
        return list(Severity).index(self)


class AlertChannel(StrEnum):
    """Where an alert can go: a Teams Workflows webhook, Graph sendMail, or a plain JSON webhook."""

    TEAMS = "teams"
    EMAIL = "email"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class AlertRoute:
    """One destination for alerts at or above `min_severity`.

    Webhook URLs are secrets, so the policy names the app setting that holds one (`url_setting`), never
    the URL. Email goes from the `sender` mailbox to `recipients`.
    """

    name: str
    channel: AlertChannel
    min_severity: Severity = Severity.WARNING
    url_setting: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()

    def accepts(self, severity: Severity) -> bool:
        """True when an alert of this severity goes through this route."""
        return severity.rank >= self.min_severity.rank


@dataclass(frozen=True)
class SeatHeadroom:
    """Alert when a Copilot SKU's free seats fall below `alert_below`; resolve only at `clear_at` or more.

    The gap between the two is the hysteresis that keeps a count hovering at the threshold from flapping.
    """

    alert_below: int = 5
    clear_at: int = 10


@dataclass(frozen=True)
class AlertExclusions:
    """Subjects no incident is opened for: SKU ids, group ids, and users (object id or UPN)."""

    sku_ids: frozenset[str] = frozenset()
    group_ids: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Alerts:
    """Alert routes, thresholds, exclusions, and whether (and when, UTC business time) a digest is sent."""

    routes: tuple[AlertRoute, ...] = ()
    seat_headroom: SeatHeadroom = field(default_factory=SeatHeadroom)
    daily_digest: bool = False
    digest_time: time = time(8, 0)
    exclusions: AlertExclusions = field(default_factory=AlertExclusions)


@dataclass(frozen=True)
class Policy:
    """The whole policy file. Defaults are the conservative choice for every field an admin leaves out."""

    licensing_groups: tuple[LicensingGroup, ...]
    copilot_skus: CopilotSkus = field(default_factory=CopilotSkus)
    base_licenses: tuple[BaseLicense, ...] = DEFAULT_BASE_LICENSES
    # A SKU carrying one of these service plans (id or name) also qualifies as a base license.
    base_license_service_plans: tuple[str, ...] = ()
    require_usage_location: bool = True
    copilot_unavailable_locations: frozenset[str] = frozenset()
    usage_location_fix: UsageLocationFix = field(default_factory=UsageLocationFix)
    protected_users: frozenset[str] = frozenset()
    verification_deadline: timedelta = timedelta(hours=24)
    blast_radius: BlastRadius = field(default_factory=BlastRadius)
    alerts: Alerts = field(default_factory=Alerts)
    # Which Copilot group a person from HR belongs in (first match wins), and how HR events apply.
    hr_rules: tuple[HrRule, ...] = ()
    hr: HrSettings = field(default_factory=HrSettings)
    # Recorded rollouts (`seatkeeper rollout`, core/rollout.py): named lists of people kept in a group
    # whatever the HR rules say. Not read from the file: the state store holds them (with_rollouts).
    rollouts: tuple[RolloutRule, ...] = ()

    def group(self, group_id: str) -> LicensingGroup | None:
        """The licensing group with this object id, or None if Seatkeeper does not know it."""
        wanted = _norm(group_id)
        return next((g for g in self.licensing_groups if _norm(g.id) == wanted), None)

    def base_license(self, sku_id: str) -> BaseLicense | None:
        """The allow-list entry for this SKU, or None when the SKU does not qualify a user for Copilot."""
        wanted = _norm(sku_id)
        return next((b for b in self.base_licenses if _norm(b.sku_id) == wanted), None)

    def is_protected(self, *identifiers: str | None) -> bool:
        """True when any of the user's identifiers (object id, UPN) is on the protected list."""
        protected = {_norm(p) for p in self.protected_users}
        return any(i is not None and _norm(i) in protected for i in identifiers)

    def copilot_sold_in(self, usage_location: str) -> bool:
        """False for the ISO 3166 codes the policy lists as places where Copilot is not sold."""
        return usage_location.upper() not in {c.upper() for c in self.copilot_unavailable_locations}


def _norm(value: str) -> str:
    """Object ids, skuIds and UPNs compare case-insensitively in Entra."""
    return value.strip().lower()
