"""The local host on the sandbox tenant: business time follows the sandbox clock, stepped to idle."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.host_process import ROOT, RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo


@pytest.fixture
def clock_host(tenant: SandboxInfo, tmp_path: Path) -> Iterator[RunningHost]:
    """The hourly-timer app in a host attached to the session sandbox (reset, clock at wall time)."""
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    host = start_host(
        tmp_path / "state", app="tests.e2e.apps.clock_app:app", args=("--sandbox-ready-file", str(ready))
    )
    try:
        yield host
    finally:
        host.stop()


def test_clock_advance_runs_the_timer_once_per_step_in_business_time(clock_host: RunningHost) -> None:
    """`seatkeeper clock advance 3h --max-step 1h` waits for idle after each step: three hourly runs."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [
            sys.executable,
            "-m",
            "seatkeeper",
            "clock",
            "advance",
            "3h",
            "--max-step",
            "1h",
            "--state-dir",
            str(clock_host.state_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    report = json.loads(result.stdout)
    assert (report["steps"], report["idle_timeouts"]) == (3, 0)
    runs = [r for r in clock_host.journal_records() if r["function"] == "hourly"]
    assert len(runs) == 3
    assert all(r["past_due"] for r in runs)
    shown = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "seatkeeper", "clock", "show", "--state-dir", str(clock_host.state_dir)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(shown.stdout)["offset_seconds"] == pytest.approx(3 * 3600, abs=1)


def test_a_move_without_waiting_runs_the_due_timer_then_the_host_is_idle(
    clock_host: RunningHost, tenant: SandboxInfo
) -> None:
    """Business time moved past the hour (no idle wait): the timer runs once, past due, then idle again."""
    with httpx.Client(verify=tenant.ssl_context()) as client:
        client.post(
            f"{tenant.control_url}/clock/advance",
            json={"seconds": 3600, "max_step_seconds": 3600, "idle_url": None},
        ).raise_for_status()
    wait_for("the hourly run", clock_host.journal_records)
    wait_for("an idle host", lambda: httpx.get(clock_host.info["idle_url"]).json()["idle"])
    runs = [r for r in clock_host.journal_records() if r["function"] == "hourly"]
    assert runs == [{"function": "hourly", "past_due": True}]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()


def test_sandbox_mode_starts_its_own_sandbox_and_cleans_up_after_a_kill_9(tmp_path: Path) -> None:
    """Without a tenant the host starts a sandbox; one orphaned by `kill -9` is stopped at the next start."""
    state = tmp_path / "state"
    started: list[int] = []
    hosts: list[RunningHost] = []
    try:
        hosts.append(start_host(state, app="tests.e2e.apps.clock_app:app", args=()))
        started.append(json.loads((state / "sandbox.json").read_text())["pid"])
        assert hosts[0].info["sandbox_control_url"].startswith("https://127.0.0.1:")
        hosts[0].kill9()
        assert _alive(started[0])

        hosts.append(start_host(state, app="tests.e2e.apps.clock_app:app", args=()))
        started.append(json.loads((state / "sandbox.json").read_text())["pid"])
        assert (_alive(started[0]), _alive(started[1])) == (False, True)
        assert hosts[1].stop() == 0
        wait_for("the sandbox to stop with its host", lambda: not _alive(started[1]))
    finally:
        for host in hosts:
            host.stop()
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
