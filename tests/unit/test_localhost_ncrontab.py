"""Timer schedules: six-field NCRONTAB with seconds first, or a TimeSpan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seatkeeper.localhost.ncrontab import Schedule

T0 = datetime(2026, 1, 1, 3, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", datetime(2026, 1, 1, 3, 5, tzinfo=UTC)),
        ("30 * * * * *", datetime(2026, 1, 1, 3, 0, 30, tzinfo=UTC)),
        ("0 0 3 * * *", datetime(2026, 1, 2, 3, 0, tzinfo=UTC)),
        ("00:15:00", datetime(2026, 1, 1, 3, 15, tzinfo=UTC)),
    ],
)
def test_next_occurrence_is_strictly_after(expression: str, expected: datetime) -> None:
    """The first field is seconds; an occurrence at `t` itself is not the next one."""
    assert Schedule(expression).next_after(T0) == expected


@pytest.mark.parametrize("expression", ["*/5 * * * *", "0 0 99 * * *", "every hour"])
def test_invalid_schedules_are_refused(expression: str) -> None:
    """Five-field cron (no seconds) and nonsense fail at indexing, not at the first tick."""
    with pytest.raises(ValueError, match="NCRONTAB"):
        Schedule(expression)
