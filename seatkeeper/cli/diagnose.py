"""`seatkeeper diagnose <upn|object id|employeeId> [--json]`: why does (or doesn't) this person have Copilot?

Step by step — found? account enabled? base license active? usage location? in which licensing groups?
Copilot state per SKU and why — then the gate's verdict for each licensing group, from the same `decide()`
the service runs, and exactly what to do. Reads only; changes nothing in the tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final, TextIO

from handlers.heartbeat import open_incident_keys
from handlers.tenant_reads import TenantReads
from seatkeeper.cli.admin_services import (
    CONFIGURATION,
    FOUND_PROBLEMS,
    OK,
    UNREACHABLE,
    ServicesFactory,
    default_factory,
    opened,
    print_json,
)
from seatkeeper.core.base_licenses import check_base_license
from seatkeeper.core.errors import ConfigurationError, NotFound, TransientError
from seatkeeper.core.gate import Outcome, decide
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.incidents import Scope
from seatkeeper.core.license_errors import entry_for, parse_license_error
from seatkeeper.core.member_sets import MemberSets
from seatkeeper.core.people import USER_SELECT, Person, person_from_graph
from seatkeeper.core.policy import Policy
from seatkeeper.core.reasons import BLOCKERS, Reason
from seatkeeper.core.seat_ports import PendingPerson
from seatkeeper.core.skus import SkuCatalogue

_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Step:
    """One question of the diagnosis: its answer (`ok` None when it does not apply) and the detail."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class CopilotState:
    """One Copilot assignment of the person: SKU, source (a group or direct), state, error and meaning."""

    sku: str
    source: str
    state: str
    error: str | None
    meaning: str


@dataclass(frozen=True)
class GroupVerdict:
    """The gate's answer for one licensing group (member or not), from `decide()`."""

    group_id: str
    group: str
    member: bool
    outcome: str
    reasons: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class Diagnosis:
    """Everything `diagnose` found, in the order an admin reads it."""

    query: str
    found: bool
    has_copilot: bool
    user_id: str | None
    user_principal_name: str | None
    steps: tuple[Step, ...]
    copilot: tuple[CopilotState, ...]
    groups: tuple[GroupVerdict, ...]
    pending: tuple[str, ...]
    open_incidents: tuple[str, ...]
    actions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The diagnosis as a JSON-compatible document."""
        return asdict(self)


def not_found(query: str) -> Diagnosis:
    """The diagnosis of someone Graph does not know."""
    return Diagnosis(
        query=query,
        found=False,
        has_copilot=False,
        user_id=None,
        user_principal_name=None,
        steps=(Step("found", False, f"No user matches {query!r} (object id, UPN or employeeId)."),),
        copilot=(),
        groups=(),
        pending=(),
        open_incidents=(),
        actions=(
            "Check the spelling; a joiner's account may not exist yet (HR events wait for it), or the "
            "account was deleted.",
        ),
    )


def _sku_label(catalogue: SkuCatalogue, sku_id: str) -> str:
    sku = catalogue.get(sku_id)
    return sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id


def copilot_skus(policy: Policy, catalogue: SkuCatalogue) -> tuple[str, ...]:
    """The Copilot SKUs: named by the licensing groups, or matched in the catalogue by the policy."""
    found = {s.lower() for g in policy.licensing_groups for s in g.copilot_sku_ids}
    for sku in catalogue.skus:
        ids = tuple(p.service_plan_id for p in sku.service_plans)
        names = tuple(p.service_plan_name for p in sku.service_plans)
        if policy.copilot_skus.matches(sku.sku_id, ids, names):
            found.add(sku.sku_id)
    return tuple(sorted(found))


def _copilot_states(
    person: Person, policy: Policy, catalogue: SkuCatalogue, group_names: Mapping[str, str]
) -> tuple[CopilotState, ...]:
    wanted = frozenset(copilot_skus(policy, catalogue))
    states: list[CopilotState] = []
    for a in person.assignments_for(wanted):
        source = (
            "direct"
            if a.is_direct
            else f"group {group_names.get(a.assigned_by_group or '', a.assigned_by_group)}"
        )
        if a.error is not None:
            entry = entry_for(a.error)
            meaning = f"{entry.title}: {entry.meaning}"
        elif a.is_active:
            meaning = "The license works."
        else:
            meaning = "Being applied by group-based licensing (or disabled)."
        states.append(
            CopilotState(
                _sku_label(catalogue, a.sku_id),
                source,
                a.state.value,
                a.raw_error or (a.error.value if a.error else None),
                meaning,
            )
        )
    if not states:
        for lic in person.assigned_licenses:
            if lic.sku_id in wanted:
                states.append(
                    CopilotState(
                        _sku_label(catalogue, lic.sku_id), "assigned", "Active", None, "The license works."
                    )
                )
    return tuple(states)


def _person_steps(person: Person, policy: Policy, catalogue: SkuCatalogue) -> tuple[list[Step], bool]:
    """Found, account, base license and usage location; and whether a base license works."""
    label = person.user_principal_name or person.id
    steps: list[Step] = [Step("found", True, f"{label} ({person.id})")]
    enabled = person.account_enabled is not False
    steps.append(Step("account enabled", enabled, "enabled" if enabled else "the account is disabled"))
    base = check_base_license(person, catalogue, policy)
    base_detail = "; ".join(f.value for f in base.evidence) or "no base license on the policy's allow-list"
    if base.warnings:
        base_detail += " (warning: " + ", ".join(entry_for(w).title for w in base.warnings) + ")"
    steps.append(Step("base license active", base.qualifies, base_detail))
    location = person.usage_location
    if location is None:
        ok_location = not policy.require_usage_location
        detail = "none set: group-based licensing uses the tenant's country" + (
            "" if ok_location else "; the policy requires one before admitting"
        )
    else:
        ok_location = policy.copilot_sold_in(location)
        detail = location + ("" if ok_location else " (Copilot is not sold there, per the policy)")
    steps.append(Step("usage location", ok_location, detail))
    return steps, base.qualifies


def _verdicts(
    person: Person,
    *,
    policy: Policy,
    catalogue: SkuCatalogue,
    groups: Mapping[str, GroupSnapshot | None],
    group_names: Mapping[str, str],
    member_of: frozenset[str],
    free_seats: Mapping[str, int],
    now: datetime,
) -> tuple[list[GroupVerdict], list[str]]:
    """The gate's verdict per licensing group, and the remediation of every blocker it names."""
    verdicts: list[GroupVerdict] = []
    actions: list[str] = []
    for licensing in policy.licensing_groups:
        gid = licensing.id.lower()
        snapshot = groups.get(gid)
        if snapshot is None:
            verdicts.append(
                GroupVerdict(gid, group_names[gid], False, "missing", (), "The group does not exist.")
            )
            continue
        decision = decide(
            person,
            group=snapshot,
            policy=policy,
            catalogue=catalogue,
            free_seats=free_seats.get(gid, 0),
            now=now,
            why="diagnose",
        )
        reasons = tuple(r.value for r in decision.reasons)
        verdicts.append(
            GroupVerdict(
                gid, group_names[gid], gid in member_of, decision.outcome.value, reasons, decision.summary
            )
        )
        if decision.outcome is Outcome.BLOCKED:
            actions += [entry_for(r).admin_does for r in decision.reasons if r in BLOCKERS]
    return verdicts, actions


def _license_actions(copilot: Sequence[CopilotState], has_copilot: bool, base_works: bool) -> list[str]:
    actions: list[str] = []
    for state in copilot:
        error = parse_license_error(state.error) if state.error is not None else None
        if error is not None:
            actions.append(entry_for(error).admin_does)
    if has_copilot and not base_works:
        actions.append(entry_for(Reason.COPILOT_WILL_NOT_WORK).admin_does)
    return actions


def diagnose_person(
    query: str,
    person: Person,
    *,
    policy: Policy,
    catalogue: SkuCatalogue,
    groups: Mapping[str, GroupSnapshot | None],
    member_of: frozenset[str],
    free_seats: Mapping[str, int],
    pending: Sequence[PendingPerson],
    open_incidents: Sequence[str],
    now: datetime,
) -> Diagnosis:
    """The diagnosis of one person from what was read (pure: the same `decide()` as the service)."""
    steps, base_works = _person_steps(person, policy, catalogue)
    group_names = {
        g.id.lower(): (
            snap.display_name if (snap := groups.get(g.id.lower())) and snap.display_name else None
        )
        or g.display_name
        or g.id
        for g in policy.licensing_groups
    }
    in_groups = sorted(group_names[g] for g in member_of if g in group_names)
    steps.append(
        Step(
            "in licensing groups",
            bool(in_groups) or None,
            ", ".join(in_groups) if in_groups else "member of none of the policy's licensing groups",
        )
    )
    copilot = _copilot_states(person, policy, catalogue, group_names)
    has_copilot = any(c.state in ("Active", "ActiveWithError") for c in copilot)
    shown = "; ".join(
        f"{c.sku} from {c.source}: {c.state}" + (f" ({c.error})" if c.error else "") for c in copilot
    )
    steps.append(Step("Copilot license", has_copilot, shown or "none assigned"))
    verdicts, gate_actions = _verdicts(
        person,
        policy=policy,
        catalogue=catalogue,
        groups=groups,
        group_names=group_names,
        member_of=member_of,
        free_seats=free_seats,
        now=now,
    )
    actions = _license_actions(copilot, has_copilot, base_works)
    if not in_groups and not has_copilot:
        # Not in any group: what the gate would block on is what to fix.
        actions += gate_actions
        eligible = [v.group for v in verdicts if v.outcome == Outcome.ELIGIBLE.value]
        if not actions and eligible:
            actions.append(
                f"Nothing blocks the person: admit them to {eligible[0]} (`seatkeeper admit`) or let the "
                "HR rules do it."
            )
    elif in_groups and not has_copilot and not actions:
        actions.append(
            "The license is still being applied: wait for verification (`seatkeeper diagnose` again in a "
            "few minutes); past the verification deadline Seatkeeper raises a stuck-license alert."
        )
    if has_copilot and not actions:
        actions.append("Nothing: the person has a working Copilot license.")
    return Diagnosis(
        query=query,
        found=True,
        has_copilot=has_copilot,
        user_id=person.id,
        user_principal_name=person.user_principal_name,
        steps=tuple(steps),
        copilot=copilot,
        groups=tuple(verdicts),
        pending=tuple(
            f"{group_names.get(p.group_id.lower(), p.group_id)}: {', '.join(r.value for r in p.reasons)} "
            f"(since {p.since.isoformat(timespec='minutes')})"
            for p in pending
        ),
        open_incidents=tuple(open_incidents),
        actions=tuple(dict.fromkeys(actions)),
    )


# --- I/O: read what the diagnosis needs through the service's own adapters --------------------------------


async def find_person(reads: TenantReads, query: str) -> Person | None:
    """By object id or UPN with one read; otherwise by employeeId (`$filter`, first match)."""
    text = query.strip()
    if _GUID.match(text) or "@" in text:
        return (await reads.people([text])).get(text)
    escaped = text.replace("'", "''")
    body = await reads.graph.get(
        "/users", params={"$filter": f"employeeId eq '{escaped}'", "$select": ",".join(USER_SELECT)}
    )
    found = body.get("value") or []
    return person_from_graph(found[0]) if found else None


async def gather(query: str, factory: ServicesFactory) -> Diagnosis:
    """Read the person, the catalogue, the licensing groups, seats and Seatkeeper's own records."""
    async with opened(factory) as services:
        deps = services.license
        if deps is None or services.state is None:
            raise ConfigurationError(["the license and state adapters are not built"])
        reads = deps.reads
        person = await find_person(reads, query)
        if person is None:
            return not_found(query)
        now = deps.clock.now()
        catalogue = await reads.catalogue(fresh=True)
        groups: dict[str, GroupSnapshot | None] = {}
        free: dict[str, int] = {}
        member_of = {a.assigned_by_group for a in person.license_assignments if a.assigned_by_group}
        members = MemberSets(services.state)
        for licensing in deps.policy.licensing_groups:
            gid = licensing.id.lower()
            try:
                groups[gid] = await reads.group(gid)
            except NotFound:
                groups[gid] = None
            free[gid] = await deps.seats.headroom(catalogue, tuple(licensing.copilot_sku_ids), now=now)
            sync = await members.load(gid)
            if sync is not None and person.id in sync.members:
                member_of.add(gid)
        pending = [p for p in await deps.seats.pending() if p.user_id == person.id]
        incidents = [
            f"{k.problem} ({k.subject})"
            for k in sorted(await open_incident_keys(services.state, Scope.USER), key=lambda k: k.text)
            if k.subject.split("/")[0] == person.id
        ]
        return diagnose_person(
            query,
            person,
            policy=deps.policy,
            catalogue=catalogue,
            groups=groups,
            member_of=frozenset(g for g in member_of if deps.policy.group(g) is not None),
            free_seats=free,
            pending=pending,
            open_incidents=incidents,
            now=now,
        )


def _mark(ok: bool | None) -> str:
    return {True: "[ok]", False: "[!!]", None: "[--]"}[ok]


def render(diagnosis: Diagnosis, out: TextIO) -> None:
    """The diagnosis as text, step by step."""
    verdict = "has Copilot" if diagnosis.has_copilot else "does not have Copilot"
    who = diagnosis.user_principal_name or diagnosis.user_id or diagnosis.query
    print(f"{who}: {verdict}" if diagnosis.found else f"{diagnosis.query}: not found", file=out)
    for step in diagnosis.steps:
        print(f"  {_mark(step.ok)} {step.name}: {step.detail}", file=out)
    for state in diagnosis.copilot:
        print(f"       {state.sku} ({state.source}): {state.meaning}", file=out)
    if diagnosis.groups:
        print("  Gate, per licensing group:", file=out)
        for v in diagnosis.groups:
            member = " (member)" if v.member else ""
            print(f"    {v.group}{member}: {v.outcome} — {v.summary}", file=out)
    for line in diagnosis.pending:
        print(f"  Pending: {line}", file=out)
    for line in diagnosis.open_incidents:
        print(f"  Open incident: {line}", file=out)
    print("  What to do:", file=out)
    for action in diagnosis.actions or ("Nothing found to fix.",):
        print(f"    - {action}", file=out)


async def run(args: argparse.Namespace, factory: ServicesFactory, out: TextIO) -> int:
    """Diagnose; 0 when the person has Copilot, 1 when not (or not found), 2/3 on configuration/reach."""
    try:
        diagnosis = await gather(args.person, factory)
    except ConfigurationError as error:
        print(f"configuration: {'; '.join(error.problems)}", file=out)
        return CONFIGURATION
    except TransientError as error:
        print(f"unreachable, try again: {type(error).__name__}", file=out)
        return UNREACHABLE
    if args.json:
        print_json(diagnosis.to_json(), out)
    else:
        render(diagnosis, out)
    return OK if diagnosis.has_copilot else FOUND_PROBLEMS


def register(subparsers: Any) -> None:
    """Add `diagnose PERSON [--json]`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagnose",
        help="explain whether a person has Copilot and, if not, why and what to do",
        description=__doc__,
    )
    parser.add_argument("person", help="UPN, object id or employeeId")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Entry point of `seatkeeper diagnose`."""
    return asyncio.run(run(args, default_factory, sys.stdout))
