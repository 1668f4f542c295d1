"""Group delta: full sync pages, member changes with @removed, latest, filters, token expiry and reset."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from sandbox.delta import ChangeLog, DeltaPager
from sandbox.graph_errors import GraphError

BASE = "https://127.0.0.1:9/v1.0"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FakeDirectory:
    """Groups with ordered members, as the directory would expose them."""

    def __init__(self) -> None:
        self.groups: dict[str, list[str]] = {}
        self.names: dict[str, str] = {}

    def group_ids(self) -> Sequence[str]:
        return sorted(self.groups)

    def group_exists(self, group_id: str) -> bool:
        return group_id in self.groups

    def member_ids(self, group_id: str) -> Sequence[str]:
        return self.groups[group_id]

    def odata_type(self, object_id: str) -> str:
        return "#microsoft.graph.group" if object_id.startswith("g") else "#microsoft.graph.user"

    def group_properties(self, group_id: str, names: Sequence[str] | None) -> dict[str, Any]:
        props = {"displayName": self.names.get(group_id, group_id), "description": None}
        return dict(props) if names is None else {n: props.get(n) for n in names}


class World:
    """A directory, its change log and a pager, changed through one door (as the sandbox does)."""

    def __init__(self, page_size: int = 100, member_chunk: int = 100) -> None:
        self.directory = FakeDirectory()
        self.log = ChangeLog()
        self.pager = DeltaPager(self.log, self.directory, page_size=page_size, member_chunk=member_chunk)
        self.now = T0

    def add(self, group: str, member: str) -> None:
        self.directory.groups.setdefault(group, []).append(member)
        self.log.record("member_added", group, member, self.now)

    def remove(self, group: str, member: str) -> None:
        self.directory.groups[group].remove(member)
        self.log.record("member_removed", group, member, self.now)

    def get(self, url_or_query: str | dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        query = (
            dict(parse_qsl(urlsplit(url_or_query).query, keep_blank_values=True))
            if isinstance(url_or_query, str)
            else url_or_query
        )
        return self.pager.answer(query, BASE, self.now)

    def sync(self, start: str | dict[str, str]) -> tuple[list[dict[str, Any]], str]:
        """Follow nextLinks to the deltaLink; returns every item and the deltaLink."""
        items: list[dict[str, Any]] = []
        status, body, _ = self.get(start)
        while True:
            assert status == 200
            items.extend(body["value"])
            if "@odata.deltaLink" in body:
                return items, body["@odata.deltaLink"]
            status, body, _ = self.get(body["@odata.nextLink"])


def _members(items: list[dict[str, Any]], group: str) -> list[tuple[str, bool]]:
    return [
        (m["id"], "@removed" in m)
        for item in items
        if item["id"] == group
        for m in item.get("members@delta", [])
    ]


def test_full_sync_pages_through_every_group_and_splits_large_ones() -> None:
    """A first sync lists every member; a large group spans several items; pages end with a deltaLink."""
    world = World(page_size=2, member_chunk=3)
    for n in range(7):
        world.add("g-big", f"u{n}")
    world.add("g-small", "u0")
    items, delta_link = world.sync({"$select": "members,displayName"})
    assert [item["id"] for item in items] == ["g-big", "g-big", "g-big", "g-small"]
    assert _members(items, "g-big") == [(f"u{n}", False) for n in range(7)]
    assert items[0]["displayName"] == "g-big"
    assert delta_link.startswith(f"{BASE}/groups/delta?$deltatoken=")


def test_changes_since_a_delta_link_mark_leavers_with_removed() -> None:
    """After a sync, the next round returns only what changed: joiners plain, leavers with @removed."""
    world = World()
    world.add("g1", "u1")
    world.add("g1", "u2")
    world.add("g2", "u9")
    _, link = world.sync({"$select": "members"})
    world.add("g1", "u3")
    world.remove("g1", "u1")
    items, next_link = world.sync(link)
    assert [item["id"] for item in items] == ["g1"]
    assert _members(items, "g1") == [("u3", False), ("u1", True)]
    assert next(m for m in items[0]["members@delta"] if m["id"] == "u1")["@removed"] == {"reason": "deleted"}
    assert world.sync(next_link)[0] == []


def test_latest_token_starts_from_now_without_a_dump() -> None:
    """`$deltatoken=latest` answers no items and a deltaLink that sees later changes only."""
    world = World()
    world.add("g1", "u1")
    status, body, _ = world.get({"$deltatoken": "latest", "$select": "members"})
    assert (status, body["value"]) == (200, [])
    world.add("g1", "u2")
    items, _ = world.sync(body["@odata.deltaLink"])
    assert _members(items, "g1") == [("u2", False)]


def test_filter_limits_the_groups_and_is_kept_in_the_token() -> None:
    """`$filter=id eq ...` restricts the first sync and every later round."""
    world = World()
    world.add("g1", "u1")
    world.add("g2", "u2")
    items, link = world.sync({"$select": "members", "$filter": "id eq 'g2'"})
    world.add("g1", "u3")
    world.add("g2", "u4")
    later, _ = world.sync(link)
    assert ([i["id"] for i in items], [i["id"] for i in later]) == (["g2"], ["g2"])


def test_a_deleted_group_is_reported_removed() -> None:
    """A group deleted since the last round appears with @removed."""
    world = World()
    world.add("g1", "u1")
    _, link = world.sync({"$select": "members"})
    del world.directory.groups["g1"]
    world.log.record("group_deleted", "g1", None, world.now)
    items, _ = world.sync(link)
    assert items == [{"id": "g1", "@removed": {"reason": "deleted"}}]


def test_tokens_expire_after_seven_days_of_business_time() -> None:
    """A deltaLink used more than 7 days after issue answers 400 syncStateNotFound; within 7 days it works."""
    world = World()
    world.add("g1", "u1")
    _, link = world.sync({"$select": "members"})
    world.now = T0 + timedelta(days=6, hours=23)
    _, fresh = world.sync(link)
    world.now = T0 + timedelta(days=14)
    with pytest.raises(GraphError) as caught:
        world.get(fresh)
    assert (caught.value.status, caught.value.code) == (400, "syncStateNotFound")


def test_tokens_from_before_a_reset_answer_410_with_a_restart_location() -> None:
    """After a reset the old token is gone: 410, with a Location restarting a full sync of the query."""
    world = World()
    world.add("g1", "u1")
    _, link = world.sync({"$select": "members", "$filter": "id eq 'g1'"})
    world.log.reset()
    status, _, headers = world.get(link)
    items, _ = world.sync(headers["Location"])
    assert status == 410
    assert _members(items, "g1") == [("u1", False)]


@pytest.mark.parametrize(
    "query",
    [
        {"$filter": " or ".join(f"id eq 'g{n}'" for n in range(51))},
        {"$filter": "displayName eq 'x'"},
        {"$top": "5"},
        {"$expand": "members"},
        {"$deltatoken": "not-a-token"},
    ],
    ids=["51-ids", "other-filter", "top", "expand", "garbage-token"],
)
def test_unsupported_queries_answer_400(query: dict[str, str]) -> None:
    """At most 50 ids, id filters only, no $top/$expand, and tokens must be ours."""
    with pytest.raises(GraphError) as caught:
        World().get(query)
    assert caught.value.status == 400


def test_fifty_ids_are_accepted() -> None:
    """The documented maximum of 50 ids passes."""
    status, _, _ = World().get({"$filter": " or ".join(f"id eq 'g{n}'" for n in range(50))})
    assert status == 200


def test_select_names_are_checked_and_canonicalised_when_known() -> None:
    """With the group's property names known, an unknown name is a 400 and case does not matter."""
    world = World()
    world.pager.known = {"members": "members", "displayname": "displayName"}
    world.add("g1", "u1")
    items, _ = world.sync({"$select": "Members,DISPLAYNAME"})
    with pytest.raises(GraphError) as caught:
        world.get({"$select": "members,shoeSize"})
    assert (items[0]["displayName"], caught.value.status) == ("g1", 400)
