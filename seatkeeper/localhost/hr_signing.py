"""The HR signing secret of a sandbox run: generated once in the Standard Webhooks form (`whsec_` + base64),
kept next to the host's keys (owner-only file), so `make run` accepts signed HR events out of the box.

The value is never printed; the host prints the file's path. A value already set (environment or
`local.settings.json`) always wins, and nothing is generated when a real tenant is configured.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from typing import Final

from seatkeeper import settings as settings_module

HR_SIGNING_FILE: Final = "hr-signing-secret"
SECRET_BYTES: Final = 32
"""Random bytes in a generated secret (Standard Webhooks asks for 24 to 64)."""


def new_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def load_or_create(state_dir: Path) -> tuple[str, Path]:
    """The secret kept under `state_dir`, created (readable by its owner only) on first use."""
    path = state_dir / HR_SIGNING_FILE
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, path
    value = new_secret()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    tmp.replace(path)
    return value, path


def sandbox_secret(environ: MutableMapping[str, str], state_dir: Path) -> Path | None:
    """In sandbox mode: hand the app the kept secret unless one is set; the file's path, or None if set."""
    name = settings_module.HR_SIGNING_SECRET
    if environ.get(name, "").strip():
        return None
    value, path = load_or_create(state_dir)
    environ[name] = value
    return path
