"""`make run` out of the box (sandbox mode, no HR secret configured): the local host generates a Standard
Webhooks secret beside its keys, prints where it is (never the value), and HR intake accepts events signed
with it."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

from seatkeeper.localhost.hr_signing import HR_SIGNING_FILE
from tests.e2e.host_process import start_host
from tests.fixtures.sandbox import SandboxInfo

EVENT = {
    "specversion": "1.0",
    "id": "signing-e2e-1",
    "source": "/hr/e2e",
    "type": "com.seatkeeper.hr.joiner",
    "time": "2026-12-01T10:00:00+00:00",
    "data": {"employeeId": "E-SIGNING-1", "department": "Sales", "hireDate": "2027-06-01"},
}


def _headers(secret: str | None, body: str) -> dict[str, str]:
    at = datetime.now(tz=UTC)
    msg_id = f"msg_{time.monotonic_ns()}"
    headers = {"Content-Type": "application/cloudevents+json", "webhook-id": msg_id}
    headers["webhook-timestamp"] = str(int(at.timestamp()))
    if secret is not None:
        headers["webhook-signature"] = Webhook(secret).sign(msg_id, at, body)
    return headers


def test_sandbox_mode_signs_hr_events_out_of_the_box(tenant: SandboxInfo, tmp_path: Path) -> None:
    """Signed with the generated secret: 202; unsigned: 401; the banner names the file, not the value."""
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    host = start_host(tmp_path / "state", app="function_app:app", args=("--sandbox-ready-file", str(ready)))
    try:
        secret_file = host.state_dir / HR_SIGNING_FILE
        secret = secret_file.read_text(encoding="utf-8").strip()
        body = json.dumps(EVENT)
        with httpx.Client(
            base_url=host.api_url + "/", params={"code": host.function_key}, timeout=60, trust_env=False
        ) as api:
            signed = api.post("hr/events", content=body, headers=_headers(secret, body))
            unsigned = api.post("hr/events", content=body, headers=_headers(None, body))
        banner = host.log_file.read_text(encoding="utf-8")
    finally:
        host.stop()
    assert (signed.status_code, signed.json()["outcome"]) == (202, "accepted")
    assert unsigned.status_code == 401
    assert (str(secret_file) in banner, secret in banner) == (True, False)
