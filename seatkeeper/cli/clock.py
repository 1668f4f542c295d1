"""`seatkeeper clock show|advance`: read or move the sandbox's business clock.

`advance 90d` moves it in steps no longer than `--max-step`, and after each step the sandbox waits for
this local host's idle URL (`/admin/idle`) so that every timer, renewal and deadline runs in order.
The control plane and idle URL come from the running host's ready file (`<state dir>/host.json`).
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> float:
    """Seconds in `90d`, `1d12h`, `30m`, `45s`, `2w` or a bare number of seconds."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return float(cleaned)
    if not cleaned or _DURATION.sub("", cleaned):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90d, 1d12h, 30m)")
    return sum(float(amount) * _UNITS[unit] for amount, unit in _DURATION.findall(cleaned))


@dataclass(frozen=True)
class Target:
    """Where the sandbox's control plane is, how to trust it, and the host's idle URL."""

    control_url: str
    verify: ssl.SSLContext
    idle_url: str | None


def _default_state_dir() -> Path:
    # The same directory `seatkeeper serve` chose (environment over local.settings.json).
    from seatkeeper import settings

    return settings.data_dir(settings.environment())


def _target(args: argparse.Namespace) -> Target:
    from seatkeeper.localhost.host import HOST_READY_FILE, SANDBOX_READY_FILE

    state_dir: Path = args.state_dir or _default_state_dir()
    host: dict[str, Any] = {}
    host_file = state_dir / HOST_READY_FILE
    if host_file.is_file():
        host = json.loads(host_file.read_text(encoding="utf-8"))
    sandbox: dict[str, Any] = {}
    sandbox_file = state_dir / SANDBOX_READY_FILE
    if sandbox_file.is_file():
        sandbox = json.loads(sandbox_file.read_text(encoding="utf-8"))
    control = args.control_url or host.get("sandbox_control_url") or sandbox.get("control_url")
    ca_file = args.ca_file or host.get("sandbox_ca_file") or sandbox.get("ca_file")
    if not control or not ca_file:
        raise SystemExit(
            f"no running sandbox found under {state_dir} "
            "(start `make run`, or pass --control-url and --ca-file)"
        )
    idle = None if args.no_wait else (args.idle_url or host.get("idle_url"))
    return Target(str(control).rstrip("/"), ssl.create_default_context(cafile=str(ca_file)), idle)


def register(subparsers: Any) -> None:
    """Add `clock show` and `clock advance DURATION`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "clock", help="show or advance the sandbox's business clock", description=__doc__
    )
    actions = parser.add_subparsers(dest="clock_command", required=True)
    show = actions.add_parser("show", help="print business time and its offset from wall time")
    advance = actions.add_parser("advance", help="move business time forward in steps, waiting for idle")
    advance.add_argument("duration", type=parse_duration, help="how far: 90d, 1d12h, 30m, 45s")
    advance.add_argument(
        "--max-step", type=parse_duration, default=3600.0, help="longest single step (default 1h)"
    )
    advance.add_argument(
        "--idle-url", default=None, help="idle URL to wait for (default: the running host's)"
    )
    advance.add_argument("--no-wait", action="store_true", help="do not wait for the host to be idle")
    for sub in (show, advance):
        sub.add_argument("--state-dir", type=Path, default=None, help="the local host's state directory")
        sub.add_argument("--control-url", default=None, help="sandbox control plane URL (…/_sandbox)")
        sub.add_argument("--ca-file", type=Path, default=None, help="the sandbox's CA certificate (PEM)")
        sub.set_defaults(func=run)
    show.set_defaults(no_wait=True, idle_url=None)


def run(args: argparse.Namespace) -> int:
    """Call the sandbox control plane and print what it answered."""
    import httpx

    target = _target(args)
    if args.clock_command == "show":
        response = httpx.get(f"{target.control_url}/clock", verify=target.verify, timeout=10.0)
    else:
        body = {"seconds": args.duration, "max_step_seconds": args.max_step, "idle_url": target.idle_url}
        # A long advance waits for idle after every step: no read timeout.
        timeout = httpx.Timeout(10.0, read=None)
        response = httpx.post(
            f"{target.control_url}/clock/advance", json=body, verify=target.verify, timeout=timeout
        )
    if response.status_code >= 400:
        print(f"sandbox answered {response.status_code}: {response.text}")
        return 1
    report = response.json()
    print(json.dumps(report, indent=2, sort_keys=True))
    if report.get("idle_timeouts"):
        print(f"the host was not idle within the sandbox's wait after {report['idle_timeouts']} step(s)")
        return 2
    return 0
