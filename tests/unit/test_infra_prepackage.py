"""infra/hooks/prepackage.sh, run as azd runs it (from the project root): `azd deploy` refuses to package the
app without a policy file that passes `seatkeeper policy check`, and says what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.test_infra_sources import INFRA, ROOT

HOOK = INFRA / "hooks" / "prepackage.sh"
EXAMPLE = ROOT / "policies" / "example.yaml"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the shipped example policy and no policy of its own yet."""
    (tmp_path / "policies").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "policies" / "example.yaml")
    return tmp_path


def _run(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("sh")
    assert shell is not None
    environ = {"PATH": os.environ["PATH"], "PYTHON": sys.executable, **env}
    return subprocess.run(  # noqa: S603 - our own hook
        [shell, str(HOOK)], cwd=project, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def test_no_policy_file_refuses_and_says_how_to_make_one(project: Path) -> None:
    """Without policies/policy.yaml the hook fails and names the copy-and-check steps."""
    result = _run(project)
    assert result.returncode == 1
    assert "seatkeeper.policy_refused file=policies/policy.yaml" in result.stderr
    assert "cp policies/example.yaml policies/policy.yaml" in result.stderr
    assert "seatkeeper policy check policies/policy.yaml" in result.stderr


def test_unmodified_example_is_refused(project: Path) -> None:
    """A copy of the example deploys placeholder groups: refused."""
    shutil.copy(EXAMPLE, project / "policies" / "policy.yaml")
    result = _run(project)
    assert result.returncode == 1
    assert "unmodified example" in result.stderr


def test_invalid_policy_is_refused_with_its_problems(project: Path) -> None:
    """A policy the checker rejects stops the deployment; the checker's problems are shown."""
    (project / "policies" / "policy.yaml").write_text("licensing_groups: 42\n", encoding="utf-8")
    result = _run(project)
    assert result.returncode == 1
    assert "problem(s)" in result.stderr
    assert "does not pass 'seatkeeper policy check'" in result.stderr


def test_valid_policy_passes(project: Path) -> None:
    """An edited, valid policy lets packaging go on."""
    policy = EXAMPLE.read_text(encoding="utf-8") + "\n# edited for this tenant\n"
    (project / "policies" / "policy.yaml").write_text(policy, encoding="utf-8")
    result = _run(project)
    assert result.returncode == 0, result.stderr
    assert "seatkeeper.policy_checked file=policies/policy.yaml" in result.stdout


def test_policy_file_setting_is_honoured_and_must_stay_in_the_package(project: Path) -> None:
    """SEATKEEPER_POLICY_FILE names another file; a path outside the project is refused."""
    policy = EXAMPLE.read_text(encoding="utf-8") + "\n# production\n"
    (project / "policies" / "prod.yaml").write_text(policy, encoding="utf-8")
    assert _run(project, SEATKEEPER_POLICY_FILE="policies/prod.yaml").returncode == 0
    outside = _run(project, SEATKEEPER_POLICY_FILE="../elsewhere.yaml")
    assert outside.returncode == 1
    assert "must be inside this folder" in outside.stderr


def test_azure_yaml_runs_the_hook_before_packaging() -> None:
    """azd runs it as the project's prepackage hook and stops on failure; Bicep reads the same setting."""
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))["hooks"]
    prepackage = hooks["prepackage"]["posix"]
    assert (ROOT / prepackage["run"]).resolve() == HOOK
    assert prepackage["continueOnError"] is False
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    assert "${SEATKEEPER_POLICY_FILE=policies/policy.yaml}" in parameters
