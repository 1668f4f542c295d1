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


@app.route(route="graph/notifications", methods=["POST"])
async def graph_notifications(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Graph change notifications (and the validation handshake): persisted to `group-changes`, then 202."""
    return await _graph_webhook(req, context)


@app.route(route="graph/lifecycle", methods=["POST"])
async def graph_lifecycle(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Graph lifecycle notifications (and the handshake): persisted to `group-changes`, then 202."""
    return await _graph_webhook(req, context)


async def _graph_webhook(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from handlers.graph_webhook import WebhookRequest, receive
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context
    from seatkeeper.notification_wiring import wiring

    request = WebhookRequest(dict(req.params), req.headers.get("content-type"), req.get_body())
    with log_context(invocation_id=context.invocation_id):
        answer = await receive(request, wiring(get_services()).webhook, correlation_id=context.invocation_id)
    return func.HttpResponse(
        answer.body, status_code=answer.status, headers=dict(answer.headers), mimetype="text/plain"
    )


@app.route(route="hr/events", methods=["POST"])
async def hr_events(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """HR joiner/mover/leaver CloudEvents, signed per Standard Webhooks: checked, deduplicated, enqueued."""
    from handlers.hr_intake import IntakeDeps, IntakeRequest, receive
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context

    s = get_services()
    if s.sender is None or s.state is None or s.clock is None:
        raise RuntimeError("the queue, state and clock adapters are not built")
    deps = IntakeDeps(s.sender, s.state, s.clock, s.settings.hr_signing_secret, s.policy.hr.zone())
    with log_context(invocation_id=context.invocation_id):
        answer = await receive(
            IntakeRequest(dict(req.headers), req.get_body()), deps, correlation_id=context.invocation_id
        )
    return func.HttpResponse(answer.body, status_code=answer.status, mimetype="application/json")


@app.route(route="hr/lifecycle-workflows", methods=["POST"])
async def hr_lifecycle_workflows(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """A Lifecycle Workflow's custom task extension call, forwarded by its Logic App: joiner or leaver."""
    from handlers.hr_intake import IntakeDeps, IntakeRequest
    from handlers.lifecycle_workflows import WorkflowDeps, receive_workflow
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context

    s = get_services()
    if s.sender is None or s.state is None or s.clock is None:
        raise RuntimeError("the queue, state and clock adapters are not built")
    intake = IntakeDeps(s.sender, s.state, s.clock, s.settings.hr_signing_secret, s.policy.hr.zone())
    with log_context(invocation_id=context.invocation_id):
        answer = await receive_workflow(
            IntakeRequest(dict(req.headers), req.get_body()),
            WorkflowDeps(intake, s.policy.hr),
            correlation_id=context.invocation_id,
        )
    return func.HttpResponse(answer.body, status_code=answer.status, mimetype="application/json")


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


@app.timer_trigger(arg_name="timer", schedule="0 7 * * * *", run_on_startup=True)
async def subscription_upkeep(timer: func.TimerRequest, context: func.Context) -> None:
    """Hourly and at start: exactly one healthy Graph subscription per licensing group."""
    from handlers.heartbeat import UPKEEP, record_heartbeat
    from handlers.subscription_upkeep import run_upkeep
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context
    from seatkeeper.notification_wiring import upkeep_deps, wiring

    s = get_services()
    with log_context(invocation_id=context.invocation_id):
        await run_upkeep(wiring(s).group_ids, upkeep_deps(s), correlation_id=context.invocation_id)
        if s.state is not None and s.clock is not None:
            await record_heartbeat(s.state, UPKEEP, s.clock)


@app.timer_trigger(arg_name="timer", schedule="0 */30 * * * *", run_on_startup=False)
async def group_reconciliation(timer: func.TimerRequest, context: func.Context) -> None:
    """Every 30 minutes: delta catch-up, license errors, base licenses, pending people, seats, groups."""
    from handlers.reconcile import run_reconciliation
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context
    from seatkeeper.sweep_wiring import reconcile_deps

    deps = reconcile_deps(get_services())
    with log_context(invocation_id=context.invocation_id):
        await run_reconciliation(deps, correlation_id=context.invocation_id)


@app.timer_trigger(arg_name="timer", schedule="30 */5 * * * *", run_on_startup=False)
async def heartbeat_watch(timer: func.TimerRequest, context: func.Context) -> None:
    """An upkeep or reconciliation run overdue becomes an incident (in Azure, Azure Monitor also alerts)."""
    from handlers.heartbeat import watch_heartbeats
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context

    s = get_services()
    if s.state is None or s.sender is None or s.clock is None:
        raise RuntimeError("the queue, state and clock adapters are not built")
    with log_context(invocation_id=context.invocation_id):
        await watch_heartbeats(
            store=s.state, sender=s.sender, clock=s.clock, correlation_id=context.invocation_id
        )


@app.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
async def alert_digest(timer: func.TimerRequest, context: func.Context) -> None:
    """The optional daily digest of open incidents, sent once a day at the policy's time."""
    from handlers.alerts import send_digest
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context
    from seatkeeper.sweep_wiring import alert_wiring

    s = get_services()
    if s.state is None or s.clock is None:
        raise RuntimeError("the state and clock adapters are not built")
    with log_context(invocation_id=context.invocation_id):
        await send_digest(
            store=s.state, channels=alert_wiring(s).channels, alerts=s.policy.alerts, clock=s.clock
        )


# -- queues --------------------------------------------------------------------------------------------


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="group-changes", connection="ServiceBusConnection", is_sessions_enabled=True
)
async def group_changes(msg: func.ServiceBusMessage, context: func.Context) -> None:
    """A licensing group may have changed (or its subscription needs care): read its delta, emit checks."""
    from handlers.group_changes import handle_message
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context
    from seatkeeper.notification_wiring import wiring

    with log_context(
        invocation_id=context.invocation_id,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        correlation_id=msg.correlation_id,
        group_id=msg.session_id,
    ):
        await handle_message(
            msg.get_body(),
            wiring(get_services()).group_changes,
            message_id=msg.message_id or "",
            session_id=msg.session_id,
        )


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="license-checks", connection="ServiceBusConnection", is_sessions_enabled=True
)
async def license_checks(msg: func.ServiceBusMessage, context: func.Context) -> None:
    """Admissions and license verification: one `admit`, `license.check` or `member.changed` message."""
    from handlers.license_checks import handle_license_message
    from seatkeeper.bootstrap import get_services
    from seatkeeper.core.idempotency import IdempotencyRecord
    from seatkeeper.logs import log_context

    s = get_services()
    if s.license is None or s.state is None:
        raise RuntimeError("the license handlers' dependencies are not built")
    with log_context(
        invocation_id=context.invocation_id,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        correlation_id=msg.correlation_id,
        user_id=msg.session_id,
    ):
        await handle_license_message(
            msg.get_body(), s.license, message_id=msg.message_id or "", idempotency=IdempotencyRecord(s.state)
        )


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="hr-events", connection="ServiceBusConnection", is_sessions_enabled=True
)
async def onboarding(msg: func.ServiceBusMessage, context: func.Context) -> None:
    """One HR joiner/mover/leaver stage, in the person's session (employeeId), in HR's recorded order."""
    from handlers.onboarding import OnboardingDeps, handle_hr_message
    from seatkeeper.bootstrap import get_services
    from seatkeeper.core.idempotency import IdempotencyRecord
    from seatkeeper.logs import log_context

    s = get_services()
    if s.license is None or s.state is None:
        raise RuntimeError("the license handlers' dependencies are not built")
    with log_context(
        invocation_id=context.invocation_id,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        correlation_id=msg.correlation_id,
    ):
        await handle_hr_message(
            msg.get_body(),
            OnboardingDeps(s.license, s.state),
            message_id=msg.message_id or "",
            idempotency=IdempotencyRecord(s.state),
        )


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="alerts", connection="ServiceBusConnection", is_sessions_enabled=True
)
async def alerts(msg: func.ServiceBusMessage, context: func.Context) -> None:
    """One alert signal: open, update or resolve its incident, then deliver what is owed to its routes."""
    from handlers.alerts import handle_alert
    from seatkeeper.bootstrap import get_services
    from seatkeeper.logs import log_context
    from seatkeeper.sweep_wiring import alert_wiring

    s = get_services()
    if s.state is None or s.clock is None:
        raise RuntimeError("the state and clock adapters are not built")
    with log_context(
        invocation_id=context.invocation_id,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        correlation_id=msg.correlation_id,
    ):
        await handle_alert(
            msg.get_body(),
            store=s.state,
            channels=alert_wiring(s).channels,
            alerts=s.policy.alerts,
            clock=s.clock,
        )
