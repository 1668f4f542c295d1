"""The chaos run: HR joiners, leavers and movers interleaved with direct group edits, against the sandbox
through the local host, while Graph throttles and fails 20 % of requests and the host is killed with
`kill -9` and started again; then faults off, dead letters resubmitted, one reconciliation pass, and the
tenant compared with what the policy implies, person by person. Seeded: the same seed, the same run.
With `ChaosScale.seats`, Copilot seats run out: people wait on the waitlist and leavers' seats go to them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from standardwebhooks.webhooks import Webhook

from sandbox import tenant_gen
from seatkeeper.adapters.clocks import WallClock
from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE, EmbeddedQueue
from seatkeeper.adapters.seat_store import WAITLIST_TABLE
from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.incidents import INCIDENTS_TABLE
from seatkeeper.core.messages import ALERTS, QUEUES
from seatkeeper.core.ports import Entity
from tests.e2e.host_process import RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

COPILOT: Final = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
REGION_COUNTRIES: Final = (("US", "CA", "BR"), ("GB", "DE", "FR", "NL"), ("JP", "AU", "IN"))
COPILOT_DEPARTMENTS: Final = ("Sales", "Engineering", "Marketing", "Finance", "Legal")
# Sandbox-only signing secret of this run's HR intake (not a credential of anything real).
SIGNING_SECRET: Final = "whsec_" + "c2FuZGJveC1vbmx5LWNoYW9zLWhyLXNpZ25pbmc="
GRAPH_TIMEOUT_SECONDS: Final = 2.0
HR_SOURCE: Final = "/hr/chaos"
PEOPLE_TABLE: Final = "hrpeople"  # onboarding's record of the newest event applied to a person


@dataclass(frozen=True)
class ChaosScale:
    """How big a run is."""

    joiners: int
    leavers: int
    movers: int
    group_edits: int
    kills: int
    fault_rate: float = 0.2
    chunk: int = 20  # HR events per request
    # Copilot seats free for the run's people (None: plenty). With a number, seats run out: people wait on
    # the waitlist, leavers free seats for them, and the admin only removes (an admin's add behind the
    # service's back could take a seat the service counted as free: a race no service can win).
    seats: int | None = None

    @property
    def backlog_kills(self) -> int:
        """The kills that fall while the host works off the backlog, after the last post (half)."""
        return self.kills // 2


FULL: Final = ChaosScale(joiners=1_000, leavers=300, movers=200, group_edits=300, kills=8)
REDUCED: Final = ChaosScale(joiners=40, leavers=12, movers=8, group_edits=16, kills=2, chunk=10)


@dataclass
class ChaosReport:
    """The figures of one run; `passed` when every defect count is zero."""

    seed: int
    scale: ChaosScale
    events_posted: int = 0
    events_accepted: int = 0
    duplicate_posts: int = 0
    intake_retries: int = 0
    kills: int = 0
    faults_fired: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    people_checked: int = 0
    lost_events: int = 0
    wrong_final_states: int = 0
    duplicate_alerts: int = 0
    seats_over_assigned: int = 0
    in_two_groups: int = 0
    dead_letters_without_alert: int = 0
    waiting_for_seat: int = 0  # people the policy puts in a group, on its waitlist with no seat free
    wall_seconds: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when nothing was lost, wrong, doubled, over-assigned or silent."""
        return (
            self.lost_events
            == self.wrong_final_states
            == self.duplicate_alerts
            == self.seats_over_assigned
            == self.in_two_groups
            == self.dead_letters_without_alert
            == 0
        )

    def lines(self) -> list[str]:
        """The report as printable lines (ids only, never a secret)."""
        s = self.scale
        return [
            f"chaos: seed {self.seed}; {s.joiners} joiners, {s.leavers} leavers, {s.movers} movers, "
            f"{s.group_edits} direct group edits, faults {s.fault_rate:.0%}, {self.kills} kill -9",
            f"  HR events posted {self.events_posted} (+{self.duplicate_posts} duplicate posts, "
            f"{self.intake_retries} retried after a failed post), taken {self.events_accepted}",
            f"  faults fired {dict(sorted(self.faults_fired.items()))}; dead letters {self.dead_letters}",
            f"  people checked {self.people_checked}: lost events {self.lost_events}, wrong final states "
            f"{self.wrong_final_states}, duplicate alerts {self.duplicate_alerts}, seats over-assigned "
            f"{self.seats_over_assigned}, in two Copilot groups {self.in_two_groups}, dead letters "
            f"without an alert {self.dead_letters_without_alert}"
            + (
                ""
                if s.seats is None
                else f"; seats {s.seats}, left waiting for a seat {self.waiting_for_seat}"
            ),
            f"  wall time {self.wall_seconds:.0f} s; {'PASSED' if self.passed else 'FAILED'}",
            *(f"  wrong: {w}" for w in self.wrong[:20]),
        ]


def policy_text(groups: Sequence[str]) -> str:
    """Three region groups, picked by department and country; no removal guard in the way."""
    lines = ["version: 1", "licensing_groups:"]
    for n, group in enumerate(groups):
        lines += [
            f"  - id: {group}",
            f"    display_name: Copilot region {n + 1}",
            f"    copilot_sku_ids: [{COPILOT}]",
        ]
    lines += [
        f"copilot_skus:\n  sku_ids: [{COPILOT}]",
        "blast_radius:\n  max_removals_per_hour: 100000",
        "alerts:\n  routes:\n    - name: team\n      channel: teams\n      min_severity: warning\n"
        "      url_setting: SEATKEEPER_TEAMS_WEBHOOK_URL",
        "hr_rules:",
    ]
    for n, (group, countries) in enumerate(zip(groups, REGION_COUNTRIES, strict=True)):
        lines += [
            f"  - name: region-{n + 1}",
            "    when:",
            f"      department: {{in: [{', '.join(COPILOT_DEPARTMENTS)}]}}",
            f"      country: {{in: [{', '.join(countries)}]}}",
            f"    group_id: {group}",
        ]
    return "\n".join(lines) + "\n"


def implied_group(department: str | None, country: str | None, groups: Sequence[str]) -> str | None:
    """What the policy's rules choose, written out independently of the service."""
    if department not in COPILOT_DEPARTMENTS:
        return None
    for group, countries in zip(groups, REGION_COUNTRIES, strict=True):
        if country in countries:
            return group
    return None


@dataclass
class Person:
    """One HR person of the run and the events sent for them, newest last."""

    user: dict[str, Any]
    country: str
    events: list[dict[str, Any]] = field(default_factory=list)
    left: bool = False

    @property
    def employee_id(self) -> str:
        return str(self.user["employeeId"])


class Chaos:
    """One run's tenant, host and clients."""

    def __init__(
        self, sandbox: SandboxInfo, workdir: Path, scale: ChaosScale, seed: int, say: Callable[[str], None]
    ):
        self.sandbox = sandbox
        self.workdir = workdir
        self.scale = scale
        self.random = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
        self.say = say
        self.report = ChaosReport(seed=seed, scale=scale)
        self.control = httpx.Client(
            base_url=sandbox.control_url + "/", verify=sandbox.ssl_context(), timeout=120
        )
        self.graph = httpx.Client(base_url=sandbox.graph_url + "/", verify=sandbox.ssl_context(), timeout=60)
        self.host: RunningHost | None = None
        self.groups: list[str] = []
        self.people: dict[str, Person] = {}
        self.bystanders: dict[str, set[str]] = {}  # user id -> the Copilot groups an admin put them in

    # -- set-up ------------------------------------------------------------------------------------

    def load_tenant(self) -> None:
        """A generated tenant (E3 for everyone) with plenty of Copilot seats: seats never decide here."""
        s = self.scale
        bystanders = max(8, s.group_edits // 4)
        doc = tenant_gen.large_tenant(s.joiners + bystanders + 10, 4, seed=self.report.seed % 1_000_000)
        doc["apps"] = self.control.get("tenant").json()["apps"]
        self.control.delete("faults")
        self.control.post("tenant", json=doc).raise_for_status()
        self.groups = [g["id"] for g in doc["groups"] if g["displayName"].startswith("Copilot")]
        copilot = [g for g in doc["groups"] if g["id"] in self.groups]
        for group in copilot:  # members from before the run: an admin's; they must stay as they are
            for member in group.get("members", []):
                self.bystanders.setdefault(member, set()).add(group["id"])
        users = [u for u in doc["users"] if u.get("employeeId") and u["id"] not in self.bystanders]
        self.random.shuffle(users)
        for user in users[: s.joiners]:
            self.people[user["employeeId"]] = Person(user, str(user.get("usageLocation") or "US"))
        self.bystanders.update({u["id"]: set() for u in users[s.joiners : s.joiners + bystanders]})
        before = sum(1 for held in self.bystanders.values() if held)  # one Copilot seat each
        enabled = 10 * len(users) + 100 if s.seats is None else before + s.seats
        self.control.post(f"skus/{COPILOT}/seats", json={"enabled": enabled}).raise_for_status()
        with httpx.Client(verify=self.sandbox.ssl_context()) as http:
            token = confidential_app(
                self.sandbox, http, self.sandbox.client_id, self.sandbox.client_secret
            ).acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
        self.graph.headers["Authorization"] = f"Bearer {token}"

    def start(self) -> RunningHost:
        """Start (or start again) the host on the same state directory: nothing but the files survives."""
        ready = self.workdir / "sandbox-ready.json"
        ready.write_text(json.dumps(dataclasses.asdict(self.sandbox)), encoding="utf-8")
        policy = self.workdir / "policy.yaml"
        policy.write_text(policy_text(self.groups), encoding="utf-8")
        self.host = start_host(
            self.workdir / "state",
            app="function_app:app",
            args=("--sandbox-ready-file", str(ready), "--concurrency", "4"),
            lock_seconds=5.0,
            max_deliveries=10,
            extra_env={
                "SEATKEEPER_HR_SIGNING_SECRET": SIGNING_SECRET,
                "SEATKEEPER_POLICY_FILE": str(policy),
                "SEATKEEPER_GRAPH_TIMEOUT_SECONDS": str(GRAPH_TIMEOUT_SECONDS),
            },
        )
        return self.host

    def kill_and_restart(self) -> None:
        """`kill -9` the host at this moment and start it again."""
        assert self.host is not None
        self.host.kill9()
        self.report.kills += 1
        self.say(f"chaos: kill -9 #{self.report.kills}")
        self.start()

    def faults(self, on: bool) -> None:
        """20 % of Graph requests fail: 429 with Retry-After, 503, slow past the client timeout, dropped."""
        if not on:
            described = self.control.get("faults").json()
            rules = described.get("rules", []) if isinstance(described, dict) else described
            for rule in rules:
                kind = str(rule.get("kind"))
                self.report.faults_fired[kind] = self.report.faults_fired.get(kind, 0) + int(
                    rule.get("fired", 0)
                )
            self.control.delete("faults").raise_for_status()
            return
        each = 1 - (1 - self.scale.fault_rate) ** 0.25  # four rules, tried in turn: 20 % in all
        graph = r"^/v1\.0/"
        rules = [
            {"path": graph, "method": None, "kind": "throttle", "rate": each, "retry_after": 1},
            {"path": graph, "method": None, "kind": "unavailable", "rate": each},
            {"path": graph, "method": None, "kind": "slow", "rate": each, "delay": GRAPH_TIMEOUT_SECONDS + 1},
            {"path": graph, "method": None, "kind": "drop", "rate": each},
        ]
        self.control.post("faults", json={"seed": self.report.seed, "rules": rules}).raise_for_status()

    # -- the workload --------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromisoformat(self.control.get("clock").json()["now"])

    def event(self, kind: str, person: Person, **data: Any) -> dict[str, Any]:
        """The next HR event of a person (recorded after every earlier one)."""
        now = self.now()
        recorded = now + timedelta(milliseconds=len(person.events))
        when = {"joiner": "hireDate", "mover": "effectiveDate", "leaver": "leaveDate"}[kind]
        body = {
            "employeeId": person.employee_id,
            "objectId": person.user["id"],
            "department": person.user.get("department"),
            "country": person.country,
            when: (now - timedelta(minutes=1)).isoformat(),
            **data,
        }
        event = {
            "specversion": "1.0",
            "id": f"{kind}-{person.employee_id}-{len(person.events)}",
            "source": HR_SOURCE,
            "type": f"com.seatkeeper.hr.{kind}",
            "time": recorded.isoformat(),
            "data": body,
        }
        person.events.append(event)
        return event

    def post(self, events: Sequence[dict[str, Any]], *, again: bool = False) -> None:
        """Post a batch as an HR system would: again until it is taken (failed, or the host is down)."""
        body = json.dumps(list(events))
        for attempt in range(200):
            assert self.host is not None
            at = datetime.now(tz=UTC)
            msg_id = f"msg_{time.monotonic_ns()}"
            headers = {
                "Content-Type": "application/cloudevents-batch+json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": Webhook(SIGNING_SECRET).sign(msg_id, at, body),
                "x-functions-key": self.host.function_key,
            }
            try:
                answer = httpx.post(
                    f"{self.host.api_url}/hr/events", content=body, headers=headers, timeout=60
                )
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 202:
                outcomes = Counter(r["outcome"] for r in answer.json()["results"])
                # A post retried after a lost answer may find its events taken already: still taken.
                self.report.events_accepted += 0 if again else outcomes["accepted"] + outcomes["duplicate"]
                return
            self.report.intake_retries += 1
            if answer is not None and answer.status_code < 500:
                raise AssertionError(
                    f"HR intake refused a valid batch: {answer.status_code} {answer.text[:300]}"
                )
            time.sleep(min(2.0, 0.1 * (attempt + 1)))
        raise AssertionError("HR intake never took a batch")

    def group_edit(self) -> None:
        """An admin adds or removes a bystander in a Copilot group, behind the service's back."""
        user = self.random.choice(sorted(self.bystanders))
        group = self.random.choice(self.groups)
        held = self.bystanders[user]
        change = "remove" if group in held else "add"
        if change == "add" and self.scale.seats is not None:
            return
        self.control.post(f"groups/{group}/members", json={change: [user]}).raise_for_status()
        if change == "add":
            held.add(group)
        else:
            held.discard(group)

    def workload(self) -> None:
        """Joiners first in the shuffled order, leavers and movers among those already joined, interleaved
        with group edits, duplicate posts and kills at random moments."""
        s = self.scale
        people = list(self.people.values())
        first: list[tuple[str, Person | None]] = [("joiner", p) for p in people] + [
            ("edit", None)
        ] * s.group_edits
        self.random.shuffle(first)
        keyed = [(float(i), step) for i, step in enumerate(first)]
        joined_at = {id(p): k for k, (kind, p) in keyed if kind == "joiner"}
        leavers = self.random.sample(people, s.leavers)
        movers = self.random.sample(
            [p for p in people if p not in leavers], min(s.movers, len(people) - s.leavers)
        )
        # A person's later event goes anywhere after their joiner: HR's order is kept per person only.
        for kind, chosen in (("leaver", leavers), ("mover", movers)):
            for someone in chosen:
                later: tuple[str, Person | None] = (kind, someone)
                keyed.append((self.random.uniform(joined_at[id(someone)], len(first)), later))
        keyed.sort(key=lambda pair: pair[0])
        steps = [step for _, step in keyed]
        during = s.kills - s.backlog_kills
        kill_at = set(self.random.sample(range(1, len(steps)), min(during, len(steps) - 1)))
        pending: list[dict[str, Any]] = []
        sent: list[list[dict[str, Any]]] = []
        for index, (step, person) in enumerate(steps):
            if index in kill_at:
                self.kill_and_restart()
            if person is None:
                self.group_edit()
                continue
            if step == "leaver":
                person.left = True
                pending.append(self.event("leaver", person))
            elif step == "mover":
                region = self.random.choice([c for c in REGION_COUNTRIES if person.country not in c])
                person.country = self.random.choice(region)
                # HR-driven provisioning moves the Entra account too (usage location follows the country).
                self.control.patch(f"users/{person.user['id']}", json={"usageLocation": person.country})
                pending.append(self.event("mover", person))
            else:
                pending.append(self.event("joiner", person))
            if len(pending) >= s.chunk:
                self.post(pending)
                self.report.events_posted += len(pending)
                sent.append(pending)
                pending = []
                if self.random.random() < 0.2:  # HR sends a batch again
                    self.post(self.random.choice(sent), again=True)
                    self.report.duplicate_posts += 1
        if pending:
            self.post(pending)
            self.report.events_posted += len(pending)

    def drain(self) -> None:
        """The workload's backlog under the same chaos. Posting is much faster than processing, so the
        faults stay on and the remaining kills fall at random moments while the host works the backlog off;
        then business time passes the settle time and the movers' recheck, so that removals and
        verifications run under faults too."""
        for _ in range(self.scale.backlog_kills):
            self.busy_for(self.random.uniform(0.3, 4.0))
            self.kill_and_restart()
        self.idle()
        self.advance(20 * 60)

    def busy_for(self, seconds: float) -> None:
        """Wait `seconds`, or less if the host runs out of work first (the kill then comes at its end)."""
        assert self.host is not None
        idle_url = self.host.info["idle_url"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not httpx.get(idle_url, timeout=30).json()["idle"]:
            time.sleep(0.1)

    # -- settle and compare ------------------------------------------------------------------------

    def idle(self, timeout: float = 600) -> None:
        assert self.host is not None
        idle_url = self.host.info["idle_url"]
        wait_for("an idle host", lambda: httpx.get(idle_url, timeout=30).json()["idle"], timeout)

    def advance(self, seconds: int, step: int = 300, *, idle_timeout: float = 120, wait: bool = True) -> None:
        """Move business time forward in steps, the sandbox waiting (up to `idle_timeout` s) for an idle host
        after each; then wait for idle unless told not to (Graph down: the host retries, never idle)."""
        assert self.host is not None
        body = {
            "seconds": seconds,
            "max_step_seconds": step,
            "idle_url": self.host.info["idle_url"],
            "idle_timeout": idle_timeout,
        }
        self.control.post("clock/advance", json=body, timeout=3_600).raise_for_status()
        time.sleep(1.2)  # the service re-reads the sandbox clock's offset at most once a second
        if wait:
            self.idle()

    def run_function(self, name: str) -> None:
        assert self.host is not None
        answer = httpx.post(
            f"{self.host.base_url}/admin/functions/{name}",
            json={"input": ""},
            headers={"x-functions-key": self.host.master_key},
            timeout=600,
        )
        answer.raise_for_status()

    def queue(self) -> EmbeddedQueue:
        assert self.host is not None
        return EmbeddedQueue(self.host.state_dir / EMBEDDED_QUEUE_FILE, clock=WallClock())

    def settle(self) -> None:
        """Faults off; the leavers' and movers' settle time; dead letters alerted, then resubmitted; one
        reconciliation pass; idle."""
        self.faults(on=False)
        self.advance(20 * 60)
        self.run_function("dead_letter_watch")
        self.idle()
        queue = self.queue()
        try:
            dead = {q: asyncio.run(queue.list(q, limit=100_000)) for q in QUEUES}
            self.report.dead_letters = {q: len(d) for q, d in dead.items() if d}
            alerted = self.alerted_queues()
            # The alerts queue's own dead letters cannot be alerted (health shows them): all count.
            self.report.dead_letters_without_alert = sum(
                len(d) for q, d in dead.items() if d and (q == ALERTS or q not in alerted)
            )
            for q, letters in dead.items():
                for letter in letters:
                    asyncio.run(queue.resubmit(q, letter.message_id))
        finally:
            queue.close()
        self.idle()
        self.run_function("group_reconciliation")
        self.idle()
        self.advance(20 * 60)

    def alerted_queues(self) -> set[str]:
        return {str(i["subject"]) for i in self.incidents() if i["problem"] == "queue.dead_letters"}

    def state_file(self) -> Path:
        assert self.host is not None
        return self.host.state_dir / EMBEDDED_STATE_FILE

    def entities(self, table: str) -> list[Entity]:
        """Every row of one of the host's state tables, read from its SQLite file."""
        path = self.state_file()

        async def read() -> list[Entity]:
            store = SqliteStateStore(path)
            try:
                return [e async for e in store.query(table)]
            finally:
                store.close()

        return asyncio.run(read())

    def incidents(self) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.entities(INCIDENTS_TABLE)]

    def people_records(self) -> dict[str, dict[str, Any]]:
        rows = {e.partition: dict(e.data) for e in self.entities(PEOPLE_TABLE)}
        # An employeeId linked to the Entra object id points to the one record of that human.
        return {
            key: rows.get(str(row["alias_of"]), {}) if "alias_of" in row else row for key, row in rows.items()
        }

    def waitlists(self) -> set[tuple[str, str]]:
        """(group, user) of everyone on a waitlist."""
        return {(e.partition, e.row) for e in self.entities(WAITLIST_TABLE)}

    def members(self) -> dict[str, set[str]]:
        """user id -> the Copilot groups they are a direct member of."""
        found: dict[str, set[str]] = {}
        for group in self.groups:
            url: str | None = f"groups/{group}/members?$select=id&$top=999"
            while url:
                body = self.graph.get(url).json()
                for member in body["value"]:
                    found.setdefault(member["id"], set()).add(group)
                url = body.get("@odata.nextLink")
        return found

    def seatless_members(self) -> int:
        """Members of the Copilot groups whose Copilot assignment through it failed for want of a seat."""
        found = 0
        for group in self.groups:
            url: str | None = f"groups/{group}/membersWithLicenseErrors?$select=id,licenseAssignmentStates"
            while url:
                body = self.graph.get(url).json()
                for user in body["value"]:
                    found += any(
                        str(state.get("assignedByGroup", "")).lower() == group
                        and str(state.get("skuId", "")).lower() == COPILOT
                        and state.get("error") == "CountViolation"
                        for state in user.get("licenseAssignmentStates", [])
                    )
                url = body.get("@odata.nextLink")
        return found

    def compare(self) -> None:
        """Person by person: membership against the policy, the newest event applied, seats, alerts."""
        members = self.members()
        records = self.people_records()
        sku = next(s for s in self.graph.get("subscribedSkus").json()["value"] if s["skuId"] == COPILOT)
        seats_free = int(sku["prepaidUnits"]["enabled"]) - int(sku["consumedUnits"])
        waiting = self.waitlists() if self.scale.seats is not None else set()
        for person in self.people.values():
            expected = (
                None
                if person.left
                else implied_group(person.user.get("department"), person.country, self.groups)
            )
            actual = members.get(person.user["id"], set())
            waits = expected is not None and (expected, person.user["id"]) in waiting
            if waits and expected not in actual and seats_free <= 0:
                # Seats ran out: waiting is right, as long as nothing else is (a mover keeps at most the
                # old group until the new one has a seat).
                self.report.waiting_for_seat += 1
                if len(actual) <= 1:
                    continue
            if actual != ({expected} if expected else set()):
                self.report.wrong_final_states += 1
                kinds = "/".join(str(e["type"]).rsplit(".", 1)[-1] for e in person.events)
                self.report.wrong.append(
                    f"{person.employee_id} ({person.user['id']}, {kinds}, {person.user.get('department')}, "
                    f"{person.country}): expected {expected}, member of {sorted(actual)}"
                )
            record = records.get(person.employee_id)
            newest = person.events[-1]["id"] if person.events else None
            if record is None or record.get("event_id") != newest or not record.get("applied"):
                self.report.lost_events += 1
                self.report.wrong.append(
                    f"{person.employee_id}: newest event {newest}, record {record and record.get('event_id')}"
                )
        for user, held in self.bystanders.items():
            if members.get(user, set()) != held:
                self.report.wrong_final_states += 1
                self.report.wrong.append(
                    f"bystander {user}: admin left {sorted(held)}, now {sorted(members.get(user, set()))}"
                )
        self.report.people_checked = len(self.people) + len(self.bystanders)
        # Over-assigned: Copilot consumed past enabled, or a member a licensing group could not give a
        # Copilot seat to (Entra then leaves the assignment in CountViolation instead of over-consuming).
        over = -seats_free
        self.report.seats_over_assigned = max(0, over) + self.seatless_members()
        # In two Copilot groups (one seat in Entra, but two assignments to undo): people counted above as
        # wrong already, counted here once more; an admin's own choice for a bystander is not.
        self.report.in_two_groups = sum(
            1 for user, groups in members.items() if len(groups) > 1 and groups != self.bystanders.get(user)
        )
        posts = [json.dumps(p, sort_keys=True) for p in self.control.get("teams").json()["value"]]
        self.report.duplicate_alerts = sum(n - 1 for n in Counter(posts).values() if n > 1)
        for incident in self.incidents():
            opened = Counter(
                n["occurrence"] for n in json.loads(incident["notices_json"]) if n["kind"] == "opened"
            )
            self.report.duplicate_alerts += sum(n - 1 for n in opened.values() if n > 1)

    def close(self) -> None:
        if self.host is not None:
            self.host.stop()
        self.control.close()
        self.graph.close()


@contextmanager
def _timed(report: ChaosReport) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.wall_seconds = time.monotonic() - started


def run_chaos(
    sandbox: SandboxInfo, workdir: Path, scale: ChaosScale, seed: int, say: Callable[[str], None] = print
) -> ChaosReport:
    """Run one chaos run on this sandbox (its tenant is replaced) and return its figures."""
    say(f"chaos: seed {seed}")
    chaos = Chaos(sandbox, workdir, scale, seed, say)
    try:
        with _timed(chaos.report):
            chaos.load_tenant()
            chaos.start()
            chaos.idle()
            chaos.faults(on=True)
            chaos.workload()
            chaos.drain()
            chaos.settle()
            chaos.compare()
    finally:
        try:
            chaos.control.delete("faults")
        finally:
            chaos.close()
    return chaos.report
