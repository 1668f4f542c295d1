"""The Graph client against the sandbox over HTTPS, with a real MSAL application: tokens, reads, paging,
bulk member adds, and behaviour under 429 (with and without Retry-After), 503, timeouts, dropped
connections and per-item `$batch` throttling, injected with the sandbox's fault rules. Waits are recorded,
never slept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from seatkeeper.adapters.graph.client import GraphClient, build_http_client, ssl_context
from seatkeeper.adapters.graph.retrying import RetryPolicy
from seatkeeper.adapters.graph.tokens import confidential_client_provider
from seatkeeper.bootstrap import build_graph
from seatkeeper.core.errors import Throttled, Unavailable
from seatkeeper.core.graph_port import GraphRequest, missing_roles
from seatkeeper.core.sensitive import Secret
from seatkeeper.settings import CredentialKind, GraphSettings
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.anyio

AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
DYNAMIC_SALES = "54497e83-235d-475e-ab4b-bccbc006bfc0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingSleep:
    """Records each wait the client asks for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Rig:
    """A Graph client on the sandbox, its recorded waits, and the sandbox's control plane."""

    graph: GraphClient
    sleep: RecordingSleep
    info: SandboxInfo

    def faults(self, *rules: Mapping[str, Any]) -> None:
        _control(self.info, "POST", "/faults", {"seed": 1, "rules": list(rules)})


def _control(info: SandboxInfo, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(verify=info.ssl_context(), trust_env=False) as client:
        response = client.request(method, f"{info.control_url}{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture
def msal_http(tenant: SandboxInfo) -> Iterator[httpx.Client]:
    """MSAL's synchronous HTTP client, trusting the sandbox's CA (closed after the test)."""
    with httpx.Client(verify=tenant.ssl_context(), trust_env=False) as client:
        yield client


def _client(
    info: SandboxInfo, sleep: RecordingSleep, msal_http: httpx.Client, *, timeout: float = 10.0
) -> GraphClient:
    token = confidential_client_provider(
        client_id=info.client_id,
        authority=info.authority,
        credential=info.client_secret,
        scope="https://graph.microsoft.com/.default",
        http_client=msal_http,
        instance_discovery=False,
    )
    return GraphClient(
        graph_url=info.graph_url,
        http=build_http_client(verify=ssl_context(Path(info.ca_file)), timeout_seconds=timeout),
        token=token,
        retry=RetryPolicy(budget_seconds=30.0, lag_delays=(0.5, 1.0)),
        sleep=sleep,
        rng=lambda: 0.5,
    )


@pytest.fixture
async def rig(tenant: SandboxInfo, msal_http: httpx.Client) -> AsyncIterator[Rig]:
    sleep = RecordingSleep()
    graph = _client(tenant, sleep, msal_http)
    try:
        yield Rig(graph, sleep, tenant)
    finally:
        _control(tenant, "DELETE", "/faults")
        await graph.aclose()


async def _ids(graph: GraphClient, path: str) -> list[str]:
    return [
        str(item["id"]) async for page in graph.pages(path, params={"$select": "id"}) for item in page.items
    ]


async def test_bootstrap_builds_a_working_client_from_settings(tenant: SandboxInfo) -> None:
    """The composition root's client gets a real MSAL token and carries every permission the code needs."""
    settings = GraphSettings(
        tenant_id=tenant.tenant_id,
        graph_url=tenant.graph_url,
        authority=tenant.authority,
        credential=CredentialKind.SECRET,
        client_id=tenant.client_id,
        client_secret=Secret(tenant.client_secret),
        ca_file=Path(tenant.ca_file),
        token_resource="https://graph.microsoft.com",
    )
    graph, closers = build_graph(settings)
    try:
        roles = await graph.granted_roles()
        user = await graph.get("/users", params={"$top": "1", "$select": "id"})
    finally:
        for close in reversed(closers):
            await close()
    assert missing_roles(roles, needs_mail=True) == ()
    assert len(user["value"]) == 1


async def test_reads_with_select_and_counts_them(rig: Rig) -> None:
    """One GET answers the selected fields and is counted under its operation name."""
    first = (await rig.graph.get("/users", params={"$top": "1", "$select": "id"}))["value"][0]["id"]
    user = await rig.graph.get(f"/users/{first}", params={"$select": "id,usageLocation,assignedLicenses"})
    assert user["id"] == first
    assert "usageLocation" in user
    counts = rig.graph.counters()
    assert (counts["GET /users/{id}"].requests, counts["GET /users/{id}"].writes) == (1, 0)


async def test_paging_follows_next_links_to_the_end(rig: Rig) -> None:
    """200 users in pages of 50: four requests, every user once."""
    ids = [
        str(i["id"])
        async for p in rig.graph.pages("/users", params={"$top": "50", "$select": "id"})
        for i in p.items
    ]
    assert len(ids) == len(set(ids)) == 200
    assert rig.graph.counters()["GET /users"].requests == 4


async def test_throttled_read_waits_retry_after_then_succeeds(rig: Rig) -> None:
    """Two 429s with Retry-After: 3 → two waits of exactly 3 s, then the answer."""
    rig.faults({"path": "/users$", "kind": "throttle", "retry_after": 3, "count": 2})
    body = await rig.graph.get("/users", params={"$top": "1", "$select": "id"})
    assert len(body["value"]) == 1
    assert rig.sleep.delays == [3.0, 3.0]
    assert rig.graph.counters()["GET /users"].requests == 3


async def test_throttled_read_without_retry_after_backs_off_with_jitter(rig: Rig) -> None:
    """Three 429s without Retry-After → exponential back-off with full jitter (0.5, 1, 2 s at rng 0.5)."""
    rig.faults({"path": "/users$", "kind": "throttle", "retry_after": None, "count": 3})
    body = await rig.graph.get("/users", params={"$top": "1", "$select": "id"})
    assert len(body["value"]) == 1
    assert rig.sleep.delays == [0.25, 0.5, 1.0]
    assert rig.graph.counters()["GET /users"].requests == 4


async def test_throttling_past_the_budget_propagates_with_retry_after(rig: Rig) -> None:
    """When waiting would exceed the budget, Throttled propagates (the queue retries later)."""
    rig.faults({"path": "/users$", "kind": "throttle", "retry_after": 12})
    with pytest.raises(Throttled) as caught:
        await rig.graph.get("/users", params={"$top": "1"})
    assert caught.value.retry_after == 12
    assert rig.sleep.delays == [12.0, 12.0]  # a third wait would pass the 30 s budget


async def test_throttled_writes_are_retried_too(rig: Rig) -> None:
    """A 429 means Graph did nothing, so even a non-idempotent write is repeated after Retry-After."""
    user = (await _ids(rig.graph, "/users?$top=1"))[0]
    rig.faults({"path": "reprocessLicenseAssignment", "kind": "throttle", "retry_after": 2, "count": 1})
    await rig.graph.send("POST", f"/users/{user}/reprocessLicenseAssignment")
    assert rig.sleep.delays == [2.0]
    assert rig.graph.counters()["POST /users/{id}/reprocessLicenseAssignment"].writes == 2


async def test_unavailable_read_is_retried(rig: Rig) -> None:
    """503s on a GET are retried (after the server's Retry-After) until it answers."""
    rig.faults({"path": "/subscribedSkus", "kind": "unavailable", "retry_after": 1, "count": 2})
    body = await rig.graph.get("/subscribedSkus", params={"$select": "skuId"})
    assert body["value"]
    assert rig.sleep.delays == [1.0, 1.0]


async def test_unavailable_non_idempotent_write_is_not_repeated(rig: Rig) -> None:
    """A 503 on a write that is not idempotent propagates at once: the queue decides, not a blind repeat."""
    user = (await _ids(rig.graph, "/users?$top=1"))[0]
    rig.faults({"path": "reprocessLicenseAssignment", "kind": "unavailable", "count": 1})
    with pytest.raises(Unavailable):
        await rig.graph.send("POST", f"/users/{user}/reprocessLicenseAssignment")
    assert rig.sleep.delays == []


async def test_timeout_on_a_read_is_retried(tenant: SandboxInfo, msal_http: httpx.Client) -> None:
    """A reply slower than the client's timeout is abandoned and the GET repeated after a back-off."""
    sleep = RecordingSleep()
    graph = _client(tenant, sleep, msal_http, timeout=0.5)
    try:
        await graph.granted_roles()  # the token first, so only Graph is slow
        _control(
            tenant,
            "POST",
            "/faults",
            {"rules": [{"path": "/subscribedSkus", "kind": "slow", "delay": 2.0, "count": 1}]},
        )
        body = await graph.get("/subscribedSkus", params={"$select": "skuId"})
    finally:
        _control(tenant, "DELETE", "/faults")
        await graph.aclose()
    assert body["value"]
    assert sleep.delays == [0.25]  # full jitter at rng 0.5 of the 0.5 s base


async def test_dropped_connection_on_a_read_is_retried(rig: Rig) -> None:
    """A connection dropped mid-request is retried for a GET."""
    rig.faults({"path": "/subscribedSkus", "kind": "drop", "count": 1})
    body = await rig.graph.get("/subscribedSkus", params={"$select": "skuId"})
    assert body["value"]
    assert len(rig.sleep.delays) == 1


async def test_dropped_connection_on_a_write_propagates(rig: Rig) -> None:
    """The write may have happened: no blind repeat, Unavailable for the queue to redeliver."""
    user = (await _ids(rig.graph, "/users?$top=1"))[0]
    rig.faults({"path": "reprocessLicenseAssignment", "kind": "drop", "count": 1})
    with pytest.raises(Unavailable):
        await rig.graph.send("POST", f"/users/{user}/reprocessLicenseAssignment")


async def test_batch_retries_only_the_throttled_items(rig: Rig) -> None:
    """25 reads go as 20 + 5; two throttled items are sent again alone; answers keep request order."""
    users = (await _ids(rig.graph, "/users?$top=25"))[:25]
    rig.faults({"path": f"/users/({users[3]}|{users[7]})$", "kind": "throttle", "retry_after": 2, "count": 2})
    answers = await rig.graph.batch([GraphRequest("GET", f"/users/{u}?$select=id") for u in users])
    assert [a.status for a in answers] == [200] * 25
    assert [a.body["id"] if a.body else None for a in answers] == users
    assert rig.sleep.delays == [2.0]
    counts = rig.graph.counters()
    assert counts["POST /$batch"].requests == 3
    assert counts["GET /users/{id}"].inner_requests == 27


async def test_add_members_in_bulk_skips_existing_and_missing(rig: Rig) -> None:
    """22 new members are added 20 a request; two existing members and an unknown id do not block them."""
    members = await _ids(rig.graph, f"/groups/{AMERICAS}/members")
    everyone = await _ids(rig.graph, "/users?$top=999")
    newcomers = [u for u in everyone if u not in members][:22]
    unknown = "00000000-0000-4000-8000-000000000000"
    result = await rig.graph.add_members(AMERICAS, [members[0], *newcomers, members[1], unknown])
    assert sorted(result.added) == sorted(newcomers)
    assert sorted(result.already_members) == sorted(members[:2])
    assert result.not_found == (unknown,)
    assert sorted(await _ids(rig.graph, f"/groups/{AMERICAS}/members")) == sorted(members + newcomers)


async def test_add_members_to_an_existing_group_member_set_is_a_no_op(rig: Rig) -> None:
    """Adding only members the group already has adds nobody and raises nothing (convergent)."""
    members = await _ids(rig.graph, f"/groups/{AMERICAS}/members")
    result = await rig.graph.add_members(AMERICAS, members)
    assert (result.added, sorted(result.already_members)) == ((), sorted(members))


class WaitingSleep(RecordingSleep):
    """Records each wait and really waits a fixed time, so a slow request can land before the retry."""

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(1.5)


async def test_an_add_carried_out_after_its_answer_was_lost_counts_as_added(
    tenant: SandboxInfo, msal_http: httpx.Client
) -> None:
    """The PATCH outlives the client's timeout but Graph carries it out; the repeat is refused "already
    exist". Those members were added by the lost try (Graph adds all of a PATCH or none): added, not
    members from before, while a member from before stays one."""
    graph = _client(tenant, WaitingSleep(), msal_http, timeout=0.5)
    try:
        members = await _ids(graph, f"/groups/{AMERICAS}/members")
        newcomers = [u for u in await _ids(graph, "/users?$top=999") if u not in members][:3]
        _control(
            tenant,
            "POST",
            "/faults",
            {
                "rules": [
                    {
                        "path": f"/groups/{AMERICAS}$",
                        "method": "PATCH",
                        "kind": "slow",
                        "delay": 0.8,
                        "count": 1,
                    }
                ]
            },
        )
        result = await graph.add_members(AMERICAS, newcomers)
        _control(tenant, "DELETE", "/faults")
        again = await graph.add_members(AMERICAS, [members[0], newcomers[0]])
    finally:
        _control(tenant, "DELETE", "/faults")
        await graph.aclose()
    assert (sorted(result.added), result.already_members) == (sorted(newcomers), ())
    assert (again.added, sorted(again.already_members)) == ((), sorted([members[0], newcomers[0]]))


async def test_remove_member_reports_whether_it_was_one(rig: Rig) -> None:
    """Removing twice: True, then False, and the member is gone."""
    member = (await _ids(rig.graph, f"/groups/{AMERICAS}/members"))[0]
    assert await rig.graph.remove_member(AMERICAS, member)
    assert not await rig.graph.remove_member(AMERICAS, member)
    assert member not in await _ids(rig.graph, f"/groups/{AMERICAS}/members")
