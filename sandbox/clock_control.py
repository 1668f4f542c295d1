"""Control-plane calls for the business clock: read it, and move it in steps that wait for the service.

`POST /_sandbox/clock/advance {"seconds", "max_step_seconds", "idle_url"}` moves the clock step by step
(sandbox/clock.py fires what falls due in order); after each step it lets queued notifications go out and,
when `idle_url` is given, polls it until it answers 200 `{"idle": true}`, waiting at most `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from aiohttp import web

from sandbox.clock import advance
from sandbox.model import iso
from sandbox.notifications import Notifier

if TYPE_CHECKING:
    from sandbox.extension import SandboxApp

DEFAULT_MAX_STEP_SECONDS = 3600.0
DEFAULT_IDLE_TIMEOUT = 30.0
IDLE_POLL_SECONDS = 0.05


def _number(body: dict[str, Any], name: str, default: float | None) -> float | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _loopback(url: Any) -> str:
    parts = urlsplit(url if isinstance(url, str) else "")
    try:
        loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ValueError("idle_url must be an http(s) URL on 127.0.0.1, or null")
    return str(url)


@dataclass(frozen=True)
class AdvanceRequest:
    """A validated `POST /clock/advance` body."""

    seconds: float
    max_step_seconds: float
    idle_url: str | None
    idle_timeout: float

    @classmethod
    def parse(cls, body: Any) -> AdvanceRequest:
        """Validate the body; raises ValueError with the reason."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")  # noqa: TRY004 -- one error type for every 400
        seconds = _number(body, "seconds", None)
        if seconds is None:
            raise ValueError("seconds is required")
        max_step = _number(body, "max_step_seconds", DEFAULT_MAX_STEP_SECONDS) or 0.0
        if max_step <= 0:
            raise ValueError("max_step_seconds must be positive")
        raw_idle = body.get("idle_url")
        return cls(
            seconds=seconds,
            max_step_seconds=max_step,
            idle_url=None if raw_idle is None else _loopback(raw_idle),
            idle_timeout=_number(body, "idle_timeout", DEFAULT_IDLE_TIMEOUT) or 0.0,
        )


async def wait_idle(client: httpx.AsyncClient, url: str, within: float) -> bool:
    """Poll `url` until it answers 200 `{"idle": true}`; False if that did not happen within `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            response = await client.get(url, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            if response.status_code == 200 and response.json().get("idle") is True:
                return True
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # not up or not idle yet: poll again until the deadline
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(IDLE_POLL_SECONDS)


def register(sandbox: SandboxApp, notifier: Notifier, client: httpx.AsyncClient) -> None:
    """Add `GET /clock` and `POST /clock/advance`."""
    state = sandbox.state
    moving = asyncio.Lock()

    def view() -> dict[str, Any]:
        return {"now": iso(state.clock.now()), "offset_seconds": state.clock.offset.total_seconds()}

    async def get_clock(_: web.Request) -> web.Response:
        return web.json_response(view())

    async def advance_clock(request: web.Request) -> web.Response:
        try:
            move = AdvanceRequest.parse(json.loads(await request.read()))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)

        async def after_step() -> bool:
            drained = await notifier.drain(move.idle_timeout)
            if move.idle_url is None:
                return drained
            return await wait_idle(client, move.idle_url, move.idle_timeout) and drained

        async with moving:
            report = await advance(
                state.scheduler,
                timedelta(seconds=move.seconds),
                timedelta(seconds=move.max_step_seconds),
                after_step,
            )
        return web.json_response(
            {**view(), "steps": report.steps, "fired": report.fired, "idle_timeouts": report.idle_timeouts}
        )

    sandbox.add_control_route("GET", "/clock", get_clock)
    sandbox.add_control_route("POST", "/clock/advance", advance_clock)
