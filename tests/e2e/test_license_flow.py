"""The license gate end to end (issue 7 item 8): the real function_app.py in the local host on the sandbox,
admitting with `seatkeeper admit` and with the `admit` message; the race for the last seats, verification
after the add, a freed seat reaching the first person waiting, and a license error reaching an admin."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.license_messages import AdmitRequest, Change, LicenseCheck, admit_message, check_message
from seatkeeper.core.reasons import Reason
from tests.e2e.host_process import ROOT, RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
EMEA = "43767abd-c08a-4ccf-b141-a0a274d91aa4"
BASE_SKUS = {
    "05e9a617-0261-4cee-bb44-138d3ef5d965",  # SPE_E3
    "06ebc4ee-1bb5-47dd-8120-11324bc54e06",  # SPE_E5
    "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46",  # SPB
    "66b55226-6b4f-492c-910c-a3b7a3c9d993",  # SPE_F1 (Microsoft 365 F3)
}
E3_GROUP = "154010b5-adea-4e14-bd4a-a4ce35a62ccf"
SPE_F1 = "66b55226-6b4f-492c-910c-a3b7a3c9d993"
COPILOT_PLAN = "3f30311c-6b1e-48a4-ab79-725b469da960"  # M365_COPILOT_BUSINESS_CHAT
EXCHANGE_DESKLESS = "4a82b400-a79f-41a4-b4e2-e94f5787b113"  # in SPE_F1 only


@dataclasses.dataclass
class Scene:
    """The host, the tenant, and clients on Graph and on the control plane."""

    host: RunningHost
    tenant: SandboxInfo
    ready_file: Path
    graph: httpx.Client
    control: httpx.Client
    state: SqliteStateStore | None = None

    def idle(self) -> None:
        wait_for("an idle host", lambda: httpx.get(self.host.info["idle_url"], timeout=10).json()["idle"], 60)

    def members(self, group: str) -> set[str]:
        body = self.graph.get(f"groups/{group}/members", params={"$select": "id", "$top": "999"}).json()
        return {m["id"] for m in body["value"]}

    def consumed(self) -> tuple[int, int]:
        sku = next(s for s in self.graph.get("subscribedSkus").json()["value"] if s["skuId"] == COPILOT)
        return int(sku["consumedUnits"]), int(sku["prepaidUnits"]["enabled"])

    def now(self) -> datetime:
        return datetime.fromisoformat(self.control.get("clock").json()["now"])

    def advance(self, seconds: int) -> None:
        body = {"seconds": seconds, "max_step_seconds": seconds, "idle_url": self.host.info["idle_url"]}
        self.control.post("clock/advance", json=body, timeout=120).raise_for_status()
        self.idle()

    def seats(self) -> StateSeatStore:
        """The host's own state file, opened from the test (SQLite is safe across processes)."""
        if self.state is None:
            self.state = SqliteStateStore(self.host.state_dir / EMBEDDED_STATE_FILE)
        return StateSeatStore(self.state, timeout=timedelta(days=1))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "SEATKEEPER_SANDBOX_READY_FILE": str(self.ready_file),
            "SEATKEEPER_DATA_DIR": str(self.host.state_dir),
            "SEATKEEPER_LOG_LEVEL": "WARNING",
        }
        return subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "seatkeeper", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def scene(tenant: SandboxInfo, tmp_path: Path) -> Iterator[Scene]:
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    host = start_host(tmp_path / "state", app="function_app:app", args=("--sandbox-ready-file", str(ready)))
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
        ):
            built = Scene(host, tenant, ready, graph, control)
            built.idle()
            yield built
            if built.state is not None:
                built.state.close()
    finally:
        host.stop()


def candidates(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(eligible users, users without any base license), outside every Copilot group, in file order."""
    groups = {g["id"]: set(g.get("members", [])) for g in doc["groups"]}
    in_copilot = set().union(*(m for gid, m in groups.items() if gid in (AMERICAS, EMEA) or "Copilot" in gid))
    in_copilot |= {
        u for g in doc["groups"] if "Copilot" in g.get("displayName", "") for u in g.get("members", [])
    }
    usable = [
        u
        for u in doc["users"]
        if u["id"] not in in_copilot
        and u.get("accountEnabled")
        and u.get("usageLocation") not in (None, "RU")
    ]
    direct = {u["id"]: {lic["skuId"] for lic in u.get("assignedLicenses", [])} for u in usable}
    e1_too = {u["id"] for u in usable if "18181a46-0d4e-45cd-891e-60aabd171b4e" in direct[u["id"]]}
    eligible = [
        u
        for u in usable
        if u["id"] not in e1_too and (u["id"] in groups[E3_GROUP] or direct[u["id"]] & BASE_SKUS)
    ]
    without = [u for u in usable if not direct[u["id"]] and u["id"] not in groups[E3_GROUP]]
    return eligible, without


def send(scene: Scene, *messages: Any) -> None:
    queue = scene.host.queue()
    try:
        queue.send_sync(list(messages))
    finally:
        queue.close()


def advance_and_settle(scene: Scene, seconds: int) -> None:
    """Move business time, then let the host see it: its clock re-reads the sandbox's offset at most once a
    second (adapters/clocks.py), so a re-check due in the step is delivered only after that."""
    scene.advance(seconds)
    time.sleep(1.5)
    scene.idle()


def test_admission_race_verification_and_waitlist(scene: Scene) -> None:
    """CLI and message admissions, twenty racing for five seats, verification, and a freed seat served."""
    eligible, without_base = candidates(scene.control.get("tenant").json())
    first, racers = eligible[0], eligible[1:21]

    # `seatkeeper admit` runs the same admission as the service, against the same state.
    done = scene.cli("admit", first["userPrincipalName"], "--group", AMERICAS, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["result"] == "added"
    assert first["id"] in scene.members(AMERICAS)
    # Five seats left; verification (due two minutes after the add) confirms the first seat is counted.
    # The host's business clock follows the advance up to a second late: racing before it has would run
    # part of the race on a SKU snapshot read before the seats changed (still "fresh" on the old clock)
    # and the rest on one re-read mid-race, which counts the early winners twice (consumed and reserved).
    consumed, _ = scene.consumed()
    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed + 5}).raise_for_status()
    advance_and_settle(scene, 180)

    # The `admit` message: a person without a base license is left pending, never added. Its gate reads
    # the SKU snapshot the racers then share (it stays fresh for a minute of business time).
    blocked = without_base[0]
    request = AdmitRequest(blocked["id"], AMERICAS, "joiner", "hr")
    send(scene, admit_message(request, request_id="hr-1", correlation_id="e2e"))
    scene.idle()
    # Twenty people race for the last five seats.
    send(
        scene,
        *(
            admit_message(
                AdmitRequest(u["id"], AMERICAS, "wave 2", "rollout"), request_id="w2", correlation_id="e2e"
            )
            for u in racers
        ),
    )
    scene.idle()
    members = scene.members(AMERICAS)
    winners = [u["id"] for u in racers if u["id"] in members]
    assert (len(winners), blocked["id"] in members) == (5, False)
    consumed, enabled = scene.consumed()
    assert consumed <= enabled

    seats = scene.seats()

    async def state() -> tuple[dict[str, tuple[Reason, ...]], list[str]]:
        pending = {p.user_id: p.reasons for p in await seats.pending(AMERICAS)}
        return pending, [e.user_id for e in await seats.waitlist(AMERICAS)]

    pending, waiting = asyncio.run(state())
    assert pending[blocked["id"]] == (Reason.NO_BASE_LICENSE,)
    assert sorted(u for u, reasons in pending.items() if reasons == (Reason.NO_SEAT,)) == sorted(
        u["id"] for u in racers if u["id"] not in winners
    )

    # Verification after the add: the re-checks fall due two minutes later; every license is active.
    # Settled, so the leaver's fresh snapshot below is stamped after the winners' activations.
    advance_and_settle(scene, 180)
    reservations = asyncio.run(seats.reservations())
    assert {r.user_id for r in reservations if r.active_since is not None} >= set(winners)

    # A winner leaves: its seat goes to the first person on the waitlist, and to nobody else.
    scene.control.post(f"groups/{AMERICAS}/members", json={"remove": [winners[0]]}).raise_for_status()
    left = LicenseCheck(winners[0], AMERICAS, Change.REMOVED, source="delta")
    send(scene, check_message(left, version="e2e-1", correlation_id="e2e"))
    scene.idle()
    members = scene.members(AMERICAS)
    assert waiting[0] in members
    assert [u for u in waiting[1:] if u in members] == []


def test_license_errors_reach_an_admin_and_can_be_reprocessed(scene: Scene) -> None:
    """A member in a location where Copilot is not sold: classified, an admin is told (Teams), and
    `seatkeeper reprocess` reprocesses it by group and by user; conflicting plans are alerted with their
    own remediation."""
    doc = scene.control.get("tenant").json()
    russian = next(u for u in doc["users"] if u.get("usageLocation") == "RU")
    added = (scene.now() - timedelta(hours=1)).astimezone(UTC)
    check = LicenseCheck(russian["id"], EMEA, Change.RECHECK, added_at=added, source="e2e")
    send(scene, check_message(check, version="e2e-ru", correlation_id="e2e"))
    scene.idle()
    posts = json.dumps(scene.control.get("teams").json())
    assert russian["userPrincipalName"] in posts
    assert "Usage location" in posts

    # `seatkeeper reprocess --group` reprocesses the group's members in error (the location still blocks).
    done = scene.cli("reprocess", "--group", EMEA, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert russian["id"] in json.loads(done.stdout.splitlines()[-1])["reprocessed"]
    one = scene.cli("reprocess", russian["userPrincipalName"])
    assert (one.returncode, one.stdout.strip()) == (0, "reprocessed 1 user(s)")

    # Conflicting plans, as the tenant's rules make them: alerted with the catalogue's remediation and the
    # plans Seatkeeper infers (labelled inferred); a member without the conflicting plan is unaffected.
    doc["servicePlanConflicts"].append([COPILOT_PLAN, EXCHANGE_DESKLESS])
    loaded = scene.control.post("tenant", json=doc)
    assert loaded.status_code == 200, loaded.text
    eligible, _ = candidates(doc)
    by_id = {u["id"]: u for u in doc["users"]}
    e3_user = next(u for u in eligible if not by_id[u["id"]].get("assignedLicenses"))
    f3_user = next(u for u in eligible if {lic["skuId"] for lic in u["assignedLicenses"]} == {SPE_F1})
    send(
        scene,
        *(
            admit_message(
                AdmitRequest(u["id"], AMERICAS, "wave 3", "rollout"), request_id="w3", correlation_id="e2e"
            )
            for u in (e3_user, f3_user)
        ),
    )
    scene.idle()
    scene.advance(180)
    conflicts = json.dumps(
        [
            p
            for p in scene.control.get("teams").json()["value"]
            if "Conflicting service plans" in json.dumps(p)
        ]
    )
    assert f3_user["userPrincipalName"] in conflicts
    assert "inferred" in conflicts
    assert e3_user["userPrincipalName"] not in conflicts
    states = scene.graph.get(f"users/{e3_user['id']}", params={"$select": "licenseAssignmentStates"}).json()
    assert [s["state"] for s in states["licenseAssignmentStates"] if s["skuId"] == COPILOT] == ["Active"]


def test_count_violation_waits_and_is_served_when_a_seat_is_bought(scene: Scene) -> None:
    """A member an admin added with no seat left: CountViolation, on the waitlist; a seat is bought, the next
    check serves the waitlist (a seat reserved, the member reprocessed) and the license becomes active."""
    eligible, _ = candidates(scene.control.get("tenant").json())
    member = eligible[0]["id"]
    consumed, _ = scene.consumed()
    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed}).raise_for_status()
    scene.control.post(f"groups/{AMERICAS}/members", json={"add": [member]}).raise_for_status()
    arrived = LicenseCheck(member, AMERICAS, Change.ADDED, source="delta")
    send(scene, check_message(arrived, version="e2e-cv", correlation_id="e2e"))
    scene.idle()
    waiting = asyncio.run(scene.seats().waitlist(AMERICAS))
    assert [(e.user_id, e.source.value) for e in waiting] == [(member, "count_violation")]

    scene.control.post(f"skus/{COPILOT}/seats", json={"enabled": consumed + 1}).raise_for_status()
    scene.advance(61)  # past the SKU cache's age: the bought seat is seen
    # The service's business clock re-reads the sandbox's offset at most once a second (adapters/clocks.py).
    time.sleep(1.5)
    again = LicenseCheck(member, AMERICAS, Change.RECHECK, source="e2e")
    send(scene, check_message(again, version="e2e-cv-2", correlation_id="e2e"))
    scene.idle()
    states = scene.graph.get(f"users/{member}", params={"$select": "licenseAssignmentStates"}).json()
    copilot = [s for s in states["licenseAssignmentStates"] if s["skuId"] == COPILOT]
    assert [s["state"] for s in copilot] == ["Active"]
    assert asyncio.run(scene.seats().waitlist(AMERICAS)) == ()


ADDON_SKU = "5a1c0d2e-7b1f-4c3a-9e1d-0c0b1a2b3c4d"  # illustrative add-on (sandbox data, not a real SKU)
ADDON_PLAN = "6b2d1e3f-8c2a-4d4b-8f2e-1d1c2b3c4d5e"


def test_a_leaver_kept_by_dependency_violation_is_told_and_resolved_when_fixed(scene: Scene) -> None:
    """Entra's "Other products depend on this license": a member holding, directly, an add-on that needs a
    plan of the Copilot group leaves; the group's Copilot entry stays (DependencyViolation, seat consumed).
    Seatkeeper tells an admin once and keeps looking; the admin removes the add-on and runs `seatkeeper
    reprocess <user>`, the seat comes back and the incident is resolved."""
    doc = scene.control.get("tenant").json()
    eligible, _ = candidates(doc)
    leaver = eligible[0]
    user = next(u for u in doc["users"] if u["id"] == leaver["id"])
    user["assignedLicenses"] = [*user.get("assignedLicenses", []), {"skuId": ADDON_SKU, "disabledPlans": []}]
    copilot = next(s for s in doc["skus"] if s["skuId"] == COPILOT)
    doc["skus"].append(
        {
            **copilot,
            "skuId": ADDON_SKU,
            "skuPartNumber": "COPILOT_ADDON_EXAMPLE",
            "prepaidUnits": {"enabled": 5, "suspended": 0, "warning": 0, "lockedOut": 0},
            "servicePlans": [
                {
                    "servicePlanId": ADDON_PLAN,
                    "servicePlanName": "COPILOT_ADDON_EXAMPLE",
                    "provisioningStatus": "Success",
                    "appliesTo": "User",
                }
            ],
        }
    )
    doc["servicePlanDependencies"][ADDON_PLAN] = [COPILOT_PLAN]
    americas = next(g for g in doc["groups"] if g["id"] == AMERICAS)
    americas["members"] = [*americas.get("members", []), leaver["id"]]
    loaded = scene.control.post("tenant", json=doc)
    assert loaded.status_code == 200, loaded.text
    held, _ = scene.consumed()

    scene.control.post(f"groups/{AMERICAS}/members", json={"remove": [leaver["id"]]}).raise_for_status()
    left = LicenseCheck(leaver["id"], AMERICAS, Change.REMOVED, source="delta")
    send(scene, check_message(left, version="e2e-dv", correlation_id="e2e"))
    scene.idle()
    states = scene.graph.get(f"users/{leaver['id']}", params={"$select": "licenseAssignmentStates"}).json()
    kept = [(s["state"], s["error"]) for s in states["licenseAssignmentStates"] if s["skuId"] == COPILOT]
    assert kept == [("ActiveWithError", "DependencyViolation")]
    assert scene.consumed()[0] == held

    def cards() -> list[str]:
        posts = [json.dumps(p) for p in scene.control.get("teams").json()["value"]]
        return [p for p in posts if leaver["userPrincipalName"] in p]

    opened = cards()
    assert len(opened) == 1
    assert "Other products depend on this license" in opened[0]
    advance_and_settle(scene, 180)  # a removal re-check: still kept, nothing more is sent
    assert len(cards()) == 1

    removed = scene.graph.post(
        f"users/{leaver['id']}/assignLicense", json={"addLicenses": [], "removeLicenses": [ADDON_SKU]}
    )
    assert removed.status_code == 200, removed.text
    done = scene.cli("reprocess", leaver["userPrincipalName"])
    assert (done.returncode, done.stdout.strip()) == (0, "reprocessed 1 user(s)")
    advance_and_settle(scene, 600)  # the next removal re-check sees the seat back
    resolved = wait_for("the resolved card", lambda: c if len(c := cards()) > 1 else None, 30)
    assert len(resolved) == 2
    assert "Resolved" in resolved[1]
    assert scene.consumed()[0] == held - 1
