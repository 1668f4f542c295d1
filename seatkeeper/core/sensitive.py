"""A wrapper for secret values (client secrets, signing keys, webhook URLs) that never prints them."""

from __future__ import annotations

import hmac
from typing import Final

REDACTED: Final = "**********"


class Secret:
    """A secret string: `repr`/`str` are redacted, `reveal()` is the one deliberate way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is handed to the library that needs it."""
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison with a presented value (shared secrets, clientState)."""
        return hmac.compare_digest(self._value.encode("utf-8"), candidate.encode("utf-8"))

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(Secret)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled")
