"""The sandbox business clock adapter follows the sandbox's offset over HTTPS, cheaply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from seatkeeper.adapters.clocks import SandboxBusinessClock
from seatkeeper.adapters.embedded_queue import EmbeddedQueue
from seatkeeper.core.errors import Unavailable
from seatkeeper.core.messages import LICENSE_CHECKS, Message
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.anyio


def advance(tenant: SandboxInfo, seconds: float) -> None:
    with httpx.Client(verify=tenant.ssl_context()) as client:
        client.post(
            f"{tenant.control_url}/clock/advance", json={"seconds": seconds, "idle_url": None}
        ).raise_for_status()


async def test_refresh_sees_an_advance_at_once(tenant: SandboxInfo) -> None:
    """After the sandbox moves a day ahead, refresh() reads the new offset and now() is a day ahead."""
    clock = SandboxBusinessClock(tenant.control_url, verify=tenant.ssl_context(), max_age=timedelta(hours=1))
    assert clock.now() - datetime.now(UTC) < timedelta(minutes=1)
    advance(tenant, 86400)
    assert clock.now() - datetime.now(UTC) < timedelta(minutes=1)  # cached: max_age not reached
    offset = await clock.refresh()
    assert timedelta(days=1) <= offset < timedelta(days=1, minutes=1)
    assert clock.now() - datetime.now(UTC) >= timedelta(days=1) - timedelta(seconds=1)


async def test_now_rereads_once_the_offset_is_older_than_max_age(tenant: SandboxInfo) -> None:
    """With max_age zero every now() follows the sandbox."""
    clock = SandboxBusinessClock(tenant.control_url, verify=tenant.ssl_context(), max_age=timedelta(0))
    advance(tenant, 3600)
    assert clock.now() - datetime.now(UTC) >= timedelta(hours=1) - timedelta(seconds=1)


async def test_an_unreachable_sandbox_keeps_the_last_offset(tenant: SandboxInfo) -> None:
    """now() never raises: it keeps the last offset; refresh() says Unavailable."""
    clock = SandboxBusinessClock(
        "https://127.0.0.1:1/_sandbox", verify=tenant.ssl_context(), max_age=timedelta(0)
    )
    clock.observe(timedelta(hours=2))
    assert clock.now() - datetime.now(UTC) >= timedelta(hours=2) - timedelta(seconds=1)
    with pytest.raises(Unavailable):
        await clock.refresh()


async def test_a_scheduled_message_falls_due_when_the_sandbox_advances(
    tenant: SandboxInfo, tmp_path: Path
) -> None:
    """Embedded queue on the sandbox clock: a message a day ahead is due once the sandbox moved a day (and
    the clock was refreshed, as the local host does before answering idle)."""
    clock = SandboxBusinessClock(tenant.control_url, verify=tenant.ssl_context(), max_age=timedelta(hours=1))
    queue = EmbeddedQueue(tmp_path / "queue.sqlite3", clock=clock)
    try:
        due = clock.now() + timedelta(days=1)
        await queue.send(
            [
                Message(
                    queue=LICENSE_CHECKS,
                    kind="k",
                    subject="u1",
                    version="1",
                    correlation_id="c",
                    scheduled_for=due,
                )
            ]
        )
        assert (await queue.activity()).idle
        advance(tenant, 86400 + 60)
        await clock.refresh()
        assert (await queue.activity()).due == 1
        assert [m.scheduled_for for m in await queue.receive(LICENSE_CHECKS, 1)] == [due]
    finally:
        queue.close()
