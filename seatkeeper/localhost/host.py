"""The local host: indexes the app once, serves HTTP triggers, fires timers, pumps queues, until signalled.

Sandbox mode (no tenant configured) starts the sandbox tenant as a separate process, or attaches to a
running one; business time then follows the sandbox's clock. Tenant mode and `sandbox="off"` use the
wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import structlog
from aiohttp import web

from seatkeeper import settings as settings_module
from seatkeeper.adapters.clocks import SandboxBusinessClock, WallClock
from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE, EmbeddedQueue
from seatkeeper.core.errors import ConfigurationError, TransientError
from seatkeeper.core.ports import Clock
from seatkeeper.localhost.bindings import Delivery, service_bus_message
from seatkeeper.localhost.catalog import (
    Catalog,
    IndexedFunction,
    QueueFunction,
    TimerFunction,
    index,
    load_app,
)
from seatkeeper.localhost.embedded_source import EmbeddedQueueSource
from seatkeeper.localhost.hr_signing import sandbox_secret
from seatkeeper.localhost.http_server import build_app
from seatkeeper.localhost.invoker import Invoker
from seatkeeper.localhost.keys import GRAPH_WEBHOOK_KEY, load_or_create
from seatkeeper.localhost.queue_pump import QueuePump, QueueSource
from seatkeeper.localhost.sandbox_process import SandboxProcess, read_ready, start_sandbox
from seatkeeper.localhost.timers import TimerRunner
from seatkeeper.logs import configure_logging

log = structlog.get_logger(__name__)

RefreshClock = Callable[[], Awaitable[object]]

SANDBOX_READY_FILE = "sandbox.json"
HOST_READY_FILE = "host.json"
# Settings the local host sets for the app it runs (Core Tools sets WEBSITE_HOSTNAME too).
HOSTNAME_VARIABLE = settings_module.WEBSITE_HOSTNAME
WEBHOOK_KEY_VARIABLE = settings_module.GRAPH_WEBHOOK_KEY
TENANT_SETTINGS = (
    settings_module.TENANT_ID,
    settings_module.CLIENT_ID,
    settings_module.CLIENT_SECRET,
    settings_module.CLIENT_CERTIFICATE_PATH,
    settings_module.CLIENT_CERTIFICATE,
    settings_module.MANAGED_IDENTITY,
    settings_module.MANAGED_IDENTITY_CLIENT_ID,
)


class SandboxUse(StrEnum):
    """In sandbox mode: start a sandbox, attach to a running one (its ready file), or run without one."""

    START = "start"
    ATTACH = "attach"
    OFF = "off"


@dataclass(frozen=True)
class HostOptions:
    """Everything `seatkeeper serve` can be told."""

    app: str = "function_app:app"
    port: int = 7071
    state_dir: Path = field(
        default_factory=lambda: settings_module.APP_ROOT / settings_module.DEFAULT_DATA_DIR
    )
    sandbox: SandboxUse = SandboxUse.START
    sandbox_ready_file: Path | None = None
    tenant_file: Path | None = None
    ready_file: Path | None = None
    lock_seconds: float = 30.0
    max_deliveries: int = 10
    concurrency: int = 4
    shutdown_grace_seconds: float = 10.0


def route_prefix(host_json: Path) -> str:
    """host.json's `extensions.http.routePrefix`, "api" when the file or the setting is absent."""
    try:
        document = json.loads(host_json.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return "api"
    http = document.get("extensions", {}).get("http", {}) if isinstance(document, dict) else {}
    value = http.get("routePrefix", "api") if isinstance(http, dict) else "api"
    return str(value).strip("/")


def tenant_configured(environ: Mapping[str, str]) -> bool:
    """Any tenant setting present means tenant mode (a partial one is reported by the settings)."""
    return any(environ.get(name, "").strip() for name in TENANT_SETTINGS)


def apply_local_settings(environ: MutableMapping[str, str], path: Path) -> None:
    """Copy `local.settings.json` Values into the environment, as Core Tools does; the environment wins."""
    for name, value in settings_module.local_settings_values(path).items():
        environ.setdefault(name, value)


class LocalHost:
    """One running host: HTTP server, timers and queue pump sharing one event loop and one invoker."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Clock,
        source: QueueSource,
        refresh_clock: RefreshClock | None = None,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.invoker = Invoker()
        self.timers = TimerRunner(catalog.timers, clock, self.invoker)
        self.source = source
        self._refresh_clock = refresh_clock

    async def idle(self) -> bool:
        """No timer due in business time, no queue message due or in flight, no invocation running."""
        if self._refresh_clock is not None:
            # Unreachable sandbox: answer from the last known business time rather than fail the call.
            with contextlib.suppress(TransientError):
                await self._refresh_clock()
        if self.invoker.in_flight or self.timers.busy():
            return False
        return not await self.source.busy()

    async def run_on_demand(self, function: IndexedFunction, text: str) -> None:
        """`POST /admin/functions/{name}`: run a timer, queue or other function once with `text` as input."""
        if isinstance(function, TimerFunction):
            await self.timers.run_now(function.name)
            return
        if isinstance(function, QueueFunction):
            now = datetime.now(UTC)
            delivery = Delivery(
                queue=function.queue,
                message_id=os.urandom(16).hex(),
                body=text.encode("utf-8"),
                delivery_count=1,
                enqueued_time=now,
                lock_token=os.urandom(16).hex(),
            )
            await self.invoker.invoke(function, service_bus_message(delivery))
            return
        await self.invoker.invoke(function, text)


def _clock_for(ready: Mapping[str, Any]) -> SandboxBusinessClock:
    context = ssl.create_default_context(cafile=str(ready["ca_file"]))
    return SandboxBusinessClock(str(ready["control_url"]), verify=context)


def _origin(url: str) -> str:
    """`http://127.0.0.1:7071` of `http://127.0.0.1:7071/api`."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _banner(
    out: TextIO,
    *,
    api_url: str,
    keys_file: Path,
    catalog: Catalog,
    ready: Mapping[str, Any] | None,
    mode: str,
    hr_secret_file: Path | None = None,
) -> None:
    lines = [
        f"Seatkeeper local host ({mode})",
        f"  API            {api_url}/<route>",
        f"  keys file      {keys_file}",
    ]
    if hr_secret_file is not None:
        lines.append(f"  HR signing     {hr_secret_file}  (the sandbox run's SEATKEEPER_HR_SIGNING_SECRET)")
    lines += [f"  http           {api_url}/{f.route.template}  [{f.auth_level.value}]" for f in catalog.http]
    lines += [f"  timer          {f.name}  [{f.schedule}]" for f in catalog.timers]
    lines += [f"  queue          {f.name}  <- {f.queue}" for f in catalog.queues]
    base = _origin(api_url)
    lines += [
        f"  idle           {base}/admin/idle",
        f"  run a function POST {base}/admin/functions/<name> (master key)",
    ]
    if ready is not None:
        control = str(ready["control_url"])
        lines += [
            f"  sandbox graph  {ready['graph_url']}",
            f"  control plane  {control}",
            f"  teams capture  {control}/teams",
            f"  mail capture   {control}/mail",
        ]
    print("\n".join(lines), file=out, flush=True)


@dataclass
class _Tenant:
    """Which tenant this run talks to, and the business clock that comes with it."""

    mode: str
    clock: Clock
    refresh: RefreshClock | None = None
    ready: dict[str, Any] | None = None
    sandbox: SandboxProcess | None = None
    hr_secret_file: Path | None = None


async def _prepare_tenant(options: HostOptions, environ: MutableMapping[str, str]) -> _Tenant:
    """Tenant mode, or sandbox mode with a sandbox started, attached, or none (wall clock)."""
    if tenant_configured(environ):
        return _Tenant("tenant", WallClock())
    if options.sandbox is SandboxUse.OFF:
        return _Tenant("no tenant, no sandbox", WallClock())
    sandbox: SandboxProcess | None = None
    if options.sandbox is SandboxUse.ATTACH:
        if options.sandbox_ready_file is None:
            raise ValueError("attaching to a sandbox needs its ready file")
        ready_path = options.sandbox_ready_file
        ready = read_ready(ready_path)
        if ready is None:
            raise ValueError(f"no sandbox ready file at {ready_path}")
    else:
        ready_path = options.state_dir / SANDBOX_READY_FILE
        sandbox = await asyncio.to_thread(
            start_sandbox,
            ready_path,
            tenant_file=options.tenant_file,
            log_file=options.state_dir / "sandbox.log",
        )
        ready = sandbox.ready
    # The app's settings find the sandbox (endpoints, credentials, CA) through this ready file.
    environ[settings_module.SANDBOX_READY_FILE] = str(ready_path)
    context = ssl.create_default_context(cafile=str(ready["ca_file"]))
    business = SandboxBusinessClock(str(ready["control_url"]), verify=context)
    # Sandbox mode signs HR events out of the box with a generated secret kept beside the keys.
    hr_secret_file = sandbox_secret(environ, options.state_dir)
    return _Tenant("sandbox", business, business.refresh, ready, sandbox, hr_secret_file)


async def serve(options: HostOptions, *, out: TextIO = sys.stdout) -> int:
    """Run the host until SIGTERM or SIGINT; returns the process exit code."""
    environ = os.environ
    options.state_dir.mkdir(parents=True, exist_ok=True)
    apply_local_settings(environ, settings_module.APP_ROOT / "local.settings.json")
    _configure_logs(environ)
    # The app builds its embedded queue and store in the same directory as the host reads.
    environ[settings_module.DATA_DIR] = str(options.state_dir)
    keys, keys_file = load_or_create(options.state_dir)
    environ[WEBHOOK_KEY_VARIABLE] = keys.host_keys[GRAPH_WEBHOOK_KEY]
    tenant = await _prepare_tenant(options, environ)
    ready_file = options.ready_file or options.state_dir / HOST_READY_FILE
    runner: web.AppRunner | None = None
    queue: EmbeddedQueue | None = None
    host: LocalHost | None = None
    try:
        if options.sandbox is not SandboxUse.OFF or tenant_configured(environ):
            problems = settings_problems(environ)
            if problems:
                _refuse(out, problems)
                return 2
        queue = EmbeddedQueue(
            options.state_dir / EMBEDDED_QUEUE_FILE, clock=tenant.clock, max_deliveries=options.max_deliveries
        )
        catalog = index(load_app(options.app))
        source = EmbeddedQueueSource(queue, lock_duration=timedelta(seconds=options.lock_seconds))
        host = LocalHost(catalog, clock=tenant.clock, source=source, refresh_clock=tenant.refresh)
        prefix = route_prefix(settings_module.APP_ROOT / "host.json")
        app = build_app(
            catalog, keys, host.invoker, idle=host.idle, run_on_demand=host.run_on_demand, route_prefix=prefix
        )
        # Bodies reach the functions as sent: Azure's host does not decode a request's Content-Encoding, and
        # aiohttp's decoder drops the connection on a body that is not what its header says.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", options.port)
        try:
            await site.start()
        except OSError as exc:
            print(
                f"cannot listen on 127.0.0.1:{options.port} ({exc.strerror}); choose another port: "
                f'--port, or make run SERVE_ARGS="--port N"',
                file=out,
            )
            return 1
        port = _bound_port(site)
        environ[HOSTNAME_VARIABLE] = f"127.0.0.1:{port}"
        api_url = f"http://127.0.0.1:{port}" + (f"/{prefix}" if prefix else "")
        _banner(
            out,
            api_url=api_url,
            keys_file=keys_file,
            catalog=catalog,
            ready=tenant.ready,
            mode=tenant.mode,
            hr_secret_file=tenant.hr_secret_file,
        )
        _write_ready(ready_file, port=port, api_url=api_url, keys_file=keys_file, ready=tenant.ready)
        await _run_until_signalled(host, source, options)
    finally:
        if runner is not None:
            await runner.cleanup()
        if host is not None:
            host.invoker.shutdown()
        await _close_app_services()
        if queue is not None:
            queue.close()
        if tenant.sandbox is not None:
            await asyncio.to_thread(tenant.sandbox.stop)
        ready_file.unlink(missing_ok=True)
    log.info("localhost.stopped")
    return 0


def settings_problems(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The app's settings, checked as its first function will check them: every problem, or none."""
    try:
        settings_module.load_settings(environ)
    except ConfigurationError as error:
        return error.problems
    return ()


def _refuse(out: TextIO, problems: Sequence[str]) -> None:
    """A start with bad settings stops here, naming every problem (names and paths only, never values)."""
    log.error("localhost.settings_invalid", problems=len(problems))
    lines = [f"Seatkeeper cannot start: {len(problems)} problem(s) with its settings"]
    lines += [f"  - {problem}" for problem in problems]
    lines.append("Every setting is described in docs/settings.md.")
    print("\n".join(lines), file=out, flush=True)


async def _run_until_signalled(host: LocalHost, source: QueueSource, options: HostOptions) -> None:
    """Timers and the queue pump run until SIGTERM/SIGINT; in-flight work gets a grace period to finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pump = QueuePump(
        host.catalog.queues,
        source,
        host.invoker,
        concurrency=options.concurrency,
        renew_every_seconds=max(options.lock_seconds / 2, 0.5),
    )
    log.info("localhost.started", functions=len(host.catalog.http) + len(host.catalog.timers))
    workers = [loop.create_task(host.timers.run(stop)), loop.create_task(pump.run(stop))]
    try:
        await stop.wait()
        log.info("localhost.stopping")
        _, pending = await asyncio.wait(workers, timeout=options.shutdown_grace_seconds)
        for task in pending:
            task.cancel()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _close_app_services() -> None:
    """Close the app's adapters (HTTP clients, SQLite files) if its composition root built any."""
    bootstrap = sys.modules.get("seatkeeper.bootstrap")
    close = getattr(bootstrap, "close_services", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:  # noqa: BLE001 - shutting down: log and go on stopping the rest
            log.warning("localhost.app_close_failed", error=type(exc).__name__)


def _configure_logs(environ: Mapping[str, str]) -> None:
    """The host logs as the app does (its settings checked later, by the app, with every other one)."""
    level = (environ.get(settings_module.LOG_LEVEL) or "INFO").strip().upper()
    log_format = (environ.get(settings_module.LOG_FORMAT) or "auto").strip().lower()
    configure_logging(
        log_format if log_format in ("auto", "json", "console") else "auto",
        level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO",
    )


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here; the public API has no bound port
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1])


def _write_ready(
    path: Path, *, port: int, api_url: str, keys_file: Path, ready: Mapping[str, Any] | None
) -> None:
    """Where the host listens, written once it serves (`seatkeeper clock` and the e2e tests read it)."""
    document = {
        "api_url": api_url,
        "admin_url": f"http://127.0.0.1:{port}/admin",
        "idle_url": f"http://127.0.0.1:{port}/admin/idle",
        "keys_file": str(keys_file),
        "sandbox_control_url": None if ready is None else ready["control_url"],
        "sandbox_ca_file": None if ready is None else ready["ca_file"],
        "pid": os.getpid(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document), encoding="utf-8")
    tmp.replace(path)
