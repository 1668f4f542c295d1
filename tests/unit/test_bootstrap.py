"""The composition root: one container per process, replaceable for tests and the local host, closed once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from seatkeeper.bootstrap import Services, build_services, close_services, get_services, install_services
from seatkeeper.core.errors import ConfigurationError
from seatkeeper.core.policy import Policy
from seatkeeper.core.sensitive import Secret
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings
from tests.unit.graph_fakes import FakeGraph


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        mode=Mode.SANDBOX,
        graph=GraphSettings(
            tenant_id="t",
            graph_url="https://127.0.0.1:1/v1.0",
            authority="https://127.0.0.1:1/t",
            credential=CredentialKind.SECRET,
        ),
        policy_file=tmp_path / "p.yaml",
        client_state_key=Secret("k" * 16),
        hr_signing_secret=None,
        data_dir=tmp_path,
        log_format="json",
        log_level="INFO",
    )


def _services(tmp_path: Path, closed: list[str]) -> Services:
    settings = _settings(tmp_path)

    async def close_first() -> None:
        closed.append("first")

    async def close_second() -> None:
        closed.append("second")

    return Services(
        settings=settings,
        policy=Policy(licensing_groups=()),
        graph=FakeGraph(),
        closers=[close_first, close_second],
    )


def test_installed_container_is_the_process_container_until_closed(tmp_path: Path) -> None:
    """get_services returns the installed container; close_services closes it (last first) and forgets it."""
    closed: list[str] = []
    services = _services(tmp_path, closed)
    previous = install_services(services)
    try:
        assert get_services() is services
        asyncio.run(close_services())
        assert closed == ["second", "first"]
        assert install_services(None) is None
    finally:
        install_services(previous)


def test_closing_twice_closes_once(tmp_path: Path) -> None:
    """A second close finds nothing to close."""
    closed: list[str] = []
    previous = install_services(_services(tmp_path, closed))
    try:
        asyncio.run(close_services())
        asyncio.run(close_services())
        assert closed == ["second", "first"]
    finally:
        install_services(previous)


def test_a_bad_policy_fails_before_any_adapter_is_built(tmp_path: Path) -> None:
    """A start that fails on the policy opens no queue or state file (nothing to leak on every retry)."""
    (tmp_path / "p.yaml").write_text("licensing_groups: [{id: not-a-guid}]\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"p\.yaml"):
        build_services(_settings(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["p.yaml"]
