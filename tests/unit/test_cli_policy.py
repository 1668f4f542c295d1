"""`seatkeeper policy check FILE`: exit 0 with a summary for a valid file, 1 with every problem otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from seatkeeper.cli import main
from seatkeeper.settings import APP_ROOT


@pytest.mark.parametrize("name", ["example.yaml", "sandbox.yaml"])
def test_shipped_policies_are_valid(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Both policies in the repository pass the check and are summarised."""
    assert main(["policy", "check", str(APP_ROOT / "policies" / name)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{APP_ROOT / 'policies' / name}: valid")
    assert "group Copilot - " in out


def test_invalid_file_lists_each_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Problems go to stderr as file:line:column: field: message, then a count."""
    path = tmp_path / "p.yaml"
    path.write_text("version: 2\nlicensing_groups: {}\n", encoding="utf-8")
    assert main(["policy", "check", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:2:1: licensing_groups: {{}} is not of type 'array'",
        f"{path}:1:10: version: 1 was expected",
        f"{path}: 2 problem(s)",
    ]
