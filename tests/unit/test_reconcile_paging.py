"""The reconciliation pass pages through a licensing group without holding it: a group of 100,000 members
costs the memory of a page (the sweep) or of its member ids (the delta catch-up), not of every member object
Graph sent (issue 12 item 3); and what it finds on any page is still found."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from handlers.group_changes import GroupChangeDeps, catch_up
from seatkeeper.core.graph_port import GraphPage
from seatkeeper.core.group_health import Problem
from seatkeeper.core.member_changes import MEMBER_CHANGED
from seatkeeper.core.member_sets import MemberSets
from tests.unit.graph_fakes import FakeGraph
from tests.unit.notification_fakes import DeltaGraph, FakeClock, MemoryStore, RecordingQueue
from tests.unit.test_reconcile import GROUP, Rig, _user

PAGE_SIZE = 3


class _Item(dict[str, Any]):
    """An item of a page that can be watched with a weak reference (a plain dict cannot)."""


@dataclass
class Watch:
    """The items served page by page, weakly; and, whenever a page is asked for, how many items of the pages
    before the previous one are still alive (the caller may still hold the page it is done with)."""

    served: list[list[weakref.ref[_Item]]] = field(default_factory=list)
    held_back: list[int] = field(default_factory=list)

    def page(self, page: GraphPage) -> GraphPage:
        gc.collect()
        self.held_back.append(sum(1 for done in self.served[:-1] for ref in done if ref() is not None))
        items = tuple(_Item(item) for item in page.items)
        self.served.append([weakref.ref(item) for item in items])
        return GraphPage(items=items, next_link=page.next_link, delta_link=page.delta_link)

    def alive(self) -> int:
        gc.collect()
        return sum(1 for done in self.served for ref in done if ref() is not None)


@dataclass
class PagingGraph(FakeGraph):
    """Serves collections `PAGE_SIZE` items a page; the group's member listing is watched."""

    watch: Watch = field(default_factory=Watch)

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        values = tuple((await self.get(path, params=params)).get("value", ()))
        for start in range(0, len(values), PAGE_SIZE):
            page = GraphPage(items=values[start : start + PAGE_SIZE])
            yield self.watch.page(page) if path.endswith("/members") else page


@dataclass
class WatchedDeltaGraph(DeltaGraph):
    """Group delta as `DeltaGraph` serves it, every page watched."""

    watch: Watch = field(default_factory=Watch)

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        async for page in super().pages(path, params=params):
            yield self.watch.page(page)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_sweep_reads_a_large_group_a_page_at_a_time_and_misses_nothing(anyio_backend: str) -> None:
    """Five pages of members: earlier pages are let go while later ones are read, and a nested group on
    page 2 and a member without a base license on page 4 are both found."""
    rig = Rig()
    graph = PagingGraph()
    rig.graph = graph
    rig.members = [_user(f"u-{n:02d}", copilot="Active") for n in range(15)]
    rig.members[4] = {"@odata.type": "#microsoft.graph.group", "id": "g-2", "displayName": "Pilots"}
    rig.members[10] = _user("u-10", base=False, copilot="Active")
    report = await rig.sweep()
    assert [(f.group_id, f.problem) for f in report.findings] == [(GROUP, Problem.NESTED_GROUPS)]
    assert report.without_base_license == ["u-10"]
    assert (graph.watch.held_back, graph.watch.alive()) == ([0, 0, 0, 0, 0], 0)


def test_the_delta_catch_up_folds_each_page_as_it_comes() -> None:
    """A full delta read over four pages, then an incremental one: no page is held while the next is read,
    the baseline holds every member, and the change after it is found."""
    graph = WatchedDeltaGraph()
    deps = GroupChangeDeps(graph, MemberSets(MemoryStore()), RecordingQueue(), FakeClock(), frozenset({"g1"}))
    graph.add("g1", *(f"u{i:02d}" for i in range(12)))
    first = asyncio.run(catch_up("g1", deps, correlation_id="c"))
    graph.add("g1", "new")
    asyncio.run(catch_up("g1", deps, correlation_id="c"))
    sent = deps.sender
    assert isinstance(sent, RecordingQueue)
    changes = [m.subject for m in sent.of_kind(MEMBER_CHANGED.name)]
    # Four pages of the full read, one of the incremental round.
    assert (first.members, graph.watch.held_back, graph.watch.alive(), changes) == (12, [0] * 5, 0, ["new"])
