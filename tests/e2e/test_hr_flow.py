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
from tests.e2e.host_process import RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
REGION_COUNTRIES = (("US", "CA", "BR"), ("GB", "DE", "FR", "NL"), ("JP", "AU", "IN"))
COPILOT_DEPARTMENTS = ("Sales", "Engineering", "Marketing", "Finance", "Legal")
SECRET = "whsec_" + base64.b64encode(b"sandbox-only-e2e-hr-signing-0003").decode()
JOINERS = 200
FREE_SEATS = 70
LEAVERS = 50
LIMIT = 60


def generated_tenant() -> dict[str, Any]:
    """260 users with E3 (one group) and three Copilot region groups: the sandbox's own generator."""
    from sandbox import tenant_gen

    return tenant_gen.large_tenant(JOINERS + 60, 4, seed=11)


def regions(doc: dict[str, Any]) -> list[str]:
    return [g["id"] for g in doc["groups"] if g["displayName"].startswith("Copilot")]


def policy_text(doc: dict[str, Any]) -> str:
    """Three region groups; Sales, Engineering, Marketing, Finance and Legal get Copilot by country."""
    lines = ["version: 1", "licensing_groups:"]
    for n, group in enumerate(regions(doc)):
        lines += [
            f"  - id: {group}",
            f"    display_name: Copilot region {n + 1}",
            f"    copilot_sku_ids: [{COPILOT}]",
        ]
    lines += [
        f"copilot_skus:\n  sku_ids: [{COPILOT}]",
        f"blast_radius:\n  max_removals_per_hour: {LIMIT}",
        "alerts:\n  routes:\n    - name: team\n      channel: teams\n      min_severity: warning\n"
        "      url_setting: SEATKEEPER_TEAMS_WEBHOOK_URL",
        "hr_rules:",
    ]
    for n, (group, countries) in enumerate(zip(regions(doc), REGION_COUNTRIES, strict=True)):
        lines += [
            f"  - name: region-{n + 1}",
            "    when:",
            f"      department: {{in: [{', '.join(COPILOT_DEPARTMENTS)}]}}",
            f"      country: {{in: [{', '.join(countries)}]}}",
            f"    group_id: {group}",
        ]
    return "\n".join(lines) + "\n"


def selected_group(user: dict[str, Any], groups: list[str]) -> str | None:
    """What the policy's rules choose, written out independently for the test."""
    if user.get("department") not in COPILOT_DEPARTMENTS:
        return None
    return next(
        g for g, countries in zip(groups, REGION_COUNTRIES, strict=True) if user["usageLocation"] in countries
    )


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
    doc = generated_tenant()
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(policy_text(doc), encoding="utf-8")
    with httpx.Client(base_url=tenant.control_url + "/", verify=tenant.ssl_context(), timeout=60) as control:
        doc["apps"] = control.get("tenant").json()["apps"]  # the same app registrations and secrets
        control.post("tenant", json=doc).raise_for_status()  # the next test's `tenant` fixture resets it
    host = start_host(
        tmp_path / "state",
        app="function_app:app",
        args=("--sandbox-ready-file", str(ready)),
        extra_env={
            "SEATKEEPER_HR_SIGNING_SECRET": SECRET,
            "SEATKEEPER_POLICY_FILE": str(tmp_path / "policy.yaml"),
        },
    )
    try:
        with httpx.Client(verify=tenant.ssl_context()) as http:
            token = confidential_app(
                tenant, http, tenant.client_id, tenant.client_secret
            ).acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
        with (
            httpx.Client(
                base_url=tenant.graph_url + "/",
                verify=tenant.ssl_context(),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as graph,
            httpx.Client(
                base_url=tenant.control_url + "/", verify=tenant.ssl_context(), timeout=60
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
    """200 joiners, their replays, 50 leavers, a mover and a mass leaver, through the real service."""
    doc = scene.control.get("tenant").json()
    groups = regions(doc)
    before = scene.members(*groups)
    joiners = [u for u in doc["users"] if u["id"] not in before][:JOINERS]
    assert len(joiners) == JOINERS
    by_id = {u["id"]: u for u in joiners}
    chosen = {u["id"]: g for u in joiners if (g := selected_group(u, groups)) is not None}
    consumed, _ = scene.consumed()
    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed + FREE_SEATS}).raise_for_status()
    now = scene.now()

    # 200 joiners posted at once (two batches of 100), hire date today, across departments and countries.
    today = now - timedelta(minutes=1)
    events = [hr_event("joiner", u, recorded=now - timedelta(days=3), when=today) for u in joiners]
    answers = [scene.post(events[i : i + 100]) for i in range(0, len(events), 100)]
    assert [status for status, _ in answers] == [202, 202]
    scene.idle()

    after = scene.members(*groups)
    added = {u: g for u, g in after.items() if u not in before}
    assert all(chosen.get(u) == g for u, g in added.items())  # only whom the rules select, in their group
    assert len(added) == FREE_SEATS  # every free seat used, none more
    consumed_now, enabled = scene.consumed()
    assert consumed_now <= enabled
    # Every one of them holds an `Active` Copilot license from the chosen group (none in CountViolation).
    assert {u: scene.copilot_states(u) for u in added} == {u: [(g, "Active")] for u, g in added.items()}
    seats = scene.seats()
    pending = {p.user_id: p.reasons for p in asyncio.run(seats.pending())}
    assert {u: pending.get(u) for u in set(chosen) - set(added)} == dict.fromkeys(
        set(chosen) - set(added), (Reason.NO_SEAT,)
    )  # the rest of the selected wait for a seat, with that reason
    assert not set(pending) & (set(by_id) - set(chosen))  # people no rule selects are not pending

    # Duplicated and replayed events change nothing.
    replay = [scene.post(events[i : i + 100]) for i in range(0, len(events), 100)]
    assert {r["outcome"] for _, body in replay for r in body["results"]} == {"duplicate"}
    scene.idle()
    assert scene.members(*groups) == after

    # 50 leavers free 50 seats; they go to the people waiting, first come first served.
    waiting = [e.user_id for e in asyncio.run(seats.waitlist())]
    assert len(waiting) >= LEAVERS
    leavers = list(added)[:LEAVERS]
    now = scene.now()
    gone = [hr_event("leaver", by_id[u], recorded=now, when=now - timedelta(minutes=1)) for u in leavers]
    assert scene.post(gone)[0] == 202
    scene.advance(15 * 60)
    after_leave = scene.members(*groups)
    assert not set(leavers) & set(after_leave)
    assert [u for u in waiting if u in after_leave] == waiting[:LEAVERS]
    served = waiting[:LEAVERS]
    assert {u: scene.copilot_states(u) for u in served} == {u: [(after_leave[u], "Active")] for u in served}
    consumed_now, enabled = scene.consumed()
    assert consumed_now <= enabled

    # A mover changes region: both groups first, then only the new one; Copilot never stops.
    # No seat is free (people are still waiting): the move needs none, one SKU is one seat.
    mover = next(u for u, g in after_leave.items() if g == groups[1] and u in by_id)
    assert asyncio.run(seats.waitlist())
    now = scene.now()
    moved = hr_event("mover", by_id[mover], recorded=now, when=now - timedelta(minutes=1), country="US")
    assert scene.post([moved])[0] == 202
    scene.idle()
    assert sorted(scene.copilot_states(mover)) == sorted([(groups[1], "Active"), (groups[0], "Active")])
    scene.advance(15 * 60)
    assert scene.copilot_states(mover) == [(groups[0], "Active")]
    assert mover not in scene.members(groups[1])

    # An hour later, a mass leaver past the guard (60 an hour): nobody is removed, one incident is raised.
    scene.advance(3600, step=900)
    teams_before = len(scene.control.get("teams").json()["value"])
    remaining = [u for u in scene.members(*groups) if u in by_id][: LIMIT + 1]
    assert len(remaining) == LIMIT + 1
    now = scene.now()
    mass = [hr_event("leaver", by_id[u], recorded=now, when=now - timedelta(minutes=1)) for u in remaining]
    assert scene.post(mass)[0] == 202
    scene.advance(15 * 60)
    assert set(remaining) <= set(scene.members(*groups))
    posts = scene.control.get("teams").json()["value"][teams_before:]
    assert sum("removals held" in json.dumps(p) for p in posts) == 1


def test_reordered_duplicated_and_stale_events_over_http(scene: Scene) -> None:
    """Per person, HR's recorded order wins over arrival: a joiner arriving after the newer leaver adds
    nobody; a leaver recorded after a future hire rescinds it; a stale leaver and replays change nothing,
    and the same id with another body is a conflict. One person is admitted, so the path demonstrably ran."""
    doc = scene.control.get("tenant").json()
    groups = regions(doc)
    before = scene.members(*groups)
    late, rescinded, kept = [
        u for u in doc["users"] if u["id"] not in before and selected_group(u, groups) is not None
    ][:3]
    consumed, _ = scene.consumed()
    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed + 5}).raise_for_status()
    now = scene.now()
    hour, minute = timedelta(hours=1), timedelta(minutes=1)

    # The leaver (recorded now) arrives first; the joiner recorded an hour earlier arrives after it.
    assert scene.post([hr_event("leaver", late, recorded=now, when=now - minute)])[0] == 202
    scene.idle()
    assert scene.post([hr_event("joiner", late, recorded=now - hour, when=now - minute)])[0] == 202
    # A hire 30 minutes ahead, then a leaver recorded after it: the hire never happens.
    hire = hr_event("joiner", rescinded, recorded=now - hour, when=now + timedelta(minutes=30))
    assert scene.post([hire, hr_event("leaver", rescinded, recorded=now, when=now - minute)])[0] == 202
    # A joiner today, then a leaver recorded before it (stale), a replay and a changed body under its id.
    joined = hr_event("joiner", kept, recorded=now - hour, when=now - minute)
    assert scene.post([joined])[0] == 202
    scene.idle()
    stale = hr_event("leaver", kept, recorded=now - 2 * hour, when=now - minute)
    assert scene.post([stale])[0] == 202
    status, body = scene.post([joined, {**joined, "data": {**joined["data"], "department": "Legal"}}])
    assert (status, [r["outcome"] for r in body["results"]]) == (409, ["duplicate", "conflict"])
    scene.advance(45 * 60, step=900)  # past the hire date, the settle time and a removal's recheck

    members = scene.members(*groups)
    assert (late["id"] in members, rescinded["id"] in members) == (False, False)
    assert members.get(kept["id"]) == selected_group(kept, groups)
