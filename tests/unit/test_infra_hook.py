"""infra/hooks/postprovision.sh against a recording stand-in for the Azure CLI: it creates each secret once,
in the right format, gives the host the same webhook key as the vault, and never prints a secret."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_infra_sources import INFRA

HOOK = INFRA / "hooks" / "postprovision.sh"

# A stand-in `az` that keeps Key Vault secrets and function keys in a JSON file (FAKE_AZ_STATE).
FAKE_AZ = """\
import json, os, sys
state_path = os.environ["FAKE_AZ_STATE"]
state = json.load(open(state_path)) if os.path.exists(state_path) else {"secrets": {}, "keys": {}}
args = sys.argv[1:]
def opt(name):
    return args[args.index(name) + 1]
if args[:3] == ["keyvault", "secret", "list"]:
    sys.exit(0)
if args[:3] == ["keyvault", "secret", "show"]:
    name = opt("--name")
    if name not in state["secrets"]:
        sys.stderr.write("SecretNotFound\\n")
        sys.exit(3)
    print(state["secrets"][name] if opt("--query") == "value" else f"https://vault/secrets/{name}")
    sys.exit(0)
if args[:3] == ["keyvault", "secret", "set"]:
    state["secrets"][opt("--name")] = open(opt("--file"), encoding="utf-8").read()
elif args[:3] == ["functionapp", "keys", "set"]:
    state["keys"][opt("--key-name")] = opt("--key-value")
else:
    sys.stderr.write("unexpected az " + " ".join(args) + "\\n")
    sys.exit(2)
json.dump(state, open(state_path, "w"))
"""


def _run(tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\n{FAKE_AZ}", encoding="utf-8")
    az.chmod(0o755)
    state = tmp_path / "az-state.json"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AZ_STATE": str(state),
        "AZURE_KEY_VAULT_NAME": "kv-test",
        "AZURE_FUNCTION_APP_NAME": "func-test",
        "AZURE_RESOURCE_GROUP": "rg-test",
        **extra,
    }
    shell = shutil.which("sh")
    assert shell is not None
    result = subprocess.run(  # noqa: S603 - our own hook, with a stand-in az on PATH
        [shell, str(HOOK)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return result, json.loads(state.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The hook run once against an empty vault (shared: the tests below only read its outcome)."""
    return _run(tmp_path_factory.mktemp("hook"))


def test_hook_creates_each_secret_in_its_format(
    first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """Three secrets: random tokens for the clientState and webhook keys, a Standard Webhooks HR secret."""
    result, state = first_run
    assert result.returncode == 0, result.stderr
    secrets = state["secrets"]
    assert sorted(secrets) == ["client-state-key", "graph-webhook-key", "hr-signing-secret"]
    assert secrets["hr-signing-secret"].startswith("whsec_")
    assert all(len(value) >= 40 for value in secrets.values())
    assert len(set(secrets.values())) == 3


def test_hook_gives_the_host_the_webhook_key_from_the_vault(
    first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """The named function key `graph-webhook` equals the vault's `graph-webhook-key`."""
    _, state = first_run
    assert state["keys"] == {"graph-webhook": state["secrets"]["graph-webhook-key"]}


def test_hook_never_prints_a_secret(
    first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """Output names the secrets it created, never their values."""
    result, state = first_run
    output = result.stdout + result.stderr
    assert "seatkeeper.secret_created name=hr-signing-secret" in output
    assert [value for value in state["secrets"].values() if value in output] == []


def test_hook_keeps_existing_secrets(tmp_path: Path) -> None:
    """A second run (every `azd provision`) changes no secret and says it kept them."""
    _, before = _run(tmp_path)
    result, after = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert after == before
    assert result.stdout.count("seatkeeper.secret_kept") == 3


def test_hook_names_secrets_the_admin_must_still_supply(tmp_path: Path) -> None:
    """With Teams alerts or an app registration chosen, a missing secret is named (it would stop the app)."""
    result, state = _run(tmp_path, SEATKEEPER_TEAMS_ALERTS="true", SEATKEEPER_GRAPH_CLIENT_ID="app-id")
    assert result.returncode == 0, result.stderr
    assert "seatkeeper.secret_missing name=teams-workflow-url" in result.stderr
    assert "seatkeeper.secret_missing name=graph-certificate" in result.stderr
    assert "teams-workflow-url" not in state["secrets"]


def test_hook_is_quiet_about_secrets_nobody_asked_for(
    first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    """By default (managed identity, no Teams alerts) nothing is reported missing."""
    result, _ = first_run
    assert "secret_missing" not in result.stdout + result.stderr
