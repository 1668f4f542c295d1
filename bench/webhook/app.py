"""The benchmark's app: the service's Graph webhook and, beside it in the same host, a trivial route.

No timers and no queue consumers, so the run measures the request path alone (parse, clientState checks,
one persisted send to the embedded queue, 202); what it enqueues stays in the queue.
"""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="graph/notifications", methods=["POST"])
async def graph_notifications(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The service's webhook body, exactly as function_app.py runs it."""
    import function_app

    return await function_app._graph_webhook(req, context)  # the trigger body under test


@app.route(route="ping", methods=["POST"])
async def ping(req: func.HttpRequest) -> func.HttpResponse:
    """The baseline: same host, same key check, same body size, no work."""
    req.get_body()
    return func.HttpResponse("", status_code=202)
