"""Settings: sandbox mode without a tenant, one error listing every problem, secrets that never print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seatkeeper.core.errors import ConfigurationError
from seatkeeper.settings import (
    APP_ROOT,
    SETTINGS,
    CredentialKind,
    Mode,
    load_settings,
    local_settings_values,
)

TENANT = "11111111-2222-3333-4444-555555555555"
APP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SANDBOX_SECRET = "sandbox-client-secret-value"
TENANT_SECRET = "tenant-client-secret-value"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("licensing_groups: []\n", encoding="utf-8")
    return path


@pytest.fixture
def ready_file(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox.json"
    path.write_text(
        json.dumps(
            {
                "graph_url": "https://127.0.0.1:4443/v1.0",
                "token_url": f"https://127.0.0.1:4443/{TENANT}/oauth2/v2.0/token",
                "authority": f"https://127.0.0.1:4443/{TENANT}",
                "control_url": "https://127.0.0.1:4443/_sandbox",
                "ca_file": str(tmp_path / "ca.pem"),
                "tenant_id": TENANT,
                "client_id": APP,
                "client_secret": SANDBOX_SECRET,
                "teams_webhook_url": "https://127.0.0.1:4443/_sandbox/teams/hook?sig=abc",
                "identity_endpoint": "https://127.0.0.1:4443/msi/token",
                "identity_header": "identity-header-value",
                "pid": 4242,
            }
        ),
        encoding="utf-8",
    )
    return path


def _tenant_env(policy_file: Path, **extra: str) -> dict[str, str]:
    env = {
        "SEATKEEPER_TENANT_ID": TENANT,
        "SEATKEEPER_CLIENT_ID": APP,
        "SEATKEEPER_CLIENT_SECRET": TENANT_SECRET,
        "SEATKEEPER_CLIENT_STATE_KEY": "client-state-key-value",
        "SEATKEEPER_POLICY_FILE": str(policy_file),
    }
    env.update(extra)
    return env


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    return caught.value.problems


def test_no_tenant_means_sandbox_mode_from_the_ready_file(ready_file: Path, policy_file: Path) -> None:
    """Endpoints, credentials and CA all come from the sandbox's ready file."""
    settings = load_settings(
        {"SEATKEEPER_SANDBOX_READY_FILE": str(ready_file), "SEATKEEPER_POLICY_FILE": str(policy_file)}
    )
    assert settings.mode is Mode.SANDBOX
    assert settings.graph.graph_url == "https://127.0.0.1:4443/v1.0"
    assert settings.graph.authority == f"https://127.0.0.1:4443/{TENANT}"
    assert settings.graph.client_id == APP
    assert settings.graph.client_secret is not None
    assert settings.graph.client_secret.reveal() == SANDBOX_SECRET
    assert settings.graph.ca_file == ready_file.parent / "ca.pem"
    assert settings.graph.scope == "https://graph.microsoft.com/.default"
    assert settings.sandbox is not None
    assert settings.sandbox.control_url == "https://127.0.0.1:4443/_sandbox"


def test_sandbox_mode_without_ready_file_says_how_to_start(tmp_path: Path, policy_file: Path) -> None:
    """The error names the missing ready file and the two ways out."""
    problems = _problems(
        {
            "SEATKEEPER_SANDBOX_READY_FILE": str(tmp_path / "absent.json"),
            "SEATKEEPER_POLICY_FILE": str(policy_file),
        }
    )
    assert len(problems) == 1
    assert "absent.json" in problems[0]
    assert "make run" in problems[0]


def test_sandbox_ready_file_must_point_at_loopback(ready_file: Path, policy_file: Path) -> None:
    """A ready file that points Graph off the machine is refused."""
    data = json.loads(ready_file.read_text(encoding="utf-8"))
    data["graph_url"] = "https://graph.microsoft.com/v1.0"
    ready_file.write_text(json.dumps(data), encoding="utf-8")
    problems = _problems(
        {"SEATKEEPER_SANDBOX_READY_FILE": str(ready_file), "SEATKEEPER_POLICY_FILE": str(policy_file)}
    )
    assert problems == ("SEATKEEPER_SANDBOX_READY_FILE: graph_url must be on loopback",)


def test_a_complete_tenant_with_a_secret(policy_file: Path) -> None:
    """Tenant mode builds the authority from the host and tenant, and the scope from Graph's origin."""
    settings = load_settings(_tenant_env(policy_file))
    assert settings.mode is Mode.TENANT
    assert settings.graph.credential is CredentialKind.SECRET
    assert settings.graph.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.graph.scope == "https://graph.microsoft.com/.default"
    assert settings.graph.resource == "https://graph.microsoft.com"
    assert settings.sandbox is None


def test_sovereign_cloud_endpoints_are_settings(policy_file: Path) -> None:
    """Graph and authority endpoints differ per cloud; both come from settings."""
    settings = load_settings(
        _tenant_env(
            policy_file,
            SEATKEEPER_GRAPH_URL="https://graph.microsoft.us/v1.0/",
            SEATKEEPER_AUTHORITY_HOST="https://login.microsoftonline.us",
        )
    )
    assert settings.graph.graph_url == "https://graph.microsoft.us/v1.0"
    assert settings.graph.authority == f"https://login.microsoftonline.us/{TENANT}"
    assert settings.graph.scope == "https://graph.microsoft.us/.default"


def test_partly_configured_tenant_lists_every_problem(tmp_path: Path) -> None:
    """One client id alone: the tenant id, a credential, the clientState key and the policy file are named."""
    problems = _problems(
        {"SEATKEEPER_CLIENT_ID": APP, "SEATKEEPER_POLICY_FILE": str(tmp_path / "missing.yaml")}
    )
    assert len(problems) == 4
    joined = " | ".join(problems)
    for name in ("SEATKEEPER_TENANT_ID", "no credential", "SEATKEEPER_CLIENT_STATE_KEY", "missing.yaml"):
        assert name in joined


def test_invalid_values_are_named(policy_file: Path) -> None:
    """Malformed ids, URLs and numbers are each reported."""
    problems = _problems(
        _tenant_env(
            policy_file,
            SEATKEEPER_TENANT_ID="not a tenant",
            SEATKEEPER_CLIENT_ID="not-a-guid",
            SEATKEEPER_GRAPH_URL="http://graph.microsoft.com/v1.0",
            SEATKEEPER_GRAPH_TIMEOUT_SECONDS="-1",
            SEATKEEPER_LOG_FORMAT="xml",
        )
    )
    assert sorted(p.split(" ")[0] for p in problems) == [
        "SEATKEEPER_CLIENT_ID",
        "SEATKEEPER_GRAPH_TIMEOUT_SECONDS",
        "SEATKEEPER_GRAPH_URL",
        "SEATKEEPER_LOG_FORMAT",
        "SEATKEEPER_TENANT_ID",
    ]


def test_more_than_one_credential_is_refused(policy_file: Path) -> None:
    """Exactly one credential: a secret and a managed identity together are ambiguous."""
    problems = _problems(_tenant_env(policy_file, SEATKEEPER_MANAGED_IDENTITY="system"))
    assert len(problems) == 1
    assert "more than one credential" in problems[0]


def test_certificate_must_exist(policy_file: Path, tmp_path: Path) -> None:
    """A certificate path that names no file is reported with the path."""
    env = _tenant_env(policy_file, SEATKEEPER_CLIENT_CERTIFICATE_PATH=str(tmp_path / "none.pem"))
    del env["SEATKEEPER_CLIENT_SECRET"]
    assert _problems(env) == (
        f"SEATKEEPER_CLIENT_CERTIFICATE_PATH: no certificate file at {tmp_path / 'none.pem'}",
    )


def test_managed_identity_needs_no_client_id(policy_file: Path) -> None:
    """A system-assigned identity is a complete credential by itself."""
    env = _tenant_env(policy_file, SEATKEEPER_MANAGED_IDENTITY="system")
    del env["SEATKEEPER_CLIENT_SECRET"]
    del env["SEATKEEPER_CLIENT_ID"]
    settings = load_settings(env)
    assert settings.graph.credential is CredentialKind.MANAGED_IDENTITY
    assert settings.graph.managed_identity_client_id is None


def test_relative_policy_path_starts_at_the_app_root(ready_file: Path) -> None:
    """Relative paths do not depend on the worker's current directory."""
    problems = _problems(
        {"SEATKEEPER_SANDBOX_READY_FILE": str(ready_file), "SEATKEEPER_POLICY_FILE": "policies/nope.yaml"}
    )
    assert problems == (
        "SEATKEEPER_POLICY_FILE names policies/nope.yaml, which does not exist: copy policies/example.yaml "
        "to policies/nope.yaml, fill in your licensing groups, check it with "
        "`seatkeeper policy check policies/nope.yaml`, and deploy it with the app",
    )


def test_a_first_tenant_run_without_a_policy_file_says_what_to_copy(tmp_path: Path) -> None:
    """The default policies/policy.yaml is not shipped: the error names the setting, example and check."""
    if (APP_ROOT / "policies" / "policy.yaml").exists():
        pytest.skip("this checkout holds its own policies/policy.yaml")
    env = _tenant_env(tmp_path / "unused.yaml")
    del env["SEATKEEPER_POLICY_FILE"]
    (problem,) = _problems(env)
    assert problem == (
        "SEATKEEPER_POLICY_FILE is unset and its default policies/policy.yaml does not exist: copy "
        "policies/example.yaml to policies/policy.yaml, fill in your licensing groups, check it with "
        "`seatkeeper policy check policies/policy.yaml`, and deploy it with the app"
    )
    assert (APP_ROOT / "policies" / "example.yaml").is_file()


def test_the_committed_example_copied_as_is_runs_on_the_sandbox(ready_file: Path, tmp_path: Path) -> None:
    """local.settings.example.json copied to local.settings.json keeps sandbox mode and its default policy."""
    local = tmp_path / "local.settings.json"
    local.write_bytes((APP_ROOT / "local.settings.example.json").read_bytes())
    values = {**local_settings_values(local), "SEATKEEPER_SANDBOX_READY_FILE": str(ready_file)}
    settings = load_settings(values)
    assert (settings.mode, settings.policy_file, settings.graph.graph_url) == (
        Mode.SANDBOX,
        APP_ROOT / "policies" / "sandbox.yaml",
        "https://127.0.0.1:4443/v1.0",
    )


def test_no_secret_prints(ready_file: Path, policy_file: Path) -> None:
    """repr and str of the whole settings object never show a secret value."""
    for settings in (
        load_settings(_tenant_env(policy_file, SEATKEEPER_HR_SIGNING_SECRET="hr-signing-secret-value")),
        load_settings(
            {"SEATKEEPER_SANDBOX_READY_FILE": str(ready_file), "SEATKEEPER_POLICY_FILE": str(policy_file)}
        ),
    ):
        text = repr(settings) + str(settings)
        for secret in (
            TENANT_SECRET,
            SANDBOX_SECRET,
            "client-state-key-value",
            "hr-signing-secret-value",
            "sig=abc",
            "identity-header-value",
        ):
            assert secret not in text


def test_local_settings_values(tmp_path: Path) -> None:
    """Core Tools' local.settings.json Values are read as strings; a missing file is empty."""
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "1", "B": 2}}), encoding="utf-8")
    assert local_settings_values(path) == {"A": "1", "B": "2"}
    assert local_settings_values(tmp_path / "none.json") == {}


def test_every_setting_is_documented() -> None:
    """docs/settings.md has a row for every setting the code reads, with its secret flag."""
    doc = (APP_ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in doc.splitlines() if line.startswith("| `")
    }
    assert set(SETTINGS) <= set(rows)
    for name, info in SETTINGS.items():
        assert rows[name].rstrip().rstrip("|").strip().endswith("yes" if info.secret else "no"), name


def test_local_settings_file_fills_in_under_the_environment(
    tmp_path: Path, ready_file: Path, policy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit mapping, local.settings.json supplies values and the environment overrides them."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    local = tmp_path / "local.settings.json"
    local.write_text(
        json.dumps(
            {
                "Values": {
                    "SEATKEEPER_SANDBOX_READY_FILE": str(ready_file),
                    "SEATKEEPER_POLICY_FILE": str(policy_file),
                    "SEATKEEPER_LOG_LEVEL": "WARNING",
                }
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("SEATKEEPER_LOG_LEVEL", "DEBUG")
    settings = load_settings(local_settings_file=local)
    assert (settings.mode, settings.policy_file, settings.log_level) == (Mode.SANDBOX, policy_file, "DEBUG")


def test_state_table_uri_is_https_except_for_a_local_emulator(policy_file: Path) -> None:
    """Azurite on loopback speaks http; any other host must be https."""
    local = load_settings(
        _tenant_env(policy_file, StateStorage__tableServiceUri="http://127.0.0.1:10002/devstoreaccount1")
    )
    assert local.state_table_uri == "http://127.0.0.1:10002/devstoreaccount1"
    problems = _problems(
        _tenant_env(policy_file, StateStorage__tableServiceUri="http://account.table.core.windows.net")
    )
    assert problems == ("StateStorage__tableServiceUri must be an https URL",)


def test_the_committed_example_names_every_setting_and_nothing_else() -> None:
    """local.settings.example.json lists each setting (WEBSITE_HOSTNAME is the host's) and no unknown name."""
    functions_host = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
    values = local_settings_values(APP_ROOT / "local.settings.example.json")
    assert sorted(set(values) - set(SETTINGS) - functions_host) == []
    assert sorted(set(SETTINGS) - set(values) - {"WEBSITE_HOSTNAME"}) == []
