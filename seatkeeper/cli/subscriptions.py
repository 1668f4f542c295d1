"""`seatkeeper subscriptions list|ensure`: the health of each licensing group's Graph subscription, and a
forced upkeep run (create, renew, recreate, delete) — the same code the hourly timer runs.

Settings as the service reads them; on a laptop the running local host (`<state dir>/host.json` and its
keys file) supplies the notification URL and the webhook key when the environment does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from handlers.subscription_upkeep import UpkeepDeps, plan_for, run_upkeep
from seatkeeper.core.errors import ConfigurationError, TransientError
from seatkeeper.core.subscription_plan import (
    CreateSubscription,
    DeleteSubscription,
    RenewSubscription,
    SubscriptionRecord,
    UpkeepPlan,
)


def register(subparsers: Any) -> None:
    """Add `subscriptions list` and `subscriptions ensure`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "subscriptions",
        help="Graph change-notification subscriptions of the licensing groups",
        description=__doc__,
    )
    parser.add_argument("--state-dir", type=Path, help="the local host's state directory (default: data dir)")
    actions = parser.add_subparsers(dest="subscriptions_command", required=True)
    listing = actions.add_parser("list", help="one line per licensing group: subscription, expiry, status")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    actions.add_parser("ensure", help="run subscription upkeep now and print what it did")
    parser.set_defaults(func=main)


def status_rows(
    plan: UpkeepPlan,
    records: Mapping[str, SubscriptionRecord],
    group_ids: Sequence[str],
    names: Mapping[str, str],
) -> list[dict[str, Any]]:
    """One row per licensing group, then one per subscription upkeep would delete."""
    due: dict[str, str] = {}
    for action in plan.actions:
        if isinstance(action, RenewSubscription):
            due[action.group_id] = "renewal due"
        elif isinstance(action, CreateSubscription):
            due[action.group_id] = (
                "lost: will be recreated" if action.recreate else "missing: will be created"
            )
    for group_id in plan.quota.blocked_groups:
        due[group_id] = "missing: quota of Graph subscriptions reached"
    rows: list[dict[str, Any]] = []
    for group_id in group_ids:
        record = records.get(group_id)
        rows.append(
            {
                "group_id": group_id,
                "group": names.get(group_id, ""),
                "subscription_id": record.subscription_id if record else None,
                "expires_at": record.expires_at.isoformat() if record else None,
                "status": due.get(group_id, "healthy" if group_id in plan.healthy else "missing"),
            }
        )
    for action in plan.actions:
        if isinstance(action, DeleteSubscription):
            rows.append(
                {
                    "group_id": action.group_id,
                    "group": "",
                    "subscription_id": action.subscription_id,
                    "expires_at": None,
                    "status": f"to delete ({action.reason.value})",
                }
            )
    return rows


def _print_rows(rows: Sequence[Mapping[str, Any]], plan: UpkeepPlan, as_json: bool, out: TextIO) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True), file=out)
        return
    for row in rows:
        expires = (row["expires_at"] or "-")[:16]
        print(
            f"{row['group_id'] or '-':<38} {row['group'][:28]:<28} {row['subscription_id'] or '-':<38} "
            f"{expires:<16} {row['status']}",
            file=out,
        )
    quota = plan.quota
    print(
        f"quota: {quota.in_use} of {quota.limit} group subscriptions in use (elsewhere: {plan.foreign})",
        file=out,
    )


async def list_status(
    deps: UpkeepDeps, group_ids: Sequence[str], names: Mapping[str, str], *, as_json: bool, out: TextIO
) -> int:
    """Print each group's subscription health; exit 0 when all are healthy, 2 when upkeep has work."""
    plan, records = await plan_for(group_ids, deps)
    rows = status_rows(plan, records, group_ids, names)
    _print_rows(rows, plan, as_json, out)
    return 0 if all(r["status"] == "healthy" for r in rows) else 2


async def ensure(deps: UpkeepDeps, group_ids: Sequence[str], *, out: TextIO) -> int:
    """Run upkeep once; exit 0 when every group ends healthy, 2 when some could not be."""
    report = await run_upkeep(group_ids, deps, correlation_id=f"cli-{uuid.uuid4()}")
    summary = {
        "created": report.created,
        "recreated": report.recreated,
        "renewed": report.renewed,
        "deleted": report.deleted,
        "failed": report.failed,
        "quota_blocked": list(report.quota.blocked_groups) if report.quota else [],
    }
    print(json.dumps(summary, indent=2, sort_keys=True), file=out)
    return 2 if report.failed or summary["quota_blocked"] else 0


def _local_host_environment(state_dir: Path) -> dict[str, str]:
    """WEBSITE_HOSTNAME and the webhook key of the local host running on `state_dir`, if it runs."""
    from seatkeeper import settings
    from seatkeeper.localhost.host import HOST_READY_FILE
    from seatkeeper.localhost.keys import GRAPH_WEBHOOK_KEY

    ready = state_dir / HOST_READY_FILE
    if not ready.is_file():
        return {}
    host = json.loads(ready.read_text(encoding="utf-8"))
    keys = json.loads(Path(host["keys_file"]).read_text(encoding="utf-8"))
    return {
        settings.DATA_DIR: str(state_dir),
        settings.SANDBOX_READY_FILE: str(state_dir / "sandbox.json"),
        settings.WEBSITE_HOSTNAME: str(host["api_url"]).removeprefix("http://").removesuffix("/api"),
        settings.GRAPH_WEBHOOK_KEY: str(keys["hostKeys"][GRAPH_WEBHOOK_KEY]),
    }


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    from seatkeeper import settings
    from seatkeeper.bootstrap import build_services
    from seatkeeper.notification_wiring import upkeep_deps, wiring

    state_dir: Path = args.state_dir or settings.APP_ROOT / (
        os.environ.get(settings.DATA_DIR) or ".seatkeeper"
    )
    if not os.environ.get(settings.GRAPH_WEBHOOK_KEY):
        for name, value in _local_host_environment(state_dir).items():
            os.environ.setdefault(name, value)
    services = build_services()
    try:
        deps = upkeep_deps(services)
        group_ids = wiring(services).group_ids
        names = {g.id.lower(): g.display_name for g in services.policy.licensing_groups}
        if args.subscriptions_command == "list":
            return await list_status(deps, group_ids, names, as_json=args.json, out=out)
        return await ensure(deps, group_ids, out=out)
    finally:
        await services.aclose()


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the chosen action; 1 for a configuration problem, 3 when Graph or the store is unreachable."""
    try:
        return asyncio.run(_run(args, out))
    except ConfigurationError as error:
        print("configuration problems:\n  " + "\n  ".join(error.problems), file=out)
        return 1
    except TransientError as error:
        print(f"unreachable, try again: {error}", file=out)
        return 3
