"""The membershipRule preview: the subset of Entra's rule syntax Seatkeeper evaluates, as tables of cases."""

from __future__ import annotations

from typing import Any

import pytest

from seatkeeper.core.membership_rule import RuleError, matches, parse_rule, properties_of

ANA: dict[str, Any] = {
    "department": "Sales",
    "jobTitle": "Account Executive",
    "country": "Germany",
    "usageLocation": "DE",
    "companyName": "Contoso",
    "accountEnabled": True,
}
NO_DEPARTMENT: dict[str, Any] = {**ANA, "department": None}


@pytest.mark.parametrize(
    ("rule", "user", "expected"),
    [
        pytest.param('user.department -eq "Sales"', ANA, True, id="eq"),
        pytest.param('user.department -eq "sales"', ANA, True, id="eq-case-insensitive"),
        pytest.param('user.department -eq "Marketing"', ANA, False, id="eq-other"),
        pytest.param('(user.department -eq "Sales")', ANA, True, id="parenthesised"),
        pytest.param('user.department -ne "Sales"', ANA, False, id="ne"),
        pytest.param('user.usageLocation -in ["US","DE"]', ANA, True, id="in"),
        pytest.param('user.usageLocation -in ["US", "FR"]', ANA, False, id="in-miss"),
        pytest.param('user.country -notIn ["France","Spain"]', ANA, True, id="notIn"),
        pytest.param('user.department -eq "Sales" -and user.country -eq "Germany"', ANA, True, id="and"),
        pytest.param('user.department -eq "Sales" -and user.country -eq "France"', ANA, False, id="and-miss"),
        pytest.param('user.department -eq "Legal" -or user.companyName -eq "Contoso"', ANA, True, id="or"),
        pytest.param(
            'user.department -eq "Legal" -and user.country -eq "Germany"'
            ' -or user.jobTitle -eq "Account Executive"',
            ANA,
            True,
            id="and-binds-tighter-than-or",
        ),
        pytest.param(
            'user.department -eq "Legal" -and (user.country -eq "Germany" -or user.jobTitle -eq "x")',
            ANA,
            False,
            id="parentheses-override",
        ),
        pytest.param("user.department -eq null", NO_DEPARTMENT, True, id="null"),
        pytest.param("user.department -ne null", ANA, True, id="not-null"),
        pytest.param("user.accountEnabled -eq true", ANA, True, id="boolean"),
        pytest.param('user.department eq "Sales"', ANA, True, id="operator-without-hyphen"),
        pytest.param('user.department \u2013eq "Sales"', ANA, True, id="en-dash-as-in-the-docs"),
        pytest.param("user.usageLocation -eq DE", ANA, True, id="unquoted-value"),
        pytest.param('user.jobTitle -eq "Say `"hi`""', {**ANA, "jobTitle": 'Say "hi"'}, True, id="backtick"),
        pytest.param('user.department -eq "Sales"', {}, False, id="attribute-missing"),
    ],
)
def test_rule_evaluates_like_entra(rule: str, user: dict[str, Any], expected: bool) -> None:
    """Each rule in the subset gives the answer Microsoft's rule documentation describes."""
    assert matches(parse_rule(rule), user) is expected


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        pytest.param('user.displayName -eq "x"', "property 'displayName'", id="unsupported-property"),
        pytest.param('user.department -startsWith "S"', "operator '-startsWith'", id="unsupported-operator"),
        pytest.param('user.department -match "S.*"', "operator '-match'", id="match"),
        pytest.param('-not (user.department -eq "S")', "expected user.<property>", id="not"),
        pytest.param('user.department -eq "S" -and', "ends where an expression", id="dangling-and"),
        pytest.param('(user.department -eq "S"', "ends where ')'", id="unclosed-paren"),
        pytest.param('user.department -in "S"', "expected '['", id="in-without-list"),
        pytest.param('user.department -eq "S" user.country -eq "x"', "unexpected 'user.country'", id="junk"),
        pytest.param("", "empty", id="empty"),
        pytest.param('user.department -eq "' + "x" * 3100 + '"', "3072", id="too-long"),
    ],
)
def test_rule_outside_the_subset_is_refused_with_its_place(rule: str, fragment: str) -> None:
    """A rule the preview cannot evaluate faithfully is refused, never guessed."""
    with pytest.raises(RuleError, match="at character") as caught:
        parse_rule(rule)
    assert fragment in str(caught.value)


def test_position_points_at_the_offending_token() -> None:
    """The error position is where the unsupported operator starts."""
    rule = 'user.department -startsWith "S"'
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    assert caught.value.position == rule.index("-startsWith")


def test_properties_of_names_what_to_select() -> None:
    """The properties a rule reads are the ones to `$select`."""
    rule = parse_rule('user.department -eq "S" -and (user.country -eq "x" -or user.usageLocation -in ["DE"])')
    assert properties_of(rule) == frozenset({"department", "country", "usageLocation"})
