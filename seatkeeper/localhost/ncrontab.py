"""Timer schedules as the Functions host reads them: six-field NCRONTAB (seconds first) or a TimeSpan.

Occurrences are computed in business time (UTC): on the sandbox, moving its clock makes timers fall due.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

_TIMESPAN = re.compile(r"(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})")


@dataclass(frozen=True)
class Schedule:
    """One timer schedule; `next_after(t)` is the first occurrence strictly after `t`."""

    expression: str

    def __post_init__(self) -> None:
        if _TIMESPAN.fullmatch(self.expression.strip()):
            return
        if len(self.expression.split()) != 6:
            raise ValueError(f"NCRONTAB needs six fields (seconds first): {self.expression!r}")
        if not croniter.is_valid(self.expression, second_at_beginning=True):
            raise ValueError(f"invalid NCRONTAB expression: {self.expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        """The next occurrence after `moment` (timezone-aware UTC)."""
        moment = moment.astimezone(UTC)
        span = _TIMESPAN.fullmatch(self.expression.strip())
        if span:
            # A TimeSpan schedule repeats from the last occurrence; the host starts it from now.
            interval = timedelta(
                days=int(span["days"] or 0),
                hours=int(span["h"]),
                minutes=int(span["m"]),
                seconds=int(span["s"]),
            )
            return moment + interval
        following: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)
        return following.astimezone(UTC)
