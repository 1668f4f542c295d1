"""Tolerant readers for Graph JSON fields, shared by the pure parsers of users, SKUs and groups.

Graph omits fields that were not `$select`ed, sends `null` for empty ones and adds new ones over time: the
readers accept all of that and collect every real shape problem, so one InvalidInput names them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from seatkeeper.core.errors import InvalidInput


class FieldReader:
    """Reads typed fields from one Graph object and remembers each problem under a dotted path."""

    def __init__(self, data: object, where: str) -> None:
        self.where = where
        self.problems: list[str] = []
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self.problems.append(f"{where}: expected an object, got {type(data).__name__}")

    def required_str(self, name: str) -> str:
        """A non-empty string field; a problem is recorded (and "" returned) when it is not one."""
        value = self.data.get(name)
        if isinstance(value, str) and value:
            return value
        self.problems.append(f"{self.where}.{name}: expected a non-empty string")
        return ""

    def optional_str(self, name: str) -> str | None:
        """A string field that may be missing or null; empty strings read as None."""
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        self.problems.append(f"{self.where}.{name}: expected a string or null")
        return None

    def optional_bool(self, name: str) -> bool | None:
        """A boolean field that may be missing or null."""
        value = self.data.get(name)
        if value is None or isinstance(value, bool):
            return value
        self.problems.append(f"{self.where}.{name}: expected a boolean or null")
        return None

    def int_or_zero(self, name: str) -> int:
        """A non-negative count; missing or null reads as 0."""
        value = self.data.get(name)
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        self.problems.append(f"{self.where}.{name}: expected a non-negative integer")
        return 0

    def str_list(self, name: str) -> tuple[str, ...]:
        """A list of strings; missing or null reads as empty."""
        value = self.data.get(name)
        if value is None:
            return ()
        if (
            isinstance(value, Sequence)
            and not isinstance(value, str | bytes)
            and all(isinstance(item, str) for item in value)
        ):
            return tuple(value)
        self.problems.append(f"{self.where}.{name}: expected a list of strings")
        return ()

    def object_list(self, name: str) -> Sequence[object]:
        """A list of objects, each to be read by its own FieldReader; missing or null reads as empty."""
        value = self.data.get(name)
        if value is None:
            return ()
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return value
        self.problems.append(f"{self.where}.{name}: expected a list")
        return ()

    def optional_datetime(self, name: str) -> datetime | None:
        """An ISO 8601 timestamp (Graph's `...Z` form); a naive value is taken as UTC."""
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        self.problems.append(f"{self.where}.{name}: expected an ISO 8601 timestamp")
        return None

    def absorb(self, other: FieldReader) -> None:
        """Adopt the problems a nested reader found."""
        self.problems.extend(other.problems)

    def raise_if_invalid(self, message: str) -> None:
        """Raise one InvalidInput naming every problem found so far."""
        if self.problems:
            raise InvalidInput(message, self.problems)
