"""Reads a policy file (YAML) into the core Policy, checked against the shipped JSON Schema.

Every problem is reported at once, each as `file:line:column: field: message`, using the YAML node marks,
so an admin can go straight to the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import time, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.hr_rules import hr_problems, rules_from_data, settings_from_data
from seatkeeper.core.policy import (
    KNOWN_BASE_LICENSES,
    AlertChannel,
    AlertExclusions,
    AlertRoute,
    Alerts,
    BaseLicense,
    BlastRadius,
    CopilotSkus,
    LicensingGroup,
    Policy,
    SeatHeadroom,
    Severity,
    UsageLocationFix,
    UsageLocationSource,
)

SCHEMA_PATH: Final = Path(__file__).with_name("schemas") / "policy.schema.json"

_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """Where a YAML node starts, 1-based as editors count."""

    line: int
    column: int


@cache
def policy_schema() -> Mapping[str, Any]:
    """The JSON Schema of the policy file, as shipped with the project."""
    schema: Mapping[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def load_policy(path: Path) -> Policy:
    """Read, validate and build the policy; every problem names the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError([f"{path}: cannot read the policy file ({error.strerror})"]) from error
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """The policy in `text` (YAML); `source` names the file in error messages."""
    data, marks, problems = _read_yaml(text, source)
    if not problems:
        problems = _schema_problems(data, marks, source)
    if not problems:
        problems = list(_semantic_problems(data, marks, source))
    if problems:
        raise ConfigurationError(problems)
    return _build(data)


def _read_yaml(text: str, source: str) -> tuple[Any, dict[_Path, Mark], list[str]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, [f"{source}:1:1: the file is empty"]
        marks: dict[_Path, Mark] = {}
        problems: list[str] = []
        _collect_marks(node, (), marks, problems, source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        return None, {}, [f"{source}:{where}: not valid YAML: {error.problem}"]
    finally:
        loader.dispose()
    return data, marks, problems


def _collect_marks(
    node: yaml.Node, path: _Path, marks: dict[_Path, Mark], problems: list[str], source: str
) -> None:
    """Record the start of every node by its path; report duplicate keys, which YAML would silently merge."""
    marks[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                problems.append(f"{source}:{line}:{column}: {_field((*path, key))}: duplicate key")
            seen.add(key)
            _collect_marks(value_node, (*path, key), marks, problems, source)
            if not isinstance(value_node, yaml.ScalarNode):
                # A block mapping or list starts on the next line; the field is named where its key is.
                marks[(*path, key)] = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_marks(item, (*path, index), marks, problems, source)


def _field(path: Sequence[str | int]) -> str:
    """`licensing_groups[0].id` from a JSON path."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _at(source: str, marks: Mapping[_Path, Mark], path: Sequence[str | int], message: str) -> str:
    key = tuple(path)
    while key not in marks and key:
        key = key[:-1]
    mark = marks.get(key, Mark(1, 1))
    return f"{source}:{mark.line}:{mark.column}: {_field(path)}: {message}"


def _schema_problems(data: Any, marks: Mapping[_Path, Mark], source: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(policy_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [_at(source, marks, list(e.absolute_path), _schema_message(e)) for e in errors]


def _schema_message(error: jsonschema.ValidationError) -> str:
    """A message an admin can act on; oneOf failures name the two accepted shapes."""
    if error.validator == "oneOf":
        return "must be a known skuPartNumber or an entry with sku_id and sku_part_number"
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "pattern" and "title" in schema:
        return f"{error.instance!r} is not {schema['title']}"
    return error.message


def _semantic_problems(data: Mapping[str, Any], marks: Mapping[_Path, Mark], source: str) -> Iterator[str]:
    """What the schema cannot say: uniqueness, cross-references, pairs of values."""
    groups = data.get("licensing_groups", [])
    seen_ids: dict[str, int] = {}
    copilot = {s.lower() for s in data.get("copilot_skus", {}).get("sku_ids", CopilotSkus().sku_ids)}
    for index, group in enumerate(groups):
        gid = group["id"].lower()
        if gid in seen_ids:
            yield _at(
                source,
                marks,
                ["licensing_groups", index, "id"],
                f"same group as licensing_groups[{seen_ids[gid]}]",
            )
        seen_ids.setdefault(gid, index)
        for j, sku in enumerate(group["copilot_sku_ids"]):
            if sku.lower() not in copilot:
                yield _at(
                    source,
                    marks,
                    ["licensing_groups", index, "copilot_sku_ids", j],
                    f"{sku} is not one of copilot_skus.sku_ids",
                )
    known = {b.sku_part_number for b in KNOWN_BASE_LICENSES}
    for index, entry in enumerate(data.get("base_licenses", [])):
        if isinstance(entry, str) and entry not in known:
            yield _at(
                source, marks, ["base_licenses", index], f"unknown skuPartNumber {entry!r}: give sku_id too"
            )
    fix = data.get("usage_location_fix", {})
    if fix.get("source") == "fixed" and "fixed_code" not in fix:
        yield _at(source, marks, ["usage_location_fix"], "fixed_code is required when source is fixed")
    alerts = data.get("alerts", {})
    names: set[str] = set()
    for index, route in enumerate(alerts.get("routes", [])):
        where: list[str | int] = ["alerts", "routes", index]
        if route["name"] in names:
            yield _at(source, marks, [*where, "name"], f"route name {route['name']!r} is used twice")
        names.add(route["name"])
        if route["channel"] in ("teams", "webhook") and "url_setting" not in route:
            yield _at(source, marks, where, "url_setting is required for teams and webhook routes")
        if route["channel"] == "email" and not (route.get("sender") and route.get("recipients")):
            yield _at(source, marks, where, "sender and recipients are required for email routes")
    headroom = alerts.get("seat_headroom", {})
    default = SeatHeadroom()
    if headroom.get("clear_at", default.clear_at) < headroom.get("alert_below", default.alert_below):
        yield _at(source, marks, ["alerts", "seat_headroom"], "clear_at must be at least alert_below")
    yield from (_at(source, marks, list(path), message) for path, message in hr_problems(data))


def _base_license(entry: str | Mapping[str, Any]) -> BaseLicense:
    if isinstance(entry, str):
        return next(b for b in KNOWN_BASE_LICENSES if b.sku_part_number == entry)
    sources = tuple(entry.get("sources", ()))
    return BaseLicense(entry["sku_id"], entry["sku_part_number"], entry.get("product", ""), sources)


def _build(data: Mapping[str, Any]) -> Policy:
    """The Policy from validated data; left-out keys keep the model's defaults."""
    defaults = Policy(licensing_groups=())
    skus = data.get("copilot_skus", {})
    fix = data.get("usage_location_fix", {})
    alerts = data.get("alerts", {})
    headroom = alerts.get("seat_headroom", {})
    return Policy(
        licensing_groups=tuple(
            LicensingGroup(
                id=g["id"],
                display_name=g["display_name"],
                copilot_sku_ids=tuple(g["copilot_sku_ids"]),
                observe_only=g.get("observe_only", False),
                authoritative=g.get("authoritative", False),
            )
            for g in data["licensing_groups"]
        ),
        copilot_skus=CopilotSkus(
            sku_ids=tuple(skus.get("sku_ids", defaults.copilot_skus.sku_ids)),
            service_plan_ids=tuple(skus.get("service_plan_ids", defaults.copilot_skus.service_plan_ids)),
            service_plan_names=tuple(
                skus.get("service_plan_names", defaults.copilot_skus.service_plan_names)
            ),
        ),
        base_licenses=tuple(_base_license(b) for b in data["base_licenses"])
        if "base_licenses" in data
        else defaults.base_licenses,
        base_license_service_plans=tuple(data.get("base_license_service_plans", ())),
        require_usage_location=data.get("require_usage_location", defaults.require_usage_location),
        copilot_unavailable_locations=frozenset(data.get("copilot_unavailable_locations", ())),
        usage_location_fix=UsageLocationFix(
            source=UsageLocationSource(fix.get("source", "none")), fixed_code=fix.get("fixed_code")
        ),
        protected_users=frozenset(data.get("protected_users", ())),
        verification_deadline=timedelta(hours=data["verification_deadline_hours"])
        if "verification_deadline_hours" in data
        else defaults.verification_deadline,
        blast_radius=BlastRadius(
            data.get("blast_radius", {}).get(
                "max_removals_per_hour", defaults.blast_radius.max_removals_per_hour
            )
        ),
        alerts=Alerts(
            routes=tuple(
                AlertRoute(
                    name=r["name"],
                    channel=AlertChannel(r["channel"]),
                    min_severity=Severity(r.get("min_severity", "warning")),
                    url_setting=r.get("url_setting"),
                    sender=r.get("sender"),
                    recipients=tuple(r.get("recipients", ())),
                )
                for r in alerts.get("routes", ())
            ),
            seat_headroom=SeatHeadroom(
                alert_below=headroom.get("alert_below", defaults.alerts.seat_headroom.alert_below),
                clear_at=headroom.get("clear_at", defaults.alerts.seat_headroom.clear_at),
            ),
            daily_digest=alerts.get("daily_digest", False),
            digest_time=time.fromisoformat(alerts["digest_time"])
            if "digest_time" in alerts
            else defaults.alerts.digest_time,
            exclusions=AlertExclusions(
                sku_ids=frozenset(alerts.get("exclusions", {}).get("sku_ids", ())),
                group_ids=frozenset(alerts.get("exclusions", {}).get("group_ids", ())),
                users=frozenset(alerts.get("exclusions", {}).get("users", ())),
            ),
        ),
        hr_rules=rules_from_data(data.get("hr_rules", ())),
        hr=settings_from_data(data.get("hr", {})),
    )
