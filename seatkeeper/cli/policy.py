"""`seatkeeper policy check FILE`: validate a policy file and say what it means, or list every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.policy import DEFAULT_BASE_LICENSES, Policy
from seatkeeper.policy_file import load_policy


def register(subparsers: Any) -> None:
    """Add `policy check`."""
    policy = subparsers.add_parser("policy", help="work with policy files")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    check = actions.add_parser(
        "check", help="validate a policy file (exit 1 and list every problem if invalid)"
    )
    check.add_argument("file", type=Path, help="the policy file (YAML)")
    check.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    """Validate one file; problems go to stderr as `file:line:column: field: message`."""
    try:
        policy = load_policy(args.file)
    except ConfigurationError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{args.file}: {len(error.problems)} problem(s)", file=sys.stderr)
        return 1
    for line in summary(args.file, policy):
        print(line)
    return 0


def summary(path: Path, policy: Policy) -> list[str]:
    """What the policy means, in a few lines an admin can check at a glance."""
    lines = [f"{path}: valid"]
    for group in policy.licensing_groups:
        modes = [
            m
            for m, on in (("observe-only", group.observe_only), ("authoritative", group.authoritative))
            if on
        ]
        lines.append(f"  group {group.display_name} ({group.id}){': ' + ', '.join(modes) if modes else ''}")
    default = " (default)" if policy.base_licenses == DEFAULT_BASE_LICENSES else ""
    lines.append(f"  base licenses: {len(policy.base_licenses)}{default}")
    lines.append(f"  protected users: {len(policy.protected_users)}")
    lines.append(f"  alert routes: {', '.join(r.name for r in policy.alerts.routes) or 'none'}")
    return lines
