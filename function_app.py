"""Every trigger of Seatkeeper, declared once. Bodies are a few lines: bind context, call a handler.

Nothing happens at import time: the Functions host indexes this module, so adapters are built lazily by
the composition root on first use, and handlers are imported inside the bodies that use them.
To add a trigger: one decorated function per event kind, in the section of its kind, with `%Setting%`
names in bindings.
"""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


# -- HTTP ----------------------------------------------------------------------------------------------


@app.route(route="health", methods=["GET"])
async def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Settings, token, permissions, Graph, queue and state: 200 when all pass, 503 when one does not."""
    from seatkeeper.bootstrap import health_report
    from seatkeeper.logs import log_context

    with log_context(invocation_id=context.invocation_id):
        report = await health_report()
    return func.HttpResponse(
        report.body(), status_code=200 if report.healthy else 503, mimetype="application/json"
    )


# -- timers --------------------------------------------------------------------------------------------


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
async def dead_letter_watch(timer: func.TimerRequest, context: func.Context) -> None:
    """New dead letters become one incident per queue and hour (dead letters of `alerts`: health and log)."""
    from handlers.deadletters import watch_dead_letters
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context

    s = get_services()
    if s.dead_letters is None or s.state is None or s.sender is None or s.clock is None:
        raise RuntimeError("the queue, state and clock adapters are not built")
    with log_context(invocation_id=context.invocation_id):
        await watch_dead_letters(
            dead_letters=s.dead_letters,
            state=s.state,
            sender=s.sender,
            clock=s.clock,
            correlation_id=context.invocation_id,
        )
