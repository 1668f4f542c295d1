"""The Graph client: one httpx client per process, tokens from a TokenProvider, and Graph done properly —
Retry-After honoured, jittered back-off for idempotent calls, a retry budget, paging, `$batch` with
per-item retries, bulk member adds that survive existing members and replication lag, and counters.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import structlog

from seatkeeper.adapters.graph.failures import ALREADY_MEMBER, REFERENCE_MISSING, error_for
from seatkeeper.adapters.graph.operations import WRITE_METHODS, OperationCounters, operation_name
from seatkeeper.adapters.graph.pacing import WritePacer
from seatkeeper.adapters.graph.retrying import RETRYABLE_5XX, Attempts, RetryPolicy, retry_after_seconds
from seatkeeper.adapters.graph.tokens import TokenProvider, token_roles
from seatkeeper.core.errors import NotFound, Rejected, SeatkeeperError, Unavailable
from seatkeeper.core.graph_port import GraphPage, GraphRequest, GraphResponse, MemberAddResult, OperationCount

BATCH_SIZE: Final = 20  # Graph's limit for `$batch` and for `members@odata.bind` (graph-facts D, I)
_BATCH_RETRYABLE: Final = frozenset({429, 424}) | RETRYABLE_5XX
_log = structlog.get_logger("seatkeeper.graph")

Sleep = Callable[[float], Awaitable[None]]


def ssl_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """The system trust store, plus the sandbox's CA when one is given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def build_http_client(*, verify: ssl.SSLContext, timeout_seconds: float) -> httpx.AsyncClient:
    """The one async HTTP client of the process; environment proxies and CA bundles are not consulted."""
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(timeout_seconds),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        headers={"User-Agent": "Seatkeeper/0.1"},
        trust_env=False,
    )


class GraphClient:
    """Microsoft Graph behind the GraphPort protocol. Build once per process; close with `aclose()`."""

    def __init__(
        self,
        *,
        graph_url: str,
        http: httpx.AsyncClient,
        token: TokenProvider,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        pacer: WritePacer | None = None,
    ) -> None:
        self._base = graph_url.rstrip("/")
        base = urlsplit(self._base)
        self._origin = f"{base.scheme}://{base.netloc}"
        self._version_path = base.path
        self._http = http
        self._token = token
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng
        self._monotonic = monotonic
        self._counters = OperationCounters()
        self._pacer = pacer or WritePacer(monotonic=monotonic, sleep=sleep)

    async def aclose(self) -> None:
        """Close the HTTP client (at the end of the process or test)."""
        await self._http.aclose()

    def counters(self) -> Mapping[str, OperationCount]:
        """Requests, inner requests and writes per operation since start."""
        return self._counters.snapshot()

    async def granted_roles(self) -> frozenset[str]:
        """The application permissions the current token carries."""
        return token_roles(await self._token())

    # -- reads ---------------------------------------------------------------------------------------

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        """GET one resource as JSON; `retry_not_found` waits out replication lag for new objects."""
        response = await self._request("GET", path, params=params, idempotent=True, lag=retry_not_found)
        body: Mapping[str, Any] = response.json()
        return body

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        """Every page of a collection or delta query, following `@odata.nextLink` as given."""
        url: str | None = path
        query = params
        while url is not None:
            response = await self._request("GET", url, params=query, idempotent=True)
            body = response.json()
            url, query = body.get("@odata.nextLink"), None
            yield GraphPage(
                items=tuple(body.get("value", ())), next_link=url, delta_link=body.get("@odata.deltaLink")
            )

    # -- writes --------------------------------------------------------------------------------------

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        """A write; 429 is always retried, 5xx and timeouts only when the caller says it is idempotent."""
        response = await self._request(method, path, json=body, idempotent=idempotent)
        if response.status_code == 204 or not response.content:
            return None
        result: Mapping[str, Any] = response.json()
        return result

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        """Add users 20 a request with `members@odata.bind`; split a refused request to find who blocks it."""
        unique = list(dict.fromkeys(user_ids))
        added: list[str] = []
        already: list[str] = []
        missing: list[str] = []
        for start in range(0, len(unique), BATCH_SIZE):
            chunk = unique[start : start + BATCH_SIZE]
            await self._add_chunk(group_id, chunk, added, already, missing, lag=True)
        if already or missing:
            _log.info(
                "graph.members_partly_added",
                group_id=group_id,
                added=len(added),
                already_members=len(already),
                not_found=len(missing),
            )
        return MemberAddResult(tuple(added), tuple(already), tuple(missing))

    async def _add_chunk(
        self,
        group_id: str,
        chunk: list[str],
        added: list[str],
        already: list[str],
        missing: list[str],
        *,
        lag: bool,
    ) -> None:
        """One PATCH; when it is refused because of one member, halve it until that member is isolated.

        A repeat after a lost answer is refused as "already exist". Graph adds all of a PATCH or none
        (graph-facts I), so when every member of a chunk whose earlier try went unanswered is found present,
        that try added them: they count as added (whose they are decides later removals), not as members
        from before.
        """
        body = {"members@odata.bind": [f"{self._base}/directoryObjects/{u}" for u in chunk]}
        attempts = self._attempts()
        try:
            await self._request(
                "PATCH", f"/groups/{group_id}", json=body, idempotent=True, lag=lag, attempts=attempts
            )
        except (Rejected, NotFound) as error:
            text = str(error)
            is_already = isinstance(error, Rejected) and ALREADY_MEMBER.search(text) is not None
            is_missing = isinstance(error, NotFound) or REFERENCE_MISSING.search(text) is not None
            if (isinstance(error, NotFound) and group_id in text) or not (is_already or is_missing):
                raise
            if len(chunk) == 1:
                ours = is_already and attempts.uncertain
                (added if ours else already if is_already else missing).append(chunk[0])
                return
            # Graph adds nobody when one reference fails (graph-facts I): find the culprits by halving.
            middle = len(chunk) // 2
            found: tuple[list[str], list[str], list[str]] = ([], [], [])
            await self._add_chunk(group_id, chunk[:middle], *found, lag=False)
            await self._add_chunk(group_id, chunk[middle:], *found, lag=False)
            if attempts.uncertain and is_already and not found[0] and not found[2]:
                added.extend(chunk)
                return
            added.extend(found[0])
            already.extend(found[1])
            missing.extend(found[2])
        else:
            added.extend(chunk)

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        """Remove a member; False when the user was not one (404)."""
        try:
            await self._request("DELETE", f"/groups/{group_id}/members/{user_id}/$ref", idempotent=True)
        except NotFound:
            return False
        return True

    # -- $batch --------------------------------------------------------------------------------------

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        """Requests 20 at a time; throttled (and, for reads, 5xx) items are retried alone, after the
        longest Retry-After among them. Items still failing when the budget ends keep their status."""
        results: list[GraphResponse] = [GraphResponse(status=0) for _ in requests]
        for start in range(0, len(requests), BATCH_SIZE):
            pending = list(range(start, min(start + BATCH_SIZE, len(requests))))
            attempts = self._attempts()
            while pending:
                attempts.number += 1
                pending, wait = await self._batch_once(requests, pending, results, attempts)
                if not pending:
                    break
                if not attempts.allows(wait):
                    _log.warning(
                        "graph.batch_items_left_failing", items=len(pending), attempt=attempts.number
                    )
                    break
                _log.info(
                    "graph.batch_retry_scheduled", items=len(pending), delay=wait, attempt=attempts.number
                )
                await self._wait(attempts, wait)
        return results

    async def _batch_once(
        self,
        requests: Sequence[GraphRequest],
        pending: list[int],
        results: list[GraphResponse],
        attempts: Attempts,
    ) -> tuple[list[int], float]:
        """Send one `$batch` of the pending items; return those worth another try and how long to wait."""
        body = {"requests": [_batch_item(i, requests[i]) for i in pending]}
        reads_only = all(requests[i].method.upper() == "GET" for i in pending)
        writes = sum(requests[i].method.upper() in WRITE_METHODS for i in pending)
        if writes:
            await self._pacer.acquire(writes)
        response = await self._request("POST", "/$batch", json=body, idempotent=reads_only, batch=True)
        for i in pending:
            method = requests[i].method.upper()
            self._counters.inner(operation_name(method, requests[i].url), write=method in WRITE_METHODS)
        retry: list[int] = []
        wait = 0.0
        for item in response.json().get("responses", ()):
            index = int(item["id"])
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            results[index] = GraphResponse(int(item["status"]), item.get("body"), headers)
            status = results[index].status
            worth_it = status in (429, 424) or (
                status in RETRYABLE_5XX and requests[index].method.upper() == "GET"
            )
            if worth_it:
                retry.append(index)
                after = retry_after_seconds(_header(headers, "Retry-After"))
                wait = max(wait, after if after is not None else attempts.backoff())
        return sorted(retry), wait

    # -- the one place requests are sent ---------------------------------------------------------------

    def _url(self, path: str) -> str:
        """An absolute URL on Graph's origin; links from Graph are used as given, never another host."""
        if path.startswith(("https://", "http://")):
            if not path.startswith(self._origin + "/"):
                raise ValueError("refusing to send a Graph token to another host")
            return path
        return f"{self._base}/{path.lstrip('/')}"

    def _attempts(self) -> Attempts:
        return Attempts(self._retry, rng=self._rng, monotonic=self._monotonic)

    async def _wait(self, attempts: Attempts, delay: float) -> None:
        attempts.waited(delay)
        await self._sleep(delay)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool,
        lag: bool = False,
        batch: bool = False,
        attempts: Attempts | None = None,
    ) -> httpx.Response:
        """Send with retries: 429 after Retry-After (else back-off); 5xx, timeouts and dropped connections
        with jittered back-off when idempotent (or when the request never left); replication-lag 404/400
        briefly when `lag`. Past the budget the core error propagates. `attempts`, when given, is left
        with what the tries did (e.g. whether one of them may have been carried out unanswered)."""
        url = self._url(path)
        op = operation_name(method, url, self._version_path)
        attempts = attempts or self._attempts()
        lag_delays = list(self._retry.lag_delays) if lag else []
        while True:
            attempts.number += 1
            outcome, delay = await self._attempt(
                method,
                url,
                params=params,
                json=json,
                op=op,
                idempotent=idempotent,
                attempts=attempts,
                batch=batch,
            )
            if isinstance(outcome, httpx.Response):
                return outcome
            if delay is None and lag_delays and _is_lag(outcome):
                delay = lag_delays.pop(0)
            if delay is None or not attempts.allows(delay):
                raise outcome
            _log.info(
                "graph.retry_scheduled",
                op=op,
                attempt=attempts.number,
                delay=round(delay, 3),
                reason=type(outcome).__name__,
            )
            await self._wait(attempts, delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        op: str,
        idempotent: bool,
        attempts: Attempts,
        batch: bool,
    ) -> tuple[httpx.Response | SeatkeeperError, float | None]:
        """One try: the response when it succeeded, else the error and the delay before a retry (or None)."""
        write = method.upper() in WRITE_METHODS and not batch
        if write:
            await self._pacer.acquire()
        headers = {"Authorization": f"Bearer {await self._token()}"}
        self._counters.request(op, write=write)
        try:
            response = await self._http.request(method, url, params=params, json=json, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # The request never reached Graph: safe to repeat whatever it was.
            return Unavailable(f"{op}: {type(error).__name__}"), attempts.backoff()
        except httpx.TransportError as error:
            # Sent, answer lost (timeout, reset): repeat only what is idempotent.
            attempts.uncertain = True
            return Unavailable(f"{op}: {type(error).__name__}"), attempts.backoff() if idempotent else None
        if response.status_code < 400:
            return response, None
        if response.status_code >= 500:
            attempts.uncertain = True
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        failure = error_for(response.status_code, response.content, op, retry_after)
        if response.status_code == 429 or (response.status_code in RETRYABLE_5XX and idempotent):
            return failure, retry_after if retry_after is not None else attempts.backoff()
        return failure, None


def _is_lag(error: SeatkeeperError) -> bool:
    """A 404, or a 400 naming a missing reference: what a just-created object answers for a few seconds."""
    return isinstance(error, NotFound) or (
        isinstance(error, Rejected)
        and error.status == 400
        and REFERENCE_MISSING.search(str(error)) is not None
    )


def _batch_item(index: int, request: GraphRequest) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(index), "method": request.method.upper(), "url": request.url}
    headers = dict(request.headers)
    if request.body is not None:
        item["body"] = dict(request.body)
        headers.setdefault("Content-Type", "application/json")
    if headers:
        item["headers"] = headers
    return item


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)
