"""A test app with one hourly timer, for stepping the sandbox's business clock against the local host."""

from __future__ import annotations

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
def hourly(timer: func.TimerRequest) -> None:
    """Journals each run with the occurrence it was scheduled for."""
    with open(os.environ["E2E_JOURNAL"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"function": "hourly", "past_due": timer.past_due}) + "\n")
