"""The StateStore port on Azure Table Storage: managed identity or connection string.

Optimistic concurrency is the service's own: `replace` and a conditional `delete` send `If-Match` with the
entity's etag, so of two writers holding the same etag exactly one succeeds (the other gets a
ConcurrencyConflict and re-reads); `commit` is an entity group transaction (one partition, all or
nothing). Tables are created on first use. Data is ASCII JSON in chunked string properties (see
table_rules), the same limits the embedded store enforces.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from seatkeeper.adapters.table_rules import (
    check_commit,
    check_key,
    check_table,
    chunks,
    encode_data,
    join_chunks,
)
from seatkeeper.core.errors import ConcurrencyConflict, Throttled, Unavailable
from seatkeeper.core.ports import MAX_COMMIT_WRITES, Entity, RowWrite

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential


@contextmanager
def _transport_errors(what: str) -> Iterator[None]:
    """Map what the SDK raises onto the error tree: busy → Throttled, the rest of I/O → Unavailable."""
    try:
        yield
    except HttpResponseError as exc:
        if exc.status_code in (429, 503):
            raise Throttled(f"table storage busy during {what}") from exc
        if exc.status_code in (401, 403):
            # Retried, then dead-lettered and alerted, never dropped: work resumes once access is granted.
            raise Unavailable(
                f"table storage refused access during {what} ({exc.status_code}): the managed identity needs "
                "the Storage Table Data Contributor role, or the connection string's key is wrong"
            ) from exc
        if exc.status_code is not None and exc.status_code < 500:
            raise
        raise Unavailable(f"table storage failed during {what}: {exc.status_code}") from exc
    except AzureError as exc:
        raise Unavailable(f"table storage unreachable during {what}: {type(exc).__name__}") from exc


def _entity(table: str, raw: Mapping[str, Any], etag: str) -> Entity:
    return Entity(table, str(raw["PartitionKey"]), str(raw["RowKey"]), json.loads(join_chunks(raw)), etag)


class TableStateStore:
    """Entities in Azure Table Storage (or Azurite); build with a connection string or an endpoint."""

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._ready: set[str] = set()

    @classmethod
    def from_connection_string(cls, connection_string: str) -> TableStateStore:
        """From a storage connection string (Azurite, or an account key)."""
        return cls(TableServiceClient.from_connection_string(connection_string))

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: AsyncTokenCredential) -> TableStateStore:
        """From the table endpoint (`https://ACCOUNT.table.core.windows.net`) and a managed identity."""
        return cls(TableServiceClient(endpoint=endpoint, credential=credential))

    async def close(self) -> None:
        """Close the HTTP pipeline (call once, at shutdown)."""
        await self._service.close()

    async def _table(self, table: str) -> TableClient:
        check_table(table)
        if table not in self._ready:
            with _transport_errors("create table"):
                await self._service.create_table_if_not_exists(table)
            self._ready.add(table)
        return self._service.get_table_client(table)

    async def get(self, table: str, partition: str, row: str) -> Entity | None:
        """The entity at this key, or None."""
        client = await self._table(table)
        with _transport_errors("get"):
            try:
                raw = await client.get_entity(partition_key=partition, row_key=row)
            except ResourceNotFoundError:
                return None
        return _entity(table, raw, str(raw.metadata["etag"]))

    async def insert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        """Create the entity; ConcurrencyConflict if it exists."""
        check_key(partition, row)
        text = encode_data(data)
        client = await self._table(table)
        with _transport_errors("insert"):
            try:
                meta = await client.create_entity({"PartitionKey": partition, "RowKey": row, **chunks(text)})
            except ResourceExistsError as exc:
                raise ConcurrencyConflict(f"{table}/{partition}/{row} exists already") from exc
        return Entity(table, partition, row, json.loads(text), str(meta["etag"]))

    async def replace(self, entity: Entity, data: Mapping[str, Any]) -> Entity:
        """Overwrite the entity if its etag still matches; ConcurrencyConflict if not (or gone)."""
        text = encode_data(data)
        client = await self._table(entity.table)
        with _transport_errors("replace"):
            try:
                meta = await client.update_entity(
                    {"PartitionKey": entity.partition, "RowKey": entity.row, **chunks(text)},
                    mode=UpdateMode.REPLACE,
                    etag=entity.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                raise ConcurrencyConflict(f"{entity.table}/{entity.partition}/{entity.row} changed") from exc
            except HttpResponseError as exc:
                if exc.status_code in (404, 412):
                    raise ConcurrencyConflict(
                        f"{entity.table}/{entity.partition}/{entity.row} changed"
                    ) from exc
                raise
        return Entity(entity.table, entity.partition, entity.row, json.loads(text), str(meta["etag"]))

    async def upsert(self, table: str, partition: str, row: str, data: Mapping[str, Any]) -> Entity:
        """Write the entity whatever is there."""
        check_key(partition, row)
        text = encode_data(data)
        client = await self._table(table)
        with _transport_errors("upsert"):
            meta = await client.upsert_entity(
                {"PartitionKey": partition, "RowKey": row, **chunks(text)}, mode=UpdateMode.REPLACE
            )
        return Entity(table, partition, row, json.loads(text), str(meta["etag"]))

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        """Delete the entity (if `etag` is given, only if it still matches; ConcurrencyConflict if not).

        Deleting what is not there is not an error.
        """
        client = await self._table(table)
        with _transport_errors("delete"):
            try:
                if etag is None:
                    await client.delete_entity(partition_key=partition, row_key=row)
                else:
                    await client.delete_entity(
                        partition_key=partition,
                        row_key=row,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except ResourceModifiedError as exc:
                raise ConcurrencyConflict(f"{table}/{partition}/{row} changed") from exc
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    raise ConcurrencyConflict(f"{table}/{partition}/{row} changed") from exc
                raise

    async def query(self, table: str, partition: str | None = None) -> AsyncIterator[Entity]:
        """Every entity of a table (or of one partition), ordered by partition and row."""
        client = await self._table(table)
        with _transport_errors("query"):
            if partition is None:
                pages = client.list_entities()
            else:
                pages = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            async for raw in pages:
                yield _entity(table, raw, str(raw.metadata["etag"]))

    async def commit(self, table: str, partition: str, writes: Sequence[RowWrite]) -> tuple[Entity, ...]:
        """Write rows of one partition in one entity group transaction, all or nothing (see StateStore)."""
        check_commit(partition, [w.row for w in writes], MAX_COMMIT_WRITES)
        texts = [encode_data(w.data) for w in writes]
        operations: list[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, Any]]] = []
        for w, text in zip(writes, texts, strict=True):
            entity = {"PartitionKey": partition, "RowKey": w.row, **chunks(text)}
            if w.etag is None:
                operations.append(("create", entity))
            else:
                condition: dict[str, Any] = {
                    "mode": UpdateMode.REPLACE,
                    "etag": w.etag,
                    "match_condition": MatchConditions.IfNotModified,
                }
                operations.append(("update", entity, condition))
        client = await self._table(table)
        with _transport_errors("commit"):
            try:
                metas = await client.submit_transaction(operations)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
                raise ConcurrencyConflict(f"{table}/{partition}: a row exists or changed") from exc
            except TableTransactionError as exc:
                # 409: a row to insert exists; 412: an etag no longer matches; 404: a row to replace is gone.
                if exc.status_code in (404, 409, 412):
                    raise ConcurrencyConflict(f"{table}/{partition}: a row exists or changed") from exc
                raise
        return tuple(
            Entity(table, partition, w.row, json.loads(text), str(meta["etag"]))
            for w, text, meta in zip(writes, texts, metas, strict=True)
        )

    async def check(self) -> None:
        """Probe for health: one cheap list call (first page of tables)."""
        with _transport_errors("health check"):
            async for _ in self._service.list_tables(results_per_page=1):
                break
