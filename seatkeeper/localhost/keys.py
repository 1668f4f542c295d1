"""Function keys as Azure Functions has them: a master key, host keys (default and named), function keys.

The key file is created under the state directory on first start and reused afterwards, so URLs that
carry a key (a Graph subscription's notification URL) keep working across restarts.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

KEY_FILE_NAME = "host-keys.json"
DEFAULT_KEY = "default"
# The Graph webhook's notification URL carries this named host key (`?code=`).
GRAPH_WEBHOOK_KEY = "graph-webhook"


class AuthLevel(Enum):
    """Who may call an HTTP function: anyone, a holder of a function or host key, or of the master key."""

    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: object) -> AuthLevel:
        """Accepts the binding's value (`AuthLevel.FUNCTION`, `"function"`, `"FUNCTION"`)."""
        text = str(getattr(value, "value", value)).lower()
        return cls(text)


def _new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class HostKeys:
    """The keys of one local host; compare with `level_of`, never with `==`."""

    master: str
    host_keys: Mapping[str, str]
    function_keys: Mapping[str, Mapping[str, str]]

    def level_of(self, presented: str | None, function_name: str | None = None) -> AuthLevel:
        """The highest level the presented key grants (for `function_name`'s own keys too)."""
        if not presented:
            return AuthLevel.ANONYMOUS
        if _matches(presented, [self.master]):
            return AuthLevel.ADMIN
        candidates = list(self.host_keys.values())
        if function_name is not None:
            candidates.extend(self.function_keys.get(function_name, {}).values())
        if _matches(presented, candidates):
            return AuthLevel.FUNCTION
        return AuthLevel.ANONYMOUS

    def allows(self, required: AuthLevel, presented: str | None, function_name: str | None = None) -> bool:
        """Whether a caller presenting `presented` may call a function that requires `required`."""
        if required is AuthLevel.ANONYMOUS:
            return True
        granted = self.level_of(presented, function_name)
        if required is AuthLevel.FUNCTION:
            return granted in (AuthLevel.FUNCTION, AuthLevel.ADMIN)
        return granted is AuthLevel.ADMIN

    def to_json(self) -> dict[str, Any]:
        """The key file's content."""
        return {
            "masterKey": self.master,
            "hostKeys": dict(self.host_keys),
            "functionKeys": {name: dict(keys) for name, keys in self.function_keys.items()},
        }


def _matches(presented: str, candidates: Iterable[str]) -> bool:
    # Constant-time per comparison, and every candidate is compared (no early exit on a match).
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(presented.encode("utf-8"), candidate.encode("utf-8"))
    return found


def load_or_create(state_dir: Path, named: Iterable[str] = (GRAPH_WEBHOOK_KEY,)) -> tuple[HostKeys, Path]:
    """Read the key file under `state_dir`, creating it (and any missing named host key) if needed."""
    path = state_dir / KEY_FILE_NAME
    raw: dict[str, Any] = {}
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
    host_keys: dict[str, str] = dict(raw.get("hostKeys", {}))
    changed = not path.exists()
    for name in (DEFAULT_KEY, *named):
        if name not in host_keys:
            host_keys[name] = _new_key()
            changed = True
    master = str(raw.get("masterKey") or "")
    if not master:
        master = _new_key()
        changed = True
    function_keys = {str(k): dict(v) for k, v in dict(raw.get("functionKeys", {})).items()}
    keys = HostKeys(master=master, host_keys=host_keys, function_keys=function_keys)
    if changed:
        _write_private(path, json.dumps(keys.to_json(), indent=2) + "\n")
    return keys, path


def _write_private(path: Path, text: str) -> None:
    """Write the key file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)
