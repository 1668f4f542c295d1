"""`make run` in sandbox mode signs HR events out of the box: a generated Standard Webhooks secret, kept
beside the host's keys, handed to the app unless a value is already set."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from seatkeeper import settings
from seatkeeper.localhost.hr_signing import HR_SIGNING_FILE, sandbox_secret


def test_a_generated_secret_is_a_standard_webhooks_secret_that_verifies(tmp_path: Path) -> None:
    """The generated value has the `whsec_` form and signs and verifies with the library."""
    environ: dict[str, str] = {}
    path = sandbox_secret(environ, tmp_path)
    secret = environ[settings.HR_SIGNING_SECRET]
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", now, "{}"),
    }
    assert (path, secret.startswith("whsec_")) == (tmp_path / HR_SIGNING_FILE, True)
    assert Webhook(secret).verify("{}", headers) == {}


def test_the_secret_is_kept_owner_only_and_reused_across_starts(tmp_path: Path) -> None:
    """A second start reads the same secret from the file (signers configured once keep working)."""
    first: dict[str, str] = {}
    second: dict[str, str] = {}
    path = sandbox_secret(first, tmp_path)
    sandbox_secret(second, tmp_path)
    assert path is not None
    assert first == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_configured_secret_wins_and_nothing_is_written(tmp_path: Path) -> None:
    """A value from the environment or local.settings.json is left alone; no file appears."""
    environ = {settings.HR_SIGNING_SECRET: "whsec_Y29uZmlndXJlZC1ieS10aGUtYWRtaW4tMDAwMQ=="}
    assert sandbox_secret(environ, tmp_path) is None
    assert environ == {settings.HR_SIGNING_SECRET: "whsec_Y29uZmlndXJlZC1ieS10aGUtYWRtaW4tMDAwMQ=="}
    assert not (tmp_path / HR_SIGNING_FILE).exists()
