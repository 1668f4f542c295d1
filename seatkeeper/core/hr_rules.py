"""The HR rules of the policy: which Copilot group, if any, a person belongs in, and the HR settings
(time zone of date-only values, hire lead days, how long to wait for the Entra account, workflow mapping).

Rules are tried top to bottom; the first whose every condition matches wins; no match means no Copilot
group (the default is none, never a guess). Conditions compare case-insensitively: equals, in, prefix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from seatkeeper.core.hr_events import HrEventType
from seatkeeper.core.people import Person
from seatkeeper.core.person_mapping import rule_country


class RuleField(StrEnum):
    """The person attributes a rule may match on (policy keys)."""

    DEPARTMENT = "department"
    JOB_TITLE = "job_title"
    COUNTRY = "country"
    EMPLOYEE_TYPE = "employee_type"
    COMPANY = "company"

    def value_of(self, person: Person) -> str | None:
        """The person's value of this attribute (country: HR's, else the usage location)."""
        match self:
            case RuleField.DEPARTMENT:
                return person.department
            case RuleField.JOB_TITLE:
                return person.job_title
            case RuleField.COUNTRY:
                return rule_country(person)
            case RuleField.EMPLOYEE_TYPE:
                return person.employee_type
            case RuleField.COMPANY:
                return person.company_name


class Op(StrEnum):
    """How a condition compares: the whole value, one of a list, or the start of the value."""

    EQUALS = "equals"
    IN = "in"
    PREFIX = "prefix"


def _fold(value: str) -> str:
    return value.strip().casefold()


@dataclass(frozen=True)
class Condition:
    """`field op values`; a person without the attribute never matches."""

    field: RuleField
    op: Op
    values: tuple[str, ...]

    def matches(self, person: Person) -> bool:
        """True when the person's attribute satisfies this condition."""
        value = self.field.value_of(person)
        if value is None or not value.strip():
            return False
        folded = _fold(value)
        if self.op is Op.PREFIX:
            return any(folded.startswith(_fold(v)) for v in self.values)
        return folded in {_fold(v) for v in self.values}


@dataclass(frozen=True)
class HrRule:
    """A named rule: when every condition holds, the person belongs in `group_id` (None: no Copilot)."""

    name: str
    conditions: tuple[Condition, ...]
    group_id: str | None

    def matches(self, person: Person) -> bool:
        """All conditions hold (a rule without conditions matches everyone)."""
        return all(c.matches(person) for c in self.conditions)


@dataclass(frozen=True)
class RuleChoice:
    """The group the rules chose (None: none) and the rule that chose it (None: no rule matched)."""

    group_id: str | None
    rule: str | None


def choose_group(rules: Sequence[HrRule], person: Person) -> RuleChoice:
    """First match wins; no match is the explicit default: no Copilot group."""
    for rule in rules:
        if rule.matches(person):
            return RuleChoice(rule.group_id.lower() if rule.group_id else None, rule.name)
    return RuleChoice(None, None)


DEFAULT_USER_WAIT: Final = timedelta(hours=72)
DEFAULT_USER_RECHECK: Final = timedelta(minutes=60)
DEFAULT_MOVE_RECHECK: Final = timedelta(minutes=10)


@dataclass(frozen=True)
class HrSettings:
    """How onboarding treats HR events (the policy's `hr` section)."""

    time_zone: str = "UTC"
    # Act this many days before the hire date (a joiner gets Copilot ready before day one).
    hire_lead_days: int = 0
    # A joiner whose Entra account does not exist yet is looked for every `user_recheck` until `user_wait`.
    user_wait: timedelta = DEFAULT_USER_WAIT
    user_recheck: timedelta = DEFAULT_USER_RECHECK
    # How often a mover's new license and a leaver's returned seat are looked at.
    move_recheck: timedelta = DEFAULT_MOVE_RECHECK
    # Lifecycle Workflows: workflow id -> joiner or leaver.
    workflows: Mapping[str, HrEventType] = field(default_factory=dict)

    def zone(self) -> ZoneInfo:
        """The time zone date-only values are read in."""
        return ZoneInfo(self.time_zone)

    def workflow_event(self, workflow_id: str) -> HrEventType | None:
        """The HR event a Lifecycle Workflow stands for, or None when the policy does not map it."""
        return self.workflows.get(workflow_id.strip().lower())


def rules_from_data(raw: Sequence[Mapping[str, Any]]) -> tuple[HrRule, ...]:
    """The rules of a validated `hr_rules` list."""
    return tuple(
        HrRule(
            name=str(item["name"]),
            conditions=tuple(
                Condition(RuleField(name), Op(op), tuple(value) if isinstance(value, list) else (str(value),))
                for name, test in item.get("when", {}).items()
                for op, value in test.items()
            ),
            group_id=str(item["group_id"]).lower() if item.get("group_id") else None,
        )
        for item in raw
    )


def settings_from_data(raw: Mapping[str, Any]) -> HrSettings:
    """The settings of a validated `hr` section (left-out keys keep their defaults)."""
    defaults = HrSettings()
    return HrSettings(
        time_zone=str(raw.get("time_zone", defaults.time_zone)),
        hire_lead_days=int(raw.get("hire_lead_days", defaults.hire_lead_days)),
        user_wait=timedelta(hours=raw["user_wait_hours"]) if "user_wait_hours" in raw else defaults.user_wait,
        user_recheck=timedelta(minutes=raw["user_recheck_minutes"])
        if "user_recheck_minutes" in raw
        else defaults.user_recheck,
        move_recheck=timedelta(minutes=raw["move_recheck_minutes"])
        if "move_recheck_minutes" in raw
        else defaults.move_recheck,
        workflows={
            str(w["workflow_id"]).lower(): HrEventType(str(w["event"]))
            for w in raw.get("lifecycle_workflows", ())
        },
    )


Problem = tuple[tuple[str | int, ...], str]


def hr_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    """What the schema cannot say about `hr_rules` and `hr` (as JSON path, message), on valid shapes."""
    groups = {str(g["id"]).lower() for g in data.get("licensing_groups", ())}
    names: dict[str, int] = {}
    for index, rule in enumerate(data.get("hr_rules", ())):
        name = str(rule["name"])
        if name in names:
            yield ("hr_rules", index, "name"), f"rule name {name!r} is used by hr_rules[{names[name]}] too"
        names.setdefault(name, index)
        group_id = rule.get("group_id")
        if group_id and str(group_id).lower() not in groups:
            yield ("hr_rules", index, "group_id"), f"{group_id} is not one of licensing_groups"
        country = rule.get("when", {}).get("country", {})
        for op in ("equals", "in"):
            values = country.get(op)
            for j, value in enumerate(values if isinstance(values, list) else [values] if values else []):
                if len(str(value)) != 2 or not str(value).isalpha():
                    where: tuple[str | int, ...] = ("hr_rules", index, "when", "country", op)
                    yield (
                        (*where, j) if isinstance(values, list) else where,
                        (f"{value!r} is not an ISO 3166 alpha-2 country code"),
                    )
    hr = data.get("hr", {})
    zone = hr.get("time_zone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            yield ("hr", "time_zone"), f"{zone!r} is not an IANA time zone (e.g. Europe/Berlin)"
    seen: dict[str, int] = {}
    for index, workflow in enumerate(hr.get("lifecycle_workflows", ())):
        wid = str(workflow["workflow_id"]).lower()
        if wid in seen:
            yield (
                ("hr", "lifecycle_workflows", index, "workflow_id"),
                f"same workflow as hr.lifecycle_workflows[{seen[wid]}]",
            )
        seen.setdefault(wid, index)
