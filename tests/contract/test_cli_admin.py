"""The admin commands against the sandbox over HTTPS, built by the same composition root as the service:
`diagnose`, `seats`, `groups check` and `incidents list|show`, text and `--json`."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.alerts import handle_alert
from seatkeeper.bootstrap import Services, build_services
from seatkeeper.cli import build_parser, diagnose, groups, incidents, seats
from seatkeeper.cli.admin_services import CONFIGURATION, FOUND_PROBLEMS, OK, ServicesFactory, opened
from seatkeeper.core.group_health import Problem, health_signal, missing_group
from seatkeeper.core.incidents import alert_message
from seatkeeper.core.policy import LicensingGroup
from seatkeeper.core.reasons import Reason
from seatkeeper.settings import load_settings
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.anyio
COPILOT = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
AMERICAS = "a3193522-ecd3-4c1a-80cd-b107376dc077"
EMEA = "43767abd-c08a-4ccf-b141-a0a274d91aa4"
PILOTS = "61701be7-0950-4687-b6a9-0291c1c7e9e9"
ELIF = "elif.berg@contoso.example"  # Americas member with Microsoft 365 E3 through a group
NADIA = "11060131-9ca1-4a71-8d28-5fc4a31ab900"  # Americas member whose usage location is RU
WEN_EMPLOYEE_ID = "E10182"  # wen.adams: no base license, in no Copilot group


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def factory(tenant: SandboxInfo, tmp_path: Path) -> ServicesFactory:
    """Services as the service builds them, on the sandbox, with state in a fresh data directory."""
    ready = tmp_path / "sandbox-ready.json"
    ready.write_text(json.dumps(dataclasses.asdict(tenant)), encoding="utf-8")
    environ = {
        "SEATKEEPER_SANDBOX_READY_FILE": str(ready),
        "SEATKEEPER_DATA_DIR": str(tmp_path / "data"),
        "SEATKEEPER_LOG_LEVEL": "WARNING",
    }

    def build() -> Services:
        return build_services(load_settings(environ, local_settings_file=tmp_path / "none.json"))

    return build


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


async def _run(module: Any, factory: ServicesFactory, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code: int = await module.run(_args(*argv), factory, out)
    return code, out.getvalue()


async def test_diagnose_a_licensed_member(factory: ServicesFactory) -> None:
    """A member whose Copilot license is active: exit 0, every step answered, found in the group."""
    code, text = await _run(diagnose, factory, "diagnose", ELIF, "--json")
    report = json.loads(text)
    steps = {s["name"]: s["ok"] for s in report["steps"]}
    assert code == OK
    assert report["has_copilot"] is True
    assert steps == {
        "found": True,
        "account enabled": True,
        "base license active": True,
        "usage location": True,
        "in licensing groups": True,
        "Copilot license": True,
    }
    assert [g["member"] for g in report["groups"] if g["group_id"] == AMERICAS] == [True]


async def test_diagnose_by_employee_id_explains_the_blocker(factory: ServicesFactory) -> None:
    """Found by employeeId, not in any group, no base license: exit 1, with the catalogue's fix."""
    code, text = await _run(diagnose, factory, "diagnose", WEN_EMPLOYEE_ID, "--json")
    report = json.loads(text)
    steps = {s["name"]: s["ok"] for s in report["steps"]}
    assert code == FOUND_PROBLEMS
    assert (report["found"], report["has_copilot"]) == (True, False)
    assert steps["base license active"] is False
    assert {g["outcome"] for g in report["groups"]} == {"blocked"}
    assert any("qualifying base license" in a for a in report["actions"])


async def test_diagnose_names_the_license_error(factory: ServicesFactory) -> None:
    """A member in a location where Copilot is refused shows the error and what to do, in text."""
    code, text = await _run(diagnose, factory, "diagnose", NADIA)
    assert code == FOUND_PROBLEMS
    assert "ProhibitedInUsageLocationViolation" in text
    assert "What to do:" in text
    assert "usage location" in text.lower()


async def test_diagnose_unknown_person(factory: ServicesFactory) -> None:
    """Nobody by that name: exit 1 and a clear sentence."""
    code, text = await _run(diagnose, factory, "diagnose", "nobody@contoso.example", "--json")
    assert code == FOUND_PROBLEMS
    assert json.loads(text)["found"] is False


async def test_seats_per_sku_and_group(factory: ServicesFactory, tenant: SandboxInfo) -> None:
    """Enabled and consumed come from subscribedSkus; pending from Seatkeeper's records; per group counts."""
    async with opened(factory) as services:
        assert services.license is not None
        await services.license.seats.record_pending(
            "f9de7615-de70-4ccf-b86f-f3772d1283fc",
            AMERICAS,
            (Reason.NO_BASE_LICENSE,),
            services.license.clock.now(),
            now=services.license.clock.now(),
        )
    async with httpx.AsyncClient(verify=tenant.ssl_context()) as control:
        (
            await control.post(f"{tenant.control_url}/skus/{COPILOT}/seats", json={"enabled": 40})
        ).raise_for_status()
    code, text = await _run(seats, factory, "seats", "--json")
    report = json.loads(text)
    [sku] = report["skus"]
    americas = next(g for g in report["groups"] if g["group_id"] == AMERICAS)
    assert code == OK
    assert (sku["sku"], sku["enabled"], sku["pending"]) == ("Microsoft_365_Copilot", 40, 1)
    assert sku["free"] == sku["enabled"] - sku["consumed"] - sku["reserved"]
    assert (americas["members"], americas["pending"]) == (8, 1)


async def test_groups_check_healthy_then_a_nested_group(
    factory: ServicesFactory, tenant: SandboxInfo
) -> None:
    """The default licensing groups are healthy; a group nested into one is reported with its fix."""
    healthy_code, _ = await _run(groups, factory, "groups", "check")
    async with httpx.AsyncClient(verify=tenant.ssl_context()) as control:
        added = await control.post(f"{tenant.control_url}/groups/{EMEA}/members", json={"add": [PILOTS]})
        added.raise_for_status()
    code, text = await _run(groups, factory, "groups", "check", "--json")
    report = {g["group_id"]: g for g in json.loads(text)["groups"]}
    assert healthy_code == OK
    assert code == FOUND_PROBLEMS
    assert [f["problem"] for f in report[EMEA]["findings"]] == [Problem.NESTED_GROUPS.value]
    assert report[AMERICAS]["healthy"] is True


async def test_incidents_list_and_show(factory: ServicesFactory) -> None:
    """An incident the alerts handler opened is listed and shown by its row prefix."""
    async with opened(factory) as services:
        assert services.state is not None
        assert services.clock is not None
        finding = missing_group(LicensingGroup("g-gone", "Old Copilot group", (COPILOT,)))
        message = alert_message(health_signal(finding, services.clock.now()), correlation_id="t", version="1")
        await handle_alert(
            message.body(),
            store=services.state,
            channels={},
            alerts=services.policy.alerts,
            clock=services.clock,
        )
    code, text = await _run(incidents, factory, "incidents", "list", "--json")
    [listed] = json.loads(text)
    show_code, shown = await _run(incidents, factory, "incidents", "show", listed["id"][:8])
    missing_code, _ = await _run(incidents, factory, "incidents", "show", "ffffffffff")
    assert code == OK
    assert (listed["problem"], listed["status"]) == (Problem.MISSING.value, "open")
    assert show_code == OK
    assert "what to do:" in shown
    assert "Old Copilot group" in shown
    assert missing_code == FOUND_PROBLEMS


async def test_an_incident_no_sweep_will_resolve_is_closed_by_hand(factory: ServicesFactory) -> None:
    """`incidents close KEY --reason` closes it with who and why; it is no longer listed as open, shows
    the note, and closing it again is refused."""
    async with opened(factory) as services:
        assert services.state is not None
        assert services.clock is not None
        finding = missing_group(LicensingGroup("g-retired", "Retired Copilot group", (COPILOT,)))
        message = alert_message(health_signal(finding, services.clock.now()), correlation_id="t", version="1")
        await handle_alert(
            message.body(),
            store=services.state,
            channels={},
            alerts=services.policy.alerts,
            clock=services.clock,
        )
    _, text = await _run(incidents, factory, "incidents", "list", "--json")
    [listed] = json.loads(text)
    code, closed = await _run(
        incidents, factory, "incidents", "close", listed["id"][:8], "--reason", "group retired", "--by", "ada"
    )
    _, still_open = await _run(incidents, factory, "incidents", "list", "--json")
    _, shown = await _run(incidents, factory, "incidents", "show", listed["key"])
    again, _ = await _run(incidents, factory, "incidents", "close", listed["key"], "--reason", "twice")
    assert (code, closed.split()[0]) == (OK, "closed")
    assert json.loads(still_open) == []
    assert "closed by hand by ada: group retired" in shown
    assert again == FOUND_PROBLEMS


async def test_a_broken_configuration_is_exit_2(tmp_path: Path) -> None:
    """No sandbox ready file and no tenant: the command says what is missing and exits 2."""

    def build() -> Services:
        return build_services(
            load_settings(
                {"SEATKEEPER_SANDBOX_READY_FILE": str(tmp_path / "missing.json")},
                local_settings_file=tmp_path / "none.json",
            )
        )

    code, text = await _run(seats, build, "seats")
    assert code == CONFIGURATION
    assert "configuration" in text
