"""Test-suite wiring: session-wide fixtures (sandbox tenant, Azurite) live in tests/fixtures/."""

from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.azurite",
]


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """A test that builds the app configures logging (level INFO): later tests get the config back as it was,
    so a test capturing debug events does not depend on which tests ran before it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
