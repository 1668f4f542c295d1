"""A recording fake of the Graph port for handler tests: resources by path, roles, and failures to raise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seatkeeper.core.errors import NotFound, SeatkeeperError
from seatkeeper.core.graph_port import GraphPage, GraphRequest, GraphResponse, MemberAddResult, OperationCount

ALL_ROLES = frozenset(
    {
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "User.ReadWrite.All",
        "LicenseAssignment.Read.All",
        "Mail.Send",
    }
)


@dataclass
class FakeGraph:
    """Answers GETs from `resources`, keeps group members in `members`, records every write in `writes`."""

    resources: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    roles: frozenset[str] = ALL_ROLES
    token_error: SeatkeeperError | None = None
    read_error: SeatkeeperError | None = None
    writes: list[tuple[str, str, Mapping[str, Any] | None]] = field(default_factory=list)

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        if self.read_error is not None:
            raise self.read_error
        if path not in self.resources:
            raise NotFound(f"GET {path}: 404")
        return self.resources[path]

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        body = await self.get(path, params=params)
        yield GraphPage(items=tuple(body.get("value", ())))

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        self.writes.append((method, path, body))
        return None

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        return [GraphResponse(200, self.resources.get(r.url)) for r in requests]

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        current = self.members.setdefault(group_id, set())
        added = tuple(u for u in dict.fromkeys(user_ids) if u not in current)
        already = tuple(u for u in dict.fromkeys(user_ids) if u in current)
        current.update(added)
        return MemberAddResult(added=added, already_members=already)

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        current = self.members.setdefault(group_id, set())
        if user_id not in current:
            return False
        current.remove(user_id)
        return True

    async def granted_roles(self) -> frozenset[str]:
        if self.token_error is not None:
            raise self.token_error
        return self.roles

    def counters(self) -> Mapping[str, OperationCount]:
        return {}
