"""Issue 8 item 3's last sentence, end to end: one simulated day of changes made behind the service's back,
run twice on a fresh sandbox tenant — once with change notifications delivered, once with every delivery
switched off — ends in the same per-user state and the same open incidents: the sweep alone converges."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx

from seatkeeper.adapters.seat_store import PENDING_TABLE, WAITLIST_TABLE
from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.incidents import INCIDENTS_TABLE
from tests.e2e.host_process import ROOT, RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo

AMERICAS: Final = "a3193522-ecd3-4c1a-80cd-b107376dc077"
EMEA: Final = "43767abd-c08a-4ccf-b141-a0a274d91aa4"
APAC: Final = "6b258a2a-6162-41e4-a550-b0bf7529a2e8"
COPILOT_GROUPS: Final = (AMERICAS, EMEA, APAC)
PILOTS: Final = "61701be7-0950-4687-b6a9-0291c1c7e9e9"  # nested in EMEA: its members count as taken
COPILOT: Final = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
E3: Final = "05e9a617-0261-4cee-bb44-138d3ef5d965"
GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
HOUR: Final = 3600
# The admin command inherits no setting of ours: none may point it at a real tenant or another state.
_NOT_INHERITED: Final = "SEATKEEPER_"

UserState = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class EndState:
    """What the day leaves behind: per user, the groups and Copilot entries; the pending people; incidents."""

    users: dict[str, UserState]
    pending: set[tuple[str, str, str, tuple[str, ...]]]
    open_incidents: set[tuple[str, str, str]]


@dataclasses.dataclass
class Day:
    """One run: the host on the sandbox, the control plane and a Graph client of the sandbox's app."""

    host: RunningHost
    ready_file: Path
    control: httpx.Client
    graph: httpx.Client

    def idle(self) -> None:
        wait_for("an idle host", lambda: httpx.get(self.host.info["idle_url"], timeout=30).json()["idle"], 60)

    def advance(self, hours: int) -> None:
        """Move business time on in steps of at most three hours, the host idle after each (each step runs
        the sweep once, and every re-check that fell due)."""
        body = {
            "seconds": hours * HOUR,
            "max_step_seconds": 3 * HOUR,
            "idle_url": self.host.info["idle_url"],
            "idle_timeout": 30,
        }
        self.control.post("clock/advance", json=body, timeout=300).raise_for_status()
        self.idle()

    def members(self, group_id: str, add: list[str] = [], remove: list[str] = []) -> None:  # noqa: B006
        self.control.post(
            f"groups/{group_id}/members", json={"add": add, "remove": remove}
        ).raise_for_status()

    def admit(self, group_id: str, users: list[str]) -> list[dict[str, Any]]:
        """`seatkeeper admit` in order (first come, first served), against this host's state and sandbox."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        env.update(
            {
                "SEATKEEPER_DATA_DIR": str(self.host.state_dir),
                "SEATKEEPER_SANDBOX_READY_FILE": str(self.ready_file),
            }
        )
        done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "seatkeeper", "admit", *users, "--group", group_id, "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )
        lines = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
        assert len(lines) == len(users), done.stdout.decode() + done.stderr.decode()
        return lines

    def users(self) -> list[dict[str, Any]]:
        select = "id,accountEnabled,usageLocation,assignedLicenses,licenseAssignmentStates"
        return list(self.graph.get("users", params={"$select": select, "$top": "999"}).json()["value"])

    def free_copilot_seats(self) -> int:
        skus = self.graph.get("subscribedSkus").json()["value"]
        sku = next(s for s in skus if s["skuId"] == COPILOT)
        return int(sku["prepaidUnits"]["enabled"]) - int(sku["consumedUnits"])

    def set_seats(self, enabled: int) -> None:
        self.control.post(f"skus/{COPILOT}/seats", json={"enabled": enabled}).raise_for_status()

    def end_state(self) -> EndState:
        groups = {g["id"]: set(g["members"]) for g in self.control.get("tenant").json()["groups"]}
        users: dict[str, UserState] = {}
        for user in self.users():
            copilot = sorted(
                (str(s["assignedByGroup"]), str(s["state"]), str(s["error"]))
                for s in user.get("licenseAssignmentStates") or []
                if s["skuId"] == COPILOT
            )
            users[user["id"]] = {
                "groups": sorted(g for g in COPILOT_GROUPS if user["id"] in groups[g]),
                "copilot": copilot,
            }
        rows = asyncio.run(_rows(self.host.state_dir, (PENDING_TABLE, WAITLIST_TABLE, INCIDENTS_TABLE)))
        pending = {
            (table, partition, row, tuple(sorted(data.get("reasons") or ())))
            for table, partition, row, data in rows
            if table != INCIDENTS_TABLE
        }
        incidents = {
            (partition, str(data["subject"]), str(data["problem"]))
            for table, partition, _, data in rows
            if table == INCIDENTS_TABLE and data.get("status") == "open"
        }
        return EndState(users, pending, incidents)


async def _rows(state_dir: Path, tables: tuple[str, ...]) -> list[tuple[str, str, str, dict[str, Any]]]:
    store = SqliteStateStore(state_dir / EMBEDDED_STATE_FILE)
    try:
        return [(t, e.partition, e.row, dict(e.data)) for t in tables async for e in store.query(t)]
    finally:
        store.close()


@contextmanager
def _day(tenant: SandboxInfo, where: Path, *, notifications: bool) -> Iterator[Day]:
    """A fresh tenant (reset), deliveries on or off from the start, the host started on it."""
    context = tenant.ssl_context()
    with httpx.Client(base_url=tenant.control_url + "/", verify=context, timeout=30) as control:
        control.post("reset").raise_for_status()
        control.post("notifications", json={"enabled": notifications}).raise_for_status()
        token = control.post(
            tenant.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": tenant.client_id,
                "client_secret": tenant.client_secret,
                "scope": GRAPH_SCOPE,
            },
        )
        token.raise_for_status()
        where.mkdir(parents=True)
        ready = where / "sandbox-ready.json"
        ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
        host = start_host(
            where / "state",
            app="function_app:app",
            args=("--sandbox-ready-file", str(ready)),
            lock_seconds=10,
            max_deliveries=10,
        )
        try:
            with httpx.Client(
                base_url=tenant.graph_url + "/",
                verify=context,
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                timeout=30,
            ) as graph:
                day = Day(host, ready, control, graph)
                day.idle()
                yield day
        finally:
            host.stop()


def _cast(day: Day) -> dict[str, list[str]]:
    """Who plays which part, picked the same way from the (identical) fresh tenant of each run."""
    exported = day.control.get("tenant").json()
    groups = {g["id"]: set(g["members"]) for g in exported["groups"]}
    direct = {u["id"] for u in exported["users"] if u.get("assignedLicenses")}  # Graph mixes in GBL's
    taken = direct | set().union(*(groups[g] for g in (*COPILOT_GROUPS, PILOTS)))

    def e3_active(user: dict[str, Any]) -> bool:
        states = user.get("licenseAssignmentStates") or []
        return any(s["skuId"] == E3 and s["state"] == "Active" for s in states)

    free = sorted(
        (u for u in day.users() if u["id"] not in taken and u.get("accountEnabled", True) and e3_active(u)),
        key=lambda u: str(u["id"]),
    )
    located = [u["id"] for u in free if u.get("usageLocation")]
    unlocated = [u["id"] for u in free if not u.get("usageLocation")]
    apac_active = sorted(
        u["id"]
        for u in day.users()
        if u["id"] in groups[APAC]
        and any(
            s["skuId"] == COPILOT and s["state"] == "Active" for s in u.get("licenseAssignmentStates") or []
        )
    )
    return {"located": located, "unlocated": unlocated, "apac_active": apac_active}


def _live_a_day(day: Day) -> dict[str, list[str]]:
    """The day's changes, each followed by hours of business time in which the host keeps pace; returns
    who should end with Copilot from which group, and who was taken out."""
    cast = _cast(day)
    located = iter(cast["located"])
    free = day.free_copilot_seats()
    enabled = int(
        next(s for s in day.graph.get("subscribedSkus").json()["value"] if s["skuId"] == COPILOT)[
            "prepaidUnits"
        ]["enabled"]
    )
    # 00:00 — one person without a usage location is parked; the last seats go, and one more waits for one.
    [unlocated] = cast["unlocated"][:1]
    assert [a["result"] for a in day.admit(EMEA, [unlocated])] == ["pending"]
    fillers = [next(located) for _ in range(free + 1)]
    assert [a["result"] for a in day.admit(AMERICAS, fillers)] == ["added"] * free + ["pending"]
    day.advance(3)
    # 03:00 — an admin adds someone to EMEA behind our back with no seat left: a CountViolation appears.
    counted_out = next(located)
    day.members(EMEA, add=[counted_out])
    day.advance(3)
    # 06:00 — four seats bought: the waiting person and the one in CountViolation get theirs.
    day.set_seats(enabled + 4)
    day.advance(3)
    # 09:00 — the parked person gets a usage location: the blocker cleared, they are let in.
    day.control.patch(f"users/{unlocated}", json={"usageLocation": "DE"}).raise_for_status()
    day.advance(3)
    # 12:00 — an admin takes one APAC member out and puts a new one into Americas.
    leaver = cast["apac_active"][0]
    joiner = next(located)
    day.members(APAC, remove=[leaver])
    day.members(AMERICAS, add=[joiner])
    day.advance(3)
    # 15:00 — someone located where Copilot is not sold is added: a license error appears ...
    located_badly = next(located)
    day.control.patch(f"users/{located_badly}", json={"usageLocation": "RU"}).raise_for_status()
    day.members(APAC, add=[located_badly])
    day.advance(3)
    # 18:00 — ... and is fixed by the admin, who moves the person and reprocesses.
    day.control.patch(f"users/{located_badly}", json={"usageLocation": "JP"}).raise_for_status()
    day.graph.post(f"users/{located_badly}/reprocessLicenseAssignment").raise_for_status()
    day.advance(6)
    return {
        AMERICAS: [*fillers, joiner],
        EMEA: [unlocated, counted_out],
        APAC: [located_badly],
        "out": [leaver],
    }


def _assert_converged(state: EndState, expected: dict[str, list[str]]) -> None:
    """Everyone the day touched ends where the changes meant them to, nobody pending, no user incident."""
    for group_id in COPILOT_GROUPS:
        for user in expected[group_id]:
            assert state.users[user] == {"groups": [group_id], "copilot": [(group_id, "Active", "None")]}
    [leaver] = expected["out"]
    assert state.users[leaver] == {"groups": [], "copilot": []}
    assert state.pending == set()
    touched = {u for users in expected.values() for u in users}
    assert {i for i in state.open_incidents if i[0] == "user" and any(u in i[1] for u in touched)} == set()


def test_a_day_with_notifications_off_ends_where_a_day_with_them_does(
    tenant: SandboxInfo, tmp_path: Path
) -> None:
    """Same changes, same day, notifications on or all off: the same users, pending people and incidents."""
    with _day(tenant, tmp_path / "on", notifications=True) as day:
        expected = _live_a_day(day)
        with_notifications = day.end_state()
        delivered_on = sum(
            e["delivered"] for e in day.control.get("notifications").json()["endpoints"].values()
        )
    with _day(tenant, tmp_path / "off", notifications=False) as day:
        _live_a_day(day)
        without = day.end_state()
        stats = day.control.get("notifications").json()
    _assert_converged(with_notifications, expected)
    assert delivered_on > 0  # the first run really was driven by notifications as well
    assert stats["enabled"] is False
    assert [e["posts"] for e in stats["endpoints"].values()] == [0] * len(stats["endpoints"])
    assert without.users == with_notifications.users
    assert without.pending == with_notifications.pending
    assert without.open_incidents == with_notifications.open_incidents
