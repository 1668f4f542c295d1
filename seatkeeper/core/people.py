"""The normalised person the gate and verification read, and its pure parser from Graph's user JSON.

One `GET /users/{id}?$select=` + USER_SELECT answers the whole gate (design §4: licenseDetails does not
accept application permissions, so the license facts come from the user object itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from seatkeeper.core.graph_fields import FieldReader
from seatkeeper.core.license_errors import LicenseError, parse_license_error

USER_SELECT: Final = (
    "id",
    "userPrincipalName",
    "accountEnabled",
    "usageLocation",
    "assignedLicenses",
    "licenseAssignmentStates",
)
"""The user fields the gate and verification need; all but `id` are returned only when `$select`ed."""


class AssignmentState(StrEnum):
    """`licenseAssignmentState.state`; UNKNOWN stands for a value Graph did not document."""

    ACTIVE = "Active"
    ACTIVE_WITH_ERROR = "ActiveWithError"
    DISABLED = "Disabled"
    ERROR = "Error"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, raw: str | None) -> AssignmentState:
        """Case-insensitive; anything unrecognised (or missing) is UNKNOWN, never an exception."""
        for member in cls:
            if raw is not None and member.value.lower() == raw.strip().lower():
                return member
        return cls.UNKNOWN


@dataclass(frozen=True)
class AssignedLicense:
    """One entry of `assignedLicenses`: a SKU the user holds, with the service plans switched off."""

    sku_id: str
    disabled_plans: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LicenseAssignment:
    """One entry of `licenseAssignmentStates`: per SKU there may be one per assigning group and a direct one.

    `error` is None on success (Graph sends null or the string "None"); `raw_error` keeps Graph's text so an
    undocumented value is reported as it was seen.
    """

    sku_id: str
    state: AssignmentState
    assigned_by_group: str | None = None
    error: LicenseError | None = None
    raw_error: str | None = None
    disabled_plans: frozenset[str] = frozenset()
    last_updated: datetime | None = None

    @property
    def is_direct(self) -> bool:
        """A direct assignment (not inherited from a group): Seatkeeper reports it and never touches it."""
        return self.assigned_by_group is None

    @property
    def is_active(self) -> bool:
        """The license works: `Active`, or `ActiveWithError` (active, with a problem on some plan)."""
        return self.state in (AssignmentState.ACTIVE, AssignmentState.ACTIVE_WITH_ERROR)


@dataclass(frozen=True)
class Person:
    """The user snapshot every decision reads; the same model for events, reconciliation and CLIs."""

    id: str
    user_principal_name: str | None = None
    account_enabled: bool | None = None
    usage_location: str | None = None
    assigned_licenses: tuple[AssignedLicense, ...] = ()
    license_assignments: tuple[LicenseAssignment, ...] = ()
    # The country of the person's HR record, when the person came from HR: a usageLocation fix source.
    hr_country: str | None = None
    # Organisational attributes the HR rules match on: HR's values, else Entra's (core/person_mapping.py).
    employee_id: str | None = None
    department: str | None = None
    job_title: str | None = None
    employee_type: str | None = None
    company_name: str | None = None

    def assignments_for(self, sku_ids: frozenset[str]) -> tuple[LicenseAssignment, ...]:
        """The assignment states of the given SKUs (any assigning group, and direct)."""
        return tuple(a for a in self.license_assignments if a.sku_id in sku_ids)

    def assigned_license(self, sku_id: str) -> AssignedLicense | None:
        """The `assignedLicenses` entry of one SKU, if the user holds it."""
        return next((lic for lic in self.assigned_licenses if lic.sku_id == sku_id), None)

    def held_sku_ids(self) -> frozenset[str]:
        """Every SKU the user holds or has an assignment state for (in any state)."""
        return frozenset(lic.sku_id for lic in self.assigned_licenses) | frozenset(
            a.sku_id for a in self.license_assignments
        )


def _norm_guid(value: str) -> str:
    return value.strip().lower()


def _assigned_license(data: object, where: str, reader: FieldReader) -> AssignedLicense | None:
    item = FieldReader(data, where)
    sku_id = item.required_str("skuId")
    disabled = item.str_list("disabledPlans")
    reader.absorb(item)
    if not sku_id:
        return None
    return AssignedLicense(sku_id=_norm_guid(sku_id), disabled_plans=frozenset(map(_norm_guid, disabled)))


def _license_assignment(data: object, where: str, reader: FieldReader) -> LicenseAssignment | None:
    item = FieldReader(data, where)
    sku_id = item.required_str("skuId")
    raw_state = item.optional_str("state")
    raw_error = item.optional_str("error")
    group = item.optional_str("assignedByGroup")
    disabled = item.str_list("disabledPlans")
    last_updated = item.optional_datetime("lastUpdatedDateTime")
    reader.absorb(item)
    if not sku_id:
        return None
    error = parse_license_error(raw_error)
    return LicenseAssignment(
        sku_id=_norm_guid(sku_id),
        state=AssignmentState.parse(raw_state),
        assigned_by_group=_norm_guid(group) if group else None,
        error=error,
        raw_error=raw_error if error is not None else None,
        disabled_plans=frozenset(map(_norm_guid, disabled)),
        last_updated=last_updated,
    )


def person_from_graph(data: Mapping[str, Any] | object) -> Person:
    """Parse a Graph user object (as selected with USER_SELECT) into a Person.

    Raises InvalidInput naming every malformed field; missing optional fields and undocumented enum values
    are tolerated (they read as None / UNKNOWN).
    """
    reader = FieldReader(data, "user")
    user_id = reader.required_str("id")
    licenses = [
        _assigned_license(item, f"user.assignedLicenses[{i}]", reader)
        for i, item in enumerate(reader.object_list("assignedLicenses"))
    ]
    assignments = [
        _license_assignment(item, f"user.licenseAssignmentStates[{i}]", reader)
        for i, item in enumerate(reader.object_list("licenseAssignmentStates"))
    ]
    usage_location = reader.optional_str("usageLocation")
    person = Person(
        id=_norm_guid(user_id),
        user_principal_name=reader.optional_str("userPrincipalName"),
        account_enabled=reader.optional_bool("accountEnabled"),
        usage_location=usage_location.strip().upper() if usage_location else None,
        assigned_licenses=tuple(lic for lic in licenses if lic is not None),
        license_assignments=tuple(a for a in assignments if a is not None),
    )
    reader.raise_if_invalid("the Graph user object is malformed")
    return person
