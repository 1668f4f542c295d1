"""Reprocessing group-based licenses (issue 7 item 6): one user, a group's `membersWithLicenseErrors`, or
every licensing group; `reprocessLicenseAssignment` per user (there is no group-level one), sent in `$batch`es
of 20 and paced below the per-app-and-tenant write quota. Graph's 429 stays the authority: the client
retries throttled items after their Retry-After; what is still throttled is reported, never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from handlers.tenant_reads import user_path
from seatkeeper.core.errors import NotFound
from seatkeeper.core.graph_port import GraphPort, GraphRequest
from seatkeeper.core.policy import Policy

log = structlog.get_logger("seatkeeper.license")

# Graph's write quota per app and tenant is 3,000 writes per 150 s (graph-facts D); keep a fifth spare
# for the rest of Seatkeeper (member adds, usage locations) and for other instances.
WRITE_QUOTA: Final = 3000
QUOTA_WINDOW_SECONDS: Final = 150.0
SHARE: Final = 0.8
BATCH: Final = 20


@dataclass
class WritePacer:
    """A token bucket over wall time: at most `rate` writes a second, in bursts of at most `burst`."""

    rate: float = WRITE_QUOTA * SHARE / QUOTA_WINDOW_SECONDS
    burst: int = BATCH
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _tokens: float = field(default=-1.0, init=False)
    _last: float = field(default=0.0, init=False)

    async def take(self, writes: int) -> None:
        """Wait until `writes` writes fit under the pace, then spend them."""
        now = self.monotonic()
        if self._tokens < 0:
            self._tokens, self._last = float(self.burst), now
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < writes:
            wait = (writes - self._tokens) / self.rate
            await self.sleep(wait)
            self._last = self.monotonic()
            self._tokens = float(writes)
        self._tokens -= writes


@dataclass(frozen=True)
class Target:
    """A user to reprocess: object id, and the UPN when known (protected lists may name either)."""

    user_id: str
    user_principal_name: str | None = None


@dataclass(frozen=True)
class ReprocessReport:
    """Who was reprocessed, who was skipped and why, who failed with which status (429: throttled)."""

    reprocessed: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    failed: tuple[tuple[str, int], ...] = ()

    def merged(self, other: ReprocessReport) -> ReprocessReport:
        """Both reports as one."""
        return ReprocessReport(
            self.reprocessed + other.reprocessed, self.skipped + other.skipped, self.failed + other.failed
        )


async def reprocess_targets(
    graph: GraphPort, policy: Policy, targets: Sequence[Target], *, pacer: WritePacer
) -> ReprocessReport:
    """Reprocess each target once (protected users are skipped), 20 a `$batch`, paced."""
    skipped: list[tuple[str, str]] = []
    wanted: list[str] = []
    for target in targets:
        if policy.is_protected(target.user_id, target.user_principal_name):
            skipped.append((target.user_id, "protected_user"))
        elif target.user_id not in wanted:
            wanted.append(target.user_id)
    done: list[str] = []
    failed: list[tuple[str, int]] = []
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        await pacer.take(len(chunk))
        answers = await graph.batch(
            [GraphRequest("POST", f"/users/{u}/reprocessLicenseAssignment") for u in chunk]
        )
        for user, answer in zip(chunk, answers, strict=True):
            if answer.ok:
                done.append(user)
            else:
                failed.append((user, answer.status))
    report = ReprocessReport(tuple(done), tuple(skipped), tuple(failed))
    log.info(
        "license.reprocessed",
        reprocessed=len(report.reprocessed),
        skipped=len(report.skipped),
        failed=len(report.failed),
        throttled=sum(1 for _, status in report.failed if status == 429),
    )
    return report


async def user_target(graph: GraphPort, user: str) -> Target | None:
    """The user named by object id or UPN, or None when there is no such user."""
    try:
        body = await graph.get(user_path(user, ("id", "userPrincipalName")))
    except NotFound:
        return None
    return Target(str(body["id"]).lower(), body.get("userPrincipalName"))


async def members_with_errors(graph: GraphPort, group_id: str) -> tuple[Target, ...]:
    """The group's members whose license from this group is in error (`membersWithLicenseErrors`)."""
    found: list[Target] = []
    async for page in graph.pages(
        f"/groups/{group_id}/membersWithLicenseErrors",
        params={"$select": "id,userPrincipalName", "$top": "999"},
    ):
        found += [Target(str(u["id"]).lower(), u.get("userPrincipalName")) for u in page.items if "id" in u]
    return tuple(found)


async def reprocess_groups(
    graph: GraphPort, policy: Policy, group_ids: Sequence[str], *, pacer: WritePacer
) -> ReprocessReport:
    """Reprocess the members in error of each group; observe-only and unknown groups are skipped whole."""
    report = ReprocessReport()
    for group_id in group_ids:
        licensing = policy.group(group_id)
        if licensing is None or licensing.observe_only:
            why = "observe_only" if licensing is not None else "not_a_licensing_group"
            report = report.merged(ReprocessReport(skipped=((group_id, why),)))
            continue
        targets = await members_with_errors(graph, licensing.id)
        report = report.merged(await reprocess_targets(graph, policy, targets, pacer=pacer))
    return report


def licensing_group_ids(policy: Policy) -> tuple[str, ...]:
    """Every licensing group of the policy (`--all`)."""
    return tuple(g.id for g in policy.licensing_groups)
