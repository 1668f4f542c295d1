"""Graph's identity-and-access throttling: resource-unit costs and the app+tenant quotas (graph-facts §D).

Each request costs resource units (RU) from the documented table, adjusted by its query options; writes
also count against a write quota. Quotas are sliding windows on wall time (Graph throttles real traffic,
not business time): S/M/L tenants get 3,500 / 5,000 / 8,000 RU per 10 s, and 3,000 writes per 2.5 min.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.graph_errors import error_body
from sandbox.router import GraphRequest, GraphResponse, Operation

if TYPE_CHECKING:
    from sandbox.extension import SandboxApp

BATCH_TEMPLATE = "/$batch"  # the envelope costs nothing; its inner requests are charged one by one

RU_WINDOW_SECONDS = 10.0
WRITE_WINDOW_SECONDS = 150.0
WRITE_QUOTA = 3_000
REPORT_FROM = 0.8  # x-ms-throttle-limit-percentage appears once usage passes 80 % of a quota

_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

# Documented base costs for GETs; everything not listed costs 1 (graph-facts §D).
_GET_COSTS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/users/?$"), 2),
    (re.compile(r"^/groups/[^/]+/members(/[^/]+)?/?$"), 3),
    (re.compile(r"^/groups/[^/]+/transitiveMembers(/[^/]+)?/?$"), 5),
    (re.compile(r"^/subscribedSkus(/[^/]+)?/?$"), 3),
    (re.compile(r"^/(me|users/[^/]+)/licenseDetails/?$"), 2),
)


class TenantSize(Enum):
    """Graph's tenant size classes for identity throttling, with their RU quota per 10 s."""

    S = 3_500
    M = 5_000
    L = 8_000

    @classmethod
    def for_user_count(cls, users: int) -> TenantSize:
        """S under 50 users, M from 50 to 500, L above 500."""
        if users < 50:
            return cls.S
        if users <= 500:
            return cls.M
        return cls.L


def base_cost(method: str, path: str) -> int:
    """The documented base RU cost of a request; `path` is relative to the version (`/users/{id}`)."""
    if method.upper() in _WRITE_METHODS:
        return 1
    for pattern, cost in _GET_COSTS:
        if pattern.match(path):
            return cost
    return 1


def is_write(method: str) -> bool:
    """Whether a request counts against the write quota (POST, PATCH, PUT, DELETE)."""
    return method.upper() in _WRITE_METHODS


def request_cost(base: int, query: Mapping[str, str]) -> int:
    """Adjust a base cost for the query options: `$select` -1, `$expand` +1, `$top` under 20 -1; min 1."""
    cost = base
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top")
    if top is not None and top.isdigit() and int(top) < 20:
        cost -= 1
    return max(cost, 1)


class SlidingWindow:
    """Amounts spent within the last `seconds`, by wall time; O(1) amortised per charge."""

    def __init__(self, seconds: float, now: Callable[[], float]) -> None:
        self.seconds = seconds
        self._now = now
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self, at: float) -> None:
        horizon = at - self.seconds
        while self._entries and self._entries[0][0] <= horizon:
            self._total -= self._entries.popleft()[1]

    def used(self) -> int:
        """What was spent within the window, as of now."""
        self._expire(self._now())
        return self._total

    def add(self, amount: int) -> None:
        """Record `amount` spent now."""
        if amount > 0:
            self._entries.append((self._now(), amount))
            self._total += amount

    def wait_for(self, amount: int, limit: int) -> float:
        """Seconds until `amount` more fits under `limit` (0 if it fits now)."""
        at = self._now()
        self._expire(at)
        excess = self._total + amount - limit
        if excess <= 0:
            return 0.0
        freed = 0
        for stamp, spent in self._entries:
            freed += spent
            if freed >= excess:
                return max(stamp + self.seconds - at, 0.0)
        return self.seconds

    def clear(self) -> None:
        """Forget everything spent."""
        self._entries.clear()
        self._total = 0


@dataclass(frozen=True)
class Verdict:
    """The outcome of charging one request: allowed or not, and what the response headers report."""

    allowed: bool
    resource_units: int
    retry_after: int = 0
    limit_percentage: float | None = None
    reason: str = ""

    def headers(self) -> dict[str, str]:
        """Graph's throttling headers for this request's response."""
        headers = {"x-ms-resource-unit": str(self.resource_units)}
        if self.limit_percentage is not None:
            headers["x-ms-throttle-limit-percentage"] = f"{self.limit_percentage:.1f}"
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
            headers["x-ms-throttle-scope"] = "Tenant_Application/ReadWrite"
            headers["x-ms-throttle-information"] = self.reason
        return headers


class Quotas:
    """The app+tenant RU and write quotas, one pair of windows per application id."""

    def __init__(
        self, tenant_size: Callable[[], TenantSize], now: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = True
        self._tenant_size = tenant_size
        self._now = now
        self._ru: dict[str, SlidingWindow] = {}
        self._writes: dict[str, SlidingWindow] = {}

    def charge(self, app_id: str, resource_units: int, write: bool) -> Verdict:
        """Admit and count one request, or refuse it with the seconds to wait (refusals are not counted)."""
        if not self.enabled:
            return Verdict(True, resource_units)
        ru = self._ru.get(app_id)
        if ru is None:
            ru = self._ru[app_id] = SlidingWindow(RU_WINDOW_SECONDS, self._now)
        writes = self._writes.get(app_id)
        if writes is None:
            writes = self._writes[app_id] = SlidingWindow(WRITE_WINDOW_SECONDS, self._now)
        ru_limit = self._tenant_size().value
        ru_wait = ru.wait_for(resource_units, ru_limit)
        write_wait = writes.wait_for(1, WRITE_QUOTA) if write else 0.0
        if ru_wait > 0 or write_wait > 0:
            reason = "WriteLimitExceeded" if write_wait >= ru_wait else "ResourceUnitLimitExceeded"
            return Verdict(
                False,
                resource_units,
                retry_after=max(1, math.ceil(max(ru_wait, write_wait))),
                limit_percentage=max(ru.used() / ru_limit, writes.used() / WRITE_QUOTA if write else 0.0),
                reason=reason,
            )
        ru.add(resource_units)
        if write:
            writes.add(1)
        share = max(ru.used() / ru_limit, writes.used() / WRITE_QUOTA if write else 0.0)
        return Verdict(True, resource_units, limit_percentage=share if share >= REPORT_FROM else None)

    def reset(self) -> None:
        """Forget all usage (control-plane reset); the on/off switch goes back on."""
        self.enabled = True
        self._ru.clear()
        self._writes.clear()


def install(sandbox: SandboxApp) -> None:
    """Charge each Graph call (inner `$batch` calls one by one); 429 past a quota; count RU and writes."""
    state = sandbox.state
    quotas = Quotas(lambda: TenantSize.for_user_count(len(state.tenant.users)))
    admitted: dict[int, Verdict] = {}

    async def throttle(request: GraphRequest, op: Operation | None) -> GraphResponse | None:
        if op is None or op.template == BATCH_TEMPLATE or request.app_id is None:
            return None
        verdict = quotas.charge(request.app_id, request_cost(op.cost, request.query), op.write)
        if verdict.allowed:
            if len(admitted) > 10_000:  # calls that never reached the post-hook (a crashed handler)
                admitted.clear()
            admitted[id(request)] = verdict
            return None
        body = error_body(
            "TooManyRequests",
            "Too many requests: the application's quota for this tenant is exhausted.",
            request.request_id,
            request.headers.get("client-request-id", ""),
        )
        return GraphResponse(429, body, verdict.headers())

    def account(request: GraphRequest, op: Operation, response: GraphResponse) -> None:
        verdict = admitted.pop(id(request), None)
        if verdict is None:
            return
        response.headers.update(verdict.headers())
        state.counters.add("resource_units", op.name, verdict.resource_units)
        if op.write:
            state.counters.add("writes", op.name)

    async def switch(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        enabled = body.get("enabled") if isinstance(body, dict) else None
        if not isinstance(enabled, bool):
            return web.json_response({"error": 'give {"enabled": true|false}'}, status=400)
        quotas.enabled = enabled
        return web.json_response({"enabled": quotas.enabled})

    sandbox.pipeline.pre_hooks.append(throttle)
    sandbox.pipeline.post_hooks.append(account)
    sandbox.state.on_reset.append(quotas.reset)
    sandbox.add_control_route("POST", "/throttling", switch)
