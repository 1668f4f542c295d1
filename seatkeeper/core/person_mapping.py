"""The one mapping from an HR record and an Entra user to the `Person` every decision reads (design §1).

| Person             | HR event `data`    | Entra user (`$select`)   | rule                    |
|--------------------|--------------------|--------------------------|-------------------------|
| id, UPN, licenses  | objectId/UPN: find | id, userPrincipalName... | Entra only              |
| employee_id        | employeeId         | employeeId               | HR, else Entra          |
| department         | department         | department               | HR, else Entra          |
| job_title          | jobTitle           | jobTitle                 | HR, else Entra          |
| employee_type      | employeeType       | employeeType             | HR, else Entra          |
| company_name       | companyName        | companyName              | HR, else Entra          |
| hr_country         | country (ISO 3166) | -                        | HR only (Entra's is free text) |
| usage_location     | -                  | usageLocation            | Entra only (*)          |

(*) the gate may set it from hr_country when the policy allows. HR wins for organisational attributes
because an HR event is newer than the directory's copy of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from seatkeeper.core.hr_events import HrRecord
from seatkeeper.core.people import USER_SELECT, Person, person_from_graph

PROFILE_SELECT: Final = ("employeeId", "department", "jobTitle", "employeeType", "companyName")
"""The Entra user attributes the person mapping reads besides USER_SELECT."""
PERSON_SELECT: Final = (*USER_SELECT, *PROFILE_SELECT)
"""Everything one `GET /users/{id}?$select=` reads for an HR person."""


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value.strip() or None if isinstance(value, str) else None


def person_from_entra(data: Mapping[str, Any]) -> Person:
    """A Graph user (selected with PERSON_SELECT) as a Person with its organisational attributes."""
    person = person_from_graph(data)
    return replace(
        person,
        employee_id=_text(data, "employeeId"),
        department=_text(data, "department"),
        job_title=_text(data, "jobTitle"),
        employee_type=_text(data, "employeeType"),
        company_name=_text(data, "companyName"),
    )


def person_from_hr(record: HrRecord, entra: Person | None) -> Person:
    """The person of an HR record, merged with the Entra user when found (None: not in Entra yet).

    Without an Entra user the id is the object id HR gave, else the UPN, else the employeeId: enough to
    evaluate the rules, never enough to write.
    """
    base = entra or Person(
        id=record.object_id or record.user_principal_name or record.employee_id,
        user_principal_name=record.user_principal_name,
    )
    return replace(
        base,
        hr_country=record.country or base.hr_country,
        employee_id=record.employee_id,
        department=record.department or base.department,
        job_title=record.job_title or base.job_title,
        employee_type=record.employee_type or base.employee_type,
        company_name=record.company_name or base.company_name,
    )


def rule_country(person: Person) -> str | None:
    """The country the rules match on: HR's, else the user's usage location."""
    return person.hr_country or person.usage_location
