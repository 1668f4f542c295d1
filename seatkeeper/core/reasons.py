"""The machine-readable reasons gate and verification decisions carry (stable: logged, stored, documented)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a decision came out as it did. Values are stable: they are stored, logged and documented."""

    # Blockers: the person may not enter the group now (recorded as pending).
    PROTECTED_USER = "protected_user"
    ACCOUNT_DISABLED = "account_disabled"
    NO_USAGE_LOCATION = "no_usage_location"
    USAGE_LOCATION_NOT_SOLD = "usage_location_not_sold"
    NO_BASE_LICENSE = "no_base_license"
    BASE_LICENSE_NOT_ACTIVE = "base_license_not_active"
    BASE_SKU_SUSPENDED = "base_sku_suspended"
    NO_SEAT = "no_seat"
    # The request itself cannot be carried out, whoever the person is.
    NOT_A_LICENSING_GROUP = "not_a_licensing_group"
    GROUP_NOT_WRITABLE = "group_not_writable"
    # Warnings: admitted, but worth an alert.
    BASE_SKU_IN_WARNING = "base_sku_in_warning"
    EXCHANGE_ONLINE_PLAN_DISABLED = "exchange_online_plan_disabled"
    # Notes: nothing is wrong, the decision just says why nothing happens.
    OBSERVE_ONLY = "observe_only"
    ALREADY_LICENSED = "already_licensed"
    COPILOT_ASSIGNED_DIRECTLY = "copilot_assigned_directly"
    ALREADY_MEMBER = "already_member"
    # Verification after the add.
    LICENSE_ACTIVE = "license_active"
    LICENSE_PENDING = "license_pending"
    LICENSE_STUCK = "license_stuck"
    LICENSE_ERROR = "license_error"
    COPILOT_WILL_NOT_WORK = "copilot_will_not_work"


BLOCKERS: frozenset[Reason] = frozenset(
    {
        Reason.PROTECTED_USER,
        Reason.ACCOUNT_DISABLED,
        Reason.NO_USAGE_LOCATION,
        Reason.USAGE_LOCATION_NOT_SOLD,
        Reason.NO_BASE_LICENSE,
        Reason.BASE_LICENSE_NOT_ACTIVE,
        Reason.BASE_SKU_SUSPENDED,
        Reason.NO_SEAT,
        Reason.NOT_A_LICENSING_GROUP,
        Reason.GROUP_NOT_WRITABLE,
    }
)
WARNINGS: frozenset[Reason] = frozenset({Reason.BASE_SKU_IN_WARNING, Reason.EXCHANGE_ONLINE_PLAN_DISABLED})
