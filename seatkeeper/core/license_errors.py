"""The license error catalogue as data: Graph's error values and the gate's own findings, each with what it
means, what Seatkeeper does and what the admin does (the remediation text every alert carries).

`docs/license-errors.md` is rendered from this data (`render_markdown`) and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from seatkeeper.core.reasons import Reason


class LicenseError(StrEnum):
    """`licenseAssignmentState.error`: the six documented values, and UNKNOWN for anything else."""

    COUNT_VIOLATION = "CountViolation"
    MUTUALLY_EXCLUSIVE_VIOLATION = "MutuallyExclusiveViolation"
    DEPENDENCY_VIOLATION = "DependencyViolation"
    PROHIBITED_IN_USAGE_LOCATION_VIOLATION = "ProhibitedInUsageLocationViolation"
    UNIQUENESS_VIOLATION = "UniquenessViolation"
    OTHER = "Other"
    UNKNOWN = "Unknown"


_NO_ERROR: Final = frozenset({"", "none", "null"})
# Older doc revisions (and tools built on them) spell the catch-all "Others" (microsoft-graph-docs#15734).
_ALIASES: Final = {"others": LicenseError.OTHER}


def parse_license_error(raw: str | None) -> LicenseError | None:
    """Graph's error text to a LicenseError; None for success (null, or the string "None" seen in practice).

    Case-insensitive; `Others` reads as OTHER; an undocumented value reads as UNKNOWN, never an exception.
    """
    if raw is None:
        return None
    text = raw.strip().lower()
    if text in _NO_ERROR:
        return None
    if text in _ALIASES:
        return _ALIASES[text]
    for member in LicenseError:
        if member is not LicenseError.UNKNOWN and member.value.lower() == text:
            return member
    return LicenseError.UNKNOWN


@dataclass(frozen=True)
class CatalogueEntry:
    """One problem: what it means, what Seatkeeper does about it, and the remediation text for the admin."""

    code: str
    title: str
    meaning: str
    seatkeeper_does: str
    admin_does: str


def _entry(code: str, title: str, meaning: str, seatkeeper_does: str, admin_does: str) -> CatalogueEntry:
    return CatalogueEntry(code, title, meaning, seatkeeper_does, admin_does)


_REPROCESS_HINT: Final = "then run `seatkeeper reprocess <user>` (or wait for Seatkeeper's next re-check)"
_HUMAN_STEPS: Final = (
    "releases the seat reservation and keeps re-checking until the verification deadline, so the "
    "incident resolves itself once the cause is fixed."
)

LICENSE_ERRORS: Final[Mapping[LicenseError, CatalogueEntry]] = MappingProxyType(
    {
        LicenseError.COUNT_VIOLATION: _entry(
            "CountViolation",
            "Not enough licenses",
            "Every purchased seat of the SKU is in use, so group-based licensing could not assign one to "
            "this member (the portal shows 'Not enough licenses').",
            "Closes the member's seat reservation, puts the member on the first-come-first-served waitlist "
            "and raises a seat-shortage alert; when seats appear (bought, or freed by a leaver) it "
            "reprocesses waiting members in order.",
            "Buy more seats of the SKU or free seats (remove members who no longer need Copilot); "
            "Seatkeeper serves the waitlist by itself once seats are free.",
        ),
        LicenseError.MUTUALLY_EXCLUSIVE_VIOLATION: _entry(
            "MutuallyExclusiveViolation",
            "Conflicting service plans",
            "A service plan in this SKU cannot be held together with a plan in another license of the user. "
            "Graph does not say which; the audit log does.",
            "Raises an alert naming the service plans and SKUs that probably conflict, inferred from the "
            f"service plans the user's SKUs share and labelled as inferred; {_HUMAN_STEPS}",
            "Confirm the conflict in the Entra audit log ('Change user license'), then remove the "
            f"conflicting license or disable the conflicting plan in one of them; {_REPROCESS_HINT}.",
        ),
        LicenseError.DEPENDENCY_VIOLATION: _entry(
            "DependencyViolation",
            "Other products depend on this license",
            "Group-based licensing was to take this license away (typically: the user left the Copilot "
            "group), but another product the user keeps needs one of its service plans, so the group's "
            "entry stays (`ActiveWithError`) and the seat stays consumed. (A group given an add-on without "
            "its prerequisite plan is refused up front instead.)",
            "When a member leaves, reads the user: if the group's Copilot entry is kept, raises an alert "
            "naming the group, the SKU and the user's other licenses, does not hand the seat to the "
            "waitlist, and looks again (growing delays up to the verification deadline, then daily) until "
            "the entry is gone; then it resolves the incident and serves the waitlist. For a member, "
            f"raises an alert; {_HUMAN_STEPS}",
            "Remove the dependent product from the user (or disable its plan that needs this one), or give "
            "the user the prerequisite plan another way (with group-based licensing, in the same group as "
            "the product that needs it); then run `seatkeeper reprocess <user>` so group-based licensing "
            "finishes the removal (Seatkeeper's next look resolves the incident).",
        ),
        LicenseError.PROHIBITED_IN_USAGE_LOCATION_VIOLATION: _entry(
            "ProhibitedInUsageLocationViolation",
            "Usage location isn't allowed",
            "The product is not sold in the user's usage location (under group-based licensing, a user "
            "without one inherits the tenant's location).",
            "If the policy allows it, sets `usageLocation` from the configured source and reprocesses once; "
            f"otherwise, or if that does not help, raises an alert; {_HUMAN_STEPS}",
            "Set the user's usage location to the country where they work (it must be one where Microsoft "
            f"365 Copilot is sold), or take the user out of the Copilot group; {_REPROCESS_HINT}.",
        ),
        LicenseError.UNIQUENESS_VIOLATION: _entry(
            "UniquenessViolation",
            "A unique value is already in use",
            "A value that must be unique in the tenant is held by another object, so a service could not "
            "be provisioned (the portal's 'Proxy address is already being used' is the likely case; "
            "Microsoft does not document which code it shows as).",
            f"Raises an alert; {_HUMAN_STEPS}",
            "Find the object that holds the same proxy address or UPN (Exchange admin center or "
            f"`Get-Recipient`), remove the duplicate; {_REPROCESS_HINT}.",
        ),
        LicenseError.OTHER: _entry(
            "Other",
            "Other error (also spelled Others)",
            "Group-based licensing failed for a reason Graph does not classify; older documentation and "
            "tools spell it `Others`.",
            f"Reprocesses the user once and re-checks; if the error stays, raises an alert; {_HUMAN_STEPS}",
            "Look up the user's entry in the Entra audit log ('Change user license' by 'Microsoft Entra "
            "Group-Based Licensing') for the cause, fix it, then reprocess; if it persists past 24 hours, "
            "open a Microsoft support ticket.",
        ),
        LicenseError.UNKNOWN: _entry(
            "(any other value)",
            "Undocumented error value",
            "Graph returned an error value that is not in its documentation (a new or renamed code); "
            "Seatkeeper keeps and reports the text it saw.",
            "Treats it as `Other`: reprocesses once and re-checks; if the error stays, raises an alert "
            "quoting the value as Graph sent it.",
            "As for `Other`; and tell the Seatkeeper maintainers the new value so it gets its own entry.",
        ),
    }
)

FINDINGS: Final[Mapping[Reason, CatalogueEntry]] = MappingProxyType(
    {
        Reason.PROTECTED_USER: _entry(
            "protected_user",
            "Protected user",
            "The user is on the policy's protected-users list.",
            "Never adds, removes or reprocesses the user; records the person as pending with this reason.",
            "Nothing, unless the user should be managed: then take them off the protected list.",
        ),
        Reason.ACCOUNT_DISABLED: _entry(
            "account_disabled",
            "Account disabled",
            "The user's account is disabled (`accountEnabled` is false): a seat would be wasted.",
            "Does not add; records the person as pending; reconciliation re-gates pending people.",
            "Enable the account if the person should have Copilot; otherwise nothing.",
        ),
        Reason.NO_USAGE_LOCATION: _entry(
            "no_usage_location",
            "No usage location",
            "The user has no `usageLocation` and the policy requires one (group-based licensing would "
            "silently use the tenant's country).",
            "Does not add; records the person as pending; reconciliation re-gates pending people.",
            "Set the user's usage location (in HR-driven provisioning, map the country attribute).",
        ),
        Reason.USAGE_LOCATION_NOT_SOLD: _entry(
            "usage_location_not_sold",
            "Copilot not sold in the usage location",
            "The user's usage location is on the policy's list of countries where Microsoft 365 Copilot "
            "is not sold; the assignment would fail with ProhibitedInUsageLocationViolation.",
            "Does not add; records the person as pending; reconciliation re-gates pending people.",
            "Correct the usage location if it is wrong; otherwise the user cannot have Copilot.",
        ),
        Reason.NO_BASE_LICENSE: _entry(
            "no_base_license",
            "No qualifying base license",
            "The user holds none of the base licenses on the policy's allow-list, so Copilot would be "
            "assigned but would not work.",
            "Does not add; records the person as pending; reconciliation re-gates pending people.",
            "Assign a qualifying base license (for example Microsoft 365 E3/E5 or Business Standard), or "
            "add the user's license to the policy's allow-list if it qualifies.",
        ),
        Reason.BASE_LICENSE_NOT_ACTIVE: _entry(
            "base_license_not_active",
            "Base license not active",
            "The user has a qualifying base license, but its assignment is not `Active` (it is in "
            "`Error`, `Disabled` or still being applied).",
            "Does not add; records the person as pending; reconciliation re-gates pending people.",
            "Fix the base license's own assignment error first (this catalogue lists what each one means).",
        ),
        Reason.BASE_SKU_SUSPENDED: _entry(
            "base_sku_suspended",
            "Base license subscription suspended",
            "The subscription of the user's base license is `Suspended`, `LockedOut` or `Deleted`: its "
            "services are off.",
            "Does not add; records the person as pending; reconciliation re-gates pending people.",
            "Renew or reactivate the subscription in the Microsoft 365 admin center (Billing).",
        ),
        Reason.NO_SEAT: _entry(
            "no_seat",
            "No free Copilot seat",
            "Enabled seats minus consumed seats minus Seatkeeper's open reservations is zero.",
            "Does not add; puts the person on the first-come-first-served waitlist and raises a "
            "seat-shortage alert; serves the waitlist in order when seats appear.",
            "Buy seats or free seats; nothing else: the waitlist is served automatically.",
        ),
        Reason.NOT_A_LICENSING_GROUP: _entry(
            "not_a_licensing_group",
            "Not a licensing group of the policy",
            "The target group is not one of the policy's Copilot licensing groups.",
            "Refuses the request and raises an alert; writes nothing.",
            "Use one of the policy's licensing groups, or add the group to the policy.",
        ),
        Reason.GROUP_NOT_WRITABLE: _entry(
            "group_not_writable",
            "Group cannot be written",
            "The group is dynamic (membership comes from its rule) or a mail-enabled security group "
            "(membership is managed in Exchange): Graph does not let Seatkeeper add members.",
            "Watches and reports on the group; refuses to add members and raises an alert.",
            "Add the user through the group's own mechanism (the dynamic rule's attributes, or Exchange), "
            "or license through an assigned-membership security group instead.",
        ),
        Reason.BASE_SKU_IN_WARNING: _entry(
            "base_sku_in_warning",
            "Base license subscription in grace period",
            "The subscription of the user's base license is in `Warning` (the renewal grace period): it "
            "still works, but will stop when the grace period ends.",
            "Admits the user and raises an alert.",
            "Renew the subscription before the grace period ends.",
        ),
        Reason.EXCHANGE_ONLINE_PLAN_DISABLED: _entry(
            "exchange_online_plan_disabled",
            "Exchange Online plan disabled",
            "The Exchange Online mailbox plan is disabled in the user's base license; Copilot grounds on "
            "the Exchange Online mailbox, so much of it will not work.",
            "Admits the user and raises an alert.",
            "Enable the Exchange Online plan in the user's (or the group's) base license assignment, or "
            "confirm the user's mailbox is elsewhere on purpose.",
        ),
        Reason.COPILOT_ASSIGNED_DIRECTLY: _entry(
            "copilot_assigned_directly",
            "Copilot assigned directly",
            "The user already holds a Copilot license assigned directly, not through a group.",
            "Reports it and never touches it (no add, no removal).",
            "Nothing, or move the user to group-based licensing and remove the direct assignment.",
        ),
        Reason.LICENSE_STUCK: _entry(
            "license_stuck",
            "Copilot license stuck",
            "The member was added, but no Copilot assignment became `Active` before the verification "
            "deadline (24 hours by default, Microsoft's own threshold).",
            "Stops re-checking, releases the seat reservation and raises an alert.",
            "Check the group's licensing state in the Microsoft 365 admin center and reprocess the user; "
            "past 24 hours Microsoft asks for a support ticket.",
        ),
        Reason.COPILOT_WILL_NOT_WORK: _entry(
            "copilot_will_not_work",
            "Licensed, but Copilot will not work",
            "The member holds a Copilot license but no active qualifying base license, so Copilot does "
            "not light up and the seat is wasted.",
            "Raises an alert (it never removes the member on its own for this).",
            "Assign a qualifying base license, or remove the user from the Copilot group to free the seat.",
        ),
    }
)


def entry_for(code: LicenseError | Reason) -> CatalogueEntry:
    """The catalogue entry of a Graph license error or a gate/verification finding."""
    if isinstance(code, LicenseError):
        return LICENSE_ERRORS[code]
    return FINDINGS[code]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(entries: Mapping[LicenseError, CatalogueEntry] | Mapping[Reason, CatalogueEntry]) -> list[str]:
    lines = [
        "| code | meaning | what Seatkeeper does | what the admin does |",
        "|---|---|---|---|",
    ]
    for entry in entries.values():
        code = f"`{entry.code}`" if not entry.code.startswith("(") else entry.code
        lines.append(
            f"| {code} — {_cell(entry.title)} | {_cell(entry.meaning)} | "
            f"{_cell(entry.seatkeeper_does)} | {_cell(entry.admin_does)} |"
        )
    return lines


def render_markdown() -> str:
    """The catalogue as the page `docs/license-errors.md` (generated: edit the data, not the page)."""
    lines = [
        "# License errors and gate findings",
        "",
        "<!-- Generated from seatkeeper/core/license_errors.py; a test keeps this page equal to it. -->",
        "",
        "Every alert Seatkeeper raises about a license carries the *what the admin does* text below.",
        "",
        "## Group-based licensing errors",
        "",
        "The value of `licenseAssignmentStates[].error` on the user, as Microsoft Graph reports it.",
        'A successful assignment shows `null` (or the string `"None"`); the error names',
        "`DuplicateServicePlans` and `NotAvailableForProduct` found in some articles do not exist.",
        "",
        *_table(LICENSE_ERRORS),
        "",
        "## Gate and verification findings",
        "",
        "Reasons Seatkeeper's own checks give before and after adding a member (machine-readable codes).",
        "",
        *_table(FINDINGS),
        "",
    ]
    return "\n".join(lines)
