"""Closing an incident by hand: for subjects no sweep watches any more (a user who left every licensing
group, a group taken out of the policy), so their incidents do not stay open forever."""

from __future__ import annotations

from datetime import timedelta

from seatkeeper.core.incidents import (
    Cause,
    Decision,
    NoticeKind,
    Status,
    close_by_hand,
    incident_from_data,
    incident_to_data,
    transition,
)
from tests.unit.test_incidents import ALERTS_POLICY, T0, run, signal


def test_an_open_incident_is_closed_with_who_and_why_and_no_notice() -> None:
    """Closed at the given time, with the admin's name and reason; no notice is queued for channels."""
    opened, _, _ = run(signal())
    assert opened is not None
    closed = close_by_hand(opened, note="user left the company", by="ada", now=T0 + timedelta(hours=1))
    assert closed is not None
    assert (closed.status, closed.closed_at, closed.closed_by, closed.close_note) == (
        Status.CLOSED,
        T0 + timedelta(hours=1),
        "ada",
        "user left the company",
    )
    assert closed.notices == opened.notices


def test_a_closed_incident_cannot_be_closed_again() -> None:
    """Closing what is not open changes nothing."""
    closed, _, _ = run(signal(), signal(Cause.GONE, at=T0 + timedelta(minutes=1)))
    assert closed is not None
    assert close_by_hand(closed, note="again", by="ada", now=T0 + timedelta(hours=1)) is None


def test_seen_again_it_reopens_as_a_new_occurrence_and_is_told() -> None:
    """Closing by hand is not an exclusion: the problem seen again opens occurrence 2 and notifies."""
    opened, _, _ = run(signal())
    assert opened is not None
    closed = close_by_hand(opened, note="cleaned up", by="ada", now=T0 + timedelta(minutes=5))
    step = transition(
        closed, signal(at=T0 + timedelta(minutes=10)), ALERTS_POLICY, T0 + timedelta(minutes=10)
    )
    assert step.incident is not None
    assert step.notice is not None
    assert (step.decision, step.incident.occurrence, step.notice.kind) == (
        Decision.REOPENED,
        2,
        NoticeKind.OPENED,
    )
    assert (step.incident.closed_by, step.incident.close_note) == (None, None)


def test_who_and_why_survive_storage() -> None:
    """The stored form keeps the hand-closing fields; older rows without them still read."""
    opened, _, _ = run(signal())
    assert opened is not None
    closed = close_by_hand(opened, note="group retired", by="ops", now=T0 + timedelta(hours=2))
    assert closed is not None
    assert incident_from_data(incident_to_data(closed)) == closed
    older = {k: v for k, v in incident_to_data(opened).items() if k not in ("closed_by", "close_note")}
    assert incident_from_data(older) == opened
