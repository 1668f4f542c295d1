"""How part-2 modules plug into a running sandbox without editing the server.

Seam for part 2 (stable): at start the server imports each module of `PART2_MODULES` that exists and calls
its `install(sandbox: SandboxApp) -> None` before serving. There a module may register Graph operations
(`sandbox.router.add(...)`), append pipeline hooks (`sandbox.pipeline.pre_hooks` / `post_hooks`), subscribe
to directory events (`sandbox.state.events.subscribe`), add control-plane routes
(`sandbox.add_control_route("POST", "/faults", handler)`), register reset callbacks
(`sandbox.state.on_reset`) and start/stop background work (`sandbox.web_app.on_startup` / `on_cleanup`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.router import GraphPipeline, Router
from sandbox.state import SandboxState

PART2_MODULES = (
    "sandbox.faults",
    "sandbox.throttling",
    "sandbox.subscriptions",
    "sandbox.notifications",
    "sandbox.delta",
    "sandbox.batch",
    "sandbox.lifecycle_workflows",
)

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SandboxApp:
    """Everything an extension may touch in one running sandbox."""

    state: SandboxState
    router: Router
    pipeline: GraphPipeline
    web_app: web.Application
    base_url: str
    graph_url: str
    control_url: str
    installed: list[str] = field(default_factory=list)

    def add_control_route(self, method: str, path: str, handler: ControlHandler) -> None:
        """Serve `handler` at `{control_url}{path}` (path starts with '/')."""
        self.web_app.router.add_route(method, f"/_sandbox{path}", handler)


def install_extensions(sandbox: SandboxApp, modules: tuple[str, ...] = PART2_MODULES) -> None:
    """Import and install every part-2 module present (absent ones are skipped)."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        install = getattr(module, "install", None)
        if callable(install):
            install(sandbox)
            sandbox.installed.append(name)
