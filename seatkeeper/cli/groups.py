"""`seatkeeper groups check [--json]`: the health report of every licensing group of the policy — the same
check the reconciliation sweep alerts on (seatkeeper/core/group_health.py), read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from handlers.reconcile import read_group
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
from seatkeeper.core.group_health import Finding, check_group, missing_group


@dataclass(frozen=True)
class GroupReport:
    """One licensing group and its findings (none: healthy)."""

    group_id: str
    group: str
    writable: bool | None
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        """The group's report as a JSON-compatible document."""
        return {
            "group_id": self.group_id,
            "group": self.group,
            "healthy": not self.findings,
            "membership_writable": self.writable,
            "findings": [
                {
                    "problem": f.problem.value,
                    "severity": f.text.severity.value,
                    "title": f.text.title,
                    "detail": f.detail,
                    "evidence": {e.label: e.value for e in f.evidence},
                    "remediation": f.text.remediation,
                }
                for f in self.findings
            ],
        }


async def gather(factory: ServicesFactory) -> tuple[GroupReport, ...]:
    """Read each licensing group and its members; run the health check (nothing is recorded)."""
    async with opened(factory) as services:
        deps = services.license
        if deps is None or services.state is None:
            raise ConfigurationError(["the license and state adapters are not built"])
        now = deps.clock.now()
        catalogue = await deps.reads.catalogue()
        reports: list[GroupReport] = []
        for licensing in deps.policy.licensing_groups:
            read = await read_group(deps.graph, services.state, licensing.id, now, track=False)
            if read is None:
                finding = missing_group(licensing)
                reports.append(GroupReport(finding.group_id, finding.group_label, None, (finding,)))
                continue
            group = read.state.group
            findings = check_group(
                read.state, licensing=licensing, policy=deps.policy, catalogue=catalogue, now=now
            )
            label = group.display_name or licensing.display_name or group.id
            reports.append(GroupReport(group.id, label, group.membership_writable, findings))
        return tuple(reports)


def render(reports: tuple[GroupReport, ...], out: TextIO) -> None:
    """One block per group: healthy, or each finding with what to do."""
    for report in reports:
        access = {True: "Seatkeeper may add members", False: "watched only", None: "not found"}[
            report.writable
        ]
        state = "healthy" if not report.findings else f"{len(report.findings)} problem(s)"
        print(f"{report.group} ({report.group_id}): {state}; {access}", file=out)
        for finding in report.findings:
            print(f"  [{finding.text.severity.value}] {finding.text.title}: {finding.detail}", file=out)
            print(f"      what to do: {finding.text.remediation}", file=out)


async def run(args: argparse.Namespace, factory: ServicesFactory, out: TextIO) -> int:
    """Print the health report; 0 when every group is healthy, 1 when one is not."""
    try:
        reports = await gather(factory)
    except ConfigurationError as error:
        print(f"configuration: {'; '.join(error.problems)}", file=out)
        return CONFIGURATION
    except TransientError as error:
        print(f"unreachable, try again: {type(error).__name__}", file=out)
        return UNREACHABLE
    if args.json:
        print_json({"groups": [r.to_json() for r in reports]}, out)
    else:
        render(reports, out)
    return FOUND_PROBLEMS if any(r.findings for r in reports) else OK


def register(subparsers: Any) -> None:
    """Add `groups check [--json]`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "groups", help="licensing-group health", description=__doc__
    )
    actions = parser.add_subparsers(dest="groups_command", required=True)
    check = actions.add_parser("check", help="the health report of every licensing group")
    check.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Entry point of `seatkeeper groups`."""
    return asyncio.run(run(args, default_factory, sys.stdout))
