"""Change notifications end to end: function_app.py in the local host on the sandbox tenant, which runs the
real validation handshake and delivers real notifications to the webhook."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.client_state import derive_client_state
from seatkeeper.core.member_sets import HEAD, MEMBERS_TABLE
from seatkeeper.core.messages import message_id_for
from seatkeeper.core.sensitive import Secret
from seatkeeper.core.subscription_records import BY_GROUP, SUBSCRIPTIONS_TABLE
from tests.e2e.host_process import ROOT, RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo

AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
GROUPS = (AMERICAS, "43767abd-c08a-4ccf-b141-a0a274d91aa4", "6b258a2a-6162-41e4-a550-b0bf7529a2e8")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclasses.dataclass
class Service:
    """The service host, the sandbox it runs on, and what the tests read from both."""

    host: RunningHost
    tenant: SandboxInfo
    client_state_key: Secret
    ready_file: Path
    control: httpx.Client

    @property
    def webhook_url(self) -> str:
        return f"{self.host.api_url}/graph/notifications"

    @property
    def webhook_key(self) -> str:
        return str(self.host.keys["hostKeys"]["graph-webhook"])

    def rows(self, table: str, partition: str | None = None) -> dict[str, dict[str, Any]]:
        async def read() -> dict[str, dict[str, Any]]:
            store = SqliteStateStore(self.host.state_dir / EMBEDDED_STATE_FILE)
            try:
                return {f"{e.partition}/{e.row}": dict(e.data) async for e in store.query(table, partition)}
            finally:
                store.close()

        return asyncio.run(read())

    def subscriptions(self) -> dict[str, dict[str, Any]]:
        return {k.split("/", 1)[1]: v for k, v in self.rows(SUBSCRIPTIONS_TABLE, BY_GROUP).items()}

    def synced_groups(self) -> set[str]:
        return {k.split("/")[0] for k in self.rows(MEMBERS_TABLE) if k.endswith(f"/{HEAD}")}

    def queue_db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.host.state_dir / "queue.sqlite3", timeout=30)

    def member_changes(self, group_id: str, generations: int = 60) -> list[tuple[str, str]]:
        """(change, user) of every member.changed message ever enqueued for the group.

        The license-checks consumer completes them, so they are found in the queue's duplicate-detection
        record by their deterministic ids: kind, user, and `group:change:generation`.
        """
        with self.queue_db() as db:
            seen = {
                r[0] for r in db.execute("SELECT message_id FROM seen_ids WHERE queue = 'license-checks'")
            }
        users = [u["id"] for u in self.control.get("/tenant").json()["users"]]
        return sorted(
            (change, user)
            for user in users
            for change in ("added", "removed")
            for generation in range(1, generations)
            if message_id_for("member.changed", user, f"{group_id}:{change}:{generation}") in seen
        )

    def group_change_ids(self) -> int:
        """How many distinct messages were ever enqueued on group-changes (duplicate-detection record)."""
        with self.queue_db() as db:
            return int(
                db.execute("SELECT COUNT(*) FROM seen_ids WHERE queue = 'group-changes'").fetchone()[0]
            )

    def idle(self) -> bool:
        return bool(httpx.get(self.host.info["idle_url"], timeout=30).json()["idle"])

    def settle(self, timeout: float = 30) -> None:
        """Wait until the host has nothing left to do, twice in a row (deliveries may still be in the air)."""
        wait_for("an idle host", lambda: self.idle() and _pause() and self.idle(), timeout=timeout)

    def non_members(self, group_id: str, n: int) -> list[str]:
        tenant = self.control.get("/tenant").json()
        members = {m for g in tenant["groups"] if g["id"] == group_id for m in g["members"]}
        users = [u["id"] for u in tenant["users"] if u["id"] not in members and u.get("accountEnabled", True)]
        return users[:n]

    def change_members(self, group_id: str, add: list[str] = [], remove: list[str] = []) -> None:  # noqa: B006
        self.control.post(
            f"/groups/{group_id}/members", json={"add": add, "remove": remove}
        ).raise_for_status()

    def run_function(self, name: str) -> None:
        response = httpx.post(
            f"{self.host.base_url}/admin/functions/{name}",
            json={"input": ""},
            headers={"x-functions-key": self.host.master_key},
            timeout=120,
        )
        assert response.status_code == 202, response.text

    def graph(self) -> httpx.Client:
        """A Graph client with a client-credentials token of the sandbox's app."""
        token = self.control.post(
            self.tenant.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.tenant.client_id,
                "client_secret": self.tenant.client_secret,
                "scope": GRAPH_SCOPE,
            },
        )
        token.raise_for_status()
        return httpx.Client(
            base_url=self.tenant.graph_url,
            verify=self.tenant.ssl_context(),
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )


def _pause() -> bool:
    time.sleep(0.3)  # a delivery or a queued message may be between two hands
    return True


@pytest.fixture
def service(tenant: SandboxInfo, tmp_path: Path) -> Iterator[Service]:
    """function_app.py on the freshly reset sandbox, its licensing groups subscribed and baselined."""
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    key = Secret(secrets.token_urlsafe(32))
    host = start_host(
        tmp_path / "state",
        app="function_app:app",
        args=("--sandbox-ready-file", str(ready)),
        lock_seconds=10,
        max_deliveries=10,
        extra_env={"SEATKEEPER_CLIENT_STATE_KEY": key.reveal(), "SEATKEEPER_LOG_LEVEL": "INFO"},
    )
    control = httpx.Client(base_url=tenant.control_url, verify=tenant.ssl_context(), timeout=30)
    svc = Service(host, tenant, key, ready, control)
    try:
        wait_for(
            "a subscription per licensing group", lambda: set(svc.subscriptions()) == set(GROUPS), timeout=60
        )
        wait_for("a baseline per licensing group", lambda: svc.synced_groups() == set(GROUPS), timeout=60)
        svc.settle()
        yield svc
    finally:
        control.delete("/faults")
        control.close()
        host.stop()


def _notification(svc: Service, group_id: str, sequence: int) -> dict[str, Any]:
    record = svc.subscriptions()[group_id]
    return {
        "subscriptionId": record["subscription_id"],
        "changeType": "updated",
        "clientState": derive_client_state(
            svc.client_state_key, group_id, int(record["generation"])
        ).reveal(),
        "tenantId": svc.tenant.tenant_id,
        "resource": f"Groups/{group_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Group", "id": group_id, "sequenceNumber": sequence},
    }


def test_fifty_new_members_give_exactly_fifty_checks_despite_lost_duplicated_reordered_notifications(
    service: Service,
) -> None:
    """Deliveries off for 20 adds, Graph throttling delta reads, our own duplicated and reordered
    notifications on top: exactly one member.changed per added member."""
    users = service.non_members(AMERICAS, 50)
    service.control.post(
        "/faults",
        json={
            "seed": 6,
            "rules": [
                {"path": "groups/delta", "method": "GET", "kind": "throttle", "rate": 0.3, "retry_after": 0},
                {"path": "groups/delta", "method": "GET", "kind": "unavailable", "rate": 0.2},
            ],
        },
    ).raise_for_status()
    service.control.post("/notifications", json={"enabled": False}).raise_for_status()
    service.change_members(AMERICAS, add=users[:20])
    service.control.post("/notifications", json={"enabled": True}).raise_for_status()
    for start in range(20, 50, 10):
        service.change_members(AMERICAS, add=users[start : start + 10])
    batch = [_notification(service, AMERICAS, s) for s in (9_000_005, 9_000_003, 9_000_004)]
    for _ in range(2):
        answer = httpx.post(service.webhook_url, params={"code": service.webhook_key}, json={"value": batch})
        assert answer.status_code == 202
    wait_for("50 member checks", lambda: len(service.member_changes(AMERICAS)) >= 50, timeout=60)
    service.settle()
    assert service.member_changes(AMERICAS) == sorted(("added", u) for u in users)


def test_with_deliveries_off_the_reconciliation_timer_alone_finds_the_same_fifty(service: Service) -> None:
    """No notification at all: the reconciliation run catches every group up."""
    users = service.non_members(AMERICAS, 50)
    service.control.post("/notifications", json={"enabled": False}).raise_for_status()
    service.change_members(AMERICAS, add=users)
    service.settle()
    assert service.member_changes(AMERICAS) == []
    service.run_function("group_reconciliation")
    wait_for("50 member checks", lambda: len(service.member_changes(AMERICAS)) >= 50, timeout=60)
    service.settle()
    assert service.member_changes(AMERICAS) == sorted(("added", u) for u in users)


def test_a_subscription_deleted_behind_our_back_is_recreated_and_changes_meanwhile_processed(
    service: Service,
) -> None:
    """Deleted in Graph, members added and removed meanwhile: upkeep recreates it, the catch-up finds both."""
    old = service.subscriptions()[AMERICAS]["subscription_id"]
    with service.graph() as graph:
        graph.delete(f"/subscriptions/{old}").raise_for_status()
    tenant = service.control.get("/tenant").json()
    leaver = next(g for g in tenant["groups"] if g["id"] == AMERICAS)["members"][0]
    joiners = service.non_members(AMERICAS, 3)
    service.change_members(AMERICAS, add=joiners, remove=[leaver])
    service.settle()
    service.run_function("subscription_upkeep")
    wait_for("the catch-up", lambda: len(service.member_changes(AMERICAS)) >= 4, timeout=60)
    service.settle()
    assert service.subscriptions()[AMERICAS]["subscription_id"] != old
    assert service.member_changes(AMERICAS) == sorted([("added", u) for u in joiners] + [("removed", leaver)])
    with service.graph() as graph:
        listed = graph.get("/subscriptions").json()["value"]
    assert sorted(s["resource"].split("/")[-1] for s in listed) == sorted(GROUPS)


def test_forged_state_wrong_key_and_malformed_bodies_enqueue_nothing(service: Service) -> None:
    """Wrong clientState: 202 and dropped; wrong key: 401; malformed: 400; not one message enqueued."""
    before = service.group_change_ids()
    forged = {**_notification(service, AMERICAS, 77), "clientState": "v1.forged"}
    url = service.webhook_url
    assert httpx.post(url, params={"code": service.webhook_key}, json={"value": [forged]}).status_code == 202
    genuine = _notification(service, AMERICAS, 78)
    assert httpx.post(url, params={"code": "wrong"}, json={"value": [genuine]}).status_code == 401
    malformed = httpx.post(
        url,
        params={"code": service.webhook_key},
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert service.group_change_ids() == before


def test_ninety_days_of_business_time_never_let_a_subscription_lapse(service: Service) -> None:
    """`seatkeeper clock advance 90d` in 6-day steps: afterwards every subscription is still alive, the CLI
    reports all healthy, and a member added then is still announced through a notification."""
    env = {"SEATKEEPER_SANDBOX_READY_FILE": str(service.ready_file)}
    before = {g: r["subscription_id"] for g, r in service.subscriptions().items()}
    clock = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [
            sys.executable,
            "-m",
            "seatkeeper",
            "clock",
            "advance",
            "90d",
            "--max-step",
            "6d",
            "--state-dir",
            str(service.host.state_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=240,
    )
    assert clock.returncode == 0, clock.stdout.decode() + clock.stderr.decode()
    assert json.loads(clock.stdout)["idle_timeouts"] == 0
    service.settle()
    listing = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [
            sys.executable,
            "-m",
            "seatkeeper",
            "subscriptions",
            "--state-dir",
            str(service.host.state_dir),
            "list",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=120,
        env={**_environ(), **env},
    )
    rows = [json.loads(line) for line in listing.stdout.decode().splitlines() if line.startswith("{")]
    assert {g: r["subscription_id"] for g, r in service.subscriptions().items()} == before  # renewed in place
    assert [(r["group_id"], r["status"]) for r in rows] == [(g, "healthy") for g in GROUPS], (
        listing.stdout.decode()
    )
    [user] = service.non_members(AMERICAS, 1)
    service.change_members(AMERICAS, add=[user])
    wait_for(
        "the new member's check", lambda: ("added", user) in service.member_changes(AMERICAS), timeout=30
    )


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SEATKEEPER_")}
