"""The `license_checks` trigger of function_app.py with a real ServiceBusMessage: an `admit` message is
admitted once, however often it is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import function_app
from seatkeeper.bootstrap import Services, install_services
from seatkeeper.core.license_messages import AdmitRequest, admit_message
from seatkeeper.core.messages import LICENSE_CHECKS
from seatkeeper.core.sensitive import Secret
from seatkeeper.localhost.bindings import Delivery, service_bus_message
from seatkeeper.localhost.invoker import LocalContext
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from tests.unit.license_world import World, build_world, user_json
from tests.unit.test_gate_builders import GROUP, NOW


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A recording tenant installed as the process's services."""
    built, close = build_world(tmp_path)
    settings = Settings(
        mode=Mode.SANDBOX,
        graph=GraphSettings(
            tenant_id="t",
            graph_url="https://127.0.0.1:1/v1.0",
            authority="https://127.0.0.1:1/t",
            credential=CredentialKind.SECRET,
        ),
        policy_file=tmp_path / "policy.yaml",
        client_state_key=Secret("k"),
        hr_signing_secret=None,
        data_dir=tmp_path,
        log_format="json",
        log_level="INFO",
    )
    services = Services(
        settings=settings,
        policy=built.deps.policy,
        graph=built.tenant,
        clock=built.clock,
        sender=built.sender,
        state=built.state,
        license=built.deps,
    )
    previous = install_services(services)
    try:
        yield built
    finally:
        install_services(previous)
        close()


def deliver(body: bytes, message_id: str, count: int) -> None:
    delivery = Delivery(LICENSE_CHECKS, message_id, body, count, NOW, "lock", "c", "s", 1)
    asyncio.run(
        function_app.license_checks(service_bus_message(delivery), LocalContext("inv", "license_checks"))
    )


def test_an_admit_message_is_admitted_once(world: World) -> None:
    """Delivered twice (a redelivery), the person is added once and one re-check is scheduled."""
    user = world.tenant.add_user(user_json(1))
    message = admit_message(AdmitRequest(user, GROUP, "joiner", "hr"), request_id="e1", correlation_id="c")
    deliver(message.body(), message.message_id, 1)
    deliver(message.body(), message.message_id, 2)
    assert (world.tenant.members[GROUP], world.tenant.add_requests) == ([user], [(GROUP, 1)])
    assert len(world.sender.rechecks()) == 1
