"""What `make run` runs — `python -m seatkeeper serve` with the real function_app.py, its own sandbox and the
sandbox policy — is healthy, and nothing it prints (banner, host and app logs) ever carries a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.host_process import ROOT, start_host

# Known values handed to the service as its own secrets, so that the search below knows what to look for.
CLIENT_STATE_KEY = "e2e-client-state-key-5d4c3b2a"
HR_SIGNING_SECRET = "whsec_ZTJlLWhyLXNpZ25pbmctc2VjcmV0LTk4NzY="
FORGED_STATE = "e2e-forged-client-state-1f2e3d4c"
FORGED_SIGNATURE = "v1,ZTJlLWZvcmdlZC1zaWduYXR1cmUtMDAwMDAwMDA="


def _notification(client_state: str) -> dict[str, object]:
    return {
        "value": [
            {
                "subscriptionId": "00000000-0000-0000-0000-000000000000",
                "clientState": client_state,
                "changeType": "updated",
                "resource": "groups/00000000-0000-0000-0000-000000000001",
                "tenantId": "00000000-0000-0000-0000-000000000002",
                "subscriptionExpirationDateTime": "2026-12-04T00:00:00Z",
            }
        ]
    }


def test_make_run_is_healthy_and_prints_no_secret(tmp_path: Path) -> None:
    """Health is 200 healthy; the banner names the keys file; no key or credential appears in any output."""
    host = start_host(
        tmp_path / "state",
        app="function_app:app",
        args=(),
        lock_seconds=30.0,
        extra_env={
            "SEATKEEPER_CLIENT_STATE_KEY": CLIENT_STATE_KEY,
            "SEATKEEPER_HR_SIGNING_SECRET": HR_SIGNING_SECRET,
            "SEATKEEPER_LOG_LEVEL": "DEBUG",
        },
    )
    try:
        sandbox = json.loads((host.state_dir / "sandbox.json").read_text(encoding="utf-8"))
        api, code = host.api_url, host.function_key
        with httpx.Client(timeout=30, trust_env=False) as client:
            health = client.get(f"{api}/health", params={"code": code})
            webhook = host.keys["hostKeys"]["graph-webhook"]
            validation = client.post(
                f"{api}/graph/notifications", params={"code": webhook, "validationToken": "e2e-token"}
            )
            forged = client.post(
                f"{api}/graph/notifications", params={"code": webhook}, json=_notification(FORGED_STATE)
            )
            client.post(
                f"{api}/hr/events",
                params={"code": code},
                headers={
                    "content-type": "application/cloudevents+json",
                    "webhook-id": "msg_e2e",
                    "webhook-timestamp": "1700000000",
                    "webhook-signature": FORGED_SIGNATURE,
                },
                content=json.dumps({"specversion": "1.0"}).encode(),
            )
            upkeep = client.post(
                f"{host.base_url}/admin/functions/subscription_upkeep",
                headers={"x-functions-key": host.master_key},
                json={"input": ""},
            )
    finally:
        exit_code = host.stop()
    assert (health.status_code, health.json()["status"]) == (200, "healthy"), health.text
    assert (validation.status_code, validation.text) == (200, "e2e-token")
    assert (forged.status_code, upkeep.status_code, exit_code) == (202, 202, 0)

    output = host.log_file.read_text(encoding="utf-8")
    assert f"keys file      {host.info['keys_file']}" in output
    assert f"control plane  {sandbox['control_url']}" in output
    assert "health.checked" in output, "the app's own log lines must be in the searched output"
    secrets = {
        "master key": host.master_key,
        **{f"host key {name}": value for name, value in host.keys["hostKeys"].items()},
        **{
            f"function key {function}/{name}": value
            for function, keys in host.keys["functionKeys"].items()
            for name, value in keys.items()
        },
        "sandbox client secret": sandbox["client_secret"],
        "identity header": sandbox["identity_header"],
        "teams webhook url": sandbox["teams_webhook_url"],
        "clientState key": CLIENT_STATE_KEY,
        "forged clientState": FORGED_STATE,
        "HR signing secret": HR_SIGNING_SECRET,
        "forged signature": FORGED_SIGNATURE,
    }
    assert [name for name, value in secrets.items() if value in output] == []


def test_a_partly_configured_tenant_stops_the_start_naming_every_problem(tmp_path: Path) -> None:
    """A client id alone: the host does not serve; it exits 2 and lists every missing setting, no value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATKEEPER_")}
    env["SEATKEEPER_CLIENT_ID"] = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    env["SEATKEEPER_POLICY_FILE"] = str(tmp_path / "missing.yaml")
    command = [sys.executable, "-m", "seatkeeper", "serve", "--port", "0", "--state-dir", str(tmp_path / "s")]
    result = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Seatkeeper cannot start: 4 problem(s) with its settings" in result.stdout
    for named in ("SEATKEEPER_TENANT_ID", "no credential", "SEATKEEPER_CLIENT_STATE_KEY", "missing.yaml"):
        assert named in result.stdout
    assert not (tmp_path / "s" / "host.json").exists()
