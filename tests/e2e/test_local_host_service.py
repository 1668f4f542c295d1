"""The real function_app.py in the local host, on the sandbox tenant: what `make run` brings up."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx

from tests.e2e.host_process import start_host
from tests.fixtures.sandbox import SandboxInfo


def test_service_is_healthy_on_the_sandbox_and_stops_cleanly(tenant: SandboxInfo, tmp_path: Path) -> None:
    """`GET /api/health` answers 200 healthy (settings, Graph, queue, state); SIGTERM exits with 0."""
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    host = start_host(tmp_path / "state", app="function_app:app", args=("--sandbox-ready-file", str(ready)))
    try:
        response = httpx.get(f"{host.api_url}/health", params={"code": host.function_key}, timeout=30)
    finally:
        exit_code = host.stop()
    assert (response.status_code, response.json()["status"]) == (200, "healthy"), response.text
    assert exit_code == 0
