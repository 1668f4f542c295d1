"""What the admin commands (`diagnose`, `seats`, `groups`, `incidents`) share: the same services container
as the service (settings, policy, Graph, state store, seat store from the composition root), opened for one
command and closed after it, and the exit codes they answer with.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TextIO

from seatkeeper.bootstrap import Services

ServicesFactory = Callable[[], Services]

OK: Final = 0
FOUND_PROBLEMS: Final = 1
CONFIGURATION: Final = 2
UNREACHABLE: Final = 3


def default_factory() -> Services:
    """The process's settings and adapters, as the service builds them (sandbox mode: the local host's)."""
    from seatkeeper.bootstrap import build_services

    return build_services()


@asynccontextmanager
async def opened(factory: ServicesFactory) -> AsyncIterator[Services]:
    """A services container for one command, closed (HTTP clients, files) when it ends."""
    services = factory()
    try:
        yield services
    finally:
        await services.aclose()


def print_json(document: Any, out: TextIO) -> None:
    """One JSON document, stable key order."""
    print(json.dumps(document, indent=2, sort_keys=True, default=str), file=out)
