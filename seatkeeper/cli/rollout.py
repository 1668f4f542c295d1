"""`seatkeeper rollout FILE.csv --group G [--dry-run] [--json|--csv]`: license a list of people safely.

Each listed person (UPN, object id or employeeId; the CSV format is in `seatkeeper/core/rollout.py`) is
gated through the same `decide()` as the service; the table says who is eligible, blocked and why, or
already licensed, with the seats the rollout uses. Without `--dry-run` the list is recorded as a named
rollout (a rule the HR rules and reconciliation read, so later decisions keep these people) and the
eligible people are admitted through the `admit` path, 20 a request, writes paced by the Graph client
below the write quota. People blocked by seats alone go through the same path, which puts them on the
first-come-first-served waitlist (served when seats free up, as an HR joiner would be); the table gives
each one's place ("waiting for a seat (position N)"). Progress is saved after every bulk add: run the
same command again after an interruption and it resumes without doing anything twice.

`seatkeeper rollout list` shows recorded rollouts with their people by state (people left waiting for a
seat whom the waitlist has added since count as `added_from_waitlist`); `seatkeeper rollout remove NAME`
forgets one (its members stay in the group; removals go through the HR/reconciliation path with its safety
guards).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import quote

from handlers.admission import Result, admit
from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import user_path
from seatkeeper.core.errors import (
    ConfigurationError,
    NotFound,
    PermanentError,
    PolicyConflict,
    Throttled,
    TransientError,
    Unavailable,
)
from seatkeeper.core.gate import Decision, Outcome, decide
from seatkeeper.core.graph_port import GraphPort, GraphRequest
from seatkeeper.core.license_messages import AdmitRequest
from seatkeeper.core.person_mapping import PERSON_SELECT, person_from_entra
from seatkeeper.core.reasons import Reason
from seatkeeper.core.rollout import (
    BadRow,
    IdKind,
    ListedPerson,
    PersonPlan,
    Planned,
    RolloutList,
    check_name,
    chunks,
    parse_rollout_csv,
    remaining,
    totals,
    waitlist_positions,
)
from seatkeeper.core.rollout_records import RolloutHeader, RolloutRecords
from seatkeeper.core.seat_ports import SeatStore

RESOLVE_CHUNK: Final = 100  # people resolved per `$batch` round (the client sends 20 a request)
EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3

_OUTCOME: Final = {
    Outcome.ELIGIBLE: Planned.TO_ADMIT,
    Outcome.BLOCKED: Planned.BLOCKED,
    Outcome.ALREADY_LICENSED: Planned.ALREADY_LICENSED,
    Outcome.ALREADY_MEMBER: Planned.ALREADY_MEMBER,
}
_RESULT: Final = {
    Result.ADDED: Planned.ADDED,
    Result.ALREADY_MEMBER: Planned.ALREADY_MEMBER,
    Result.ALREADY_LICENSED: Planned.ALREADY_LICENSED,
    Result.PENDING: Planned.PENDING,
    Result.OBSERVED: Planned.OBSERVED,
    Result.NOT_FOUND: Planned.NOT_FOUND,
    Result.REFUSED: Planned.REFUSED,
}

Progress = Callable[[int, int], None]


def planned_state(decision: Decision) -> Planned:
    """What the rollout does with the gate's decision: eligible people, and people blocked by seats alone
    (admission puts them on the waitlist), go through the `admit` path; everyone else is reported."""
    if decision.outcome is Outcome.BLOCKED and decision.reasons == (Reason.NO_SEAT,):
        return Planned.TO_WAITLIST
    return _OUTCOME[decision.outcome]


def register(subparsers: Any) -> None:
    """Add `rollout FILE --group G`, `rollout list` and `rollout remove NAME`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rollout",
        help="gate and license a list of people (CSV); list or remove recorded rollouts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", help="the CSV file, or `list`, or `remove` (a file named so: ./list)")
    parser.add_argument("name", nargs="?", help="with `remove`: the rollout to forget")
    parser.add_argument("--group", help="the Copilot licensing group's object id (with a file)")
    parser.add_argument("--name", dest="rollout_name", help="the rollout's name (default: the file's stem)")
    parser.add_argument("--dry-run", action="store_true", help="gate and report only; write nothing")
    parser.add_argument("--reason", default=None, help="recorded with each add (default: rollout <name>)")
    parser.add_argument("--requested-by", default=None, help="who asks (default: cli:<login name>)")
    parser.add_argument(
        "--allow-bad-rows", action="store_true", help="go ahead although some rows are bad (still reported)"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document")
    output.add_argument("--csv", action="store_true", help="one CSV row per person")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the chosen action; exit 0 done, 1 failed, 2 bad input or settings, 3 interrupted (rerun)."""
    return asyncio.run(run(args, sys.stdout, sys.stderr))


def default_name(path: Path) -> str:
    """The rollout name from a file name: `Pilot wave 1.csv` -> `Pilot-wave-1`."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._")[:63]
    return stem or "rollout"


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Build the service's adapters, act, close them."""
    from seatkeeper.bootstrap import build_services

    if args.target not in ("list", "remove") and not args.group:
        print("--group is required with a file", file=err)
        return EXIT_BAD_INPUT
    try:
        services = build_services()
    except ConfigurationError as error:
        print(f"configuration problems: {'; '.join(error.problems)}", file=err)
        return EXIT_BAD_INPUT
    try:
        if services.license is None or services.state is None:
            print("the license handlers or the state store are not wired", file=err)
            return EXIT_FAILED
        records = RolloutRecords(services.state)
        if args.target == "list":
            return await list_rollouts(records, out, as_json=args.json, seats=services.license.seats)
        if args.target == "remove":
            return await remove_rollout(records, args.name or "", out, err)
        return await rollout_file(args, services.license, records, out, err)
    finally:
        await services.aclose()


# --- resolving and gating --------------------------------------------------------------------------------


def _lookup(listed: ListedPerson) -> GraphRequest:
    if listed.kind is IdKind.EMPLOYEE_ID:
        value = listed.value.replace("'", "''")
        query = (
            f"$filter={quote(f'employeeId eq {chr(39)}{value}{chr(39)}')}&$select={','.join(PERSON_SELECT)}"
        )
        return GraphRequest("GET", f"/users?{query}")
    return GraphRequest("GET", user_path(listed.value, PERSON_SELECT))


async def resolve(graph: GraphPort, people: Sequence[ListedPerson]) -> list[Mapping[str, Any] | str]:
    """Each listed person's Graph user (selected for the gate and rules), or why there is none."""
    answers = await graph.batch([_lookup(p) for p in people])
    found: list[Mapping[str, Any] | str] = []
    for listed, answer in zip(people, answers, strict=True):
        body = answer.body or {}
        if answer.status == 429:
            raise Throttled(f"user lookups throttled (line {listed.line})", retry_after=None)
        if answer.status >= 500:
            raise Unavailable(f"user lookup answered {answer.status} (line {listed.line})")
        if not answer.ok:
            found.append("no such user")
        elif listed.kind is IdKind.EMPLOYEE_ID:
            users = list(body.get("value", ()))
            found.append(users[0] if len(users) == 1 else f"{len(users)} users have this employeeId")
        else:
            found.append(body)
    return found


@dataclass(frozen=True)
class Gating:
    """What the gate needs once per run: the group, the catalogue, the free seats, business time."""

    group_id: str
    reason: str


async def plan_people(
    people: Sequence[ListedPerson], deps: LicenseDeps, gating: Gating, *, progress: Progress | None = None
) -> tuple[list[PersonPlan], int]:
    """Gate every listed person through `decide()`, first come first served for the free seats.

    Returns the plans (file order) and the group's free seats before the rollout.
    """
    group = await deps.reads.group(gating.group_id)
    licensing = deps.policy.group(group.id)
    if licensing is None:
        raise PolicyConflict(f"{gating.group_id} is not a licensing group of the policy")
    catalogue = await deps.reads.catalogue(fresh=True)
    now = deps.clock.now()
    free = await deps.seats.headroom(catalogue, tuple(licensing.copilot_sku_ids), now=now)
    plans: list[PersonPlan] = []
    taking = 0
    for start in range(0, len(people), RESOLVE_CHUNK):
        part = people[start : start + RESOLVE_CHUNK]
        for listed, user in zip(part, await resolve(deps.graph, part), strict=True):
            if isinstance(user, str):
                plans.append(
                    PersonPlan(listed, None, None, Planned.NOT_FOUND, (), f"Line {listed.line}: {user}.")
                )
                continue
            person = person_from_entra(user)
            decision = decide(
                person,
                group=group,
                policy=deps.policy,
                catalogue=catalogue,
                free_seats=free - taking,
                now=now,
                why=gating.reason,
            )
            state = planned_state(decision)
            taking += state is Planned.TO_ADMIT
            reasons = tuple(r.value for r in (*decision.reasons, *decision.warnings))
            plans.append(
                PersonPlan(listed, person.id, person.user_principal_name, state, reasons, decision.summary)
            )
        if progress is not None:
            progress(min(start + RESOLVE_CHUNK, len(people)), len(people))
    return plans, free


async def admit_plans(
    name: str,
    plans: Sequence[PersonPlan],
    deps: LicenseDeps,
    records: RolloutRecords,
    *,
    gating: Gating,
    requested_by: str,
    progress: Progress | None = None,
) -> list[PersonPlan]:
    """Admit the people still to admit, 20 at a time through the `admit` path, saving progress after
    each bulk add. A transient error propagates with everything before it saved (rerun to resume)."""
    todo = remaining(plans)
    done: dict[str, PersonPlan] = {}
    run_id = uuid.uuid4().hex  # every run's messages (re-checks, alerts) carry their own ids
    for index, part in enumerate(chunks(todo)):
        requests = [AdmitRequest(str(p.user_id), gating.group_id, gating.reason, requested_by) for p in part]
        admissions = await admit(
            requests, deps, correlation_id=run_id, version=f"rollout:{name}:{run_id}:{index}"
        )
        results = [
            replace(
                plan, state=_RESULT[a.result], reasons=tuple(r.value for r in a.reasons), summary=a.summary
            )
            for plan, a in zip(part, admissions, strict=True)
        ]
        await records.save(name, results, now=deps.clock.now())
        done.update((p.row_key, p) for p in results)
        if progress is not None:
            progress(len(done), len(todo))
    return [done.get(p.row_key, p) for p in plans]


# --- the commands ----------------------------------------------------------------------------------------


def _progress_bar(err: TextIO, label: str) -> Progress:
    """A progress bar on stderr (a line per step when stderr is not a terminal)."""
    tty = err.isatty()

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        line = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        print(f"\r{line}" if tty else line, end="" if tty and done < total else "\n", file=err, flush=True)

    return show


def read_list(path: Path) -> RolloutList:
    """The rollout file, parsed (an unreadable file is one bad row)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return parse_rollout_csv(handle.read().splitlines())
    except (OSError, UnicodeDecodeError) as error:
        return RolloutList((), (BadRow(1, "", f"cannot read the file: {error}"),), header=False)


async def rollout_file(
    args: argparse.Namespace, deps: LicenseDeps, records: RolloutRecords, out: TextIO, err: TextIO
) -> int:
    """Parse, gate, print; unless a dry run: record, admit in bulk, print the outcome."""
    path = Path(args.target)
    name = check_name(args.rollout_name) if args.rollout_name else default_name(path)
    listing = read_list(path)
    for bad in listing.bad_rows:
        print(f"{path}:{bad.line}: {bad.problem}", file=err)
    if listing.bad_rows and not args.dry_run and not args.allow_bad_rows:
        print(f"{len(listing.bad_rows)} bad row(s): nothing done (fix them, or --allow-bad-rows)", file=err)
        return EXIT_BAD_INPUT
    gating = Gating(args.group.strip().lower(), args.reason or f"rollout {name}")
    requested_by = args.requested_by or f"cli:{getpass.getuser()}"
    try:
        header = None if args.dry_run else await records.header(name)
        if header is not None and header.group_id != gating.group_id:
            raise PolicyConflict(f"rollout {name!r} targets group {header.group_id}")
        recorded = await records.plans(name) if header is not None else {}
        # People a blocker kept out (no base license, no usage location, ...) are gated again on a rerun:
        # the admin may have fixed it since. Everyone else recorded is done, or resumes where it stopped.
        known = {key: plan for key, plan in recorded.items() if plan.state is not Planned.BLOCKED}
        fresh = [p for p in listing.people if _key(p) not in known]
        planned, free = await plan_people(fresh, deps, gating, progress=_progress_bar(err, "gating   "))
        plans = sorted([*known.values(), *planned], key=lambda p: p.listed.line)
        if args.dry_run:
            positions = await _positions(deps, gating.group_id, plans)
            render(
                name,
                gating.group_id,
                plans,
                listing,
                free,
                dry_run=True,
                args=args,
                out=out,
                positions=positions,
            )
            return EXIT_DONE
        await records.start(RolloutHeader(name, gating.group_id, requested_by, deps.clock.now(), str(path)))
        await records.save(name, planned, now=deps.clock.now())
        if known:
            print(f"resuming rollout {name}: {len(remaining(plans))} still to admit", file=err)
        plans = await admit_plans(
            name,
            plans,
            deps,
            records,
            gating=gating,
            requested_by=requested_by,
            progress=_progress_bar(err, "admitting"),
        )
        positions = await _positions(deps, gating.group_id, plans)
    except TransientError as error:
        print(
            f"interrupted ({type(error).__name__}: {error}); run the same command again to resume", file=err
        )
        return EXIT_INTERRUPTED
    except (PermanentError, ValueError) as error:
        what = "no such group" if isinstance(error, NotFound) else f"{type(error).__name__}: {error}"
        print(f"failed: {what}", file=err)
        return EXIT_FAILED
    render(
        name, gating.group_id, plans, listing, free, dry_run=False, args=args, out=out, positions=positions
    )
    refused = any(p.state in (Planned.REFUSED,) for p in plans)
    return EXIT_FAILED if refused else EXIT_DONE


def _key(listed: ListedPerson) -> str:
    return PersonPlan(listed, None, None, Planned.NOT_FOUND).row_key


async def _positions(deps: LicenseDeps, group_id: str, plans: Sequence[PersonPlan]) -> dict[str, int]:
    """Each waiting person's place on the group's waitlist (read once, after the run), by row key."""
    if not any(p.waits_for_seat for p in plans):
        return {}
    return waitlist_positions(plans, [e.user_id for e in await deps.seats.waitlist(group_id)])


def _waiting_note(plan: PersonPlan, positions: Mapping[str, int], *, dry_run: bool) -> str:
    """ "waiting for a seat (position N)" for a person on the waitlist; "" for everyone else."""
    if not plan.waits_for_seat:
        return ""
    position = positions.get(plan.row_key)
    if position is None:
        return "no longer on the waitlist (served, or left it)"
    would = "would wait" if dry_run and plan.state is Planned.TO_WAITLIST else "waiting"
    return f"{would} for a seat (position {position})"


def render(
    name: str,
    group_id: str,
    plans: Sequence[PersonPlan],
    listing: RolloutList,
    free: int,
    *,
    dry_run: bool,
    args: argparse.Namespace,
    out: TextIO,
    positions: Mapping[str, int] | None = None,
) -> None:
    """The table (text, JSON or CSV) with its totals; `positions` are waitlist places by row key."""
    total = totals(plans, bad_rows=len(listing.bad_rows), free_seats=free)
    places = positions or {}
    if args.json:
        document = {
            "rollout": name,
            "group_id": group_id,
            "dry_run": dry_run,
            "people": [_row(p, places, dry_run=dry_run) for p in plans],
            "bad_rows": [{"line": b.line, "text": b.text, "problem": b.problem} for b in listing.bad_rows],
            "totals": total.as_dict(),
        }
        print(json.dumps(document, indent=2), file=out)
        return
    if args.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["line", "person", "user_id", "state", "reasons", "summary", "waitlist_position"])
        for p in plans:
            writer.writerow(
                [
                    p.listed.line,
                    p.listed.value,
                    p.user_id or "",
                    p.state.value,
                    " ".join(p.reasons),
                    p.summary,
                    places.get(p.row_key, ""),
                ]
            )
        for b in listing.bad_rows:
            writer.writerow([b.line, b.text, "", "bad_row", "", b.problem, ""])
        return
    print(f"rollout {name} -> {group_id}{' (dry run: nothing written)' if dry_run else ''}", file=out)
    print(f"{'line':>6}  {'state':<17} {'person':<40} reasons", file=out)
    for p in plans:
        why = _waiting_note(p, places, dry_run=dry_run) or ", ".join(p.reasons)
        print(f"{p.listed.line:>6}  {p.state.value:<17} {p.listed.value:<40} {why}", file=out)
    states = ", ".join(f"{k} {v}" for k, v in sorted(total.by_state.items()))
    print(f"totals: {states}; bad rows {total.bad_rows}", file=out)
    if total.blocked_by_reason:
        why = ", ".join(f"{k} {v}" for k, v in sorted(total.blocked_by_reason.items()))
        print(f"blocked by: {why}", file=out)
    print(f"seats: uses {total.seats_used} of {free} free", file=out)
    if total.waiting_for_seat:
        print(
            f"waiting for a seat: {total.waiting_for_seat} (first come, first served when seats free up)",
            file=out,
        )


def _row(plan: PersonPlan, positions: Mapping[str, int], *, dry_run: bool) -> dict[str, Any]:
    return {
        "line": plan.listed.line,
        "person": plan.listed.value,
        "kind": plan.listed.kind.value,
        "user_id": plan.user_id,
        "user_principal_name": plan.upn,
        "state": plan.state.value,
        "reasons": list(plan.reasons),
        "summary": plan.summary,
        "waitlist_position": positions.get(plan.row_key),
        "note": _waiting_note(plan, positions, dry_run=dry_run) or None,
    }


# `rollout list`: a person the rollout left waiting for a seat whom the waitlist has added since.
SERVED_FROM_WAITLIST: Final = "added_from_waitlist"


async def _served(seats: SeatStore, group_id: str, plans: Sequence[PersonPlan]) -> set[str]:
    """The rollout's waiting people (by row key) whom the waitlist has since added: off the waitlist, with
    Seatkeeper's addition recorded."""
    waiters = [p for p in plans if p.state is Planned.PENDING and p.waits_for_seat and p.user_id]
    if not waiters:
        return set()
    waiting = {e.user_id.lower() for e in await seats.waitlist(group_id)}
    served: set[str] = set()
    for plan in waiters:
        user = str(plan.user_id)
        if user.lower() not in waiting and await seats.addition(user, group_id) is not None:
            served.add(plan.row_key)
    return served


async def list_rollouts(
    records: RolloutRecords, out: TextIO, *, as_json: bool, seats: SeatStore | None = None
) -> int:
    """Every recorded rollout: name, group, who and when, and how many people in each state (those it left
    waiting for a seat and the waitlist has added since count as `added_from_waitlist`)."""
    headers = await records.names()
    rows = []
    for header in headers:
        plans = list((await records.plans(header.name)).values())
        served = await _served(seats, header.group_id, plans) if seats is not None else set()
        counts: dict[str, int] = {}
        for plan in plans:
            state = SERVED_FROM_WAITLIST if plan.row_key in served else plan.state.value
            counts[state] = counts.get(state, 0) + 1
        rows.append((header, dict(sorted(counts.items()))))
    if as_json:
        document = [
            {
                "name": h.name,
                "group_id": h.group_id,
                "requested_by": h.requested_by,
                "created_at": h.created_at.isoformat(),
                "source": h.source,
                "by_state": counts,
            }
            for h, counts in rows
        ]
        print(json.dumps(document, indent=2), file=out)
    elif not rows:
        print("no recorded rollouts", file=out)
    for header, counts in [] if as_json else rows:
        states = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(
            f"{header.name:<24} {header.group_id}  {header.created_at:%Y-%m-%d %H:%M}  "
            f"{header.requested_by}  {states}",
            file=out,
        )
    return EXIT_DONE


async def remove_rollout(records: RolloutRecords, name: str, out: TextIO, err: TextIO) -> int:
    """Forget a recorded rollout; its members stay in the group."""
    try:
        removed = await records.remove(check_name(name))
    except ValueError as error:
        print(str(error), file=err)
        return EXIT_BAD_INPUT
    if not removed:
        print(f"no rollout named {name!r}", file=err)
        return EXIT_FAILED
    print(
        f"removed rollout {name}: its people stay in the group; the HR rules decide for them from now on",
        file=out,
    )
    return EXIT_DONE
