"""`seatkeeper admit USER... --group G`: let people into a Copilot licensing group through the same gate,
seat reservations, bulk add and verification hand-over as the service (the `admit` message).

By default the admission runs here, against the configured tenant (or the running sandbox), and prints
one line per person; `--queue` sends one `admit` message per person for the running service instead.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from handlers.admission import Admission, Result, admit
from seatkeeper.core.errors import ConfigurationError, PermanentError, TransientError
from seatkeeper.core.license_messages import AdmitRequest, admit_message

_FINE = frozenset({Result.ADDED, Result.ALREADY_MEMBER, Result.ALREADY_LICENSED})


def register(subparsers: Any) -> None:
    """Add `admit USER... --group G [--reason R] [--requested-by NAME] [--queue] [--json]`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "admit", help="gate, reserve a seat and add people to a Copilot group", description=__doc__
    )
    parser.add_argument("users", nargs="+", metavar="USER", help="object id or UPN (many are added in bulk)")
    parser.add_argument("--group", required=True, help="the licensing group's object id")
    parser.add_argument("--reason", default="admitted from the command line", help="recorded with the add")
    parser.add_argument("--requested-by", default=None, help="who asks (default: cli:<login name>)")
    parser.add_argument("--queue", action="store_true", help="send `admit` messages to the service instead")
    parser.add_argument("--json", action="store_true", help="one JSON object per person")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the admission; exit 0 when every person was added or already in, 1 otherwise, 3 on a
    transient failure, 2 on configuration problems."""
    return asyncio.run(run(args, sys.stdout))


def requests_of(args: argparse.Namespace) -> list[AdmitRequest]:
    """One request per user named on the command line, in order."""
    requested_by = args.requested_by or f"cli:{getpass.getuser()}"
    return [AdmitRequest(user, args.group, args.reason, requested_by) for user in args.users]


def render(admissions: Sequence[Admission], *, as_json: bool, out: TextIO) -> None:
    """One line per person: result, who, reasons, the decision's sentence."""
    for a in admissions:
        if as_json:
            document = {
                "person": a.request.person,
                "user_id": a.user_id,
                "group_id": a.request.group_id,
                "result": a.result.value,
                "reasons": [r.value for r in a.reasons],
                "summary": a.summary,
            }
            print(json.dumps(document, sort_keys=True), file=out)
        else:
            reasons = f" [{', '.join(r.value for r in a.reasons)}]" if a.reasons else ""
            print(f"{a.result.value:<16} {a.request.person}{reasons}  {a.summary}", file=out)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """Build the service's adapters, admit (or enqueue), close them."""
    from seatkeeper.bootstrap import build_services

    try:
        services = build_services()
    except ConfigurationError as error:
        print(f"configuration problems: {'; '.join(error.problems)}", file=out)
        return 2
    run_id = uuid.uuid4().hex
    try:
        requests = requests_of(args)
        if args.queue:
            if services.sender is None:
                raise ConfigurationError(["no queue is configured"])
            await services.sender.send(
                [admit_message(r, request_id=run_id, correlation_id=run_id) for r in requests]
            )
            print(f"sent {len(requests)} admit message(s), correlation id {run_id}", file=out)
            return 0
        if services.license is None:
            raise ConfigurationError(["the license handlers are not wired"])
        admissions = await admit(requests, services.license, correlation_id=run_id, version=run_id)
    except TransientError as error:
        print(f"try again later: {type(error).__name__}: {error}", file=out)
        return 3
    except PermanentError as error:
        print(f"failed: {type(error).__name__}: {error}", file=out)
        return 1
    finally:
        await services.aclose()
    render(admissions, as_json=args.json, out=out)
    return 0 if all(a.result in _FINE for a in admissions) else 1
