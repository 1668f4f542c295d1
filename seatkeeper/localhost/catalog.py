"""Indexes a FunctionApp once (`app.get_functions()`) into the triggers the local host knows how to run."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from seatkeeper.localhost.keys import AuthLevel
from seatkeeper.localhost.routes import RouteTemplate, compile_route

_SETTING = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class IndexedFunction:
    """What every trigger kind has: a name, the user's callable and its trigger parameter's name."""

    name: str
    user_function: Callable[..., Any]
    arg_name: str


@dataclass(frozen=True)
class HttpFunction(IndexedFunction):
    """An HTTP trigger: route, methods (empty means all) and auth level."""

    route: RouteTemplate = field(default_factory=lambda: compile_route(""))
    methods: frozenset[str] = frozenset()
    auth_level: AuthLevel = AuthLevel.FUNCTION


@dataclass(frozen=True)
class TimerFunction(IndexedFunction):
    """A timer trigger on an NCRONTAB schedule (settings already resolved)."""

    schedule: str = ""
    run_on_startup: bool = False


@dataclass(frozen=True)
class QueueFunction(IndexedFunction):
    """A Service Bus queue trigger, fed locally from the embedded queue."""

    queue: str = ""
    sessions: bool = False


@dataclass(frozen=True)
class OtherFunction(IndexedFunction):
    """A trigger the local host cannot feed; it can still be run on demand through the admin API."""

    trigger_type: str = ""


@dataclass(frozen=True)
class Catalog:
    """Every function of the app, by kind and by name."""

    http: tuple[HttpFunction, ...]
    timers: tuple[TimerFunction, ...]
    queues: tuple[QueueFunction, ...]
    others: tuple[OtherFunction, ...]

    def by_name(self, name: str) -> IndexedFunction | None:
        """The function called `name` (case-insensitive, as the Functions host treats names)."""
        for function in (*self.http, *self.timers, *self.queues, *self.others):
            if function.name.lower() == name.lower():
                return function
        return None


def load_app(spec: str) -> func.FunctionApp:
    """Import `module:attribute` (default attribute `app`) and return the FunctionApp it names."""
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app")
    if not isinstance(app, func.FunctionApp):
        raise TypeError(f"{spec} is not an azure.functions.FunctionApp")
    return app


def resolve_settings(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace `%Name%` with the app setting `Name`, as binding expressions do; a missing one is an error."""
    env = os.environ if environ is None else environ

    def setting(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in env:
            raise KeyError(f"binding expression %{name}% names an app setting that is not set")
        return env[name]

    return _SETTING.sub(setting, value)


def index(app: func.FunctionApp, environ: Mapping[str, str] | None = None) -> Catalog:
    """Index the app's functions once, resolving `%Setting%` expressions in schedules and queue names."""
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    queues: list[QueueFunction] = []
    others: list[OtherFunction] = []
    for function in app.get_functions():
        trigger = function.get_trigger()
        if trigger is None:  # pragma: no cover - get_functions() refuses functions without a trigger
            continue
        spec: dict[str, Any] = trigger.get_dict_repr()
        name = str(function.get_function_name())
        user = function.get_user_function()
        arg = str(spec["name"])
        kind = str(spec["type"])
        if kind == "httpTrigger":
            methods = frozenset(str(getattr(m, "value", m)).upper() for m in spec.get("methods") or ())
            http.append(
                HttpFunction(
                    name,
                    user,
                    arg,
                    route=compile_route(str(spec.get("route") or name)),
                    methods=methods,
                    auth_level=AuthLevel.parse(spec.get("authLevel") or "function"),
                )
            )
        elif kind == "timerTrigger":
            schedule = resolve_settings(str(spec["schedule"]), environ)
            timers.append(TimerFunction(name, user, arg, schedule, bool(spec.get("runOnStartup"))))
        elif kind == "serviceBusTrigger" and "queueName" in spec:
            queue = resolve_settings(str(spec["queueName"]), environ)
            queues.append(QueueFunction(name, user, arg, queue, bool(spec.get("isSessionsEnabled"))))
        else:
            others.append(OtherFunction(name, user, arg, kind))
    return Catalog(tuple(http), tuple(timers), tuple(queues), tuple(others))
