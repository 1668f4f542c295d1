"""The license error catalogue: tolerant parsing of Graph's error text, its entries, the docs page."""

from __future__ import annotations

from pathlib import Path

import pytest

from seatkeeper.core.incidents import Scope
from seatkeeper.core.license_alerts import alerted_findings, finding_alert
from seatkeeper.core.license_errors import (
    FINDINGS,
    LICENSE_ERRORS,
    LicenseError,
    entry_for,
    parse_license_error,
    render_markdown,
)
from seatkeeper.core.people import Person
from seatkeeper.core.reasons import BLOCKERS, WARNINGS, Reason
from tests.unit.test_gate_builders import NOW

DOC = Path(__file__).resolve().parents[2] / "docs" / "license-errors.md"
REGENERATE = (
    '.venv/bin/python -c "from seatkeeper.core.license_errors import render_markdown; '
    "print(render_markdown(), end='')\" > docs/license-errors.md"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, None, id="null-is-success"),
        pytest.param("None", None, id="string-None-is-success"),
        pytest.param("none", None, id="string-none-any-case"),
        pytest.param("", None, id="empty-is-success"),
        pytest.param("CountViolation", LicenseError.COUNT_VIOLATION, id="count"),
        pytest.param("MutuallyExclusiveViolation", LicenseError.MUTUALLY_EXCLUSIVE_VIOLATION, id="exclusive"),
        pytest.param("DependencyViolation", LicenseError.DEPENDENCY_VIOLATION, id="dependency"),
        pytest.param(
            "ProhibitedInUsageLocationViolation",
            LicenseError.PROHIBITED_IN_USAGE_LOCATION_VIOLATION,
            id="usage-location",
        ),
        pytest.param("UniquenessViolation", LicenseError.UNIQUENESS_VIOLATION, id="uniqueness"),
        pytest.param("Other", LicenseError.OTHER, id="other"),
        pytest.param("Others", LicenseError.OTHER, id="others-old-spelling"),
        pytest.param(" countviolation ", LicenseError.COUNT_VIOLATION, id="case-and-space-tolerant"),
        pytest.param("DuplicateServicePlans", LicenseError.UNKNOWN, id="article-invented-code-is-unknown"),
        pytest.param("SomethingNew", LicenseError.UNKNOWN, id="undocumented-is-unknown"),
    ],
)
def test_parse_license_error(raw: str | None, expected: LicenseError | None) -> None:
    """Graph's error text maps onto the catalogue without ever raising."""
    assert parse_license_error(raw) is expected


def test_every_license_error_has_an_entry() -> None:
    """Each documented error value (and the unknown bucket) has meaning, action and remediation."""
    assert set(LICENSE_ERRORS) == set(LicenseError)
    for error, entry in LICENSE_ERRORS.items():
        assert all((entry.title, entry.meaning, entry.seatkeeper_does, entry.admin_does)), error


def test_every_blocker_warning_and_alerted_finding_has_an_entry() -> None:
    """Whatever the gate or verification can report to an admin is in the catalogue."""
    needed = (
        BLOCKERS | WARNINGS | alerted_findings() | {Reason.LICENSE_STUCK, Reason.COPILOT_ASSIGNED_DIRECTLY}
    )
    assert needed <= set(FINDINGS)
    for reason in needed:
        assert entry_for(reason).admin_does, reason


def test_finding_codes_are_the_reason_values() -> None:
    """The code column shows exactly the machine-readable reason stored and logged."""
    assert all(entry.code == reason.value for reason, entry in FINDINGS.items())


def test_license_error_codes_are_graphs_values() -> None:
    """The code column shows Graph's own spelling."""
    known = {e: entry for e, entry in LICENSE_ERRORS.items() if e is not LicenseError.UNKNOWN}
    assert all(entry.code == error.value for error, entry in known.items())


def test_findings_without_an_alert_return_none() -> None:
    """A protected user is recorded, never alerted."""
    assert Reason.PROTECTED_USER not in alerted_findings()
    assert finding_alert(Reason.PROTECTED_USER, person=Person(id="u1"), now=NOW, sentence="x") is None


def test_group_finding_without_a_group_falls_back_to_the_user() -> None:
    """A group-scoped finding raised without a group id is keyed on the user instead."""
    signal = finding_alert(Reason.GROUP_NOT_WRITABLE, person=Person(id="u1"), now=NOW, sentence="x")
    assert signal is not None
    assert (signal.key.scope, signal.key.subject, signal.user_id) == (Scope.USER, "u1", "u1")


def test_docs_page_is_the_catalogue() -> None:
    """docs/license-errors.md is generated from the catalogue; regenerate it when the data changes."""
    assert DOC.read_text(encoding="utf-8") == render_markdown(), f"regenerate with: {REGENERATE}"


def test_docs_page_has_one_row_per_entry() -> None:
    """Every entry is a table row with four cells (no stray pipe breaks the table)."""
    rows = [line for line in render_markdown().splitlines() if line.startswith("| ") and "---" not in line]
    data_rows = [r for r in rows if not r.startswith("| code |")]
    assert len(data_rows) == len(LICENSE_ERRORS) + len(FINDINGS)
    assert all(r.replace("\\|", "").count("|") == 5 for r in data_rows)
