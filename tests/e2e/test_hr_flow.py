"""HR events end to end (issue 9 item 9): the real function_app.py in the local host on the sandbox. Signed
joiners posted at once end with exactly the people the rules select in their region's group (the rest
pending with reasons, seats never exceeded); replays change nothing; leavers free seats for the waitlist; a
mover keeps Copilot without a gap; a mass leaver past the guard removes nobody and raises one incident."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.reasons import Reason
from tests.e2e.host_process import ROOT, RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
EMEA = "43767abd-c08a-4ccf-b141-a0a274d91aa4"
APAC = "6b258a2a-6162-41e4-a550-b0bf7529a2e8"
PILOTS = "61701be7-0950-4687-b6a9-0291c1c7e9e9"
REGIONS = {
    **dict.fromkeys(("US", "CA", "BR"), AMERICAS),
    **dict.fromkeys(("DE", "FR", "GB", "NL"), EMEA),
    **dict.fromkeys(("IN", "JP", "AU"), APAC),
}
COPILOT_DEPARTMENTS = {"Sales", "Marketing", "Engineering"}
SECRET = "whsec_" + base64.b64encode(b"sandbox-only-e2e-hr-signing-0003").decode()
LIMIT = 12
FREE_SEATS = 30


def selected_group(user: dict[str, Any]) -> str | None:
    """What policies/sandbox.yaml's rules choose, written out independently for the test."""
    if user.get("department") not in COPILOT_DEPARTMENTS:
        return None
    return REGIONS.get(str(user.get("usageLocation")))


@dataclasses.dataclass
class Scene:
    host: RunningHost
    graph: httpx.Client
    control: httpx.Client
    api: httpx.Client
    state: SqliteStateStore | None = None

    def idle(self) -> None:
        wait_for("an idle host", lambda: httpx.get(self.host.info["idle_url"], timeout=10).json()["idle"], 90)

    def advance(self, seconds: int, step: int = 30) -> None:
        body = {"seconds": seconds, "max_step_seconds": step, "idle_url": self.host.info["idle_url"]}
        self.control.post("clock/advance", json=body, timeout=180).raise_for_status()
        time.sleep(1.2)  # the service re-reads the sandbox clock's offset at most once a second
        self.idle()

    def now(self) -> datetime:
        return datetime.fromisoformat(self.control.get("clock").json()["now"])

    def members(self, *groups: str) -> dict[str, str]:
        """user id -> group, over the given groups."""
        found: dict[str, str] = {}
        for group in groups:
            body = self.graph.get(f"groups/{group}/members", params={"$select": "id", "$top": "999"}).json()
            found.update({m["id"]: group for m in body["value"]})
        return found

    def consumed(self) -> tuple[int, int]:
        sku = next(s for s in self.graph.get("subscribedSkus").json()["value"] if s["skuId"] == COPILOT)
        return int(sku["consumedUnits"]), int(sku["prepaidUnits"]["enabled"])

    def copilot_states(self, user: str) -> list[tuple[str | None, str]]:
        body = self.graph.get(f"users/{user}", params={"$select": "licenseAssignmentStates"}).json()
        return [
            (s.get("assignedByGroup"), s["state"])
            for s in body["licenseAssignmentStates"]
            if s["skuId"] == COPILOT
        ]

    def seats(self) -> StateSeatStore:
        if self.state is None:
            self.state = SqliteStateStore(self.host.state_dir / EMBEDDED_STATE_FILE)
        return StateSeatStore(self.state, timeout=timedelta(days=1))

    def post(self, events: Sequence[dict[str, Any]]) -> tuple[int, Any]:
        body = json.dumps(list(events))
        at = datetime.now(tz=UTC)
        msg_id = f"msg_{time.monotonic_ns()}"
        headers = {
            "Content-Type": "application/cloudevents-batch+json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(msg_id, at, body),
        }
        answer = self.api.post("hr/events", content=body, headers=headers)
        return answer.status_code, answer.json()


@pytest.fixture
def scene(tenant: SandboxInfo, tmp_path: Path) -> Iterator[Scene]:
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    policy = (ROOT / "policies" / "sandbox.yaml").read_text(encoding="utf-8")
    policy = policy.replace("max_removals_per_hour: 50", f"max_removals_per_hour: {LIMIT}")
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    host = start_host(
        tmp_path / "state",
        app="function_app:app",
        args=("--sandbox-ready-file", str(ready)),
        extra_env={
            "SEATKEEPER_HR_SIGNING_SECRET": SECRET,
            "SEATKEEPER_POLICY_FILE": str(tmp_path / "policy.yaml"),
        },
    )
    with httpx.Client(verify=tenant.ssl_context()) as http:
        token = confidential_app(
            tenant, http, tenant.client_id, tenant.client_secret
        ).acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
    try:
        with (
            httpx.Client(
                base_url=tenant.graph_url + "/",
                verify=tenant.ssl_context(),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as graph,
            httpx.Client(
                base_url=tenant.control_url + "/", verify=tenant.ssl_context(), timeout=30
            ) as control,
            httpx.Client(
                base_url=host.api_url + "/", params={"code": host.function_key}, timeout=60, trust_env=False
            ) as api,
        ):
            built = Scene(host, graph, control, api)
            built.idle()
            yield built
            if built.state is not None:
                built.state.close()
    finally:
        host.stop()


def hr_event(
    kind: str, user: dict[str, Any], *, recorded: datetime, when: datetime, **data: Any
) -> dict[str, Any]:
    field = {"joiner": "hireDate", "mover": "effectiveDate", "leaver": "leaveDate"}[kind]
    body = {"employeeId": user["employeeId"], "department": user.get("department"), field: when.isoformat()}
    if user.get("usageLocation"):
        body["country"] = user["usageLocation"]
    body.update(data)
    return {
        "specversion": "1.0",
        "id": f"{kind}-{user['employeeId']}-{recorded.timestamp()}",
        "source": "/hr/e2e",
        "type": f"com.seatkeeper.hr.{kind}",
        "time": recorded.isoformat(),
        "data": body,
    }


def test_joiners_replays_leavers_a_mover_and_a_mass_leaver(scene: Scene) -> None:
    doc = scene.control.get("tenant").json()
    before = scene.members(AMERICAS, EMEA, APAC, PILOTS)
    joiners = [u for u in doc["users"] if u["id"] not in before and u.get("accountEnabled")]
    assert len(joiners) > 150
    consumed, _ = scene.consumed()
    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed + FREE_SEATS}).raise_for_status()
    now = scene.now()

    # Every joiner at once, in two batches of at most 100; the hire date is today.
    today = now - timedelta(minutes=1)
    events = [hr_event("joiner", u, recorded=now - timedelta(days=3), when=today) for u in joiners]
    answers = [scene.post(events[i : i + 100]) for i in range(0, len(events), 100)]
    assert [status for status, _ in answers] == [202] * len(answers)
    scene.idle()

    after = scene.members(AMERICAS, EMEA, APAC)
    added = {u: g for u, g in after.items() if u not in before}
    by_id = {u["id"]: u for u in joiners}
    chosen = {u["id"]: g for u in joiners if (g := selected_group(u)) is not None}
    assert all(chosen.get(u) == g for u, g in added.items())  # only whom the rules select, in their group
    assert 0 < len(added) <= FREE_SEATS
    consumed_now, enabled = scene.consumed()
    assert consumed_now <= enabled
    assert all(scene.copilot_states(u) == [(g, "Active")] for u, g in list(added.items())[:10])

    seats = scene.seats()
    pending = {p.user_id: p.reasons for p in asyncio.run(seats.pending())}
    left_out = set(chosen) - set(added)
    assert left_out <= set(pending)  # the rest of the selected wait, each with its reasons
    assert all(pending[u] for u in left_out)
    assert any(reasons == (Reason.NO_SEAT,) for reasons in pending.values())
    assert not (set(pending) & (set(by_id) - set(chosen)))  # people no rule selects are not pending

    # Duplicated and replayed events change nothing.
    replay = [scene.post(events[i : i + 100]) for i in range(0, len(events), 100)]
    assert {r["outcome"] for _, body in replay for r in body["results"]} == {"duplicate"}
    scene.idle()
    assert scene.members(AMERICAS, EMEA, APAC) == after

    # Five leavers: their seats go to people waiting, first come first served.
    waiting = [e.user_id for e in asyncio.run(seats.waitlist())]
    leavers = list(added)[:5]
    now = scene.now()
    status, _ = scene.post(
        [hr_event("leaver", by_id[u], recorded=now, when=now - timedelta(minutes=1)) for u in leavers]
    )
    assert status == 202
    scene.advance(15 * 60)
    after_leave = scene.members(AMERICAS, EMEA, APAC)
    assert not set(leavers) & set(after_leave)
    served = [u for u in waiting if u in after_leave]
    assert served == waiting[: len(served)]
    assert len(served) == 5
    consumed_now, enabled = scene.consumed()
    assert consumed_now <= enabled

    # A mover from EMEA to the Americas keeps Copilot throughout: both groups first, then only the new one.
    mover = next(u for u, g in after_leave.items() if g == EMEA and u in added)
    consumed_now, _ = scene.consumed()
    # The gate reserves a seat for the overlap; people already waiting come first, so buy enough for all.
    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed_now + 60}).raise_for_status()
    scene.advance(61)  # past the SKU cache: the extra seats are seen
    now = scene.now()
    status, _ = scene.post(
        [hr_event("mover", by_id[mover], recorded=now, when=now - timedelta(minutes=1), country="US")]
    )
    assert status == 202
    scene.idle()
    assert sorted(scene.copilot_states(mover)) == sorted([(EMEA, "Active"), (AMERICAS, "Active")])
    scene.advance(15 * 60)
    assert scene.copilot_states(mover) == [(AMERICAS, "Active")]
    assert mover not in scene.members(EMEA)

    # A mass leaver past the guard (limit 12 an hour): nobody is removed, one incident is raised.
    teams_before = len(scene.control.get("teams").json()["value"])
    remaining = [u for u in scene.members(AMERICAS, EMEA, APAC) if u in by_id][: LIMIT + 1]
    assert len(remaining) == LIMIT + 1
    now = scene.now()
    mass = [hr_event("leaver", by_id[u], recorded=now, when=now - timedelta(minutes=1)) for u in remaining]
    status, _ = scene.post(mass)
    assert status == 202
    scene.advance(15 * 60)
    still = scene.members(AMERICAS, EMEA, APAC)
    assert set(remaining) <= set(still)
    posts = scene.control.get("teams").json()["value"][teams_before:]
    assert sum("removals held" in json.dumps(p) for p in posts) == 1
