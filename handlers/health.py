"""The health check: settings loaded, a token obtained, the permissions it carries against those the code
needs, Graph reachable with one cheap call, and every other dependency's probe (queue, state...).

The report names checks and what is wrong (a missing permission, an error kind), never a setting's value.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from seatkeeper.core.errors import SeatkeeperError
from seatkeeper.core.graph_port import GraphPort, missing_roles
from seatkeeper.core.ports import Probe

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str = "ok"


@dataclass(frozen=True)
class HealthReport:
    """Every check, and whether all passed."""

    checks: tuple[Check, ...]

    @property
    def healthy(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def body(self) -> bytes:
        """The JSON the health endpoint answers."""
        return json.dumps(
            {
                "status": "healthy" if self.healthy else "unhealthy",
                "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
            },
            sort_keys=True,
        ).encode("utf-8")


async def check_health(
    *,
    settings_problems: int = 0,
    graph: GraphPort | None = None,
    needs_mail: bool = False,
    probes: Mapping[str, Probe] | None = None,
) -> HealthReport:
    """Run every check that can run; a failed token skips the checks that need one."""
    checks = [
        Check(
            "settings",
            settings_problems == 0,
            "ok" if not settings_problems else f"{settings_problems} problem(s), see the log",
        )
    ]
    if graph is not None:
        checks.extend(await _graph_checks(graph, needs_mail=needs_mail))
    for name, probe in (probes or {}).items():
        checks.append(await _probe(name, probe.check))
    report = HealthReport(tuple(checks))
    _log.info(
        "health.checked",
        healthy=report.healthy,
        failed=[c.name for c in report.checks if not c.ok],
    )
    return report


async def _graph_checks(graph: GraphPort, *, needs_mail: bool) -> list[Check]:
    try:
        roles = await graph.granted_roles()
    except SeatkeeperError as error:
        return [Check("token", ok=False, detail=type(error).__name__)]
    missing = missing_roles(roles, needs_mail=needs_mail)
    checks = [
        Check("token", ok=True),
        Check("permissions", not missing, "ok" if not missing else "missing: " + ", ".join(missing)),
    ]

    async def cheap_read() -> None:
        await graph.get("/users", params={"$top": "1", "$select": "id"})

    checks.append(await _probe("graph", cheap_read))
    return checks


async def _probe(name: str, check: Callable[[], Awaitable[None]]) -> Check:
    try:
        await check()
    except (SeatkeeperError, OSError) as error:
        # The body names the kind only; the log keeps the adapter's reason (e.g. the role to grant).
        _log.warning("health.check_failed", check=name, error=type(error).__name__, reason=str(error))
        return Check(name, ok=False, detail=type(error).__name__)
    return Check(name, ok=True)
