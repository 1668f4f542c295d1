"""A small recording tenant for the admission, verification and reprocess handler tests (no tests here).

`Tenant` implements the Graph port over users, groups, SKUs and members held as Graph JSON, with a toy
licensing engine: what a member gets on add or reprocess is set per user in `outcome`. Every write is kept
in `writes`, every member add request in `add_requests`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from handlers.license_commands import LicenseDeps
from handlers.tenant_reads import TenantReads
from seatkeeper.adapters.seat_store import StateSeatStore
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.core.errors import Forbidden, NotFound, Unavailable
from seatkeeper.core.graph_port import GraphPage, GraphRequest, GraphResponse, MemberAddResult, OperationCount
from seatkeeper.core.license_messages import LICENSE_CHECK_KIND
from seatkeeper.core.messages import Message
from seatkeeper.core.policy import LicensingGroup, Policy
from seatkeeper.core.ports import StateStore
from seatkeeper.core.seats import reservation_timeout
from tests.unit.test_gate_builders import COPILOT, E3, GROUP, NOW

OTHER = "0b6e0000-0000-4000-8000-0000000000aa"


def user_json(
    n: int,
    *,
    licenses: Sequence[str] = (E3,),
    usage_location: str | None = "US",
    enabled: bool = True,
    states: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """User number `n` as Graph shows it with USER_SELECT: base licenses active and direct."""
    return {
        "id": user_id(n),
        "userPrincipalName": f"user{n}@contoso.example",
        "accountEnabled": enabled,
        "usageLocation": usage_location,
        "assignedLicenses": [{"skuId": s, "disabledPlans": []} for s in licenses],
        "licenseAssignmentStates": [
            {"skuId": s, "state": "Active", "error": "None", "assignedByGroup": None} for s in licenses
        ]
        + list(states),
    }


def user_id(n: int) -> str:
    return f"a1b2c3d4-0000-4000-8000-{n:012d}"


def sku_json(
    sku_id: str, part: str, *, enabled: int, consumed: int, plans: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "skuId": sku_id,
        "skuPartNumber": part,
        "capabilityStatus": "Enabled",
        "prepaidUnits": {"enabled": enabled},
        "consumedUnits": consumed,
        "servicePlans": [{"servicePlanId": p, "servicePlanName": p} for p in plans],
        "appliesTo": "User",
    }


def group_json(group_id: str = GROUP, *, dynamic: bool = False, mail_enabled: bool = False) -> dict[str, Any]:
    return {
        "id": group_id,
        "displayName": "Copilot - Sales",
        "groupTypes": ["DynamicMembership"] if dynamic else [],
        "mailEnabled": mail_enabled,
        "securityEnabled": True,
    }


@dataclass
class Tenant:
    """The Graph port over a toy tenant; `outcome[user]` = (state, error) the engine gives on add/reprocess
    (missing: nothing yet, as while group-based licensing is still working)."""

    clock: FakeClock
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=lambda: {GROUP: group_json()})
    skus: list[dict[str, Any]] = field(
        default_factory=lambda: [
            sku_json(COPILOT, "Microsoft_365_Copilot", enabled=20, consumed=10),
            sku_json(E3, "SPE_E3", enabled=100, consumed=10, plans=("EXCHANGE_S_ENTERPRISE",)),
        ]
    )
    members: dict[str, list[str]] = field(default_factory=dict)
    outcome: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    add_requests: list[tuple[str, int]] = field(default_factory=list)
    # Users whose writes inside a `$batch` stay throttled (429) past the client's retries.
    throttled: set[str] = field(default_factory=set)
    # The next member add is carried out, but its answer is lost (a dropped connection, a timeout).
    lose_next_add_answer: bool = False
    # The next member add fails (a 503) before anything lands.
    fail_next_add: bool = False
    # Member adds are refused as Graph refuses a group it will not write.
    refuse_adds: bool = False

    def add_user(self, data: dict[str, Any]) -> str:
        self.users[data["id"]] = data
        return str(data["id"])

    def _user(self, key: str) -> dict[str, Any] | None:
        key = key.lower()
        return next(
            (u for u in self.users.values() if key in (u["id"], str(u["userPrincipalName"]).lower())), None
        )

    def license(self, user: str, group: str = GROUP, sku: str = COPILOT) -> tuple[str, str | None] | None:
        """The state and error of the user's group assignment, if any."""
        data = self.users[user]
        for s in data["licenseAssignmentStates"]:
            if s["skuId"] == sku and s.get("assignedByGroup") == group:
                return str(s["state"]), s.get("error")
        return None

    def set_license(self, user: str, state: str, error: str | None = None, group: str = GROUP) -> None:
        """Group-based licensing gives (or changes) the user's Copilot assignment from the group."""
        data = self.users[user]
        data["licenseAssignmentStates"] = [
            s
            for s in data["licenseAssignmentStates"]
            if not (s["skuId"] == COPILOT and s.get("assignedByGroup") == group)
        ] + [
            {
                "skuId": COPILOT,
                "state": state,
                "error": error or "None",
                "assignedByGroup": group,
                "lastUpdatedDateTime": self.clock.now().isoformat(),
            }
        ]

    def _engine(self, user: str, group: str) -> None:
        if user in self.outcome:
            self.set_license(user, *self.outcome[user], group=group)

    # -- the Graph port ----------------------------------------------------------------------------------

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        answer = self._read(path)
        if answer is None:
            raise NotFound(f"GET {path.split('?', maxsplit=1)[0]}: 404")
        return answer

    def _read(self, path: str) -> Mapping[str, Any] | None:
        bare = path.split("?", maxsplit=1)[0]
        parts = bare.strip("/").split("/")
        if parts == ["subscribedSkus"]:
            return {"value": [dict(s) for s in self.skus]}
        if parts[0] == "groups" and len(parts) == 2:
            return self.groups.get(parts[1])
        if parts[0] == "groups" and parts[2:] == ["membersWithLicenseErrors"]:
            ids = [
                u
                for u in self.members.get(parts[1], [])
                if (self.license(u, parts[1]) or ("",))[0] == "Error"
            ]
            return {
                "value": [{"id": u, "userPrincipalName": self.users[u]["userPrincipalName"]} for u in ids]
            }
        if parts[0] == "users" and len(parts) == 2:
            user = self._user(parts[1].replace("%40", "@"))
            return dict(user) if user is not None else None
        return None

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        body = await self.get(path, params=params)
        yield GraphPage(items=tuple(body.get("value", ())))

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        self.writes.append((method, path))
        parts = path.strip("/").split("/")
        user = self._user(parts[1])
        if user is None:
            raise NotFound(f"{method} {path}: 404")
        if method == "PATCH" and body is not None:
            user.update(body)
        elif parts[2:] == ["reprocessLicenseAssignment"]:
            for group, members in self.members.items():
                if user["id"] in members:
                    self._engine(user["id"], group)
        return None

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        answers: list[GraphResponse] = []
        for request in requests:
            if request.method == "GET":
                body = self._read(request.url)
                answers.append(GraphResponse(200, body) if body is not None else GraphResponse(404))
                continue
            if request.url.split("/")[2] in self.throttled:
                answers.append(GraphResponse(429))
                continue
            try:
                await self.send(request.method, request.url, request.body)
            except NotFound:
                answers.append(GraphResponse(404))
            else:
                answers.append(GraphResponse(200, {}))
        return answers

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        if self.groups[group_id]["groupTypes"] or self.groups[group_id]["mailEnabled"]:
            raise AssertionError("a member write reached a group Graph would refuse")
        self.add_requests.append((group_id, len(user_ids)))
        if self.refuse_adds:
            raise Forbidden("Insufficient privileges to complete the operation.")
        if self.fail_next_add:
            self.fail_next_add = False
            raise Unavailable("503 before anything was written")
        current = self.members.setdefault(group_id, [])
        added, already, missing = [], [], []
        for user in dict.fromkeys(user_ids):
            if user not in self.users:
                missing.append(user)
            elif user in current:
                already.append(user)
            else:
                current.append(user)
                added.append(user)
                self.writes.append(("ADD", f"{group_id}/{user}"))
                self._engine(user, group_id)
        if self.lose_next_add_answer:
            self.lose_next_add_answer = False
            raise Unavailable("the connection dropped before the answer")
        return MemberAddResult(tuple(added), tuple(already), tuple(missing))

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        current = self.members.setdefault(group_id, [])
        if user_id not in current:
            return False
        current.remove(user_id)
        return True

    async def granted_roles(self) -> frozenset[str]:
        return frozenset()

    def counters(self) -> Mapping[str, OperationCount]:
        return {}


@dataclass
class FakeClock:
    """Business time that tests move by hand."""

    current: datetime = NOW

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass
class RecordingSender:
    """Keeps every message sent."""

    sent: list[Message] = field(default_factory=list)

    async def send(self, messages: Sequence[Message]) -> None:
        self.sent.extend(messages)

    def kinds(self, kind: str) -> list[Message]:
        return [m for m in self.sent if m.kind == kind]

    def rechecks(self) -> list[tuple[str, datetime | None, Mapping[str, Any]]]:
        return [(m.subject, m.scheduled_for, m.payload) for m in self.kinds(LICENSE_CHECK_KIND)]

    def alerts(self) -> list[tuple[str, str]]:
        """(problem, cause) of every alert sent."""
        return [(str(m.payload["problem"]), str(m.payload["cause"])) for m in self.kinds("alert")]


def licensing_policy(*, group: LicensingGroup | None = None, **changes: Any) -> Policy:
    """One Copilot group with the default allow-list (E3 qualifies)."""
    return Policy(
        licensing_groups=(group or LicensingGroup(GROUP, "Copilot - Sales", (COPILOT,)),), **changes
    )


@dataclass
class World:
    """Everything a license handler needs, with the tenant, sender, clock and seat store to look at."""

    tenant: Tenant
    sender: RecordingSender
    clock: FakeClock
    seats: StateSeatStore
    deps: LicenseDeps
    state: StateStore

    def with_policy(self, policy: Policy) -> World:
        self.deps.policy = policy
        return self


def world_on(state: StateStore, policy: Policy | None = None) -> World:
    """A world over the given state store (SQLite or Table Storage)."""
    clock = FakeClock()
    tenant = Tenant(clock)
    sender = RecordingSender()
    policy = policy or licensing_policy()
    seats = StateSeatStore(state, timeout=reservation_timeout(policy.verification_deadline))
    deps = LicenseDeps(
        graph=tenant,
        reads=TenantReads(tenant, clock),
        seats=seats,
        sender=sender,
        clock=clock,
        policy=policy,
    )
    return World(tenant, sender, clock, seats, deps, state)


def build_world(tmp_path: Path, policy: Policy | None = None) -> tuple[World, Callable[[], None]]:
    """A world over a fresh SQLite state store; call the returned closer at the end."""
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    return world_on(state, policy), state.close
