"""`seatkeeper incidents list [--all] [--json]`, `seatkeeper incidents show KEY [--json]` and `seatkeeper
incidents close KEY --reason TEXT [--by NAME] [--json]`: the incidents in the state store (open ones by
default), most severe and oldest first, and closing one by hand (for a user or group no longer watched, which
no sweep will see gone). KEY is the incident key (`scope:subject:problem`), its row id, or a unique prefix
of the row id (at least 6 characters).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

from handlers.alerts import close_incident
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
from seatkeeper.core.errors import ConfigurationError, TransientError
from seatkeeper.core.incidents import INCIDENTS_TABLE, Incident, Scope, Status, incident_from_data
from seatkeeper.core.ports import Clock, StateStore

MIN_PREFIX: Final = 6


async def load_incidents(store: StateStore) -> list[Incident]:
    """Every incident on record (the digest's bookkeeping rows are not incidents)."""
    scopes = {s.value for s in Scope}
    found = [
        incident_from_data(entity.data)
        async for entity in store.query(INCIDENTS_TABLE)
        if entity.partition in scopes
    ]
    found.sort(key=lambda i: (i.status is not Status.OPEN, -i.severity.rank, i.opened_at, i.key.text))
    return found


def find(incidents: Sequence[Incident], key: str) -> list[Incident]:
    """The incidents a KEY names: by key text, by row id, or by a row-id prefix."""
    text = key.strip()
    exact = [i for i in incidents if text in (i.key.text, i.key.row)]
    if exact or len(text) < MIN_PREFIX:
        return exact
    return [i for i in incidents if i.key.row.startswith(text.lower())]


def summary(incident: Incident) -> dict[str, Any]:
    """The incident's headline fields."""
    return {
        "id": incident.key.row,
        "key": incident.key.text,
        "scope": incident.key.scope.value,
        "subject": incident.key.subject,
        "subject_label": incident.subject_label,
        "problem": incident.key.problem,
        "status": incident.status.value,
        "severity": incident.severity.value,
        "title": incident.title,
        "occurrence": incident.occurrence,
        "opened_at": incident.opened_at.isoformat(),
        "last_observed_at": incident.last_observed_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "closed_by": incident.closed_by,
        "close_note": incident.close_note,
    }


def detail(incident: Incident) -> dict[str, Any]:
    """Everything about one incident: why, what to do, evidence, and each notice's deliveries."""
    return {
        **summary(incident),
        "reason": incident.reason,
        "remediation": incident.remediation,
        "evidence": [[f.label, f.value] for f in incident.evidence],
        "measure": incident.measure,
        "user_id": incident.user_id,
        "user_principal_name": incident.user_principal_name,
        "group_id": incident.group_id,
        "sku_id": incident.sku_id,
        "notices": [
            {
                "id": n.id,
                "kind": n.kind.value,
                "created_at": n.created_at.isoformat(),
                "deliveries": [
                    {"route": d.route, "state": d.state.value, "attempts": d.attempts, "error": d.last_error}
                    for d in n.deliveries
                ],
            }
            for n in incident.notices
        ],
    }


def _line(incident: Incident) -> str:
    return (
        f"{incident.key.row[:10]}  {incident.status.value:<6}  {incident.severity.value:<8}  "
        f"{incident.opened_at:%Y-%m-%d %H:%M}  {incident.key.problem:<34}  {incident.subject_label}"
    )


def _render_one(data: dict[str, Any], out: TextIO) -> None:
    print(f"{data['title']} [{data['status']}, {data['severity']}]", file=out)
    for name in ("key", "id", "subject_label", "opened_at", "closed_at", "occurrence"):
        print(f"  {name}: {data[name]}", file=out)
    if data["closed_by"]:
        print(f"  closed by hand by {data['closed_by']}: {data['close_note']}", file=out)
    print(f"  why: {data['reason']}", file=out)
    for label, value in data["evidence"]:
        print(f"    {label}: {value}", file=out)
    print(f"  what to do: {data['remediation']}", file=out)
    for notice in data["notices"]:
        routes = ", ".join(f"{d['route']}={d['state']}" for d in notice["deliveries"]) or "no route"
        print(f"  notice {notice['id']} ({notice['created_at']}): {routes}", file=out)


async def _close(args: argparse.Namespace, store: StateStore, clock: Clock, out: TextIO) -> int:
    reason = args.reason.strip()
    if not reason:
        print("--reason must say why the incident is closed", file=out)
        return FOUND_PROBLEMS
    matches = find(await load_incidents(store), args.key)
    if len(matches) != 1:
        print(f"{'no' if not matches else 'more than one'} incident matches {args.key!r}", file=out)
        return FOUND_PROBLEMS
    closed = await close_incident(store, matches[0].key, note=reason, by=args.by, now=clock.now())
    if closed is None:
        print(f"incident {matches[0].key.row[:10]} is not open", file=out)
        return FOUND_PROBLEMS
    if args.json:
        print_json(detail(closed), out)
    else:
        print(f"closed {closed.key.row[:10]}  {closed.key.problem}  {closed.subject_label}", file=out)
    return OK


async def _act(args: argparse.Namespace, store: StateStore | None, clock: Clock | None, out: TextIO) -> int:
    if store is None or clock is None:
        raise ConfigurationError(["the state store is not built"])
    if args.incidents_command == "close":
        return await _close(args, store, clock, out)
    incidents = await load_incidents(store)
    if args.incidents_command == "list":
        shown = incidents if args.all else [i for i in incidents if i.status is Status.OPEN]
        if args.json:
            print_json([summary(i) for i in shown], out)
        elif not shown:
            print("no open incidents" if not args.all else "no incidents", file=out)
        else:
            for incident in shown:
                print(_line(incident), file=out)
        return OK
    matches = find(incidents, args.key)
    if len(matches) != 1:
        print(f"{'no' if not matches else 'more than one'} incident matches {args.key!r}", file=out)
        return FOUND_PROBLEMS
    data = detail(matches[0])
    if args.json:
        print_json(data, out)
    else:
        _render_one(data, out)
    return OK


async def run(args: argparse.Namespace, factory: ServicesFactory, out: TextIO) -> int:
    """List, show or close incidents in the configured state store."""
    try:
        async with opened(factory) as services:
            return await _act(args, services.state, services.clock, out)
    except ConfigurationError as error:
        print(f"configuration: {'; '.join(error.problems)}", file=out)
        return CONFIGURATION
    except TransientError as error:
        print(f"unreachable, try again: {type(error).__name__}", file=out)
        return UNREACHABLE


def register(subparsers: Any) -> None:
    """Add `incidents list [--all] [--json]`, `incidents show KEY [--json]` and `incidents close KEY`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "incidents", help="list and show alert incidents", description=__doc__
    )
    actions = parser.add_subparsers(dest="incidents_command", required=True)
    listing = actions.add_parser("list", help="open incidents, most severe and oldest first")
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    show = actions.add_parser("show", help="one incident in full, with its notices")
    show.add_argument("key", help="scope:subject:problem, the row id, or a prefix of it")
    show.add_argument("--json", action="store_true", help="one JSON document")
    close = actions.add_parser(
        "close", help="close an open incident by hand (no channel is told; it reopens if seen again)"
    )
    close.add_argument("key", help="scope:subject:problem, the row id, or a prefix of it")
    close.add_argument("--reason", required=True, help="why it is closed (kept on the incident)")
    close.add_argument("--by", default=_who(), help="who closes it (default: the login name)")
    close.add_argument("--json", action="store_true", help="the closed incident as one JSON document")
    parser.set_defaults(func=main)


def _who() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no login name (e.g. a container without a passwd entry)
        return "cli"


def main(args: argparse.Namespace) -> int:
    """Entry point of `seatkeeper incidents`."""
    return asyncio.run(run(args, default_factory, sys.stdout))
