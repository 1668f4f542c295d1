"""The incident lifecycle as data: transitions, hysteresis, exclusions, deliveries, digest, payloads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.incidents import (
    EVIDENCE_LIMIT,
    FACT_LIMIT,
    SEAT_HEADROOM_PROBLEM,
    TEXT_LIMIT,
    AlertSignal,
    Cause,
    Decision,
    DeliveryState,
    Fact,
    Incident,
    IncidentKey,
    NoticeKind,
    Outcome,
    Scope,
    Status,
    Threshold,
    alert_message,
    alert_payload,
    build_digest,
    claim_deliveries,
    digest_due,
    incident_from_data,
    incident_to_data,
    parse_alert,
    record_delivery,
    transition,
)
from seatkeeper.core.messages import ALERTS, Message, validate
from seatkeeper.core.policy import AlertChannel, AlertExclusions, AlertRoute, Alerts, SeatHeadroom, Severity

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
USER = "7d1c2e9a-0000-4000-8000-000000000001"
SKU = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
GROUP = "5e2f0000-0000-4000-8000-0000000000aa"
KEY = IncidentKey(Scope.USER, f"{USER}/{SKU}", "license.count_violation")
SEATS_KEY = IncidentKey(Scope.SKU, SKU, SEAT_HEADROOM_PROBLEM)

ROUTES = (
    AlertRoute("ops-teams", AlertChannel.TEAMS, Severity.WARNING, url_setting="TEAMS_URL"),
    AlertRoute(
        "ops-mail", AlertChannel.EMAIL, Severity.ERROR, sender="sk@contoso.com", recipients=("a@c.com",)
    ),
    AlertRoute("siem", AlertChannel.WEBHOOK, Severity.INFO, url_setting="SIEM_URL"),
)
ALERTS_POLICY = Alerts(routes=ROUTES, seat_headroom=SeatHeadroom(alert_below=5, clear_at=10))


def signal(
    cause: Cause = Cause.PRESENT,
    *,
    at: datetime = T0,
    key: IncidentKey = KEY,
    severity: Severity = Severity.ERROR,
    evidence: tuple[Fact, ...] = (Fact("Error", "CountViolation"),),
    measure: float | None = None,
    **related: str,
) -> AlertSignal:
    """A count-violation signal for one user and SKU (or any key), observed at `at`."""
    return AlertSignal(
        key=key,
        cause=cause,
        severity=severity,
        title="Copilot license could not be assigned: no seat left",
        reason="Group-based licensing reports CountViolation: every Copilot seat is in use.",
        remediation="Buy more Copilot seats or remove idle users from the Copilot group, then reprocess.",
        subject_label="adele@contoso.com",
        observed_at=at,
        evidence=evidence,
        measure=measure,
        user_id=related.get("user_id", USER),
        user_principal_name=related.get("upn", "adele@contoso.com"),
        group_id=related.get("group_id", GROUP),
        sku_id=related.get("sku_id", SKU),
    )


def run(
    *signals: AlertSignal, alerts: Alerts = ALERTS_POLICY
) -> tuple[Incident | None, list[Decision], list[NoticeKind]]:
    """Apply signals in order; return the final incident, every decision and every notice raised."""
    stored: Incident | None = None
    decisions: list[Decision] = []
    notices: list[NoticeKind] = []
    for s in signals:
        step = transition(stored, s, alerts, s.observed_at)
        stored = step.incident
        decisions.append(step.decision)
        if step.notice is not None:
            notices.append(step.notice.kind)
    return stored, decisions, notices


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


P, G = Cause.PRESENT, Cause.GONE
OP, U, R, RO, N = Decision.OPENED, Decision.UPDATED, Decision.RESOLVED, Decision.REOPENED, Decision.NOT_OPEN


@pytest.mark.parametrize(
    ("causes", "decisions", "notices"),
    [
        pytest.param([P], [OP], ["opened"], id="first-sighting-opens-and-notifies"),
        pytest.param([P, P, P], [OP, U, U], ["opened"], id="repeats-while-open-notify-nothing"),
        pytest.param([P, G], [OP, R], ["opened", "resolved"], id="cause-gone-resolves-once"),
        pytest.param([P, G, G], [OP, R, N], ["opened", "resolved"], id="gone-twice-resolves-once"),
        pytest.param([G], [N], [], id="gone-without-incident-is-silent"),
        pytest.param([P, G, P], [OP, R, RO], ["opened", "resolved", "opened"], id="reopens-as-new-one"),
    ],
)
def test_lifecycle(causes: list[Cause], decisions: list[Decision], notices: list[str]) -> None:
    """An incident opens once, stays quiet while open, resolves once, and reopens as a new occurrence."""
    _, got_decisions, got_notices = run(*(signal(c, at=minutes(i)) for i, c in enumerate(causes)))
    assert (got_decisions, [n.value for n in got_notices]) == (decisions, notices)


def test_reopen_counts_occurrences() -> None:
    """A reopened incident is occurrence 2, open again."""
    incident, _, _ = run(signal(P, at=minutes(0)), signal(G, at=minutes(1)), signal(P, at=minutes(2)))
    assert incident is not None
    assert (incident.status, incident.occurrence, incident.opened_at) == (Status.OPEN, 2, minutes(2))


def test_update_refreshes_evidence_silently() -> None:
    """A repeat while open replaces the evidence and raises no notice."""
    newer = (Fact("Error", "CountViolation"), Fact("Consumed", "200 of 200"))
    stored, _, _ = run(signal(P, at=minutes(0)))
    step = transition(stored, signal(P, at=minutes(5), evidence=newer), ALERTS_POLICY, minutes(5))
    assert step.incident is not None
    assert (step.decision, step.notice, step.incident.evidence) == (Decision.UPDATED, None, newer)


def test_out_of_order_gone_does_not_close() -> None:
    """A 'gone' observed before the 'present' that opened the incident is stale and changes nothing."""
    stored, _, _ = run(signal(P, at=minutes(10)))
    step = transition(stored, signal(G, at=minutes(5)), ALERTS_POLICY, minutes(11))
    assert (step.decision, step.incident) == (Decision.STALE, stored)


@pytest.mark.parametrize(
    ("severity", "routes"),
    [
        pytest.param(Severity.INFO, ["siem"], id="info-to-webhook-only"),
        pytest.param(Severity.WARNING, ["ops-teams", "siem"], id="warning-adds-teams"),
        pytest.param(Severity.ERROR, ["ops-teams", "ops-mail", "siem"], id="error-everywhere"),
    ],
)
def test_routing_by_severity(severity: Severity, routes: list[str]) -> None:
    """The opened notice has one delivery per route whose minimum severity the alert reaches."""
    step = transition(None, signal(severity=severity), ALERTS_POLICY, T0)
    assert step.notice is not None
    assert [d.route for d in step.notice.deliveries] == routes


def test_resolved_goes_where_opened_went() -> None:
    """Whoever was told of the opening is told of the resolution, even if the routes changed since."""
    stored, _, _ = run(signal(P, severity=Severity.WARNING))
    fewer = replace(ALERTS_POLICY, routes=ROUTES[:1])
    step = transition(stored, signal(G, at=minutes(1)), fewer, minutes(1))
    assert step.notice is not None
    assert [d.route for d in step.notice.deliveries] == ["ops-teams", "siem"]


# --- hysteresis -------------------------------------------------------------------------------------------


def seats(free: float, at: int) -> AlertSignal:
    """A seat-headroom measurement (the emitter's cause is ignored: the threshold decides)."""
    return signal(Cause.GONE, at=minutes(at), key=SEATS_KEY, measure=free, severity=Severity.WARNING)


@pytest.mark.parametrize(
    ("values", "notices"),
    [
        pytest.param([20, 4], ["opened"], id="falls-below-threshold-opens"),
        pytest.param([5, 5, 5], [], id="at-threshold-stays-closed"),
        pytest.param([4, 5, 4, 5, 4, 9], ["opened"], id="hovering-at-threshold-does-not-flap"),
        pytest.param([4, 9, 10], ["opened", "resolved"], id="closes-only-at-clear-level"),
        pytest.param(
            [4, 12, 6, 4], ["opened", "resolved", "opened"], id="reopens-only-below-threshold-again"
        ),
    ],
)
def test_seat_headroom_hysteresis(values: list[float], notices: list[str]) -> None:
    """Free seats open the incident below 5 and close it only at 10 or more."""
    _, _, got = run(*(seats(v, i) for i, v in enumerate(values)))
    assert [n.value for n in got] == notices


@pytest.mark.parametrize(
    ("value", "is_open", "cause"),
    [(4.0, False, P), (5.0, False, G), (5.0, True, P), (9.9, True, P), (10.0, True, G)],
)
def test_threshold_cause(value: float, is_open: bool, cause: Cause) -> None:
    """The threshold's verdict depends on whether the incident is already open."""
    assert Threshold(alert_below=5, clear_at=10).cause(value, is_open=is_open) is cause


# --- exclusions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exclusions",
    [
        pytest.param(AlertExclusions(sku_ids=frozenset({SKU.upper()})), id="sku"),
        pytest.param(AlertExclusions(group_ids=frozenset({GROUP})), id="group"),
        pytest.param(AlertExclusions(users=frozenset({USER})), id="user-id"),
        pytest.param(AlertExclusions(users=frozenset({"Adele@Contoso.com"})), id="user-upn"),
    ],
)
def test_exclusions_open_nothing(exclusions: AlertExclusions) -> None:
    """An excluded SKU, group or user never opens an incident."""
    incident, decisions, notices = run(signal(P), alerts=replace(ALERTS_POLICY, exclusions=exclusions))
    assert (incident, decisions, notices) == (None, [Decision.EXCLUDED], [])


def test_exclusion_does_not_touch_other_users() -> None:
    """Excluding one user leaves another user's incident alone."""
    policy = replace(ALERTS_POLICY, exclusions=AlertExclusions(users=frozenset({"someone@contoso.com"})))
    _, decisions, _ = run(signal(P), alerts=policy)
    assert decisions == [Decision.OPENED]


def test_excluded_open_incident_still_resolves() -> None:
    """An incident opened before its user was excluded is still closed with a resolved note."""
    stored, _, _ = run(signal(P))
    policy = replace(ALERTS_POLICY, exclusions=AlertExclusions(users=frozenset({USER})))
    step = transition(stored, signal(G, at=minutes(1)), policy, minutes(1))
    assert step.decision is Decision.RESOLVED


# --- deliveries -------------------------------------------------------------------------------------------


def opened() -> Incident:
    incident = transition(None, signal(P), ALERTS_POLICY, T0).incident
    assert incident is not None
    return incident


def states(incident: Incident) -> dict[str, DeliveryState]:
    return {f"{n.id}/{d.route}": d.state for n in incident.notices for d in n.deliveries}


def test_claim_takes_every_pending_delivery() -> None:
    """A claim owns each pending delivery once; a second worker finds them busy and owns nothing."""
    first = claim_deliveries(opened(), "w1", T0, timedelta(minutes=2))
    second = claim_deliveries(first.incident, "w2", T0 + timedelta(seconds=30), timedelta(minutes=2))
    assert (len(first.owned), first.busy_elsewhere) == (3, False)
    assert (second.owned, second.busy_elsewhere) == ((), True)


def test_expired_claim_is_taken_over() -> None:
    """A sender that died mid-send loses its claim when the lease runs out."""
    first = claim_deliveries(opened(), "w1", T0, timedelta(minutes=2))
    later = claim_deliveries(first.incident, "w2", T0 + timedelta(minutes=3), timedelta(minutes=2))
    assert [d.claim for _, d in later.owned] == ["w2", "w2", "w2"]


def test_record_outcomes() -> None:
    """Sent stays sent, a retry goes back to pending, a permanent failure is final."""
    claimed = claim_deliveries(opened(), "w1", T0, timedelta(minutes=2)).incident
    outcomes = {"ops-teams": Outcome.SENT, "ops-mail": Outcome.RETRY, "siem": Outcome.FAILED}
    for route, outcome in outcomes.items():
        claimed = record_delivery(
            claimed, notice_id="1-opened", route=route, claim="w1", outcome=outcome, now=T0
        )
    assert states(claimed) == {
        "1-opened/ops-teams": DeliveryState.SENT,
        "1-opened/ops-mail": DeliveryState.PENDING,
        "1-opened/siem": DeliveryState.FAILED,
    }
    again = claim_deliveries(claimed, "w2", T0, timedelta(minutes=2))
    assert [d.route for _, d in again.owned] == ["ops-mail"]


def test_record_under_a_lost_claim_changes_nothing() -> None:
    """A worker whose claim was taken over cannot overwrite the new owner's delivery."""
    first = claim_deliveries(opened(), "w1", T0, timedelta(minutes=2)).incident
    taken = claim_deliveries(first, "w2", T0 + timedelta(minutes=5), timedelta(minutes=2)).incident
    after = record_delivery(
        taken, notice_id="1-opened", route="siem", claim="w1", outcome=Outcome.SENT, now=T0
    )
    assert after == taken


def test_notices_are_capped_but_unsettled_ones_kept() -> None:
    """Many reopenings keep a bounded outbox and never drop an undelivered notice."""
    incident, _, _ = run(*(signal(P if i % 2 == 0 else G, at=minutes(i)) for i in range(10)))
    assert incident is not None
    assert len(incident.notices) == 10  # none was delivered, so none may be dropped
    delivered = incident
    for n in incident.notices:
        for d in n.deliveries:
            delivered = claim_deliveries(delivered, "w", T0, timedelta(minutes=2)).incident
            delivered = record_delivery(
                delivered, notice_id=n.id, route=d.route, claim="w", outcome=Outcome.SENT, now=T0
            )
    step = transition(delivered, signal(P, at=minutes(20)), ALERTS_POLICY, minutes(20))
    assert step.incident is not None
    assert len(step.incident.notices) == 4


# --- digest -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last", "due"),
    [
        (datetime(2026, 12, 1, 7, 59, tzinfo=UTC), None, False),
        (datetime(2026, 12, 1, 8, 0, tzinfo=UTC), None, True),
        (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), date(2026, 12, 1), False),
        (datetime(2026, 12, 2, 8, 1, tzinfo=UTC), date(2026, 12, 1), True),
    ],
    ids=["before-time", "at-time", "already-sent-today", "next-day"],
)
def test_digest_due(now: datetime, last: date | None, due: bool) -> None:
    """The digest is due once a day, at or after its business time."""
    assert digest_due(now, time(8, 0), last) is due


def test_digest_lists_open_incidents_most_severe_first() -> None:
    """Closed incidents are left out; the most severe, then the oldest, come first."""
    warn = transition(None, signal(severity=Severity.WARNING, at=minutes(0)), ALERTS_POLICY, minutes(0))
    crit_key = replace(KEY, subject="other")
    crit = transition(None, signal(key=crit_key, severity=Severity.CRITICAL), ALERTS_POLICY, minutes(3))
    closed, _, _ = run(
        signal(P, key=replace(KEY, subject="x")), signal(G, key=replace(KEY, subject="x"), at=minutes(1))
    )
    assert warn.incident is not None
    assert crit.incident is not None
    assert closed is not None
    digest = build_digest([warn.incident, closed, crit.incident], minutes(30))
    assert [i.key for i in digest.incidents] == [crit_key, KEY]


# --- payload and storage form -----------------------------------------------------------------------------


def test_payload_round_trip() -> None:
    """An alert survives the trip through the `alerts` message payload."""
    original = signal(measure=3.0)
    assert parse_alert(alert_payload(original)) == original


def test_alert_message_is_keyed_by_incident() -> None:
    """The message goes to the alerts queue, subject and session are the incident key."""
    message = alert_message(signal(), correlation_id="c-1", version="attempt-1")
    assert (message.queue, message.subject, message.session_id) == (ALERTS, KEY.text, KEY.text)


def test_present_and_gone_are_distinct_messages() -> None:
    """A 'gone' at the same causal version is not collapsed into the 'present' before it."""
    present = alert_message(signal(P), correlation_id="c", version="tick-1")
    gone = alert_message(signal(G), correlation_id="c", version="tick-1")
    assert present.message_id != gone.message_id


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"scope": "planet"}, "scope: one of", id="unknown-scope"),
        pytest.param({"cause": None}, "cause: one of", id="no-cause"),
        pytest.param({"remediation": "  "}, "remediation: a non-empty string", id="blank-remediation"),
        pytest.param({"observed_at": "2026-12-01T09:00:00"}, "observed_at: an ISO 8601", id="naive-time"),
        pytest.param({"evidence": [["Error"]]}, "evidence: each item", id="bad-evidence"),
        pytest.param({"measure": "four"}, "measure: a number", id="measure-not-number"),
    ],
)
def test_invalid_payload_names_the_field(change: dict[str, Any], error: str) -> None:
    """A malformed payload is InvalidInput naming the field."""
    payload = {**alert_payload(signal()), **change}
    with pytest.raises(InvalidInput) as raised:
        parse_alert(payload)
    assert any(e.startswith(error) for e in raised.value.errors)


def test_evidence_may_be_an_object() -> None:
    """Evidence given as a JSON object keeps its order as facts."""
    payload = {**alert_payload(signal()), "evidence": {"Error": "CountViolation", "Group": "Copilot"}}
    assert parse_alert(payload).evidence == (Fact("Error", "CountViolation"), Fact("Group", "Copilot"))


def test_storage_round_trip() -> None:
    """An incident with claimed and sent deliveries reads back equal from its storage form."""
    claimed = claim_deliveries(opened(), "w1", T0, timedelta(minutes=2)).incident
    sent = record_delivery(
        claimed, notice_id="1-opened", route="siem", claim="w1", outcome=Outcome.SENT, now=T0
    )
    closed = transition(sent, signal(G, at=minutes(2)), ALERTS_POLICY, minutes(2)).incident
    assert closed is not None
    assert incident_from_data(incident_to_data(closed)) == closed


def test_storage_form_is_flat() -> None:
    """Every stored value is a scalar, so any table adapter stores it as is."""
    data = incident_to_data(opened())
    assert all(v is None or isinstance(v, str | int | float) for v in data.values())


def test_row_key_is_table_safe() -> None:
    """The row key carries none of the characters Table Storage refuses, whatever the subject."""
    key = IncidentKey(Scope.QUEUE, "alerts/deadletter#1?x\\y", "queue.dead_letters")
    assert not set(key.row) & set("/\\#?")


def test_alert_message_matches_its_registered_schema() -> None:
    """The `alert` kind is registered on the alerts queue and its own messages validate."""
    message = alert_message(signal(measure=2.0), correlation_id="c-1", version="v1")
    validate(Message.from_body(ALERTS, message.body()))


def test_schema_refuses_what_the_parser_refuses() -> None:
    """A payload without remediation fails schema validation too (the registry's check)."""
    payload = {k: v for k, v in alert_payload(signal()).items() if k != "remediation"}
    message = Message(ALERTS, "alert", KEY.text, "v1", "c-1", payload)
    with pytest.raises(InvalidInput):
        validate(message)


def test_oversized_alerts_are_clipped() -> None:
    """Huge texts and evidence lists are cut (and marked), so cards and rows stay within their limits."""
    payload = {
        **alert_payload(signal()),
        "reason": "x" * 10_000,
        "evidence": [[f"k{i}", "v" * 1000] for i in range(100)],
    }
    parsed = parse_alert(payload)
    assert (len(parsed.reason), parsed.reason[-1]) == (TEXT_LIMIT, "…")
    assert len(parsed.evidence) == EVIDENCE_LIMIT
    assert parsed.evidence[-1] == Fact("…", f"{100 - EVIDENCE_LIMIT + 1} more facts left out")
    assert max(len(f.value) for f in parsed.evidence) == FACT_LIMIT


def test_overlong_key_is_refused_not_clipped() -> None:
    """A subject past the limit is invalid input: clipping it could merge two incidents."""
    with pytest.raises(InvalidInput) as raised:
        parse_alert({**alert_payload(signal()), "subject": "s" * 300})
    assert raised.value.errors == ("subject: at most 256 characters",)


def test_long_key_travels_in_a_session_id_service_bus_accepts() -> None:
    """Session ids stay within Service Bus's 128 characters."""
    long_key = IncidentKey(Scope.GROUP, "g" * 200, "group.health")
    message = alert_message(signal(key=long_key), correlation_id="c", version="1")
    assert message.session_id == long_key.row
    assert message.subject == long_key.text
