"""The service under fuzzing: function_app.py in a real local host on the sandbox tenant, with what the
fuzz tests read back (enqueued messages, the secrets that must never leak, the host's captured output)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE
from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.subscription_records import BY_ID, SUBSCRIPTIONS_TABLE
from tests.e2e.host_process import ROOT, RunningHost, start_host, wait_for
from tests.fixtures.sandbox import SandboxInfo

# Cases per endpoint: `make test` runs 2,000, `python -m bench.fuzz` 10,000 (it sets this variable).
FUZZ_EXAMPLES_VARIABLE: Final = "SEATKEEPER_FUZZ_EXAMPLES"
DEFAULT_EXAMPLES: Final = 2_000
# Kinds an HTTP intake enqueues, with the payload marks that tell them from what timers enqueue.
WEBHOOK_QUEUE: Final = "group-changes"
HR_QUEUE: Final = "hr-events"
# A Lifecycle Workflow the fuzz policy maps to joiners, so some fuzzed payloads are accepted.
FUZZ_WORKFLOW_ID: Final = "5f0c2a47-1c1e-4a8e-9a55-0d7f3c9e2b10"
_FUZZ_POLICY_HR: Final = f"""
hr:
  lifecycle_workflows:
    - workflow_id: {FUZZ_WORKFLOW_ID}
      event: joiner
"""


def fuzz_examples() -> int:
    """How many cases each endpoint gets in this run."""
    return int(os.environ.get(FUZZ_EXAMPLES_VARIABLE, str(DEFAULT_EXAMPLES)))


@dataclass(frozen=True)
class Enqueued:
    """One message the fuzzed endpoints could have put on a queue: its row number, kind and payload."""

    seq: int
    queue: str
    kind: str
    payload: dict[str, Any]

    @property
    def from_webhook(self) -> bool:
        """True for what only the Graph webhook enqueues (a timer's catch-up carries no subscription)."""
        return self.kind == "subscription.lifecycle" or (
            self.kind == "group.changed" and self.payload.get("reason") == "notification"
        )

    @property
    def from_hr_intake(self) -> bool:
        """True for what only HR or Lifecycle Workflows intake enqueues (onboarding's follow-ups are later
        stages)."""
        return self.kind.startswith("hr.") and self.payload.get("stage") == "received"


@dataclass
class FuzzTarget:
    """A running host with no queue consumers (so every enqueued message stays readable), and its secrets."""

    host: RunningHost
    client: httpx.Client
    hr_secret: str
    subscription_ids: tuple[str, ...]
    secrets: tuple[str, ...]
    _queue: sqlite3.Connection
    accepted: int = 0  # events the intakes said they accepted, over the whole module

    def __repr__(self) -> str:
        # Hypothesis prints a failing test's arguments: never the keys and secrets this object holds.
        return f"FuzzTarget(api_url={self.host.api_url!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis's pretty printer would list a dataclass's fields; this hook takes precedence.
        printer.text(repr(self))

    def last_seq(self) -> int:
        """The highest message row number so far (rows are never deleted: nothing consumes them)."""
        row = self._queue.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()
        return int(row[0])

    def enqueued_since(self, seq: int) -> list[Enqueued]:
        """Messages of the intake queues enqueued after row `seq`."""
        rows = self._queue.execute(
            "SELECT seq, queue, kind, body FROM messages WHERE seq > ? AND queue IN (?, ?) ORDER BY seq",
            (seq, WEBHOOK_QUEUE, HR_QUEUE),
        ).fetchall()
        found: list[Enqueued] = []
        for number, queue, kind, body in rows:
            payload = json.loads(bytes(body)).get("payload", {})
            found.append(Enqueued(int(number), str(queue), str(kind), dict(payload)))
        return found

    def leaked(self, text: str | bytes) -> list[str]:
        """Which secrets (by position, never by value) appear in `text`."""
        data = text if isinstance(text, str) else text.decode("utf-8", "replace")
        return [f"secret #{i}" for i, s in enumerate(self.secrets) if s and s in data]

    def host_output(self) -> str:
        """Everything the host process printed so far (its structured logs)."""
        return self.host.log_file.read_text(encoding="utf-8", errors="replace")


def _subscription_ids(host: RunningHost) -> tuple[str, ...]:
    async def read() -> tuple[str, ...]:
        store = SqliteStateStore(host.state_dir / EMBEDDED_STATE_FILE)
        try:
            return tuple(sorted([e.row async for e in store.query(SUBSCRIPTIONS_TABLE, BY_ID)]))
        finally:
            store.close()

    return asyncio.run(read())


@contextmanager
def fuzz_target(sandbox: SandboxInfo, workdir: Path) -> Iterator[FuzzTarget]:
    """Start the service on a freshly reset sandbox (Graph quotas off: health calls Graph every time)."""
    control = httpx.Client(verify=sandbox.ssl_context(), timeout=30)
    control.post(f"{sandbox.control_url}/reset").raise_for_status()
    control.post(f"{sandbox.control_url}/throttling", json={"enabled": False}).raise_for_status()
    ready = workdir / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(sandbox)), encoding="utf-8")
    raw_secret = secrets.token_bytes(32)
    hr_secret = "whsec_" + base64.b64encode(raw_secret).decode("ascii")
    client_state_key = secrets.token_urlsafe(32)
    policy = workdir / "policy.yaml"
    sandbox_policy = (ROOT / "policies" / "sandbox.yaml").read_text(encoding="utf-8")
    policy.write_text(sandbox_policy + _FUZZ_POLICY_HR, encoding="utf-8")
    host = start_host(
        workdir / "state",
        app="function_app:app",
        args=("--sandbox-ready-file", str(ready), "--concurrency", "0"),
        extra_env={
            "SEATKEEPER_HR_SIGNING_SECRET": hr_secret,
            "SEATKEEPER_CLIENT_STATE_KEY": client_state_key,
            "SEATKEEPER_POLICY_FILE": str(policy),
        },
    )
    queue = sqlite3.connect(host.state_dir / EMBEDDED_QUEUE_FILE, timeout=30, check_same_thread=False)
    client = httpx.Client(base_url=host.api_url, headers={"x-functions-key": host.function_key}, timeout=60)
    try:
        # Upkeep runs at start and subscribes every licensing group: the fuzzer gets real subscription ids.
        groups = 3  # the sandbox policy's licensing groups
        ids = wait_for(
            "the start-up subscriptions",
            lambda: found if len(found := _subscription_ids(host)) >= groups else None,
            timeout=90,
        )
        keys = host.keys
        named = [str(v) for v in keys.get("hostKeys", {}).values()]
        per_function = [str(v) for ks in keys.get("functionKeys", {}).values() for v in ks.values()]
        target = FuzzTarget(
            host=host,
            client=client,
            hr_secret=hr_secret,
            subscription_ids=ids,
            secrets=(
                hr_secret,
                hr_secret.removeprefix("whsec_"),
                client_state_key,
                sandbox.client_secret,
                host.master_key,
                *named,
                *per_function,
            ),
            _queue=queue,
        )
        yield target
    finally:
        client.close()
        queue.close()
        host.stop()
        control.post(f"{sandbox.control_url}/throttling", json={"enabled": True})
        control.post(f"{sandbox.control_url}/reset")
        control.close()
