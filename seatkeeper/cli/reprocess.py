"""`seatkeeper reprocess (USER | --group G | --all)`: re-run group-based licensing for one user, for a
group's members with license errors, or for those of every licensing group; `reprocessLicenseAssignment`
in `$batch`es of 20, paced below Graph's write quota (a 429 still has the last word). Protected users
and observe-only groups are never written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from handlers.reprocess import (
    ReprocessReport,
    WritePacer,
    licensing_group_ids,
    reprocess_groups,
    reprocess_targets,
    user_target,
)
from seatkeeper.core.errors import ConfigurationError, PermanentError, TransientError
from seatkeeper.core.graph_port import GraphPort
from seatkeeper.core.policy import Policy


def register(subparsers: Any) -> None:
    """Add `reprocess USER`, `reprocess --group G` and `reprocess --all`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reprocess", help="reprocess group-based licenses (user, group or all)", description=__doc__
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("user", nargs="?", help="object id or UPN")
    target.add_argument("--group", help="reprocess this group's membersWithLicenseErrors")
    target.add_argument("--all", action="store_true", help="every licensing group of the policy")
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Exit 0 when all went through, 1 when some failed or were not found, 3 when throttled, 2 on config."""
    return asyncio.run(run(args, sys.stdout))


async def reprocess(args: argparse.Namespace, graph: GraphPort, policy: Policy) -> ReprocessReport | None:
    """The reprocess the arguments ask for; None when the named user does not exist."""
    pacer = WritePacer()
    if args.user:
        target = await user_target(graph, args.user)
        if target is None:
            return None
        return await reprocess_targets(graph, policy, [target], pacer=pacer)
    groups = licensing_group_ids(policy) if args.all else (args.group,)
    return await reprocess_groups(graph, policy, groups, pacer=pacer)


def render(report: ReprocessReport, *, as_json: bool, out: TextIO) -> None:
    """The report as text (one line per skip or failure) or JSON."""
    if as_json:
        document = {
            "reprocessed": list(report.reprocessed),
            "skipped": [{"id": i, "why": why} for i, why in report.skipped],
            "failed": [{"id": i, "status": status} for i, status in report.failed],
        }
        print(json.dumps(document, sort_keys=True), file=out)
        return
    print(f"reprocessed {len(report.reprocessed)} user(s)", file=out)
    for ident, why in report.skipped:
        print(f"skipped     {ident}  {why}", file=out)
    for ident, status in report.failed:
        print(f"failed      {ident}  {'throttled (429)' if status == 429 else status}", file=out)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """Build the service's adapters, reprocess, close them."""
    from seatkeeper.bootstrap import build_services

    try:
        services = build_services()
    except ConfigurationError as error:
        print(f"configuration problems: {'; '.join(error.problems)}", file=out)
        return 2
    try:
        report = await reprocess(args, services.graph, services.policy)
    except TransientError as error:
        print(f"try again later: {type(error).__name__}: {error}", file=out)
        return 3
    except PermanentError as error:
        print(f"failed: {type(error).__name__}: {error}", file=out)
        return 1
    finally:
        await services.aclose()
    if report is None:
        print(f"no such user: {args.user}", file=out)
        return 1
    render(report, as_json=args.json, out=out)
    if any(status == 429 for _, status in report.failed):
        return 3
    return 1 if report.failed else 0
