"""HR rules: first match wins, equals / in / prefix on five attributes, default none, checked at load."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.hr_events import HrEventType, HrRecord
from seatkeeper.core.hr_rules import Condition, HrRule, Op, RuleChoice, RuleField, choose_group
from seatkeeper.core.people import Person
from seatkeeper.core.person_mapping import person_from_entra, person_from_hr
from seatkeeper.policy_file import parse_policy

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
EMEA = "43767abd-c08a-4ccf-b141-a0a274d91aa4"
AMER = "a3193522-ecd3-4c1a-80cd-b107376dc077"

RULES = (
    HrRule("no-contractors", (Condition(RuleField.EMPLOYEE_TYPE, Op.EQUALS, ("Contractor",)),), None),
    HrRule(
        "emea-sales",
        (
            Condition(RuleField.DEPARTMENT, Op.IN, ("Sales", "Marketing")),
            Condition(RuleField.COUNTRY, Op.IN, ("DE", "FR", "GB")),
        ),
        EMEA,
    ),
    HrRule("engineers", (Condition(RuleField.JOB_TITLE, Op.PREFIX, ("Senior ",)),), AMER),
    HrRule("contoso-us", (Condition(RuleField.COMPANY, Op.EQUALS, ("Contoso Inc",)),), AMER.upper()),
)


def person(**fields: str | None) -> Person:
    return replace(Person(id="u1"), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(
            person(department="sales", hr_country="DE"), RuleChoice(EMEA, "emea-sales"), id="in-folds"
        ),
        pytest.param(
            person(department=" Marketing ", usage_location="FR"),
            RuleChoice(EMEA, "emea-sales"),
            id="country-from-usage-location",
        ),
        pytest.param(person(department="Sales", hr_country="US"), RuleChoice(None, None), id="no-match-none"),
        pytest.param(
            person(department="Sales", hr_country="DE", employee_type="contractor"),
            RuleChoice(None, "no-contractors"),
            id="first-match-wins-explicit-none",
        ),
        pytest.param(person(job_title="senior engineer"), RuleChoice(AMER, "engineers"), id="prefix"),
        pytest.param(person(job_title="Engineer, Senior"), RuleChoice(None, None), id="prefix-only-at-start"),
        pytest.param(
            person(company_name="Contoso Inc"), RuleChoice(AMER, "contoso-us"), id="company-lowered"
        ),
        pytest.param(person(), RuleChoice(None, None), id="missing-attributes-never-match"),
    ],
)
def test_choose_group(who: Person, expected: RuleChoice) -> None:
    """The table of who gets which group."""
    assert choose_group(RULES, who) == expected


def test_a_rule_without_conditions_matches_everyone() -> None:
    """`when` left out: a catch-all (put last)."""
    assert choose_group((HrRule("all", (), EMEA),), person()) == RuleChoice(EMEA, "all")


def test_hr_fields_win_entra_fills_gaps() -> None:
    """HR's department beats Entra's; Entra's job title stays when HR has none; identity is Entra's."""
    entra = person_from_entra(
        {
            "id": "U1",
            "userPrincipalName": "ada@contoso.example",
            "usageLocation": "de",
            "department": "Finance",
            "jobTitle": "Analyst",
            "employeeId": "OLD",
        }
    )
    merged = person_from_hr(HrRecord("E1", department="Sales", country="fr"), entra)
    assert (merged.id, merged.department, merged.job_title, merged.employee_id) == (
        "u1",
        "Sales",
        "Analyst",
        "E1",
    )
    assert (merged.hr_country, merged.usage_location) == ("fr", "DE")


def test_a_person_not_in_entra_yet() -> None:
    """Without an Entra user the id falls back to HR's object id, then UPN, then employeeId."""
    assert person_from_hr(HrRecord("E9", user_principal_name="x@y.z"), None).id == "x@y.z"
    assert person_from_hr(HrRecord("E9"), None).id == "E9"


GROUPS = f"""\
version: 1
licensing_groups:
  - id: {EMEA}
    display_name: Copilot - EMEA
    copilot_sku_ids: [{COPILOT}]
"""


def test_policy_file_builds_rules_and_settings() -> None:
    """The `hr_rules` and `hr` sections become models."""
    policy = parse_policy(
        GROUPS
        + f"""\
hr_rules:
  - name: emea
    when:
      country: {{in: [DE, FR]}}
      department: {{prefix: Sal}}
    group_id: {EMEA}
  - name: rest
    group_id: null
hr:
  time_zone: Europe/Berlin
  hire_lead_days: 2
  user_wait_hours: 24
  lifecycle_workflows:
    - workflow_id: 156ce798-1eb6-4e0a-8515-e79f54d04390
      event: leaver
"""
    )
    assert policy.hr_rules == (
        HrRule(
            "emea",
            (
                Condition(RuleField.COUNTRY, Op.IN, ("DE", "FR")),
                Condition(RuleField.DEPARTMENT, Op.PREFIX, ("Sal",)),
            ),
            EMEA,
        ),
        HrRule("rest", (), None),
    )
    assert (policy.hr.time_zone, policy.hr.hire_lead_days, policy.hr.user_wait) == (
        "Europe/Berlin",
        2,
        timedelta(hours=24),
    )
    assert policy.hr.workflow_event("156CE798-1EB6-4E0A-8515-E79F54D04390") is HrEventType.LEAVER


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(
            "hr_rules:\n  - name: a\n    group_id: 00000000-0000-4000-8000-000000000000\n",
            "p.yaml:8:15: hr_rules[0].group_id: 00000000-0000-4000-8000-000000000000 is not one of licensing",
            id="unknown-group",
        ),
        pytest.param(
            "hr_rules:\n  - name: a\n    when: {department: {equals: X, prefix: Y}}\n    group_id: null\n",
            "p.yaml:8:12: hr_rules[0].when.department: {'equals': 'X', 'prefix': 'Y'} has too many",
            id="two-comparisons",
        ),
        pytest.param(
            "hr_rules:\n  - name: a\n    when: {title: {equals: X}}\n    group_id: null\n",
            "p.yaml:8:5: hr_rules[0].when: Additional properties are not allowed ('title' was unexpected)",
            id="unknown-field",
        ),
        pytest.param(
            "hr_rules:\n  - name: a\n    group_id: null\n  - name: a\n    group_id: null\n",
            "p.yaml:9:11: hr_rules[1].name: rule name 'a' is used by hr_rules[0] too",
            id="duplicate-name",
        ),
        pytest.param(
            "hr_rules:\n  - name: a\n    when:\n      country: {in: [DE, Germany]}\n    group_id: null\n",
            "p.yaml:9:26: hr_rules[0].when.country.in[1]: 'Germany' is not an ISO 3166 alpha-2 country code",
            id="country-code",
        ),
        pytest.param(
            "hr:\n  time_zone: Mars/Olympus\n",
            "p.yaml:7:14: hr.time_zone: 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin)",
            id="time-zone",
        ),
        pytest.param(
            "hr_rules:\n  - name: a\n    group_id: nope\n",
            "p.yaml:8:15: hr_rules[0].group_id: 'nope' is not a GUID (8-4-4-4-12 hexadecimal digits) or null",
            id="group-id-shape",
        ),
    ],
)
def test_policy_errors_name_line_and_field(section: str, expected: str) -> None:
    """Every HR rule problem is reported at its own line with its path."""
    with pytest.raises(ConfigurationError) as caught:
        parse_policy(GROUPS + section, source="p.yaml")
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
