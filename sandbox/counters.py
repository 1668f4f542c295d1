"""Request counters per operation, read and reset through the control plane.

Part 1 counts `requests` (outer calls) and `inner_requests` (calls inside `$batch`); part 2 fills
`resource_units` and `writes` through the same object (`add`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

KINDS = ("requests", "inner_requests", "resource_units", "writes")


class Counters:
    """Counts per kind and operation name."""

    def __init__(self) -> None:
        self.by_kind: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}

    def add(self, kind: str, operation: str, amount: int = 1) -> None:
        """Count `amount` of `kind` (one of KINDS) for `operation`."""
        self.by_kind[kind][operation] += amount

    def reset(self) -> None:
        """Zero everything."""
        for counter in self.by_kind.values():
            counter.clear()

    def snapshot(self) -> dict[str, Any]:
        """The control-plane view: one map per kind, and totals."""
        view: dict[str, Any] = {kind: dict(counter) for kind, counter in self.by_kind.items()}
        view["total"] = {kind: sum(counter.values()) for kind, counter in self.by_kind.items()}
        return view
