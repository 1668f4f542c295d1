"""Test-suite wiring: session-wide fixtures (sandbox tenant, Azurite) live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.azurite",
]
