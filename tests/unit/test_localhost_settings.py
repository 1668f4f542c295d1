"""The local host and the app read the same settings, under the same names, from the same places."""

from __future__ import annotations

import json
from pathlib import Path

from seatkeeper import settings
from seatkeeper.localhost.host import HOSTNAME_VARIABLE, WEBHOOK_KEY_VARIABLE

DOC = settings.APP_ROOT / "docs" / "settings.md"


def test_what_the_host_hands_the_app_are_documented_settings() -> None:
    """Every variable the host sets for the app is a setting in SETTINGS and has a row in docs/settings.md."""
    handed = {HOSTNAME_VARIABLE, WEBHOOK_KEY_VARIABLE, settings.SANDBOX_READY_FILE, settings.DATA_DIR}
    doc = DOC.read_text(encoding="utf-8")
    assert [
        name for name in sorted(handed) if name not in settings.SETTINGS or f"| `{name}` |" not in doc
    ] == []


def test_state_dir_follows_the_data_dir_of_local_settings(tmp_path: Path) -> None:
    """`seatkeeper serve` keeps its state where local.settings.json's SEATKEEPER_DATA_DIR says."""
    local = tmp_path / "local.settings.json"
    local.write_text(json.dumps({"Values": {settings.DATA_DIR: str(tmp_path / "data")}}), encoding="utf-8")
    assert settings.data_dir(settings.local_settings_values(local)) == tmp_path / "data"
    assert settings.data_dir({settings.DATA_DIR: "elsewhere"}) == settings.APP_ROOT / "elsewhere"
    assert settings.data_dir({}) == settings.APP_ROOT / ".seatkeeper"
