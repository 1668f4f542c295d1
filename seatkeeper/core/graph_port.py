"""The Microsoft Graph port handlers talk to, and the application permissions Seatkeeper needs.

Paths are relative to the versioned Graph root (`/users/{id}`); `@odata.nextLink`/`deltaLink` URLs may be
passed back as they came. Errors are the core tree: Throttled/Unavailable (transient), NotFound,
Forbidden, Rejected (permanent). Retries, paging, batching and counting happen behind the port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

# Application permissions (app roles) the code needs, each with the broader roles that also satisfy it.
REQUIRED_APP_ROLES: Final[Mapping[str, frozenset[str]]] = {
    # change-notification subscriptions on groups (graph-facts A1)
    "Group.Read.All": frozenset({"Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}),
    # group delta, members, bulk adds and removals (graph-facts B4, I)
    "GroupMember.ReadWrite.All": frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"}),
    # user reads with $select, usageLocation fixes and reprocessLicenseAssignment (graph-facts B2)
    "User.ReadWrite.All": frozenset({"Directory.ReadWrite.All"}),
    # subscribedSkus (graph-facts B1)
    "LicenseAssignment.Read.All": frozenset(
        {
            "LicenseAssignment.ReadWrite.All",
            "Organization.Read.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        }
    ),
}
# Needed only when an email alert route is configured (graph-facts G).
MAIL_SEND: Final = "Mail.Send"


def missing_roles(granted: frozenset[str], *, needs_mail: bool = False) -> tuple[str, ...]:
    """The required application permissions the granted roles do not cover, in a stable order."""
    required = dict(REQUIRED_APP_ROLES)
    if needs_mail:
        required[MAIL_SEND] = frozenset()
    return tuple(
        sorted(name for name, broader in required.items() if name not in granted and not broader & granted)
    )


@dataclass(frozen=True)
class GraphRequest:
    """One request of a `$batch`: a relative URL (`/users/{id}?$select=...`), its method and body."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphResponse:
    """One answer of a `$batch`, in the order of the requests; a throttled item left over keeps 429."""

    status: int
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for a 2xx."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class GraphPage:
    """One page of a collection; the last page of a delta query carries its `@odata.deltaLink`."""

    items: tuple[Mapping[str, Any], ...]
    next_link: str | None = None
    delta_link: str | None = None


@dataclass(frozen=True)
class MemberAddResult:
    """What a bulk member add did: who was added, who already was a member, who does not exist."""

    added: tuple[str, ...] = ()
    already_members: tuple[str, ...] = ()
    not_found: tuple[str, ...] = ()


@dataclass(frozen=True)
class OperationCount:
    """Requests (HTTP calls), inner requests (`$batch` items) and writes counted for one operation."""

    requests: int = 0
    inner_requests: int = 0
    writes: int = 0


class GraphPort(Protocol):
    """Microsoft Graph for handlers: reads, writes, paging, batches, bulk member changes, counters."""

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        """GET one resource; `retry_not_found` waits out replication lag for an object just created."""
        ...

    def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        """Every page of a collection (or delta), following `@odata.nextLink` until it ends."""
        ...

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        """A write; retried after 5xx/timeouts only if `idempotent` (429s are always retried)."""
        ...

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        """Any number of requests, sent 20 at a time, throttled items retried; answers in request order."""
        ...

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        """Add users to a group 20 at a time; an existing member or a missing user never blocks the rest."""
        ...

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        """Remove a user from a group; False when the user was not a member."""
        ...

    async def granted_roles(self) -> frozenset[str]:
        """The application permissions (`roles`) of the current access token."""
        ...

    def counters(self) -> Mapping[str, OperationCount]:
        """Requests, inner requests and writes per operation (`GET /users/{id}`) since start."""
        ...
