"""The `whatif` command's page reader: the next page is read while one is evaluated, in order, errors kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from seatkeeper.cli.whatif import prefetched
from seatkeeper.core.errors import Throttled
from seatkeeper.core.graph_port import GraphPage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def pages(count: int, *, fail_after: int | None = None) -> AsyncIterator[GraphPage]:
    for n in range(count):
        if fail_after is not None and n == fail_after:
            raise Throttled("429 past the retry budget", retry_after=None)
        yield GraphPage(items=({"id": str(n)},))


async def test_pages_arrive_in_order() -> None:
    """Prefetching changes when a page is read, never the order."""
    seen = [page.items[0]["id"] async for page in prefetched(pages(5))]
    assert seen == ["0", "1", "2", "3", "4"]


async def test_a_reader_error_is_raised_after_the_pages_before_it() -> None:
    """A transient error of the Graph reader reaches the caller, after every page read before it."""
    seen: list[str] = []

    async def consume() -> None:
        async for page in prefetched(pages(5, fail_after=3)):
            seen.append(str(page.items[0]["id"]))

    with pytest.raises(Throttled):
        await consume()
    assert seen == ["0", "1", "2"]


async def test_stopping_early_stops_the_reader() -> None:
    """Leaving the loop early leaves no reader running."""
    reader = prefetched(pages(1000))
    first = await anext(reader)
    await reader.aclose()
    assert first.items[0]["id"] == "0"
