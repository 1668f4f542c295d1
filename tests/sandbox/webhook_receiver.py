"""A real webhook receiver on 127.0.0.1 (aiohttp), scriptable: handshake behaviour, delays and statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web

Handshake = Literal["echo", "encoded", "json", "refuse", "silent"]


@dataclass
class Receiver:
    """What the receiver answers and what it received."""

    handshake: Handshake = "echo"
    handshake_delay: float = 0.0
    script: list[tuple[float, int]] = field(default_factory=list)  # (delay, status) per delivery, then 202
    validations: list[dict[str, str]] = field(default_factory=list)
    deliveries: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    base_url: str = ""

    def url(self, path: str = "/hook", query: str = "") -> str:
        """The receiver's URL for `path`, with an optional query string."""
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification received, across POSTs."""
        return [item for _, body in self.deliveries for item in body["value"]]

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        token = query.get("validationToken")
        if token is not None:
            self.validations.append(query)
            await asyncio.sleep(self.handshake_delay)
            if self.handshake == "echo":
                return web.Response(text=token, content_type="text/plain")
            if self.handshake == "encoded":
                return web.Response(text=quote(token), content_type="text/plain")
            if self.handshake == "json":
                return web.json_response(token)
            if self.handshake == "refuse":
                return web.Response(status=403)
            await asyncio.sleep(3600)
        body = await request.json()
        self.deliveries.append((query, body))
        delay, status = self.script.pop(0) if self.script else (0.0, 202)
        await asyncio.sleep(delay)
        return web.Response(status=status)


@asynccontextmanager
async def running_receiver(receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    """Serve `receiver` on a free port of 127.0.0.1 for the duration of the block."""
    receiver = receiver or Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
