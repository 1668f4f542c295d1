"""Indexing a FunctionApp: each trigger kind found once, `%Setting%` expressions resolved from settings."""

from __future__ import annotations

import azure.functions as func
import pytest

from seatkeeper.cli.clock import parse_duration
from seatkeeper.localhost.catalog import index
from seatkeeper.localhost.keys import AuthLevel


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.route(route="hook")
    def hook(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.timer_trigger(schedule="%UPKEEP_SCHEDULE%", arg_name="timer")
    def upkeep(timer: func.TimerRequest) -> None:
        return None

    @app.service_bus_queue_trigger(
        arg_name="msg", queue_name="%CHECKS_QUEUE%", connection="SB", is_sessions_enabled=True
    )
    def checks(msg: func.ServiceBusMessage) -> None:
        return None

    return app


def test_index_resolves_settings_and_keeps_auth_levels() -> None:
    """Schedules and queue names come from settings; the app's default auth level applies where unset."""
    catalog = index(_app(), {"UPKEEP_SCHEDULE": "0 0 * * * *", "CHECKS_QUEUE": "license-checks"})
    assert [(f.name, f.auth_level, sorted(f.methods)) for f in catalog.http] == [
        ("health", AuthLevel.ANONYMOUS, ["GET"]),
        ("hook", AuthLevel.FUNCTION, []),
    ]
    assert [(t.name, t.schedule) for t in catalog.timers] == [("upkeep", "0 0 * * * *")]
    assert [(q.name, q.queue, q.sessions) for q in catalog.queues] == [("checks", "license-checks", True)]
    assert catalog.by_name("UPKEEP") is catalog.timers[0]


def test_missing_setting_fails_indexing() -> None:
    """A binding expression naming an unset setting is an error at start, naming the setting."""
    with pytest.raises(KeyError, match="CHECKS_QUEUE"):
        index(_app(), {"UPKEEP_SCHEDULE": "0 0 * * * *"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 7_776_000.0), ("1d12h", 129_600.0), ("30m", 1800.0), ("45", 45.0), ("2w", 1_209_600.0)],
)
def test_clock_durations(text: str, seconds: float) -> None:
    """`seatkeeper clock advance` reads weeks, days, hours, minutes and seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "1d soon"])
def test_bad_clock_durations_are_refused(text: str) -> None:
    """Anything else is a usage error, not zero."""
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)
