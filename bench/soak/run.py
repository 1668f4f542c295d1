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
from typing import Any, Final

import httpx

from bench.chaos.run import Chaos, ChaosScale
from sandbox import tenant_gen
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
    events_posted: int = 0  # HR events taken by the intake
    group_edits: int = 0  # direct member adds and removals behind the service's back
    lapsed_subscriptions: int = 0  # (day, group) pairs without a live subscription, or one replaced late
    subscriptions_replaced: int = 0  # a group's subscription id changed between two days (renewal keeps it)
    wrong_final_states: int = 0
    lost_events: int = 0
    dead_letters: int = 0  # messages dead-lettered over the run (resubmitted in the settle)
    dead_letters_without_alert: int = 0
    notifications_dropped: int = 0  # change notifications the sandbox gave up delivering
    notifications_delivered: int = 0
    incidents_opened: list[str] = field(default_factory=list)  # every incident of the run, with its status
    open_incidents: list[str] = field(default_factory=list)
    open_at_day_end: list[int] = field(default_factory=list)  # incidents open after each day
    rss_kib: list[int] = field(default_factory=list)  # the host's resident memory after each day
    wall_seconds: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def unprocessed(self) -> int:
        """Changes not processed: HR events not applied, notifications not delivered, silent dead letters."""
        return self.lost_events + self.notifications_dropped + self.dead_letters_without_alert

    @property
    def memory_growth(self) -> float:
        """Last day's memory over the first's (1.0: flat)."""
        return self.rss_kib[-1] / self.rss_kib[0] if len(self.rss_kib) > 1 and self.rss_kib[0] else 1.0

    @property
    def passed(self) -> bool:
        """Nothing lapsed, unprocessed or wrong, no incident left open, memory within 25 % of day one."""
        return (
            self.lapsed_subscriptions == self.wrong_final_states == self.unprocessed == 0
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
            f"  {self.events_posted} HR events taken, {self.group_edits} direct group edits; change "
            f"notifications delivered {self.notifications_delivered}, dropped {self.notifications_dropped}",
            f"  subscriptions lapsed {self.lapsed_subscriptions} (replaced {self.subscriptions_replaced}); "
            f"lost events {self.lost_events}; wrong final states {self.wrong_final_states}; dead letters "
            f"{self.dead_letters} ({self.dead_letters_without_alert} without an alert); changes "
            f"unprocessed {self.unprocessed}",
            f"  incidents opened {len(self.incidents_opened)}, open at the end {len(self.open_incidents)}; "
            f"open after each day {self.open_at_day_end}",
            *(f"  incident: {i}" for i in self.incidents_opened[:10]),
            f"  host memory (RSS, MiB) day 1 {rss[0] / 1024:.1f}, last {rss[-1] / 1024:.1f}, max "
            f"{max(rss) / 1024:.1f} on day {rss.index(max(rss)) + 1} (growth x{self.memory_growth:.2f})"
            if rss
            else "  host memory not sampled",
            "  RSS per day (MiB): " + " ".join(f"{k / 1024:.1f}" for k in rss),
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
        # group -> (subscription id, expiry) at the last check
        self.subscription_seen: dict[str, tuple[str, datetime]] = {}

    def load_tenant(self) -> None:
        """The chaos run's tenant, with a base (E3) seat for everyone: the generator gives 110 per 100
        users, so a quarter of the soak's 145 would hold E3 in `CountViolation` and be (rightly) gated out
        of Copilot for good; here, as in the chaos run, seats never decide."""
        super().load_tenant()
        doc = self.control.get("tenant").json()
        base = next(s for s in doc["skus"] if s["skuId"] == tenant_gen.SPE_E3)
        base["prepaidUnits"]["enabled"] = 10 * len(doc["users"]) + 100
        self.control.post("tenant", json=doc).raise_for_status()  # a load processes group licensing again

    def live_subscriptions(self) -> dict[str, tuple[str, datetime]]:
        """Group id -> (id, expiry) of the app's live subscription on it with the latest expiry."""
        found: dict[str, tuple[str, datetime]] = {}
        for sub in self.graph.get("subscriptions").json().get("value", []):
            parts = [p for p in str(sub["resource"]).strip("/").split("/") if p]
            group = parts[1].lower() if len(parts) > 1 else ""
            expiry = datetime.fromisoformat(str(sub["expirationDateTime"]).replace("Z", "+00:00"))
            if group not in found or expiry > found[group][1]:
                found[group] = (str(sub["id"]), expiry)
        return found

    def check_subscriptions(self, day: int) -> None:
        """Every group has a live subscription; one replaced since the last check must not have expired
        first (a renewal keeps the id: a new id is a recreation, a lapse if the old one ran out)."""
        now = self.now()
        live = self.live_subscriptions()
        for group in self.groups:
            current = live.get(group.lower())
            before = self.subscription_seen.get(group.lower())
            if current is None or current[1] <= now:
                self.soak.lapsed_subscriptions += 1
                self.soak.wrong.append(f"day {day}: no live subscription on {group}")
            elif before is not None and current[0] != before[0]:
                self.soak.subscriptions_replaced += 1
                if before[1] <= now:
                    self.soak.lapsed_subscriptions += 1
                    self.soak.wrong.append(f"day {day}: the subscription on {group} ran out and was replaced")
            if current is not None:
                self.subscription_seen[group.lower()] = current

    def open_incidents(self) -> list[dict[str, Any]]:
        return [i for i in self.incidents() if i.get("status") == "open"]

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
                self.soak.group_edits += 1
            if day == s.outage_day:
                self.outage()
                self.advance(DAY - OUTAGE_SECONDS, step=s.step_seconds)
            else:
                self.advance(DAY, step=s.step_seconds)
            self.check_subscriptions(day)
            open_now = self.open_incidents()
            self.soak.open_at_day_end.append(len(open_now))
            assert self.host is not None
            self.soak.rss_kib.append(_rss_kib(self.host.process.pid))
            described = ", ".join(f"{i['scope']}/{i['problem']}" for i in open_now)
            self.say(
                f"soak: day {day} done, host RSS {self.soak.rss_kib[-1] / 1024:.1f} MiB, "
                f"incidents open {len(open_now)}{': ' + described if described else ''}"
            )

    def finish(self) -> None:
        """Dead letters resubmitted and one reconciliation, as the chaos run does; then the comparison."""
        self.settle()
        self.compare()
        self.soak.events_posted = self.report.events_accepted
        self.soak.wrong_final_states = self.report.wrong_final_states
        self.soak.lost_events = self.report.lost_events
        self.soak.dead_letters = sum(self.report.dead_letters.values())
        self.soak.dead_letters_without_alert = self.report.dead_letters_without_alert
        self.soak.wrong += self.report.wrong
        incidents = self.incidents()
        self.soak.incidents_opened = [
            f"{i['scope']}/{i['problem']} {i['subject']} {i['status']} (opened {i['opened_at']}, closed "
            f"{i['closed_at']})"
            for i in incidents
        ]
        self.soak.open_incidents = [
            f"{i['scope']}/{i['problem']} {i['subject']}: {i['title']}"
            for i in incidents
            if i.get("status") == "open"
        ]
        endpoints = self.control.get("notifications").json().get("endpoints", {})
        self.soak.notifications_delivered = sum(int(e.get("delivered", 0)) for e in endpoints.values())
        self.soak.notifications_dropped = sum(int(e.get("dropped", 0)) for e in endpoints.values())


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
