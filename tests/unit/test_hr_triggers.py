"""The HR triggers of function_app.py with real binding objects, and `seatkeeper held` over the same services:
a signed joiner posted to `hr/events` ends up admitted by the `onboarding` queue trigger."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.functions as func
import pytest
from standardwebhooks.webhooks import Webhook

import function_app
from seatkeeper.bootstrap import Services, install_services
from seatkeeper.cli import build_parser
from seatkeeper.cli.held import run as held
from seatkeeper.core.messages import HR_EVENTS
from seatkeeper.core.policy import BlastRadius
from seatkeeper.core.sensitive import Secret
from seatkeeper.localhost.bindings import Delivery, service_bus_message
from seatkeeper.localhost.invoker import LocalContext
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from tests.unit.test_gate_builders import GROUP, NOW
from tests.unit.test_onboarding import Hr, build_hr, joiner, leaver, policy

SECRET = "whsec_" + base64.b64encode(b"sandbox-only-hr-trigger-key-0002").decode()


@pytest.fixture
def hr(tmp_path: Path) -> Iterator[Hr]:
    """The recording tenant installed as the process's services, with an HR signing secret."""
    built, state = build_hr(tmp_path)
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
        hr_signing_secret=Secret(SECRET),
        data_dir=tmp_path,
        log_format="json",
        log_level="INFO",
    )
    services = Services(
        settings=settings,
        policy=built.license.policy,
        graph=built.tenant,
        clock=built.clock,
        sender=built.sender,
        state=state,
        license=built.license,
    )
    previous = install_services(services)
    try:
        yield built
    finally:
        install_services(previous)
        state.close()


def post(document: object) -> func.HttpResponse:
    body = json.dumps(document).encode()
    at = datetime.now(tz=UTC)
    request = func.HttpRequest(
        method="POST",
        url="http://127.0.0.1:7071/api/hr/events",
        headers={
            "content-type": "application/cloudevents+json",
            "webhook-id": "msg_t",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(SECRET).sign("msg_t", at, body.decode()),
        },
        body=body,
    )
    answer: func.HttpResponse = asyncio.run(function_app.hr_events(request, LocalContext("inv", "hr_events")))
    return answer


def deliver_all(hr: Hr) -> None:
    """Every unscheduled hr-events message through the `onboarding` trigger, twice each (redelivery)."""
    for message in [m for m in hr.sender.sent if m.queue == HR_EVENTS and m.scheduled_for is None]:
        for count in (1, 2):
            delivery = Delivery(
                HR_EVENTS, message.message_id, message.body(), count, NOW, "lock", "c", message.session_id, 1
            )
            asyncio.run(
                function_app.onboarding(service_bus_message(delivery), LocalContext("inv", "onboarding"))
            )


def test_a_posted_joiner_is_admitted_through_the_queue_trigger(hr: Hr) -> None:
    """202 from the HTTP trigger; the queue trigger admits the joiner once, however often delivered."""
    user = hr.user(1, "E1")
    answer = post(joiner())
    assert (answer.status_code, json.loads(answer.get_body())["outcome"]) == (202, "accepted")
    deliver_all(hr)
    assert (hr.tenant.member_of(user), hr.tenant.add_requests) == ([GROUP], [(GROUP, 1)])


def test_an_unsigned_post_is_refused(hr: Hr) -> None:
    """The function key is not enough: no signature, 401."""
    request = func.HttpRequest(
        method="POST",
        url="http://127.0.0.1:7071/api/hr/events",
        headers={"content-type": "application/cloudevents+json"},
        body=json.dumps(joiner()).encode(),
    )
    answer = asyncio.run(function_app.hr_events(request, LocalContext("inv", "hr_events")))
    assert answer.status_code == 401


def test_held_list_and_release_from_the_command_line(hr: Hr) -> None:
    """A held removal is listed, then released: the member goes."""
    hr.license.policy = policy(blast_radius=BlastRadius(max_removals_per_hour=0))
    user = hr.user(1, "E1")
    asyncio.run(hr.post(joiner()))
    asyncio.run(hr.post(leaver()))
    asyncio.run(hr.pump(NOW + timedelta(hours=1)))

    def factory() -> Services:
        from seatkeeper.bootstrap import get_services

        return get_services()

    listing = io.StringIO()
    assert asyncio.run(held(build_parser().parse_args(["held", "list", "--json"]), factory, listing)) == 0
    [row] = json.loads(listing.getvalue())
    assert (row["user_id"], row["group_id"]) == (user, GROUP)
    out = io.StringIO()
    pair = f"{user}:{GROUP}"
    assert asyncio.run(held(build_parser().parse_args(["held", "release", pair]), factory, out)) == 0
    assert (out.getvalue().strip(), hr.tenant.member_of(user)) == ("released 1", [])
