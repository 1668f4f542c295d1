"""E2E fixtures: a local host process running the small test app, shared by the tests of one module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.host_process import RunningHost, start_host


@pytest.fixture(scope="module")
def basic_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    """The test app in a real host process, without any tenant (wall clock)."""
    host = start_host(tmp_path_factory.mktemp("host") / "state")
    try:
        yield host
    finally:
        host.stop()
