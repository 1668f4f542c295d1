"""`seatkeeper serve`: the local host running function_app.py without Core Tools (what `make run` starts)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any


def _default_state_dir() -> Path:
    # Read as the app reads it (environment over local.settings.json): the host then hands it to the app.
    from seatkeeper import settings

    return settings.data_dir(settings.environment())


def register(subparsers: Any) -> None:
    """Add the `serve` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the service locally (HTTP triggers, timers, queues; the sandbox tenant unless configured)",
        description=__doc__,
    )
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--state-dir", type=Path, default=None, help="keys, embedded queue and store")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--sandbox-ready-file",
        type=Path,
        default=None,
        help="attach to a running sandbox instead of starting one",
    )
    mode.add_argument("--no-sandbox", action="store_true", help="in sandbox mode, run without any tenant")
    parser.add_argument(
        "--tenant-file", type=Path, default=None, help="tenant JSON for the sandbox it starts"
    )
    parser.add_argument(
        "--ready-file", type=Path, default=None, help="write where the host listens once it serves"
    )
    parser.add_argument(
        "--lock-seconds", type=float, default=30.0, help="peek-lock duration of queue messages"
    )
    parser.add_argument(
        "--max-deliveries", type=int, default=10, help="deliveries before a message is dead-lettered"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent messages per queue function")
    parser.add_argument(
        "--shutdown-grace", type=float, default=10.0, help="seconds running functions get to finish on stop"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the local host and block until SIGTERM or SIGINT."""
    from seatkeeper.localhost.host import HostOptions, SandboxUse, serve

    if args.no_sandbox:
        use = SandboxUse.OFF
    elif args.sandbox_ready_file is not None:
        use = SandboxUse.ATTACH
    else:
        use = SandboxUse.START
    options = HostOptions(
        app=args.app,
        port=args.port,
        state_dir=(args.state_dir or _default_state_dir()).resolve(),
        sandbox=use,
        sandbox_ready_file=args.sandbox_ready_file,
        tenant_file=args.tenant_file,
        ready_file=args.ready_file,
        lock_seconds=args.lock_seconds,
        max_deliveries=args.max_deliveries,
        concurrency=args.concurrency,
        shutdown_grace_seconds=args.shutdown_grace,
    )
    code = asyncio.run(serve(options))
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        # A plain function is still stuck in its thread: Python would wait for it forever at exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
