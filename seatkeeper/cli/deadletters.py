"""`seatkeeper deadletters list|peek|resubmit`: inspect and resubmit dead letters, on either queue adapter.

Service Bus when `ServiceBusConnection` (a connection string) or
`ServiceBusConnection__fullyQualifiedNamespace` (managed identity) is set, in the environment or in
`local.settings.json`; otherwise the embedded queue of the data directory (`SEATKEEPER_DATA_DIR`,
`.seatkeeper` by default, or `--data-dir`, which forces it). A resubmitted message gets a new id,
hash(original id, "resubmit", n), and leaves the dead-letter queue only once it is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from seatkeeper.core.errors import NotFound, TransientError
from seatkeeper.core.messages import QUEUES
from seatkeeper.core.ports import DeadLetter, DeadLetterStore

StoreFactory = Callable[[], AbstractAsyncContextManager[DeadLetterStore]]


def register(subparsers: Any) -> None:
    """Add `deadletters list QUEUE`, `deadletters peek QUEUE ID` and `deadletters resubmit QUEUE ID`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "deadletters", help="inspect and resubmit dead-lettered messages", description=__doc__
    )
    parser.add_argument("--data-dir", type=Path, help="use the embedded queue in this directory")
    actions = parser.add_subparsers(dest="deadletters_command", required=True)
    listing = actions.add_parser("list", help="the dead letters of a queue, oldest first")
    listing.add_argument("queue", choices=QUEUES)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    peek = actions.add_parser("peek", help="one dead letter in full, with its body")
    peek.add_argument("queue", choices=QUEUES)
    peek.add_argument("message_id")
    resubmit = actions.add_parser("resubmit", help="send a dead letter again under a new id")
    resubmit.add_argument("queue", choices=QUEUES)
    resubmit.add_argument("message_id")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the chosen action against the configured queue adapter."""
    return asyncio.run(run(args, store_factory(args.data_dir), sys.stdout))


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "queue": letter.queue,
        "sequence_number": letter.sequence_number,
        "message_id": letter.message_id,
        "kind": letter.kind,
        "subject": letter.subject,
        "reason": letter.reason,
        "description": letter.description,
        "delivery_count": letter.delivery_count,
        "dead_lettered_at": letter.dead_lettered_at.isoformat(),
        "session_id": letter.session_id,
        "correlation_id": letter.correlation_id,
    }


def _body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body.decode("utf-8", errors="replace")


async def run(args: argparse.Namespace, factory: StoreFactory, out: TextIO) -> int:
    """The action on a dead-letter store; exit 0 when done, 1 when not there, 3 when unreachable."""
    try:
        async with factory() as store:
            return await _act(args, store, out)
    except NotFound as exc:
        print(f"not found: {exc}", file=out)
        return 1
    except TransientError as exc:
        print(f"queue unreachable, try again: {exc}", file=out)
        return 3


async def _act(args: argparse.Namespace, store: DeadLetterStore, out: TextIO) -> int:
    if args.deadletters_command == "list":
        letters = await store.list(args.queue, limit=args.limit)
        if args.json:
            for letter in letters:
                print(json.dumps(_summary(letter), sort_keys=True), file=out)
        elif not letters:
            print(f"no dead letters in {args.queue}", file=out)
        else:
            for letter in letters:
                print(
                    f"{letter.sequence_number:>6}  {letter.message_id}  {letter.kind:<24}  "
                    f"{letter.dead_lettered_at:%Y-%m-%d %H:%M}  x{letter.delivery_count}  {letter.reason}",
                    file=out,
                )
        return 0
    if args.deadletters_command == "peek":
        found = await store.peek(args.queue, args.message_id)
        if found is None:
            raise NotFound(f"no dead letter {args.message_id} in {args.queue}")
        print(json.dumps({**_summary(found), "body": _body(found.body)}, indent=2, sort_keys=True), file=out)
        return 0
    new_id = await store.resubmit(args.queue, args.message_id)
    print(f"resubmitted {args.message_id} to {args.queue} as {new_id}", file=out)
    return 0


def _environment() -> Mapping[str, str]:
    from seatkeeper import settings

    values = dict(settings.local_settings_values(settings.APP_ROOT / "local.settings.json"))
    values.update(os.environ)
    return values


def store_factory(data_dir: Path | None) -> StoreFactory:
    """The dead-letter store these settings name: Service Bus, or the embedded queue."""
    from seatkeeper import settings

    env = _environment()
    connection = env.get(settings.SERVICE_BUS_CONNECTION, "").strip()
    namespace = env.get(settings.SERVICE_BUS_NAMESPACE, "").strip()
    if data_dir is None and (connection or namespace):
        return _service_bus(connection, namespace)
    return _embedded(data_dir or settings.data_dir(env))


def _embedded(directory: Path) -> StoreFactory:
    @asynccontextmanager
    async def open_store() -> Any:
        from seatkeeper.adapters.clocks import WallClock
        from seatkeeper.adapters.embedded_queue import EMBEDDED_QUEUE_FILE, EmbeddedQueue

        path = directory / EMBEDDED_QUEUE_FILE
        if not path.is_file():
            raise NotFound(f"no embedded queue at {path}")
        queue = EmbeddedQueue(path, clock=WallClock())
        try:
            yield queue
        finally:
            queue.close()

    return open_store


def _service_bus(connection: str, namespace: str) -> StoreFactory:
    @asynccontextmanager
    async def open_store() -> Any:
        from seatkeeper.adapters.servicebus_queue import SdkTransport, ServiceBusQueues

        closers: list[Callable[[], Awaitable[None]]] = []
        if connection:
            transport = SdkTransport.from_connection_string(connection)
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
            closers.append(credential.close)
            transport = SdkTransport.from_namespace(namespace, credential)
        closers.insert(0, transport.close)
        try:
            yield ServiceBusQueues(transport, transport)
        finally:
            for close in closers:
                await close()

    return open_store
