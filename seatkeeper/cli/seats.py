"""`seatkeeper seats [--json]`: per Copilot SKU enabled / consumed / reserved / pending / free, and per
licensing group members, reserved, pending and waiting — the same seat arithmetic the gate uses
(free = enabled - consumed - Seatkeeper's open reservations).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from handlers.reconcile import collect
from seatkeeper.cli.admin_services import (
    CONFIGURATION,
    OK,
    UNREACHABLE,
    ServicesFactory,
    default_factory,
    opened,
    print_json,
)
from seatkeeper.cli.diagnose import copilot_skus
from seatkeeper.core.errors import ConfigurationError, NotFound, TransientError
from seatkeeper.core.policy import Policy
from seatkeeper.core.seat_ports import PendingPerson
from seatkeeper.core.seats import Reservation, WaitlistEntry, open_reservations, reservation_timeout
from seatkeeper.core.skus import SkuCatalogue


@dataclass(frozen=True)
class SkuSeats:
    """One Copilot SKU's seats."""

    sku_id: str
    sku: str
    status: str
    enabled: int
    consumed: int
    reserved: int
    pending: int
    free: int


@dataclass(frozen=True)
class GroupSeats:
    """One licensing group's view of its seats (members: None when the group does not exist)."""

    group_id: str
    group: str
    sku_ids: tuple[str, ...]
    members: int | None
    reserved: int
    pending: int
    waiting: int


@dataclass(frozen=True)
class SeatReport:
    """Every Copilot SKU and every licensing group."""

    skus: tuple[SkuSeats, ...]
    groups: tuple[GroupSeats, ...]

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-compatible document."""
        return asdict(self)


def seat_report(
    *,
    policy: Policy,
    catalogue: SkuCatalogue,
    held: Sequence[Reservation],
    pending: Sequence[PendingPerson],
    waiting: Sequence[WaitlistEntry],
    members: dict[str, int | None],
) -> SeatReport:
    """The seat report from what was read (`held`: the open reservations only)."""
    skus_by_group = {
        g.id.lower(): tuple(s.lower() for s in g.copilot_sku_ids) for g in policy.licensing_groups
    }
    skus: list[SkuSeats] = []
    for sku_id in copilot_skus(policy, catalogue):
        sku = catalogue.get(sku_id)
        enabled = sku.prepaid_units.enabled if sku is not None else 0
        consumed = sku.consumed_units if sku is not None else 0
        reserved = sum(1 for r in held if sku_id in r.sku_ids)
        waiting_for = sum(1 for p in pending if sku_id in skus_by_group.get(p.group_id.lower(), ()))
        skus.append(
            SkuSeats(
                sku_id=sku_id,
                sku=sku.sku_part_number if sku is not None and sku.sku_part_number else sku_id,
                status=sku.capability_status.value if sku is not None else "missing",
                enabled=enabled,
                consumed=consumed,
                reserved=reserved,
                pending=waiting_for,
                free=max(0, enabled - consumed - reserved),
            )
        )
    groups = tuple(
        GroupSeats(
            group_id=g.id.lower(),
            group=g.display_name or g.id,
            sku_ids=skus_by_group[g.id.lower()],
            members=members.get(g.id.lower()),
            reserved=sum(1 for r in held if r.group_id.lower() == g.id.lower()),
            pending=sum(1 for p in pending if p.group_id.lower() == g.id.lower()),
            waiting=sum(1 for w in waiting if w.group_id.lower() == g.id.lower()),
        )
        for g in policy.licensing_groups
    )
    return SeatReport(tuple(skus), groups)


async def gather(factory: ServicesFactory) -> SeatReport:
    """Read the catalogue, Seatkeeper's reservations, pending people, the waitlist and member counts."""
    async with opened(factory) as services:
        deps = services.license
        if deps is None:
            raise ConfigurationError(["the license adapters are not built"])
        now = deps.clock.now()
        catalogue = await deps.reads.catalogue(fresh=True)
        timeout = reservation_timeout(deps.policy.verification_deadline)
        held = open_reservations(
            await deps.seats.reservations(), snapshot_read_at=catalogue.read_at, now=now, timeout=timeout
        )
        members: dict[str, int | None] = {}
        for licensing in deps.policy.licensing_groups:
            gid = licensing.id.lower()
            try:
                items = await collect(deps.graph, f"/groups/{gid}/members", {"$select": "id", "$top": "999"})
            except NotFound:
                members[gid] = None
                continue
            members[gid] = len(items)
        return seat_report(
            policy=deps.policy,
            catalogue=catalogue,
            held=held,
            pending=await deps.seats.pending(),
            waiting=await deps.seats.waitlist(),
            members=members,
        )


def render(report: SeatReport, out: TextIO) -> None:
    """The report as two small tables."""
    print(
        f"{'Copilot SKU':<28} {'status':<10} {'enabled':>8} {'consumed':>9} {'reserved':>9} "
        f"{'pending':>8} {'free':>6}",
        file=out,
    )
    for s in report.skus:
        counts = f"{s.enabled:>8} {s.consumed:>9} {s.reserved:>9} {s.pending:>8} {s.free:>6}"
        print(f"{s.sku:<28} {s.status:<10} {counts}", file=out)
    print("", file=out)
    print(f"{'Licensing group':<28} {'members':>8} {'reserved':>9} {'pending':>8} {'waiting':>8}", file=out)
    for g in report.groups:
        members = "missing" if g.members is None else str(g.members)
        print(f"{g.group:<28} {members:>8} {g.reserved:>9} {g.pending:>8} {g.waiting:>8}", file=out)


async def run(args: argparse.Namespace, factory: ServicesFactory, out: TextIO) -> int:
    """Print the seat report; 2/3 on configuration/reach problems."""
    try:
        report = await gather(factory)
    except ConfigurationError as error:
        print(f"configuration: {'; '.join(error.problems)}", file=out)
        return CONFIGURATION
    except TransientError as error:
        print(f"unreachable, try again: {type(error).__name__}", file=out)
        return UNREACHABLE
    if args.json:
        print_json(report.to_json(), out)
    else:
        render(report, out)
    return OK


def register(subparsers: Any) -> None:
    """Add `seats [--json]`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "seats", help="Copilot seats per SKU and per licensing group", description=__doc__
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Entry point of `seatkeeper seats`."""
    return asyncio.run(run(args, default_factory, sys.stdout))
