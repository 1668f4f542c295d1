"""`seatkeeper held list|release|discard`: the removals the blast-radius guard holds, and the admin's answer.

`release` removes the members now (the guard only asked whether so many removals were meant); `discard`
keeps them. Either takes `--all` or one or more `USER_ID:GROUP_ID` pairs; once nothing is held, the guard
is reset and its incident resolved.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from handlers.hr_removals import RemovalBook
from seatkeeper.bootstrap import Services
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
from seatkeeper.core.removal_safety import PlannedRemoval


def register(subparsers: Any) -> None:
    """Add `held list [--json]`, `held release (--all | PAIR...)` and `held discard (--all | PAIR...)`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "held", help="removals held by the blast-radius guard", description=__doc__
    )
    actions = parser.add_subparsers(dest="held_command", required=True)
    listing = actions.add_parser("list", help="every held removal, oldest first")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    for name, text in (("release", "remove these members now"), ("discard", "keep these members")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--all", action="store_true", help="every held removal")
        action.add_argument("pairs", nargs="*", metavar="USER_ID:GROUP_ID")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Entry point of `seatkeeper held`."""
    return asyncio.run(run(args, default_factory, sys.stdout))


def _chosen(held: Sequence[PlannedRemoval], args: argparse.Namespace) -> list[PlannedRemoval] | None:
    """The held removals the arguments name; None when a pair names nothing held."""
    if args.all:
        return list(held)
    wanted = {tuple(p.lower().split(":", 1)) for p in args.pairs}
    chosen = [r for r in held if (r.user_id.lower(), r.group_id.lower()) in wanted]
    return chosen if len(chosen) == len(wanted) else None


async def run(args: argparse.Namespace, factory: ServicesFactory, out: TextIO) -> int:
    """List, release or discard; 1 when a named pair is not held, 2/3 on configuration/reach problems."""
    try:
        async with opened(factory) as services:
            return await _act(services, args, out)
    except ConfigurationError as error:
        print(f"configuration: {'; '.join(error.problems)}", file=out)
        return CONFIGURATION
    except TransientError as error:
        print(f"unreachable, try again: {type(error).__name__}", file=out)
        return UNREACHABLE


async def _act(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    if services.license is None or services.state is None:
        raise ConfigurationError(["the license and state adapters are not built"])
    book = RemovalBook(services.state)
    held = await book.held()
    if args.held_command == "list":
        rows = [
            {
                "user_id": r.user_id,
                "group_id": r.group_id,
                "employee_id": r.employee_id,
                "why": r.why,
                "planned_at": r.planned_at.isoformat(),
            }
            for r in held
        ]
        if args.json:
            print_json(rows, out)
            return OK
        for row in rows:
            print(f"{row['user_id']}:{row['group_id']}  {row['planned_at']}  {row['why']}", file=out)
        print(f"{len(rows)} held", file=out)
        return OK
    if not args.all and not args.pairs:
        print("name the removals (USER_ID:GROUP_ID ...) or pass --all", file=out)
        return FOUND_PROBLEMS
    chosen = _chosen(held, args)
    if chosen is None:
        print("some of the named removals are not held", file=out)
        return FOUND_PROBLEMS
    action = book.release if args.held_command == "release" else book.discard
    done = await action(chosen, services.license, correlation_id=f"cli-held-{args.held_command}")
    verb = "released" if args.held_command == "release" else "discarded"
    print(f"{verb} {done}", file=out)
    return OK
