"""The soak: days of sandbox business time with a steady trickle of HR joiners and direct group edits, and a
two-hour Graph outage, through the local host. Checked every simulated day and at the end: subscriptions
never lapse, every change is processed (the person-by-person comparison of the chaos run), no incident stays
open without cause, and the host's memory stays flat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import httpx

from bench.chaos.run import Chaos, ChaosScale
from tests.fixtures.sandbox import SandboxInfo

DAY: Final = 86_400
OUTAGE_SECONDS: Final = 2 * 3_600
STEP_SECONDS: Final = 1_800  # the reconciliation period; shorter timers run once per step (past due)


@dataclass(frozen=True)
class SoakScale:
    """How long, and how much happens each day."""

    days: int
    joiners_per_day: int
    edits_per_day: int
    outage_day: int
    # Business time per clock step. 30 minutes (the reconciliation period) keeps every timer on schedule;
    # the reduced soak takes hour steps (shorter timers run once per step, past due) to fit the suite.
    step_seconds: int = STEP_SECONDS


FULL_SOAK: Final = SoakScale(days=30, joiners_per_day=4, edits_per_day=2, outage_day=12)
REDUCED_SOAK: Final = SoakScale(days=1, joiners_per_day=4, edits_per_day=2, outage_day=1, step_seconds=3_600)


@dataclass
class SoakReport:
    """The figures of one soak; `passed` when none of its checks found anything."""

    seed: int
    scale: SoakScale
    lapsed_subscriptions: int = 0  # (day, group) pairs without a live subscription
    wrong_final_states: int = 0
    lost_events: int = 0
    open_incidents: list[str] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)  # the host's resident memory after each day
    restarts: int = 0
    wall_seconds: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def memory_growth(self) -> float:
        """Last day's memory over the first's (1.0: flat)."""
        return self.rss_kib[-1] / self.rss_kib[0] if len(self.rss_kib) > 1 and self.rss_kib[0] else 1.0

    @property
    def passed(self) -> bool:
        """Nothing lapsed, nothing lost or wrong, no incident left open, memory within 25 % of day one."""
        return (
            self.lapsed_subscriptions == self.wrong_final_states == self.lost_events == 0
            and not self.open_incidents
            and self.memory_growth <= 1.25
        )

    def lines(self) -> list[str]:
        """The report as printable lines."""
        s = self.scale
        rss = self.rss_kib
        return [
            f"soak: seed {self.seed}; {s.days} days of business time, {s.joiners_per_day} joiners and "
            f"{s.edits_per_day} group edits a day, a 2-hour Graph outage on day {s.outage_day}",
            f"  subscriptions lapsed {self.lapsed_subscriptions}; lost events {self.lost_events}; wrong "
            f"final states {self.wrong_final_states}; incidents open at the end {len(self.open_incidents)}",
            f"  host memory (RSS, MiB) day 1 {rss[0] / 1024:.1f}, last {rss[-1] / 1024:.1f}, max "
            f"{max(rss) / 1024:.1f} (growth x{self.memory_growth:.2f})"
            if rss
            else "  host memory not sampled",
            f"  wall time {self.wall_seconds:.0f} s; {'PASSED' if self.passed else 'FAILED'}",
            *(f"  open: {i}" for i in self.open_incidents[:10]),
            *(f"  wrong: {w}" for w in self.wrong[:10]),
        ]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Soak(Chaos):
    """The chaos run's tenant, host and comparison, with a day-by-day workload instead of the storm."""

    def __init__(
        self, sandbox: SandboxInfo, workdir: Path, scale: SoakScale, seed: int, say: Callable[[str], None]
    ):
        joiners = scale.days * scale.joiners_per_day
        chaos_scale = ChaosScale(
            joiners=joiners, leavers=0, movers=0, group_edits=scale.days * scale.edits_per_day, kills=0
        )
        super().__init__(sandbox, workdir, chaos_scale, seed, say)
        self.soak_scale = scale
        self.soak = SoakReport(seed=seed, scale=scale)

    def live_subscriptions(self) -> dict[str, datetime]:
        """Group id -> the latest expiry among the app's live subscriptions on it."""
        found: dict[str, datetime] = {}
        for sub in self.graph.get("subscriptions").json().get("value", []):
            group = str(sub["resource"]).rstrip("/").split("/")[-1].lower()
            if group == "members":
                group = str(sub["resource"]).split("/")[-2].lower()
            expiry = datetime.fromisoformat(str(sub["expirationDateTime"]).replace("Z", "+00:00"))
            found[group] = max(expiry, found.get(group, expiry))
        return found

    def check_subscriptions(self, day: int) -> None:
        now = self.now()
        live = self.live_subscriptions()
        for group in self.groups:
            expiry = live.get(group.lower())
            if expiry is None or expiry <= now:
                self.soak.lapsed_subscriptions += 1
                self.soak.wrong.append(f"day {day}: no live subscription on {group}")

    def outage(self) -> None:
        """Every Graph request answers 503 for two hours of business time, then Graph is back."""
        rule = {"path": r"^/v1\.0/", "method": None, "kind": "unavailable", "rate": 1.0}
        self.control.post("faults", json={"seed": self.report.seed, "rules": [rule]}).raise_for_status()
        try:
            self.advance(OUTAGE_SECONDS, step=STEP_SECONDS // 2, idle_timeout=5, wait=False)
        finally:
            self.control.delete("faults").raise_for_status()
        self.say("soak: the 2-hour Graph outage is over")

    def days(self) -> None:
        people = list(self.people.values())
        s = self.soak_scale
        for day in range(1, s.days + 1):
            todays = people[(day - 1) * s.joiners_per_day : day * s.joiners_per_day]
            if todays:
                self.post([self.event("joiner", p) for p in todays])
                self.report.events_posted += len(todays)
            for _ in range(s.edits_per_day):
                self.group_edit()
            if day == s.outage_day:
                self.outage()
                self.advance(DAY - OUTAGE_SECONDS, step=s.step_seconds)
            else:
                self.advance(DAY, step=s.step_seconds)
            self.check_subscriptions(day)
            assert self.host is not None
            self.soak.rss_kib.append(_rss_kib(self.host.process.pid))
            self.say(f"soak: day {day} done, host RSS {self.soak.rss_kib[-1] / 1024:.1f} MiB")

    def finish(self) -> None:
        """Dead letters resubmitted and one reconciliation, as the chaos run does; then the comparison."""
        self.settle()
        self.compare()
        self.soak.wrong_final_states = self.report.wrong_final_states
        self.soak.lost_events = self.report.lost_events
        self.soak.wrong += self.report.wrong
        self.soak.open_incidents = [
            f"{i['scope']}/{i['problem']} {i['subject']}: {i['title']}"
            for i in self.incidents()
            if i.get("status") == "open"
        ]


def run_soak(
    sandbox: SandboxInfo, workdir: Path, scale: SoakScale, seed: int, say: Callable[[str], None] = print
) -> SoakReport:
    """Run one soak on this sandbox (its tenant is replaced) and return its figures."""
    say(f"soak: seed {seed}")
    soak = Soak(sandbox, workdir, scale, seed, say)
    started = time.monotonic()
    try:
        soak.load_tenant()
        soak.start()
        soak.idle()
        soak.days()
        soak.finish()
    finally:
        with contextlib.suppress(httpx.HTTPError):
            soak.control.delete("faults")
        soak.close()
        soak.soak.wall_seconds = time.monotonic() - started
    return dataclasses.replace(soak.soak)
