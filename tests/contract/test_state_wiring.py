"""The composition root picks the embedded or Azure queue and state adapters from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from seatkeeper.adapters.embedded_queue import EmbeddedQueue
from seatkeeper.adapters.servicebus_queue import ServiceBusQueues
from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.adapters.table_state import TableStateStore
from seatkeeper.core.sensitive import Secret
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from seatkeeper.storage_wiring import Storage, build_clock, build_storage

pytestmark = pytest.mark.anyio


def settings(data_dir: Path, **storage: object) -> Settings:
    graph = GraphSettings(
        tenant_id="t",
        graph_url="https://127.0.0.1:1/v1.0",
        authority="https://127.0.0.1:1/t",
        credential=CredentialKind.SECRET,
    )
    return Settings(
        mode=Mode.TENANT,
        graph=graph,
        policy_file=data_dir / "policy.yaml",
        client_state_key=Secret("k"),
        hr_signing_secret=None,
        data_dir=data_dir,
        log_format="console",
        log_level="INFO",
        **storage,  # type: ignore[arg-type]
    )


async def close(storage: Storage) -> None:
    for closer in reversed(storage.closers):
        await closer()


async def test_no_azure_settings_means_embedded_queue_and_store(tmp_path: Path) -> None:
    """Without Service Bus or Table settings both adapters are embedded in the data directory, and healthy."""
    chosen = settings(tmp_path)
    storage = build_storage(chosen, build_clock(chosen))
    try:
        assert (type(storage.queues), type(storage.state)) == (EmbeddedQueue, SqliteStateStore)
        for probe in storage.probes.values():
            await probe.check()
        assert ((tmp_path / "queue.sqlite3").is_file(), (tmp_path / "state.sqlite3").is_file()) == (
            True,
            True,
        )
    finally:
        await close(storage)


async def test_azure_settings_choose_service_bus_and_table_storage(tmp_path: Path, azurite: str) -> None:
    """A Service Bus connection string and a storage connection string select the Azure adapters."""
    chosen = settings(
        tmp_path,
        service_bus_connection=Secret(
            "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=dGVzdA=="
        ),
        state_connection=Secret(azurite),
    )
    storage = build_storage(chosen, build_clock(chosen))
    try:
        assert (type(storage.queues), type(storage.state)) == (ServiceBusQueues, TableStateStore)
        await storage.probes["state"].check()
        assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240 -- a test reading its tmp dir
    finally:
        await close(storage)
