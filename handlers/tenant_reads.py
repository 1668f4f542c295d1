"""The tenant reads of the license gate and verification, done economically (issue 7 item 7): one user read
with `$select` answers the gate, many users go through `$batch` 20 at a time, `subscribedSkus` and group
types are cached briefly (business time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import quote

from seatkeeper.core.errors import NotFound, Throttled, Unavailable
from seatkeeper.core.graph_port import GraphPort, GraphRequest
from seatkeeper.core.groups import GROUP_SELECT, GroupSnapshot, group_from_graph
from seatkeeper.core.people import USER_SELECT, Person, person_from_graph
from seatkeeper.core.ports import Clock
from seatkeeper.core.skus import SKU_SELECT, SkuCatalogue, catalogue_from_graph

SKU_TTL: Final = timedelta(seconds=60)
GROUP_TTL: Final = timedelta(minutes=10)


def user_path(user: str, select: Sequence[str] = USER_SELECT) -> str:
    """`/users/{id or UPN}?$select=...` (a UPN's `#` or `/` must not end the path)."""
    return f"/users/{quote(user.strip(), safe='@')}?$select={','.join(select)}"


@dataclass
class TenantReads:
    """Reads for the gate and verification; build once per process so the caches are shared."""

    graph: GraphPort
    clock: Clock
    sku_ttl: timedelta = SKU_TTL
    group_ttl: timedelta = GROUP_TTL
    _catalogue: SkuCatalogue | None = field(default=None, init=False)
    _groups: dict[str, tuple[GroupSnapshot, datetime]] = field(default_factory=dict, init=False)

    async def catalogue(self, *, fresh: bool = False) -> SkuCatalogue:
        """The SKU catalogue, re-read when older than `sku_ttl` (or when `fresh`: seats may have changed)."""
        now = self.clock.now()
        cached = self._catalogue
        if fresh or cached is None or now - cached.read_at >= self.sku_ttl:
            body = await self.graph.get("/subscribedSkus", params={"$select": ",".join(SKU_SELECT)})
            # Stamped with the time the request left: the counts are at least that recent, so a
            # reservation closes only against a snapshot that surely counts its activation.
            cached = catalogue_from_graph(body, now)
            self._catalogue = cached
        return cached

    async def group(self, group_id: str) -> GroupSnapshot:
        """The group's type flags (NotFound when it does not exist)."""
        key = group_id.strip().lower()
        now = self.clock.now()
        hit = self._groups.get(key)
        if hit is not None and now - hit[1] < self.group_ttl:
            return hit[0]
        body = await self.graph.get(f"/groups/{key}", params={"$select": ",".join(GROUP_SELECT)})
        snapshot = group_from_graph(body)
        self._groups[key] = (snapshot, now)
        return snapshot

    async def people(self, users: Sequence[str]) -> dict[str, Person | None]:
        """Each user (object id or UPN, as given) read once: a Person, or None when it does not exist.

        One user is one GET; more go through `$batch`. Throttled items the client could not get through
        raise Throttled, so the whole unit of work is retried later.
        """
        wanted = list(dict.fromkeys(u.strip() for u in users))
        if len(wanted) == 1:
            try:
                body = await self.graph.get(user_path(wanted[0]))
            except NotFound:
                return {wanted[0]: None}
            return {wanted[0]: person_from_graph(body)}
        answers = await self.graph.batch([GraphRequest("GET", user_path(u)) for u in wanted])
        found: dict[str, Person | None] = {}
        for user, answer in zip(wanted, answers, strict=True):
            if answer.ok:
                found[user] = person_from_graph(answer.body or {})
            elif answer.status in (400, 404):
                # Not there (or no such id): the same for the gate; the caller reports it.
                found[user] = None
            elif answer.status == 429:
                raise Throttled(f"user reads throttled ({user})", retry_after=None)
            else:
                raise Unavailable(f"user read answered {answer.status}")
        return found


def with_hr_country(person: Person, country: str | None) -> Person:
    """The person with the HR record's country attached (a usage-location source, when the policy says)."""
    return replace(person, hr_country=country.upper()) if country else person
