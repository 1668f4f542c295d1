"""Seeded fault injection: 429 with Retry-After, 503, slow answers and dropped connections, by path and rate.

Rules come from the control plane (`POST /_sandbox/faults`). The first rule whose path pattern and method
match, whose count is not spent and whose coin (drawn from a generator seeded by the caller) lands, fires.
The same seed and the same request sequence give the same faults, so a failing run can be replayed.
`retry_after: null` leaves `Retry-After` out of a 429/503: Graph does not promise the header, and a
client must then back off exponentially on its own (graph-facts §D).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from aiohttp import web

from sandbox.graph_errors import error_body
from sandbox.router import DropConnection, GraphRequest, GraphResponse, Operation

if TYPE_CHECKING:
    from sandbox.extension import SandboxApp

FaultKind = Literal["throttle", "unavailable", "slow", "drop"]
_KINDS: frozenset[str] = frozenset({"throttle", "unavailable", "slow", "drop"})


class FaultSpecError(ValueError):
    """A fault specification the control plane must refuse (400)."""


@dataclass(frozen=True)
class FaultRule:
    """One rule: a regex searched in the request path (`/v1.0/...`), an optional method, a kind and a rate."""

    path: re.Pattern[str]
    method: str | None
    kind: FaultKind
    rate: float = 1.0
    retry_after: int | None = 1  # None: answer without a Retry-After header
    delay: float = 5.0
    count: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FaultRule:
        """Parse one rule of the control-plane body; raises FaultSpecError on anything malformed."""
        pattern = raw.get("path", ".*")
        if not isinstance(pattern, str):
            raise FaultSpecError("path must be a regular expression string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise FaultSpecError(f"path is not a valid regular expression: {exc}") from exc
        method = raw.get("method")
        if method is not None and not isinstance(method, str):
            raise FaultSpecError("method must be a string or null")
        kind = raw.get("kind")
        if kind not in _KINDS:
            raise FaultSpecError(f"kind must be one of {sorted(_KINDS)}")
        rate = raw.get("rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise FaultSpecError("rate must be a number between 0 and 1")
        retry_after = raw.get("retry_after", 1)
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise FaultSpecError("retry_after must be a non-negative integer, or null for no header")
        delay = raw.get("delay", 5.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0.0 <= delay <= 600.0:
            raise FaultSpecError("delay must be a number of seconds between 0 and 600")
        count = raw.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise FaultSpecError("count must be a non-negative integer or null")
        return cls(
            path=compiled,
            method=method.upper() if method else None,
            kind=cast(FaultKind, kind),
            rate=float(rate),
            retry_after=retry_after,
            delay=float(delay),
            count=count,
        )

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to a request, before the coin is drawn."""
        return (self.method is None or self.method == method.upper()) and self.path.search(path) is not None


class FaultInjector:
    """The active rule set with its seeded generator and per-rule fire counts."""

    def __init__(self) -> None:
        self._rules: tuple[FaultRule, ...] = ()
        self._fired: list[int] = []
        self._random = random.Random(0)  # noqa: S311 -- reproducible test faults, not cryptography

    @property
    def active(self) -> bool:
        """Whether any rule is loaded (the fast path skips everything otherwise)."""
        return bool(self._rules)

    def configure(self, seed: int, rules: Sequence[FaultRule]) -> None:
        """Replace the rule set and reseed, so the same spec gives the same faults."""
        self._rules = tuple(rules)
        self._fired = [0] * len(self._rules)
        self._random = random.Random(seed)  # noqa: S311 -- see __init__

    def configure_from_json(self, body: Any) -> None:
        """Load the control-plane body `{"seed": n, "rules": [...]}`; raises FaultSpecError."""
        if not isinstance(body, dict):
            raise FaultSpecError("the body must be a JSON object")
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise FaultSpecError("seed must be an integer")
        rules = body.get("rules")
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            raise FaultSpecError("rules must be a list of objects")
        self.configure(seed, [FaultRule.from_json(rule) for rule in rules])

    def clear(self) -> None:
        """Remove every rule."""
        self.configure(0, ())

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The fault to inject into this request, if any; spends one of the rule's count."""
        for index, rule in enumerate(self._rules):
            if not rule.matches(method, path):
                continue
            if rule.count is not None and self._fired[index] >= rule.count:
                continue
            if rule.rate < 1.0 and self._random.random() >= rule.rate:
                continue
            self._fired[index] += 1
            return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        """The loaded rules and how often each fired (for the control plane's GET)."""
        return [
            {
                "path": rule.path.pattern,
                "method": rule.method,
                "kind": rule.kind,
                "rate": rule.rate,
                "retry_after": rule.retry_after,
                "delay": rule.delay,
                "count": rule.count,
                "fired": fired,
            }
            for rule, fired in zip(self._rules, self._fired, strict=True)
        ]


def _fault_response(rule: FaultRule, request: GraphRequest) -> GraphResponse:
    client_request_id = request.headers.get("client-request-id", "")
    headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
    if rule.kind == "throttle":
        return GraphResponse(
            429,
            error_body("TooManyRequests", "Too many requests.", request.request_id, client_request_id),
            headers,
        )
    return GraphResponse(
        503,
        error_body(
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
            request.request_id,
            client_request_id,
        ),
        headers,
    )


def install(sandbox: SandboxApp) -> None:
    """Add the fault pre-hook (first, so a faulted request costs no quota) and the `/faults` control calls."""
    injector = FaultInjector()

    async def inject(request: GraphRequest, _: Operation | None) -> GraphResponse | None:
        if not injector.active:
            return None
        rule = injector.pick(request.method, "/v1.0" + request.path)
        if rule is None:
            return None
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay)
            return None
        if rule.kind == "drop":
            raise DropConnection
        return _fault_response(rule, request)

    async def configure(request: web.Request) -> web.Response:
        try:
            injector.configure_from_json(json.loads(await request.read()))
        except (ValueError, FaultSpecError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"rules": injector.describe()})

    async def clear(_: web.Request) -> web.Response:
        injector.clear()
        return web.json_response({"rules": []})

    async def describe(_: web.Request) -> web.Response:
        return web.json_response({"rules": injector.describe()})

    sandbox.pipeline.pre_hooks.insert(0, inject)
    sandbox.state.on_reset.append(injector.clear)
    sandbox.add_control_route("POST", "/faults", configure)
    sandbox.add_control_route("DELETE", "/faults", clear)
    sandbox.add_control_route("GET", "/faults", describe)
