"""Function keys of the local host: created once, kept across restarts, levels as in Azure."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from seatkeeper.localhost.keys import AuthLevel, HostKeys, load_or_create

KEYS = HostKeys(
    master="m-key",
    host_keys={"default": "d-key", "graph-webhook": "g-key"},
    function_keys={"fn": {"default": "f-key"}},
)


def test_key_file_is_created_private_with_master_default_and_webhook_keys(tmp_path: Path) -> None:
    """First start writes a key file only its owner can read, with the keys a caller needs."""
    keys, path = load_or_create(tmp_path / "state")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(keys.host_keys) == {"default", "graph-webhook"}
    assert len(keys.master) >= 32


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    """A second start reads the same keys, so URLs carrying a key keep working."""
    first, _ = load_or_create(tmp_path)
    second, _ = load_or_create(tmp_path)
    assert first == second


@pytest.mark.parametrize(
    ("presented", "function", "expected"),
    [
        (None, None, AuthLevel.ANONYMOUS),
        ("wrong", None, AuthLevel.ANONYMOUS),
        ("d-key", None, AuthLevel.FUNCTION),
        ("g-key", None, AuthLevel.FUNCTION),
        ("f-key", "fn", AuthLevel.FUNCTION),
        ("f-key", "other", AuthLevel.ANONYMOUS),
        ("m-key", None, AuthLevel.ADMIN),
    ],
    ids=["none", "wrong", "host-default", "host-named", "own-function-key", "other-function-key", "master"],
)
def test_level_granted_by_a_key(presented: str | None, function: str | None, expected: AuthLevel) -> None:
    """Host keys open every function, function keys their own, the master key everything."""
    assert KEYS.level_of(presented, function) is expected


@pytest.mark.parametrize(
    ("required", "presented", "allowed"),
    [
        (AuthLevel.ANONYMOUS, None, True),
        (AuthLevel.FUNCTION, None, False),
        (AuthLevel.FUNCTION, "d-key", True),
        (AuthLevel.FUNCTION, "m-key", True),
        (AuthLevel.ADMIN, "d-key", False),
        (AuthLevel.ADMIN, "m-key", True),
    ],
)
def test_auth_levels(required: AuthLevel, presented: str | None, allowed: bool) -> None:
    """Anonymous needs nothing, function any function or master key, admin the master key."""
    assert KEYS.allows(required, presented) is allowed


@pytest.mark.parametrize("value", ["function", "FUNCTION", "Function"])
def test_auth_level_parses_binding_values(value: str) -> None:
    """The binding may carry the level in any case."""
    assert AuthLevel.parse(value) is AuthLevel.FUNCTION
