"""A test app with one function of each kind the local host runs; each writes what it saw to a journal.

The journal (a JSON-lines file named by E2E_JOURNAL) is the observable outcome the tests assert on.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _journal(record: dict[str, Any]) -> None:
    with open(os.environ["E2E_JOURNAL"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


@app.route(route="echo/{name}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    """Answers with what the request object carried (minus the key)."""
    document = {
        "name": req.route_params.get("name"),
        "method": req.method,
        "params": {k: v for k, v in req.params.items() if k != "code"},
        "body": req.get_body().decode("utf-8"),
        "request_type": type(req).__module__ + "." + type(req).__qualname__,
    }
    return func.HttpResponse(json.dumps(document), mimetype="application/json", headers={"x-echo": "1"})


@app.route(route="open", auth_level=func.AuthLevel.ANONYMOUS)
async def open_door(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Anonymous, async, and asks for the invocation context."""
    return func.HttpResponse(
        json.dumps({"invocation_id": context.invocation_id}), mimetype="application/json"
    )


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    """Needs the master key."""
    return func.HttpResponse("ok")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    """Fails: the host answers a bare 500."""
    raise RuntimeError("boom")


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=False)
def yearly(timer: func.TimerRequest) -> None:
    """Runs on demand only during a test (its schedule is once a year)."""
    _journal({"function": "yearly", "past_due": timer.past_due, "type": type(timer).__module__})


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%E2E_QUEUE%", connection="ServiceBusConnection", is_sessions_enabled=True
)
async def work(msg: func.ServiceBusMessage) -> None:
    """Does what the message's payload `mode` says: ok, fail, slow (3 s), or block on its first delivery."""
    envelope = json.loads(msg.get_body())
    mode = envelope["payload"]["mode"]
    seen = {
        "function": "work",
        "message_id": msg.message_id,
        "delivery_count": msg.delivery_count,
        "session_id": msg.session_id,
        "correlation_id": msg.correlation_id,
        "enqueued": msg.enqueued_time_utc.isoformat() if msg.enqueued_time_utc else None,
        "type": type(msg).__module__,
        "mode": mode,
    }
    if mode == "fail":
        _journal({**seen, "outcome": "failed"})
        raise RuntimeError("asked to fail")
    if mode == "slow":
        _journal({**seen, "outcome": "started"})
        await asyncio.sleep(3)
    if mode == "block_first" and msg.delivery_count == 1:
        _journal({**seen, "outcome": "blocking"})
        await asyncio.sleep(3600)
    _journal({**seen, "outcome": "done"})
