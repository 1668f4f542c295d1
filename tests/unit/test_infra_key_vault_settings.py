"""Settings as Azure hands them over: an unresolved Key Vault reference is refused by name (never echoed) and
fails health; the certificate may come as content (what a Key Vault reference yields) instead of a path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from seatkeeper import settings
from seatkeeper.bootstrap import health_report, install_services
from seatkeeper.core.errors import ConfigurationError
from seatkeeper.settings import CredentialKind, load_settings, unresolved_references

TENANT = "11111111-2222-3333-4444-555555555555"
APP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
IDENTITY = "99999999-8888-7777-6666-555555555555"
REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-sk-test.vault.azure.net/secrets/client-state-key/)"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("licensing_groups: []\n", encoding="utf-8")
    return path


def _azure_env(policy_file: Path, **extra: str) -> dict[str, str]:
    """What the Bicep app settings resolve to in Azure (managed identity), plus `extra`."""
    env = {
        settings.TENANT_ID: TENANT,
        settings.MANAGED_IDENTITY_CLIENT_ID: IDENTITY,
        settings.CLIENT_STATE_KEY: "client-state-key-value",
        settings.HR_SIGNING_SECRET: "whsec_aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=",
        settings.POLICY_FILE: str(policy_file),
    }
    env.update(extra)
    return env


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    return caught.value.problems


@pytest.mark.parametrize(
    "name",
    [
        settings.CLIENT_STATE_KEY,
        settings.HR_SIGNING_SECRET,
        settings.GRAPH_WEBHOOK_KEY,
        settings.TEAMS_WEBHOOK_URL,
    ],
)
def test_unresolved_reference_is_refused_by_name(policy_file: Path, name: str) -> None:
    """One problem, naming the setting, never repeating the reference (it names the vault and secret)."""
    problems = _problems(_azure_env(policy_file, **{name: REFERENCE}))
    assert len(problems) == 1
    assert problems[0].startswith(f"{name} is an unresolved Key Vault reference")
    assert "vault.azure.net" not in problems[0]


def test_every_unresolved_reference_is_named(policy_file: Path) -> None:
    """All of them at once, in one error; App Configuration references count too; case does not matter."""
    env = _azure_env(
        policy_file,
        **{
            settings.CLIENT_STATE_KEY: REFERENCE,
            settings.GRAPH_WEBHOOK_KEY: " @microsoft.keyvault(VaultName=kv;SecretName=graph-webhook-key)",
            settings.LOG_LEVEL: "@Microsoft.AppConfiguration(Endpoint=https://cfg.azconfig.io; Key=level)",
        },
    )
    assert unresolved_references(env) == sorted(
        [settings.CLIENT_STATE_KEY, settings.GRAPH_WEBHOOK_KEY, settings.LOG_LEVEL]
    )
    assert len(_problems(env)) == 3


def test_resolved_values_that_merely_mention_key_vault_are_kept(policy_file: Path) -> None:
    """Only a value that *is* a reference is refused."""
    loaded = load_settings(_azure_env(policy_file, **{settings.CLIENT_STATE_KEY: "x@Microsoft.KeyVault(y)"}))
    assert loaded.client_state_key.reveal() == "x@Microsoft.KeyVault(y)"


def test_certificate_content_is_a_certificate_credential(policy_file: Path) -> None:
    """SEATKEEPER_CLIENT_CERTIFICATE with the client id selects the certificate credential, kept secret."""
    env = _azure_env(policy_file, **{settings.CLIENT_ID: APP, settings.CLIENT_CERTIFICATE: "TUlJQ0VydA=="})
    del env[settings.MANAGED_IDENTITY_CLIENT_ID]
    graph = load_settings(env).graph
    assert graph.credential is CredentialKind.CERTIFICATE
    assert graph.certificate is not None
    assert graph.certificate.reveal() == "TUlJQ0VydA=="
    assert "TUlJQ0VydA==" not in repr(graph)


def test_certificate_content_and_path_together_are_refused(policy_file: Path, tmp_path: Path) -> None:
    """Exactly one source for the certificate."""
    pem = tmp_path / "app.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    env = _azure_env(
        policy_file,
        **{
            settings.CLIENT_ID: APP,
            settings.CLIENT_CERTIFICATE: "TUlJQ0VydA==",
            settings.CLIENT_CERTIFICATE_PATH: str(pem),
        },
    )
    del env[settings.MANAGED_IDENTITY_CLIENT_ID]
    assert _problems(env) == (
        f"set {settings.CLIENT_CERTIFICATE} or {settings.CLIENT_CERTIFICATE_PATH}, not both",
    )


def test_certificate_alongside_the_managed_identity_is_refused(policy_file: Path) -> None:
    """Two credentials (the Bicep must wire one or the other) are a configuration error."""
    env = _azure_env(policy_file, **{settings.CLIENT_ID: APP, settings.CLIENT_CERTIFICATE: "TUlJQ0VydA=="})
    problems = _problems(env)
    assert len(problems) == 1
    assert problems[0].startswith("more than one credential is set")


@pytest.fixture
def no_services() -> Iterator[None]:
    """No process-wide container before or after (health builds its own from the environment)."""
    previous = install_services(None)
    yield
    install_services(previous)


def test_health_reports_an_unresolved_reference(
    policy_file: Path, monkeypatch: pytest.MonkeyPatch, no_services: None
) -> None:
    """Health answers unhealthy on the settings check, and its body never carries the reference."""
    for name in settings.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in _azure_env(policy_file, **{settings.CLIENT_STATE_KEY: REFERENCE}).items():
        monkeypatch.setenv(name, value)
    report = asyncio.run(health_report())
    body = json.loads(report.body())
    assert report.healthy is False
    assert body["checks"]["settings"]["ok"] is False
    assert "vault.azure.net" not in report.body().decode("utf-8")
