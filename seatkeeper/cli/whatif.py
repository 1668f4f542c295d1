"""`seatkeeper whatif --policy NEW.yaml [--rule GROUP RULE]... [--json] [--summary-only]`: preview a policy
change before it strips anyone. Nothing is written.

Every user of the tenant is read page by page (999 a page, `$select`ed) and evaluated under the current
policy and the new one through the same `choose_target()` and `decide()` the service uses; each person who
would gain a Copilot seat, lose it, change group or be blocked from the group the new policy picks is
printed with the reason as soon as the page is read, and the seat balance per Copilot SKU closes the
report. Each person who would lose a seat or change group is also checked against removal safety under
the new policy: Seatkeeper removes only members it added itself (unless a group is `authoritative`), so the
report says which of them Seatkeeper would remove and which it would leave in place for an admin (and why),
with counts. Recorded rollouts apply to both policies. `--rule GROUP 'RULE'` also previews a dynamic
group's new `membershipRule` (the subset in `seatkeeper/core/membership_rule.py`) against current
attributes.
Memory stays flat: only counters are kept, never the list of users.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TextIO

from handlers.tenant_reads import TenantReads
from seatkeeper.core.errors import ConfigurationError, NotFound, PermanentError, TransientError
from seatkeeper.core.graph_port import GraphPage, GraphPort
from seatkeeper.core.groups import GroupSnapshot
from seatkeeper.core.membership_rule import PROPERTIES, RuleError, parse_rule
from seatkeeper.core.policy import Policy
from seatkeeper.core.seat_ports import SeatStore
from seatkeeper.core.whatif import WHATIF_SELECT, PersonChange, RulePreview, WhatIf

PAGE_SIZE: Final = "999"
EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3

Emit = Callable[[Mapping[str, Any]], None]


def register(subparsers: Any) -> None:
    """Add `whatif --policy NEW.yaml`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "whatif",
        help="preview who a policy change would license, strip or move (writes nothing)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--policy", type=Path, required=True, help="the new policy file (YAML)")
    parser.add_argument(
        "--current", type=Path, default=None, help="the current policy (default: the service's policy file)"
    )
    parser.add_argument(
        "--rule",
        nargs=2,
        action="append",
        default=[],
        metavar=("GROUP", "RULE"),
        help="preview a dynamic group's new membershipRule (repeatable)",
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON Lines: one object per change, then the summary"
    )
    parser.add_argument("--summary-only", action="store_true", help="print the totals only")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the preview; exit 0 done, 1 failed, 2 bad policy, rule or settings, 3 interrupted (rerun)."""
    return asyncio.run(run(args, sys.stdout, sys.stderr))


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Load both policies, build the service's adapters, preview, close them."""
    from seatkeeper.bootstrap import build_services
    from seatkeeper.core.rollout_records import RolloutRecords, with_rollouts
    from seatkeeper.policy_file import load_policy

    try:
        new = load_policy(args.policy)
        current = load_policy(args.current) if args.current is not None else None
        services = build_services(policy=current)
    except ConfigurationError as error:
        for problem in error.problems:
            print(problem, file=err)
        return EXIT_BAD_INPUT
    try:
        if services.license is None or services.state is None:
            print("the license handlers or the state store are not wired", file=err)
            return EXIT_FAILED
        records = RolloutRecords(services.state)
        current = await with_rollouts(services.policy, records)
        new = replace(new, rollouts=current.rollouts)
        previews = await rule_previews(services.graph, args.rule)
        summary = await preview(
            services.graph,
            services.license.reads,
            current,
            new,
            previews,
            seats=services.license.seats,
            emit=_printer(out, as_json=args.json, summary_only=args.summary_only),
            progress=_progress(err),
        )
    except RuleError as error:
        print(f"membershipRule: {error}", file=err)
        return EXIT_BAD_INPUT
    except TransientError as error:
        print(f"interrupted ({type(error).__name__}: {error}); run it again", file=err)
        return EXIT_INTERRUPTED
    except PermanentError as error:
        print(f"failed: {type(error).__name__}: {error}", file=err)
        return EXIT_FAILED
    finally:
        await services.aclose()
    _print_summary(summary, out, as_json=args.json)
    return EXIT_DONE


async def rule_previews(graph: GraphPort, rules: Sequence[Sequence[str]]) -> list[RulePreview]:
    """Each `--rule GROUP RULE`: the new rule, and the group's current rule when the preview can read it."""
    previews: list[RulePreview] = []
    for group_id, text in rules:
        new = parse_rule(text)
        try:
            body = await graph.get(
                f"/groups/{group_id.strip().lower()}", params={"$select": "id,displayName,membershipRule"}
            )
        except NotFound:
            raise NotFound(f"no group {group_id}") from None
        current_text = body.get("membershipRule")
        try:
            old = parse_rule(str(current_text)) if current_text else None
        except RuleError:
            old = None
        previews.append(RulePreview(group_id.strip().lower(), new=new, old=old))
    return previews


async def preview(
    graph: GraphPort,
    reads: TenantReads,
    current: Policy,
    new: Policy,
    previews: Sequence[RulePreview],
    *,
    seats: SeatStore,
    emit: Emit,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Stream every user through both policies (and each rule preview); emit each change; the summary.

    `seats` answers who Seatkeeper added (one point read per group a losing or moving person leaves).
    """
    catalogue = await reads.catalogue(fresh=True)
    groups: dict[str, GroupSnapshot] = {}
    for group_id in {g.id.lower() for p in (current, new) for g in p.licensing_groups}:
        try:
            groups[group_id] = await reads.group(group_id)
        except NotFound:
            emit({"type": "warning", "message": f"licensing group {group_id} does not exist in the tenant"})
    whatif = WhatIf(current, new, groups, catalogue, reads.clock.now(), rules=list(previews))
    select = ",".join(dict.fromkeys((*WHATIF_SELECT, *PROPERTIES)))
    async for page in prefetched(graph.pages("/users", params={"$select": select, "$top": PAGE_SIZE})):
        for user in page.items:
            change = whatif.observe(user)
            if change is not None:
                change = whatif.settle(change, added_by_seatkeeper=await _added(seats, change))
                record = change.as_dict()
                for end in ("from_group", "to_group"):
                    snapshot = groups.get(record[end] or "")
                    record[f"{end}_name"] = snapshot.display_name if snapshot is not None else None
                emit({"type": "person", **record})
            for rule in whatif.rules:
                moved = rule.observe(user)
                if moved is not None:
                    emit(
                        {
                            "type": "membership_rule",
                            "group_id": rule.group_id,
                            "change": moved,
                            "user_id": str(user.get("id", "")).lower(),
                            "upn": user.get("userPrincipalName"),
                        }
                    )
        if progress is not None:
            progress(whatif.people)
    return whatif.summary()


async def _added(seats: SeatStore, change: PersonChange) -> frozenset[str]:
    """The groups among those the person leaves that Seatkeeper added them to (its addition records)."""
    return frozenset([g for g in change.leaving if await seats.addition(change.user_id, g) is not None])


async def prefetched(pages: AsyncIterator[GraphPage]) -> AsyncGenerator[GraphPage, None]:
    """The same pages, the next one requested while this one is evaluated (Graph works while we do).

    At most one page waits in the queue, so memory stays at a few pages whatever the tenant's size; an
    error of the reader is raised here, in order.
    """
    queue: asyncio.Queue[GraphPage | BaseException | None] = asyncio.Queue(maxsize=1)

    async def read() -> None:
        try:
            async for page in pages:
                await queue.put(page)
        except Exception as error:  # noqa: BLE001 - handed over to the consumer, which raises it
            await queue.put(error)
            return
        await queue.put(None)

    reader = asyncio.create_task(read())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def _progress(err: TextIO) -> Callable[[int], None]:
    tty = err.isatty()

    def show(people: int) -> None:
        line = f"whatif: {people} users read"
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=err, flush=True)

    return show


def _printer(out: TextIO, *, as_json: bool, summary_only: bool) -> Emit:
    def emit(record: Mapping[str, Any]) -> None:
        if summary_only and record.get("type") != "warning":
            return
        if as_json:
            print(json.dumps(record, sort_keys=True), file=out)
        elif record.get("type") == "person":
            print(_person_line(record), file=out)
        elif record.get("type") == "membership_rule":
            who = record.get("upn") or record["user_id"]
            print(f"{'rule ' + record['change']:<14} {who}  ({record['group_id']})", file=out)
        else:
            print(f"warning: {record.get('message')}", file=out)

    return emit


def _person_line(record: Mapping[str, Any]) -> str:
    before, after = record["before"], record["after"]
    who = record.get("upn") or record["user_id"]
    moves = " -> ".join(
        str(record.get(f"{end}_name") or record.get(end) or "-") for end in ("from_group", "to_group")
    )
    why = f"{before['via']} -> {after['via']}"
    reasons = f" [{', '.join(after['reasons'])}]" if after["reasons"] else ""
    return f"{record['change']:<14} {who:<40} {moves}  ({why}){reasons}{_removal_note(record.get('removal'))}"


def _removal_note(removal: Mapping[str, Any] | None) -> str:
    """What happens to a losing or moving person's old membership: Seatkeeper removes it, or it stays."""
    if removal is None:
        return ""
    if removal["seatkeeper_removes"]:
        return "; Seatkeeper removes"
    return f"; stays ({', '.join(removal['left_because'])}): an admin must act"


def _print_summary(summary: Mapping[str, Any], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"type": "summary", **summary}, sort_keys=True), file=out)
        return
    print(
        f"{summary['people']} people: gain {summary['gain']}, lose {summary['lose']}, "
        f"change group {summary['change_group']}, blocked {summary['blocked']}",
        file=out,
    )
    for kind, label in (("lose", "lose"), ("change_group", "change group (old group)")):
        counts = summary["removals"][kind]
        if counts["seatkeeper_removes"] or counts["left_for_an_admin"]:
            why = ", ".join(f"{k} {v}" for k, v in counts["left_because"].items())
            print(
                f"  {label}: Seatkeeper removes {counts['seatkeeper_removes']}, "
                f"leaves {counts['left_for_an_admin']} for an admin{f' ({why})' if why else ''}",
                file=out,
            )
    for group, moves in summary["groups"].items():
        print(f"  group {group}: +{moves['in']} -{moves['out']}", file=out)
    for seat in summary["seats"]:
        print(
            f"  seats {seat['sku_part_number']}: {seat['consumed']} -> {seat['after']} of {seat['enabled']} "
            f"({seat['free_after']} free after)",
            file=out,
        )
    for rule in summary["membership_rules"]:
        print(
            f"  membershipRule {rule['group_id']}: +{rule['joins']} -{rule['leaves']} "
            f"({rule['members_after']} members after; baseline: {rule['baseline']})",
            file=out,
        )
