"""Alerts end to end (issue 8 item 6): the real function_app.py in the local host on the sandbox. A license
error found by the reconciliation sweep becomes exactly one incident — one card in the captured Teams posts
and one mail; a repeat while it is open sends nothing; fixing the cause in the sandbox closes it with one
resolved card and one resolved mail. A group-health problem and a missed heartbeat take the same path."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.host_process import RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo
from tests.sandbox.graph_session import GRAPH_SCOPE, confidential_app

NADIA = "11060131-9ca1-4a71-8d28-5fc4a31ab900"  # in Americas and EMEA, usage location RU: Copilot refused
NADIA_UPN = "nadia.lopez@contoso.example"
EMEA = "43767abd-c08a-4ccf-b141-a0a274d91aa4"
PILOTS = "61701be7-0950-4687-b6a9-0291c1c7e9e9"


@dataclasses.dataclass
class Scene:
    """The host, the sandbox's control plane, and a Graph client with the sandbox app's token."""

    host: RunningHost
    control: httpx.Client
    graph: httpx.Client

    def idle(self) -> None:
        wait_for("an idle host", lambda: httpx.get(self.host.info["idle_url"], timeout=30).json()["idle"], 60)

    def run(self, function: str) -> None:
        response = httpx.post(
            f"{self.host.base_url}/admin/functions/{function}",
            json={"input": ""},
            headers={"x-functions-key": self.host.master_key},
            timeout=120,
        )
        assert response.status_code == 202, response.text
        self.idle()

    def advance(self, seconds: int, step: int = 60) -> None:
        body = {"seconds": seconds, "max_step_seconds": step, "idle_url": self.host.info["idle_url"]}
        self.control.post("clock/advance", json=body, timeout=180).raise_for_status()
        self.idle()

    def cards(self, needle: str) -> list[str]:
        """The text of every captured Teams card mentioning `needle`."""
        posts = self.control.get("teams").json()["value"]
        texts = [json.dumps(p["body"]) for p in posts]
        return [t for t in texts if needle in t]

    def mails(self, needle: str) -> list[dict[str, Any]]:
        """Every captured mail whose subject or body mentions `needle`."""
        found = self.control.get("mail").json()["value"]
        return [m for m in found if needle in json.dumps(m["message"])]


@pytest.fixture
def scene(tenant: SandboxInfo, tmp_path: Path) -> Iterator[Scene]:
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    host = start_host(
        tmp_path / "state",
        app="function_app:app",
        args=("--sandbox-ready-file", str(ready)),
        lock_seconds=10,
        max_deliveries=10,
    )
    with httpx.Client(verify=tenant.ssl_context()) as http:
        token = confidential_app(
            tenant, http, tenant.client_id, tenant.client_secret
        ).acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
    try:
        with (
            httpx.Client(
                base_url=tenant.control_url + "/", verify=tenant.ssl_context(), timeout=30
            ) as control,
            httpx.Client(
                base_url=tenant.graph_url + "/",
                verify=tenant.ssl_context(),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as graph,
        ):
            built = Scene(host, control, graph)
            built.idle()
            yield built
    finally:
        host.stop()


def test_a_license_error_is_told_once_and_resolved_once(scene: Scene) -> None:
    """One card and one mail when found, nothing on a repeat, one resolved card and mail once fixed."""
    scene.run("group_reconciliation")
    opened_cards = wait_for("the card", lambda: scene.cards(NADIA_UPN) or None, 30)
    opened_mails = wait_for("the mail", lambda: scene.mails(NADIA_UPN) or None, 30)
    scene.run("group_reconciliation")  # the same failure, still open: nothing more is sent
    repeat = (len(scene.cards(NADIA_UPN)), len(scene.mails(NADIA_UPN)))
    scene.control.patch(f"users/{NADIA}", json={"usageLocation": "US"}).raise_for_status()
    scene.graph.post(f"users/{NADIA}/reprocessLicenseAssignment").raise_for_status()
    scene.advance(20 * 60)  # the scheduled re-checks fall due in business time
    cards = wait_for("the resolved card", lambda: c if len(c := scene.cards(NADIA_UPN)) > 1 else None, 30)
    mails = scene.mails(NADIA_UPN)
    assert len(opened_cards) == 1
    assert "Usage location isn't allowed" in opened_cards[0]
    assert len(opened_mails) == 1
    assert repeat == (1, 1)
    assert len(cards) == 2
    assert "Resolved: Usage location isn't allowed" in cards[1]
    assert [m["message"]["subject"].startswith("[Seatkeeper] Resolved") for m in mails] == [False, True]


def test_health_reports_each_heartbeat(scene: Scene) -> None:
    """`health` carries one heartbeat check per watched timer, passing once the timers have run."""
    scene.run("group_reconciliation")
    response = httpx.get(
        f"{scene.host.api_url}/health", headers={"x-functions-key": scene.host.function_key}, timeout=60
    )
    checks = response.json()["checks"]
    assert checks["heartbeat.group_reconciliation"] == {"ok": True, "detail": "ok"}
    assert checks["heartbeat.subscription_upkeep"] == {"ok": True, "detail": "ok"}


def test_a_nested_group_and_its_fix_reach_the_admin(scene: Scene) -> None:
    """Group health: a group nested into a licensing group is one card; taking it out resolves it."""
    scene.control.post(f"groups/{EMEA}/members", json={"add": [PILOTS]}).raise_for_status()
    scene.run("group_reconciliation")
    opened = wait_for("the card", lambda: scene.cards("group.nested_groups") or None, 30)
    scene.control.post(f"groups/{EMEA}/members", json={"remove": [PILOTS]}).raise_for_status()
    scene.run("group_reconciliation")
    cards = wait_for(
        "the resolved card", lambda: c if len(c := scene.cards("group.nested_groups")) > 1 else None
    )
    assert len(opened) == 1
    assert "Licensing group has groups as members" in opened[0]
    assert "Resolved: Licensing group has groups as members" in cards[1]
