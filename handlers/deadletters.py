"""The dead-letter watcher (a timer): new dead letters become one incident per queue and hour, never silence.

For each queue it lists the dead letters numbered above its mark (kept in the state store) and, unless it
already alerted in this business hour, sends one `alert` for the queue and moves the mark. Dead letters that
arrive after an alert in the same hour are reported by the first tick of the next hour. An emptied dead-letter
queue closes the incident. Dead letters of the `alerts` queue itself are only logged and shown by health:
feeding them back into `alerts` could loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import structlog

from seatkeeper.core.errors import DeadLettersWaiting
from seatkeeper.core.incidents import AlertSignal, Cause, Fact, IncidentKey, Scope, alert_message
from seatkeeper.core.messages import ALERTS, QUEUES
from seatkeeper.core.policy import Severity
from seatkeeper.core.ports import Clock, DeadLetter, DeadLetterStore, Entity, MessageSender, StateStore

WATCH_TABLE: Final = "deadletterwatch"
WATCH_PARTITION: Final = "queue"
DEAD_LETTERS_PROBLEM: Final = "queue.dead_letters"
SAMPLES: Final = 5
_LIST_LIMIT: Final = 100

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class QueueWatch:
    """What the watcher found on one queue's dead-letter queue in one tick."""

    queue: str
    new: int
    alerted: bool
    resolved: bool


def _hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def _signal(queue: str, cause: Cause, letters: Sequence[DeadLetter], now: datetime) -> AlertSignal:
    reasons = sorted({letter.reason for letter in letters})
    return AlertSignal(
        key=IncidentKey(Scope.QUEUE, queue, DEAD_LETTERS_PROBLEM),
        cause=cause,
        severity=Severity.ERROR,
        title=f"Messages could not be processed on queue {queue}",
        reason=(
            f"{len(letters)} new message(s) were dead-lettered ({', '.join(reasons)}): the work they carry "
            "has not been done."
            if cause is Cause.PRESENT
            else f"The dead-letter queue of {queue} is empty again."
        ),
        remediation=(
            f"Inspect them with `seatkeeper deadletters list {queue}` and "
            f"`seatkeeper deadletters peek {queue} MESSAGE_ID`, fix the cause (the reason and description "
            "say what failed), then send each again with "
            f"`seatkeeper deadletters resubmit {queue} MESSAGE_ID`."
        ),
        subject_label=f"queue {queue}",
        observed_at=now,
        evidence=tuple(
            Fact(f"{letter.kind} {letter.message_id}", f"{letter.reason}: {letter.description}".rstrip(": "))
            for letter in letters[:SAMPLES]
        ),
    )


async def _mark(state: StateStore, queue: str) -> Entity:
    entity = await state.get(WATCH_TABLE, WATCH_PARTITION, queue)
    if entity is None:
        entity = await state.insert(
            WATCH_TABLE, WATCH_PARTITION, queue, {"seen_sequence": 0, "alerted_hour": None, "open": False}
        )
    return entity


async def watch_queue(
    queue: str,
    *,
    dead_letters: DeadLetterStore,
    state: StateStore,
    sender: MessageSender,
    now: datetime,
    correlation_id: str,
) -> QueueWatch:
    """One tick on one queue; raises ConcurrencyConflict if another watcher moved the mark meanwhile."""
    mark = await _mark(state, queue)
    seen = int(mark.data["seen_sequence"])
    hour = _hour(now).isoformat()
    new = list(await dead_letters.list(queue, limit=_LIST_LIMIT, after_sequence=seen))
    if not new:
        if mark.data["open"] and queue != ALERTS and not await dead_letters.list(queue, limit=1):
            await sender.send(
                [
                    alert_message(
                        _signal(queue, Cause.GONE, [], now), correlation_id=correlation_id, version=hour
                    )
                ]
            )
            await state.replace(mark, {**mark.data, "open": False})
            return QueueWatch(queue, 0, alerted=False, resolved=True)
        return QueueWatch(queue, 0, alerted=False, resolved=False)
    if queue == ALERTS:
        _log.error("deadletters.alerts_queue", queue=queue, new=len(new), message_id=new[0].message_id)
        await state.replace(mark, {**mark.data, "seen_sequence": new[-1].sequence_number})
        return QueueWatch(queue, len(new), alerted=False, resolved=False)
    if mark.data["alerted_hour"] == hour:
        # Already told this hour: the mark stays, so the next hour's first tick reports these.
        return QueueWatch(queue, len(new), alerted=False, resolved=False)
    signal = _signal(queue, Cause.PRESENT, new, now)
    # Sent before the mark moves: a crash in between resends the same id (same hour), which collapses.
    await sender.send([alert_message(signal, correlation_id=correlation_id, version=hour)])
    await state.replace(mark, {"seen_sequence": new[-1].sequence_number, "alerted_hour": hour, "open": True})
    return QueueWatch(queue, len(new), alerted=True, resolved=False)


async def watch_dead_letters(
    *,
    dead_letters: DeadLetterStore,
    state: StateStore,
    sender: MessageSender,
    clock: Clock,
    correlation_id: str,
    queues: Sequence[str] = QUEUES,
) -> list[QueueWatch]:
    """One timer tick over every queue; logs one line with what it found."""
    now = clock.now()
    results = [
        await watch_queue(
            queue,
            dead_letters=dead_letters,
            state=state,
            sender=sender,
            now=now,
            correlation_id=correlation_id,
        )
        for queue in queues
    ]
    _log.info(
        "deadletters.watched",
        new={r.queue: r.new for r in results if r.new},
        alerted=[r.queue for r in results if r.alerted],
        resolved=[r.queue for r in results if r.resolved],
    )
    return results


async def alerts_dead_letter_count(dead_letters: DeadLetterStore, *, limit: int = _LIST_LIMIT) -> int:
    """How many dead letters the `alerts` queue holds (up to `limit`): health reports it."""
    return len(await dead_letters.list(ALERTS, limit=limit))


class AlertsDeadLettersProbe:
    """A health probe that fails while the `alerts` queue holds dead letters (alerts that were lost)."""

    def __init__(self, dead_letters: DeadLetterStore) -> None:
        self._dead_letters = dead_letters

    async def check(self) -> None:
        """Raise DeadLettersWaiting when any `alerts` dead letter waits; log how many."""
        count = await alerts_dead_letter_count(self._dead_letters)
        if count:
            _log.error("deadletters.alerts_queue_waiting", queue=ALERTS, count=count)
            raise DeadLettersWaiting(f"{count} dead letter(s) in {ALERTS}")
