"""Parsing Graph's user JSON into the Person the gate reads: tolerant of what Graph really sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.groups import GroupSnapshot, group_from_graph
from seatkeeper.core.license_errors import LicenseError
from seatkeeper.core.people import (
    AssignedLicense,
    AssignmentState,
    LicenseAssignment,
    Person,
    person_from_graph,
)

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
GROUP = "5e2f0000-0000-4000-8000-00000000c0de"
EXO = "efb87545-963c-4e0d-99df-69c6916d9eb0"


def _user(**changes: Any) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": "A1B2C3D4-0000-4000-8000-000000000001",
        "userPrincipalName": "ada@contoso.example",
        "accountEnabled": True,
        "usageLocation": "us",
        "assignedLicenses": [{"skuId": E3, "disabledPlans": [EXO.upper()]}],
        "licenseAssignmentStates": [
            {
                "skuId": E3,
                "assignedByGroup": None,
                "state": "Active",
                "error": "None",
                "disabledPlans": [EXO],
                "lastUpdatedDateTime": "2026-01-12T08:31:02Z",
            },
            {
                "skuId": COPILOT,
                "assignedByGroup": GROUP.upper(),
                "state": "Error",
                "error": "CountViolation",
                "disabledPlans": [],
                "lastUpdatedDateTime": "2026-01-12T08:31:02.1234567Z",
            },
        ],
    }
    user.update(changes)
    return user


def test_a_full_user_is_normalised() -> None:
    """Ids lower-cased, usage location upper-cased, timestamps aware, "None" read as no error."""
    stamp = datetime(2026, 1, 12, 8, 31, 2, tzinfo=UTC)
    assert person_from_graph(_user()) == Person(
        id="a1b2c3d4-0000-4000-8000-000000000001",
        user_principal_name="ada@contoso.example",
        account_enabled=True,
        usage_location="US",
        assigned_licenses=(AssignedLicense(E3, frozenset({EXO})),),
        license_assignments=(
            LicenseAssignment(E3, AssignmentState.ACTIVE, None, None, None, frozenset({EXO}), stamp),
            LicenseAssignment(
                COPILOT,
                AssignmentState.ERROR,
                GROUP,
                LicenseError.COUNT_VIOLATION,
                "CountViolation",
                frozenset(),
                stamp.replace(microsecond=123456),
            ),
        ),
    )


def test_only_id_is_required() -> None:
    """A user read without the license fields is a person with nothing known about licenses."""
    assert person_from_graph({"id": "u1"}) == Person(id="u1")


def test_nulls_read_as_empty() -> None:
    """Graph's nulls for unset fields read as None or empty, never as errors."""
    parsed = person_from_graph(
        {"id": "u1", "usageLocation": None, "assignedLicenses": None, "licenseAssignmentStates": None}
    )
    assert parsed == Person(id="u1")


@pytest.mark.parametrize(
    ("raw_state", "raw_error", "state", "error"),
    [
        pytest.param("Active", None, AssignmentState.ACTIVE, None, id="active-null-error"),
        pytest.param("ActiveWithError", "DependencyViolation", AssignmentState.ACTIVE_WITH_ERROR,
                     LicenseError.DEPENDENCY_VIOLATION, id="active-with-error"),
        pytest.param("Disabled", "None", AssignmentState.DISABLED, None, id="disabled"),
        pytest.param("Error", "Others", AssignmentState.ERROR, LicenseError.OTHER, id="others"),
        pytest.param("Error", "Weird", AssignmentState.ERROR, LicenseError.UNKNOWN, id="unknown-error"),
        pytest.param("Processing", None, AssignmentState.UNKNOWN, None, id="unknown-state"),
        pytest.param(None, None, AssignmentState.UNKNOWN, None, id="missing-state"),
    ],
)  # fmt: skip
def test_states_and_errors_are_tolerated(
    raw_state: str | None, raw_error: str | None, state: AssignmentState, error: LicenseError | None
) -> None:
    """Documented and undocumented state and error values all parse; the raw error text is kept."""
    parsed = person_from_graph(
        {"id": "u1", "licenseAssignmentStates": [{"skuId": COPILOT, "state": raw_state, "error": raw_error}]}
    )
    (assignment,) = parsed.license_assignments
    assert (assignment.state, assignment.error) == (state, error)
    assert assignment.raw_error == (raw_error if error is not None else None)


def test_every_malformed_field_is_named_at_once() -> None:
    """One InvalidInput lists every problem with its path."""
    bad = _user(
        id=None,
        accountEnabled="yes",
        assignedLicenses=[{"disabledPlans": "x"}],
        licenseAssignmentStates=[{"skuId": COPILOT, "lastUpdatedDateTime": "yesterday"}, 7],
    )
    with pytest.raises(InvalidInput) as raised:
        person_from_graph(bad)
    assert raised.value.errors == (
        "user.id: expected a non-empty string",
        "user.assignedLicenses[0].skuId: expected a non-empty string",
        "user.assignedLicenses[0].disabledPlans: expected a list of strings",
        "user.licenseAssignmentStates[0].lastUpdatedDateTime: expected an ISO 8601 timestamp",
        "user.licenseAssignmentStates[1]: expected an object, got int",
        "user.licenseAssignmentStates[1].skuId: expected a non-empty string",
        "user.accountEnabled: expected a boolean or null",
    )


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        pytest.param("userPrincipalName", 5, "user.userPrincipalName: expected a string or null", id="upn"),
        pytest.param("assignedLicenses", "E3", "user.assignedLicenses: expected a list", id="licenses"),
        pytest.param("licenseAssignmentStates", {"a": 1}, "user.licenseAssignmentStates: expected a list",
                     id="states"),
    ],
)  # fmt: skip
def test_wrong_types_are_named(field: str, value: object, problem: str) -> None:
    """A field of the wrong JSON type is reported with its path."""
    with pytest.raises(InvalidInput) as raised:
        person_from_graph({"id": "u1", field: value})
    assert raised.value.errors == (problem,)


def test_not_an_object_is_invalid() -> None:
    """A list or string where a user object belongs is invalid input."""
    with pytest.raises(InvalidInput):
        person_from_graph(["id"])


def test_person_lookups() -> None:
    """Assignments by SKU, the assigned license of a SKU, and every SKU held."""
    parsed = person_from_graph(_user())
    assert [a.sku_id for a in parsed.assignments_for(frozenset({COPILOT}))] == [COPILOT]
    assert parsed.assigned_license(COPILOT) is None
    assert parsed.held_sku_ids() == {E3, COPILOT}


@pytest.mark.parametrize(
    ("data", "writable"),
    [
        pytest.param({"securityEnabled": True, "mailEnabled": False}, True, id="assigned-security"),
        pytest.param({"groupTypes": ["Unified"], "securityEnabled": True, "mailEnabled": True}, True,
                     id="m365"),
        pytest.param({"groupTypes": ["Unified", "DynamicMembership"], "mailEnabled": True}, False,
                     id="dynamic-m365"),
        pytest.param({"groupTypes": ["DynamicMembership"], "securityEnabled": True}, False,
                     id="dynamic-security"),
        pytest.param({"securityEnabled": True, "mailEnabled": True}, False, id="mail-enabled-security"),
        pytest.param({"securityEnabled": False, "mailEnabled": True}, False, id="distribution-list"),
    ],
)  # fmt: skip
def test_group_membership_writable(data: dict[str, Any], writable: bool) -> None:
    """Only assigned security groups and Microsoft 365 groups can be written through Graph."""
    assert group_from_graph({"id": GROUP, **data}).membership_writable is writable


def test_group_parse() -> None:
    """A Graph group parses into its snapshot; a group without id is invalid."""
    assert group_from_graph({"id": GROUP.upper(), "displayName": "Sales", "securityEnabled": True}) == (
        GroupSnapshot(GROUP, "Sales", frozenset(), False, True)
    )
    with pytest.raises(InvalidInput):
        group_from_graph({"displayName": "no id"})
