"""The policy file: the shipped example loads, defaults apply, and every error names file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.policy import DEFAULT_BASE_LICENSES, AlertChannel, Severity, UsageLocationSource
from seatkeeper.policy_file import load_policy, parse_policy
from seatkeeper.settings import APP_ROOT

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
GROUP = "5e2f0c1a-7d3b-4c8e-9a10-1b2c3d4e5f60"
MINIMAL = f"""\
version: 1
licensing_groups:
  - id: {GROUP}
    display_name: Copilot users
    copilot_sku_ids: [{COPILOT}]
"""


def _problems(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as caught:
        parse_policy(text, source="p.yaml")
    return caught.value.problems


def test_the_annotated_example_loads() -> None:
    """policies/example.yaml is valid and means what its comments say."""
    policy = load_policy(APP_ROOT / "policies" / "example.yaml")
    sales = policy.licensing_groups[0]
    assert sales.observe_only
    assert not sales.authoritative
    assert [b.sku_part_number for b in policy.base_licenses][-2:] == ["OFFICESUBSCRIPTION", "STANDARDPACK"]
    assert policy.is_protected(None, "CEO@contoso.com")
    assert [(r.channel, r.min_severity) for r in policy.alerts.routes] == [
        (AlertChannel.TEAMS, Severity.WARNING),
        (AlertChannel.EMAIL, Severity.ERROR),
    ]


def test_defaults_for_everything_left_out() -> None:
    """A file with only its groups takes the conservative defaults."""
    policy = parse_policy(MINIMAL)
    assert policy.base_licenses == DEFAULT_BASE_LICENSES
    assert policy.require_usage_location
    assert policy.usage_location_fix.source is UsageLocationSource.NONE
    assert policy.verification_deadline == timedelta(hours=24)
    assert policy.blast_radius.max_removals_per_hour == 50
    assert policy.copilot_skus.matches(COPILOT)
    assert policy.alerts.routes == ()


def test_schema_errors_name_file_line_and_field() -> None:
    """A bad group id is reported at its own line, with its path."""
    text = MINIMAL.replace(f"id: {GROUP}", "id: not-a-guid")
    assert _problems(text) == (
        "p.yaml:3:9: licensing_groups[0].id: 'not-a-guid' is not a GUID (8-4-4-4-12 hexadecimal digits)",
    )


def test_every_problem_is_reported_at_once() -> None:
    """Unknown keys and bad values anywhere are all listed, in one error."""
    text = MINIMAL + "require_usage_location: maybe\nblast_radius:\n  max_removals: 3\n"
    problems = _problems(text)
    assert len(problems) == 2
    assert problems[0].startswith("p.yaml:7:1: blast_radius: Additional properties")
    assert problems[1] == "p.yaml:6:25: require_usage_location: 'maybe' is not of type 'boolean'"


def test_missing_required_field_points_at_its_parent() -> None:
    """A group without copilot_sku_ids is reported at the group."""
    text = "\n".join(line for line in MINIMAL.splitlines() if "copilot_sku_ids" not in line)
    assert _problems(text) == ("p.yaml:3:5: licensing_groups[0]: 'copilot_sku_ids' is a required property",)


def test_duplicate_keys_are_errors() -> None:
    """YAML would keep the last of two equal keys silently; the loader refuses."""
    assert _problems(MINIMAL + "version: 1\n") == ("p.yaml:6:1: version: duplicate key",)


def test_invalid_yaml_names_the_position() -> None:
    """A syntax error gives its line and column."""
    problems = _problems("version: 1\nlicensing_groups: [\n")
    assert len(problems) == 1
    assert problems[0].startswith("p.yaml:3:1: not valid YAML")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            "base_licenses: [NOT_A_SKU]\n",
            "p.yaml:6:17: base_licenses[0]: unknown skuPartNumber 'NOT_A_SKU': give sku_id too",
            id="unknown-base-license",
        ),
        pytest.param(
            "usage_location_fix:\n  source: fixed\n",
            "p.yaml:6:1: usage_location_fix: fixed_code is required when source is fixed",
            id="fixed-without-code",
        ),
        pytest.param(
            "alerts:\n  routes:\n    - {name: a, channel: teams}\n",
            "p.yaml:8:7: alerts.routes[0]: url_setting is required for teams and webhook routes",
            id="teams-without-url-setting",
        ),
        pytest.param(
            "alerts:\n  routes:\n    - {name: a, channel: email, sender: s@x.org}\n",
            "p.yaml:8:7: alerts.routes[0]: sender and recipients are required for email routes",
            id="email-without-recipients",
        ),
        pytest.param(
            "alerts:\n  seat_headroom: {alert_below: 10, clear_at: 5}\n",
            "p.yaml:7:3: alerts.seat_headroom: clear_at must be at least alert_below",
            id="headroom-without-hysteresis",
        ),
        pytest.param(
            "copilot_skus: {sku_ids: [ad9c22b3-52d7-4e7e-973c-88121ea96436]}\n",
            f"p.yaml:5:23: licensing_groups[0].copilot_sku_ids[0]: {COPILOT} is not one of"
            " copilot_skus.sku_ids",
            id="group-sku-not-copilot",
        ),
        pytest.param(
            "copilot_unavailable_locations: [cn]\n",
            "p.yaml:6:33: copilot_unavailable_locations[0]: 'cn' is not an ISO 3166 alpha-2 country code"
            " in capitals (DE, US)",
            id="lowercase-country",
        ),
    ],
)
def test_rules_the_schema_cannot_express(extra: str, expected: str) -> None:
    """Cross-field rules are reported like schema errors, with line and field."""
    assert _problems(MINIMAL + extra) == (expected,)


def test_same_group_twice_is_an_error() -> None:
    """Two entries for one group would make observe-only and authoritative ambiguous."""
    second = "\n".join(MINIMAL.splitlines()[2:]).replace(GROUP, GROUP.upper())
    problems = _problems(MINIMAL + second + "\n")
    assert problems == ("p.yaml:6:9: licensing_groups[1].id: same group as licensing_groups[0]",)


def test_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A missing file is named."""
    with pytest.raises(ConfigurationError, match=r"none\.yaml: cannot read"):
        load_policy(tmp_path / "none.yaml")
