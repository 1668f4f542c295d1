"""Starts the sandbox tenant as a separate process (`python -m sandbox serve`) and stops it again.

The service never imports the sandbox: it only runs it and reads the ready file it writes once serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class SandboxStartError(RuntimeError):
    """The sandbox exited or did not write its ready file in time."""


@dataclass
class SandboxProcess:
    """A running sandbox: its process and what its ready file says."""

    process: subprocess.Popen[bytes]
    ready_file: Path
    ready: dict[str, Any]

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace_seconds`."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("localhost.sandbox_stopped", pid=self.process.pid)


def read_ready(path: Path) -> dict[str, Any] | None:
    """The ready file's JSON object once it is complete, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stop_stale(ready_file: Path) -> bool:
    """Stop a sandbox left running by a host that was killed (`kill -9`); True if there was one.

    Only a process whose command line is `-m sandbox serve ... --ready-file <this file>` is signalled.
    """
    ready = read_ready(ready_file)
    pid = ready.get("pid") if ready else None
    if not isinstance(pid, int):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    arguments = [part.decode("utf-8", "replace") for part in cmdline]
    if "sandbox" not in arguments or "serve" not in arguments or str(ready_file) not in arguments:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    log.info("localhost.stale_sandbox_stopped", pid=pid)
    return True


def start_sandbox(
    ready_file: Path,
    *,
    tenant_file: Path | None = None,
    timeout_seconds: float = 60.0,
    log_file: Path | None = None,
) -> SandboxProcess:
    """Start `python -m sandbox serve --port 0 --ready-file ready_file` and wait until it is serving."""
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    stop_stale(ready_file)
    ready_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--ready-file", str(ready_file)]
    if tenant_file is not None:
        command += ["--tenant", str(tenant_file)]
    output = log_file.open("ab") if log_file is not None else None
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            command,
            stdout=output if output is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
            env=dict(os.environ),
        )
    finally:
        if output is not None:
            output.close()
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        ready = read_ready(ready_file)
        if ready is not None:
            log.info("localhost.sandbox_started", pid=process.pid)
            return SandboxProcess(process, ready_file, ready)
        if process.poll() is not None:
            raise SandboxStartError(f"the sandbox exited with code {process.returncode} before it was ready")
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SandboxStartError(f"the sandbox wrote no ready file within {timeout_seconds:.0f} s")
