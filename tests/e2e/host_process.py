"""Runs `python -m seatkeeper serve` as a real process for the e2e tests, and reads what it leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from seatkeeper.adapters.clocks import WallClock
from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE, EmbeddedQueue

ROOT = Path(__file__).resolve().parents[2]
BASIC_APP = "tests.e2e.apps.basic_app:app"
E2E_QUEUE = "license-checks"
# Settings that would switch the host to a real tenant; never inherited by a test host.
_TENANT_VARIABLES = (
    "SEATKEEPER_TENANT_ID",
    "SEATKEEPER_CLIENT_ID",
    "SEATKEEPER_CLIENT_SECRET",
    "SEATKEEPER_CLIENT_CERTIFICATE_PATH",
    "SEATKEEPER_MANAGED_IDENTITY",
    "SEATKEEPER_MANAGED_IDENTITY_CLIENT_ID",
)

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@dataclass
class RunningHost:
    """A local host process and where it listens."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    journal: Path
    log_file: Path
    info: dict[str, Any]
    keys: dict[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def base_url(self) -> str:
        return str(self.info["admin_url"]).removesuffix("/admin")

    @property
    def function_key(self) -> str:
        return str(self.keys["hostKeys"]["default"])

    @property
    def master_key(self) -> str:
        return str(self.keys["masterKey"])

    def journal_records(self) -> list[dict[str, Any]]:
        """What the test app's functions wrote, in order."""
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text(encoding="utf-8").splitlines() if line]

    def queue(self) -> EmbeddedQueue:
        """The host's embedded queue file, opened from the test process (wall clock)."""
        return EmbeddedQueue(self.state_dir / EMBEDDED_QUEUE_FILE, clock=WallClock(), max_deliveries=3)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill9(self) -> None:
        """Kill without any chance to clean up, as a crash would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def start_host(
    state_dir: Path,
    *,
    app: str = BASIC_APP,
    args: Sequence[str] = ("--no-sandbox",),
    lock_seconds: float = 1.0,
    max_deliveries: int = 3,
    extra_env: dict[str, str] | None = None,
) -> RunningHost:
    """Start a host on a free port with its own state directory; returns once it serves."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready_file = state_dir / "host.json"
    ready_file.unlink(missing_ok=True)
    journal = state_dir.parent / f"{state_dir.name}.journal"
    log_file = state_dir.parent / f"{state_dir.name}.log"
    env = {k: v for k, v in os.environ.items() if k not in _TENANT_VARIABLES}
    env.update({"E2E_QUEUE": E2E_QUEUE, "E2E_JOURNAL": str(journal), **(extra_env or {})})
    command = [
        sys.executable,
        "-m",
        "seatkeeper",
        "serve",
        "--app",
        app,
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--ready-file",
        str(ready_file),
        "--lock-seconds",
        str(lock_seconds),
        "--max-deliveries",
        str(max_deliveries),
        "--shutdown-grace",
        "1",
        *args,
    ]
    with log_file.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603

    def ready() -> dict[str, Any] | None:
        if process.poll() is not None:
            raise AssertionError(f"the host exited with {process.returncode}: {log_file.read_text()[-2000:]}")
        try:
            document: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return document

    info = wait_for("the local host to serve", ready, timeout=60)
    keys = json.loads(Path(info["keys_file"]).read_text(encoding="utf-8"))
    return RunningHost(process, state_dir, journal, log_file, info, keys)
