"""Part of the composition root: the clock, queue and state adapters chosen from settings.

Service Bus when a namespace or connection string is set, else the embedded queue in the data directory;
Table Storage when a table URI or connection string is set, else the embedded store; the sandbox's business
clock in sandbox mode, else the wall clock. Identity-based connections use the managed identity.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from handlers.deadletters import AlertsDeadLettersProbe
from seatkeeper.adapters.clocks import SandboxBusinessClock, WallClock
from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE, EmbeddedQueue
from seatkeeper.adapters.sqlite_state import EMBEDDED_STATE_FILE, SqliteStateStore
from seatkeeper.core.ports import Clock, DeadLetterStore, MessageSender, Probe, StateStore
from seatkeeper.settings import Mode, Settings

if TYPE_CHECKING:
    from azure.identity.aio import DefaultAzureCredential

Closer = Callable[[], Awaitable[None]]


def build_clock(settings: Settings) -> Clock:
    """Business time: the sandbox's clock in sandbox mode, the wall clock otherwise."""
    if settings.mode is Mode.SANDBOX and settings.sandbox is not None:
        verify = ssl.create_default_context()
        if settings.graph.ca_file is not None:
            verify.load_verify_locations(cafile=str(settings.graph.ca_file))
        return SandboxBusinessClock(settings.sandbox.control_url, verify=verify)
    return WallClock()


@dataclass
class Storage:
    """The queue and state adapters, their probes for health, and how to close them."""

    queues: MessageSender
    dead_letters: DeadLetterStore
    state: StateStore
    probes: dict[str, Probe]
    closers: list[Closer] = field(default_factory=list)


def _credential(settings: Settings) -> DefaultAzureCredential:
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.graph.managed_identity_client_id)


def build_storage(settings: Settings, clock: Clock) -> Storage:
    """The queue and state adapters these settings ask for (embedded ones by default)."""
    closers: list[Closer] = []
    credential: DefaultAzureCredential | None = None

    def identity() -> DefaultAzureCredential:
        nonlocal credential
        if credential is None:
            credential = _credential(settings)
            closers.append(credential.close)
        return credential

    if settings.service_bus_connection is not None or settings.service_bus_namespace is not None:
        from seatkeeper.adapters.servicebus_queue import SdkTransport, ServiceBusQueues

        if settings.service_bus_connection is not None:
            transport = SdkTransport.from_connection_string(settings.service_bus_connection.reveal())
        else:
            transport = SdkTransport.from_namespace(str(settings.service_bus_namespace), identity())
        closers.append(transport.close)
        bus = ServiceBusQueues(transport, transport)
        queues: MessageSender = bus
        dead_letters: DeadLetterStore = bus
        queue_probe: Probe = bus
    else:
        embedded = EmbeddedQueue(settings.data_dir / EMBEDDED_QUEUE_FILE, clock=clock)
        closers.append(_closer(embedded.close))
        queues, dead_letters, queue_probe = embedded, embedded, embedded

    if settings.state_connection is not None or settings.state_table_uri is not None:
        from seatkeeper.adapters.table_state import TableStateStore

        if settings.state_connection is not None:
            table = TableStateStore.from_connection_string(settings.state_connection.reveal())
        else:
            table = TableStateStore.from_endpoint(str(settings.state_table_uri), identity())
        closers.append(table.close)
        state: StateStore = table
        state_probe: Probe = table
    else:
        sqlite = SqliteStateStore(settings.data_dir / EMBEDDED_STATE_FILE)
        closers.append(_closer(sqlite.close))
        state, state_probe = sqlite, sqlite
    probes: dict[str, Probe] = {
        "queue": queue_probe,
        "state": state_probe,
        "alerts_dead_letters": AlertsDeadLettersProbe(dead_letters),
    }
    return Storage(queues, dead_letters, state, probes, closers)


def _closer(close: Callable[[], None]) -> Closer:
    async def run() -> None:
        close()

    return run
