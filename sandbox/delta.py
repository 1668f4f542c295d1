"""Group delta (`GET /groups/delta`): a versioned change log and the paged answers built from it.

Every membership or group change gets the next version number. A token encodes the version it stands for,
when it was issued (business time), the reset epoch, and the query it continues (`$select`, the ids of
`$filter`). Tokens expire 7 days of business time after issue (400 `syncStateNotFound`, as Graph answers);
a token from before a control-plane reset answers 410 Gone with a Location that restarts a full sync.
Clients must tolerate replays: a change made while a full sync is being paged shows up again later.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from sandbox.directory_events import DirectoryEvent
from sandbox.graph_errors import GraphError
from sandbox.graph_groups import GROUP_KNOWN
from sandbox.router import GraphRequest, GraphResponse

if TYPE_CHECKING:
    from sandbox.extension import SandboxApp
    from sandbox.state import SandboxState

TOKEN_LIFETIME = timedelta(days=7)
MAX_FILTER_IDS = 50
ChangeKind = Literal["member_added", "member_removed", "group_updated", "group_deleted"]
_UNSUPPORTED = ("$expand", "$top", "$orderby", "$search", "$count")
_FILTER_TERM = re.compile(r"^\s*id\s+eq\s+'([^']+)'\s*$")


@dataclass(frozen=True)
class Change:
    """One recorded change to a group."""

    version: int
    kind: ChangeKind
    group_id: str
    member_id: str | None
    at: datetime


class ChangeLog:
    """Consecutive versions of group changes; entries older than a token's lifetime are dropped."""

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)
        self._first = 1
        self._entries: list[Change] = []

    @property
    def version(self) -> int:
        """The version of the latest change (0 before any)."""
        return self._first + len(self._entries) - 1

    def record(self, kind: ChangeKind, group_id: str, member_id: str | None, at: datetime) -> Change:
        """Append a change with the next version; prunes what no valid token can still ask for."""
        change = Change(self.version + 1, kind, group_id, member_id, at)
        self._entries.append(change)
        stale = 0
        horizon = at - TOKEN_LIFETIME
        while stale < len(self._entries) - 1 and self._entries[stale].at < horizon:
            stale += 1
        if stale > 1024 or stale > len(self._entries) // 2:
            del self._entries[:stale]
            self._first += stale
        return change

    def between(self, after: int, upto: int) -> Iterator[Change]:
        """Changes with `after < version <= upto`, in order."""
        start = max(after + 1 - self._first, 0)
        stop = max(upto + 1 - self._first, 0)
        yield from self._entries[start:stop]

    def reset(self) -> None:
        """Forget everything and start a new epoch, so older tokens answer 410."""
        self.epoch = secrets.token_hex(4)
        self._first = 1
        self._entries.clear()


class DeltaSource(Protocol):
    """What delta reads from the directory."""

    def group_ids(self) -> Sequence[str]:
        """Ids of every group, in a stable order."""
        ...

    def group_exists(self, group_id: str) -> bool:
        """Whether the group exists now."""
        ...

    def member_ids(self, group_id: str) -> Sequence[str]:
        """Direct members of a group, in a stable order."""
        ...

    def odata_type(self, object_id: str) -> str:
        """`#microsoft.graph.user` or `#microsoft.graph.group` for a member."""
        ...

    def group_properties(self, group_id: str, names: Sequence[str] | None) -> dict[str, Any]:
        """The group's Graph properties: the named ones, or the defaults when `names` is None."""
        ...


@dataclass(frozen=True)
class _Cursor:
    """What a `$deltatoken` or `$skiptoken` stands for."""

    epoch: str
    issued: float  # business time, POSIX seconds
    since: int  # -1: full sync
    upto: int
    offset: int = 0
    ids: tuple[str, ...] | None = None
    select: tuple[str, ...] | None = None

    def encode(self) -> str:
        raw = json.dumps(
            [self.epoch, self.issued, self.since, self.upto, self.offset, self.ids, self.select],
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            epoch, issued, since, upto, offset, ids, select = json.loads(raw)
            return cls(
                str(epoch),
                float(issued),
                int(since),
                int(upto),
                int(offset),
                tuple(ids) if ids is not None else None,
                tuple(select) if select is not None else None,
            )
        except (binascii.Error, ValueError, TypeError) as exc:
            raise GraphError(400, "Request_BadRequest", "The delta token is not valid.") from exc


@dataclass
class DeltaPager:
    """Answers `GET /groups/delta` from the change log and the directory."""

    log: ChangeLog
    source: DeltaSource
    page_size: int = 100
    member_chunk: int = 100
    known: Mapping[str, str] | None = None  # lower-case name -> Graph name; None accepts any `$select`

    def answer(
        self, query: Mapping[str, str], base_url: str, now: datetime
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and headers for one delta request; raises GraphError for bad requests."""
        for name in _UNSUPPORTED:
            if name in query:
                raise GraphError(
                    400, "Request_UnsupportedQuery", f"{name} is not supported on delta for groups."
                )
        token = query.get("$deltatoken") or query.get("$skiptoken")
        if token == "latest":  # noqa: S105 -- Graph's "sync from now" literal, not a secret
            ids, select = self._query_scope(query, self.known)
            version = self.log.version
            cursor = _Cursor(self.log.epoch, now.timestamp(), version, version, 0, ids, select)
            return self._page([], cursor, base_url, now, done=True)
        if token:
            cursor = _Cursor.decode(token)
            if "$deltatoken" in query:  # a new round: everything after the token, up to now
                cursor = _Cursor(
                    cursor.epoch, cursor.issued, cursor.since, self.log.version, 0, cursor.ids, cursor.select
                )
            if cursor.epoch != self.log.epoch:
                location = self._restart_url(base_url, cursor)
                return (
                    410,
                    {
                        "error": {
                            "code": "syncStateInvalid",
                            "message": "The sync state is no longer valid; start a full synchronization.",
                        }
                    },
                    {"Location": location},
                )
            if now.timestamp() - cursor.issued > TOKEN_LIFETIME.total_seconds():
                raise GraphError(
                    400,
                    "syncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and data must be "
                    "synchronized again.",
                )
        else:
            ids, select = self._query_scope(query, self.known)
            cursor = _Cursor(self.log.epoch, now.timestamp(), -1, self.log.version, 0, ids, select)
        items = self._full_items(cursor) if cursor.since < 0 else self._change_items(cursor)
        page = items[cursor.offset : cursor.offset + self.page_size]
        done = cursor.offset + self.page_size >= len(items)
        return self._page(page, cursor, base_url, now, done=done)

    def _page(
        self, page: list[dict[str, Any]], cursor: _Cursor, base_url: str, now: datetime, done: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        body: dict[str, Any] = {"@odata.context": f"{base_url}/$metadata#groups(members)", "value": page}
        if done:
            # A deltaLink stands for everything up to `upto`, issued now: the 7-day lifetime starts here.
            link = _Cursor(
                cursor.epoch, now.timestamp(), cursor.upto, cursor.upto, 0, cursor.ids, cursor.select
            )
            body["@odata.deltaLink"] = f"{base_url}/groups/delta?$deltatoken={link.encode()}"
        else:
            nxt = _Cursor(
                cursor.epoch,
                cursor.issued,
                cursor.since,
                cursor.upto,
                cursor.offset + self.page_size,
                cursor.ids,
                cursor.select,
            )
            body["@odata.nextLink"] = f"{base_url}/groups/delta?$skiptoken={nxt.encode()}"
        return 200, body, {}

    @staticmethod
    def _query_scope(
        query: Mapping[str, str], known: Mapping[str, str] | None
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        select = query.get("$select")
        names = tuple(part.strip() for part in select.split(",") if part.strip()) if select else None
        if names is not None and known is not None:
            unknown = [name for name in names if name.lower() not in known]
            if unknown:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Parsing OData Select and Expand failed: Could not find a property named '{unknown[0]}' "
                    "on type 'microsoft.graph.group'.",
                )
            names = tuple(dict.fromkeys(known[name.lower()] for name in names))
        raw_filter = query.get("$filter")
        if raw_filter is None:
            return None, names
        ids: list[str] = []
        for term in re.split(r"\s+or\s+", raw_filter.strip()):
            match = _FILTER_TERM.match(term)
            if match is None:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Only $filter=id eq '{id}' (joined with 'or') is supported on delta for groups.",
                )
            ids.append(match.group(1))
        if len(ids) > MAX_FILTER_IDS:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"$filter on delta accepts at most {MAX_FILTER_IDS} ids; {len(ids)} were given.",
            )
        return tuple(dict.fromkeys(ids)), names

    @staticmethod
    def _restart_url(base_url: str, cursor: _Cursor) -> str:
        params = []
        if cursor.select:
            params.append("$select=" + ",".join(cursor.select))
        if cursor.ids:
            params.append("$filter=" + " or ".join(f"id eq '{gid}'" for gid in cursor.ids))
        return f"{base_url}/groups/delta" + ("?" + "&".join(params) if params else "")

    def _wants_members(self, cursor: _Cursor) -> bool:
        return cursor.select is None or "members" in cursor.select

    def _properties(self, group_id: str, cursor: _Cursor) -> dict[str, Any]:
        names = None if cursor.select is None else [n for n in cursor.select if n != "members"]
        props = self.source.group_properties(group_id, names)
        props["id"] = group_id
        return props

    def _member_entries(self, ids: Sequence[str], removed: frozenset[str]) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for member in ids:
            entry: dict[str, Any] = {"@odata.type": self.source.odata_type(member), "id": member}
            if member in removed:
                entry["@removed"] = {"reason": "deleted"}
            entries.append(entry)
        return entries

    def _group_items(
        self, group_id: str, cursor: _Cursor, members: Sequence[str], removed: frozenset[str]
    ) -> list[dict[str, Any]]:
        """One item per chunk of members, so a large group spans several items (as Graph splits them)."""
        if not self._wants_members(cursor):
            return [self._properties(group_id, cursor)]
        chunks = [members[i : i + self.member_chunk] for i in range(0, len(members), self.member_chunk)]
        items = []
        for chunk in chunks or [[]]:
            item = self._properties(group_id, cursor)
            item["members@delta"] = self._member_entries(chunk, removed)
            items.append(item)
        return items

    def _full_items(self, cursor: _Cursor) -> list[dict[str, Any]]:
        ids = cursor.ids if cursor.ids is not None else self.source.group_ids()
        items: list[dict[str, Any]] = []
        for group_id in ids:
            if self.source.group_exists(group_id):
                items.extend(
                    self._group_items(group_id, cursor, self.source.member_ids(group_id), frozenset())
                )
        return items

    def _change_items(self, cursor: _Cursor) -> list[dict[str, Any]]:
        wanted = frozenset(cursor.ids) if cursor.ids is not None else None
        touched: dict[str, dict[str, bool]] = {}  # group -> member -> present (the last change wins)
        updated: set[str] = set()
        deleted: set[str] = set()
        for change in self.log.between(cursor.since, cursor.upto):
            if wanted is not None and change.group_id not in wanted:
                continue
            members = touched.setdefault(change.group_id, {})
            if change.kind == "group_deleted":
                deleted.add(change.group_id)
            elif change.kind == "group_updated":
                updated.add(change.group_id)
            elif change.member_id is not None:
                members[change.member_id] = change.kind == "member_added"
        items: list[dict[str, Any]] = []
        only_members = cursor.select == ("members",)
        for group_id, members in touched.items():
            if group_id in deleted or not self.source.group_exists(group_id):
                items.append({"id": group_id, "@removed": {"reason": "deleted"}})
                continue
            if self._wants_members(cursor):
                if not members and only_members:
                    continue  # only membership is tracked and only other properties changed
            elif group_id not in updated:
                continue  # membership is not tracked and nothing else changed
            removed = frozenset(member for member, present in members.items() if not present)
            items.extend(self._group_items(group_id, cursor, list(members), removed))
        return items


class TenantDeltaSource:
    """`DeltaSource` over the sandbox's live tenant (read through the state: a reset replaces it)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def group_ids(self) -> Sequence[str]:
        return sorted(self.state.tenant.groups)

    def group_exists(self, group_id: str) -> bool:
        return group_id in self.state.tenant.groups

    def member_ids(self, group_id: str) -> Sequence[str]:
        return list(self.state.tenant.groups[group_id].members)

    def odata_type(self, object_id: str) -> str:
        return "#microsoft.graph.group" if object_id in self.state.tenant.groups else "#microsoft.graph.user"

    def group_properties(self, group_id: str, names: Sequence[str] | None) -> dict[str, Any]:
        props = self.state.tenant.groups[group_id].props
        return {name: props.get(name) for name in (names if names is not None else _DEFAULT_PROPERTIES)}


_DEFAULT_PROPERTIES = ("displayName", "description", "groupTypes", "mailEnabled", "securityEnabled")
_LOGGED = frozenset({"member_added", "member_removed", "group_updated", "group_deleted"})


def install(sandbox: SandboxApp) -> None:
    """Record group changes in a change log and serve `GET /groups/delta` from it."""
    state = sandbox.state
    log = ChangeLog()
    known = {**GROUP_KNOWN, "members": "members"}
    pager = DeltaPager(log, TenantDeltaSource(state), known=known)

    def record(event: DirectoryEvent) -> None:
        if event.kind in _LOGGED and event.group_id is not None:
            log.record(cast(ChangeKind, event.kind), event.group_id, event.user_id, event.at)

    async def delta(request: GraphRequest) -> GraphResponse:
        status, body, headers = pager.answer(request.query, sandbox.graph_url, state.clock.now())
        return GraphResponse(status, body, headers)

    state.events.subscribe(record)
    state.on_reset.append(log.reset)
    sandbox.router.add(
        "GET",
        "/groups/delta",
        delta,
        permissions={
            "GroupMember.Read.All",
            "GroupMember.ReadWrite.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        },
        cost=1,
    )
