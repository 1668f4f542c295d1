"""Logs never carry a secret: known secrets are sent through every path (structlog keys and values, nested
data, exceptions, stdlib loggers of libraries, the settings object, the Graph client's own lines) in both
renderings, and every captured byte is searched."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from seatkeeper.adapters.graph.client import GraphClient
from seatkeeper.adapters.graph.retrying import RetryPolicy
from seatkeeper.bootstrap import register_policy_secrets
from seatkeeper.core.errors import Throttled
from seatkeeper.core.policy import AlertChannel, AlertRoute, Alerts, Policy
from seatkeeper.core.sensitive import REDACTED, Secret
from seatkeeper.logs import canonical, configure_logging, get_logger, log_context, redact, register_secret
from seatkeeper.settings import CredentialKind, GraphSettings, Mode, Settings

CLIENT_SECRET = "Zq8~client-secret-0f9e8d7c"
CLIENT_STATE = "client-state-key-7a6b5c4d"
HR_SECRET = "hr-signing-secret-3e2d1c0b"
ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJyb2xlcyI6WyJVc2VyLlJlYWQuQWxsIl19.c2lnbmF0dXJlLWJ5dGVz"
WEBHOOK_URL = "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=S1gn4tur3xyz"
SIGNATURE = "sha256=9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRETS = (CLIENT_SECRET, CLIENT_STATE, HR_SECRET, ACCESS_TOKEN, "S1gn4tur3xyz", SIGNATURE)


@pytest.fixture(params=["json", "console"])
def captured(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Logging configured as in production (each rendering), with every root-logger line captured."""
    configure_logging(str(request.param), "DEBUG")
    register_secret(CLIENT_SECRET)
    register_secret(Secret(CLIENT_STATE))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        structlog.reset_defaults()


def _assert_clean(*texts: str) -> None:
    everything = "\n".join(texts)
    assert everything.strip(), "nothing was logged: the test would prove nothing"
    leaked = [s for s in SECRETS if s in everything]
    assert leaked == []


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        mode=Mode.TENANT,
        graph=GraphSettings(
            tenant_id="t",
            graph_url="https://graph.microsoft.com/v1.0",
            authority="https://login.microsoftonline.com/t",
            credential=CredentialKind.SECRET,
            client_id="c",
            client_secret=Secret(CLIENT_SECRET),
        ),
        policy_file=tmp_path / "p.yaml",
        client_state_key=Secret(CLIENT_STATE),
        hr_signing_secret=Secret(HR_SECRET),
        data_dir=tmp_path,
        log_format="json",
        log_level="DEBUG",
    )


def test_structlog_keys_values_and_nesting(captured: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    """Secret keys, Secret objects, registered values, JWTs, bearer headers and signed URLs are redacted."""
    log = get_logger("seatkeeper.test")
    with log_context(correlation_id="c-1", user_id="u-1"):
        log.info(
            "test.secrets_everywhere",
            client_secret=CLIENT_SECRET,
            clientState=CLIENT_STATE,
            signature=SIGNATURE,
            hr_key=Secret(HR_SECRET),
            detail=f"the app used {CLIENT_SECRET} and {CLIENT_STATE}",
            headers={"Authorization": f"Bearer {ACCESS_TOKEN}", "x-ok": "fine"},
            url=WEBHOOK_URL,
            items=[ACCESS_TOKEN, {"nested_token": "abc123456"}],
        )
    out = captured.getvalue()
    _assert_clean(out, *capsys.readouterr())
    assert "test.secrets_everywhere" in out
    assert "c-1" in out
    assert "u-1" in out
    assert "fine" in out


def _fail_with_secrets() -> None:
    raise RuntimeError(f"token endpoint said no to {CLIENT_SECRET} with {ACCESS_TOKEN}")


def test_exceptions_are_redacted(captured: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    """An exception whose text holds a secret is logged, by structlog and by stdlib, without it."""
    try:
        _fail_with_secrets()
    except RuntimeError:
        get_logger("seatkeeper.test").exception("test.failed")
        logging.getLogger("some.library").exception("library failed with %s", CLIENT_STATE)
    out = captured.getvalue()
    _assert_clean(out, *capsys.readouterr())
    assert "RuntimeError" in out


def test_library_loggers_are_redacted(captured: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    """Records of other loggers (args formatted or not) pass the same redaction."""
    logging.getLogger("msal.application").warning("client_secret=%s for %s", CLIENT_SECRET, "app")
    logging.getLogger("httpx").warning("POST %s", WEBHOOK_URL)
    logging.getLogger("azure.core").warning(f"Authorization: Bearer {ACCESS_TOKEN}")
    out = captured.getvalue()
    _assert_clean(out, *capsys.readouterr())
    assert "client_secret=" in out


def test_the_settings_object_logs_without_secrets(
    captured: io.StringIO, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Logging the whole settings (by mistake) shows redaction marks, not values."""
    get_logger("seatkeeper.test").info("test.settings", settings=_settings(tmp_path))
    out = captured.getvalue()
    _assert_clean(out, *capsys.readouterr())
    assert REDACTED in out


def test_graph_client_lines_carry_no_token(captured: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    """Throttled until the budget ends: the retry lines and the error say what happened, not the token."""

    def throttle(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["Authorization"]
        return httpx.Response(
            429, headers={"Retry-After": "1"}, json={"error": {"code": "x", "message": echoed}}
        )

    async def scenario() -> str:
        async def token() -> str:
            return ACCESS_TOKEN

        async def no_sleep(_: float) -> None:
            return None

        http = httpx.AsyncClient(transport=httpx.MockTransport(throttle))
        graph = GraphClient(
            graph_url="https://127.0.0.1:1/v1.0",
            http=http,
            token=token,
            retry=RetryPolicy(budget_seconds=2),
            sleep=no_sleep,
        )
        try:
            await graph.get("/users")
        except Throttled as error:
            get_logger("seatkeeper.test").warning("test.graph_failed", error=str(error))
            return str(error)
        finally:
            await graph.aclose()
        return ""

    message = asyncio.run(scenario())
    out = captured.getvalue()
    _assert_clean(out, *capsys.readouterr())
    assert "graph.retry_scheduled" in out
    assert ACCESS_TOKEN in message  # the error object itself is not a log line; logging it redacts it


def test_json_lines_are_json(captured: io.StringIO) -> None:
    """In JSON mode every line of ours parses, with the dotted event name and bound ids."""
    configure_logging("json", "DEBUG")
    with log_context(message_id="m-1"):
        get_logger("seatkeeper.test").info("license.gate_blocked", user_id="u-9", reasons=["no_base_license"])
    line = next(ln for ln in captured.getvalue().splitlines() if "license.gate_blocked" in ln)
    record = json.loads(line.split(" ", 2)[2])
    assert (record["event"], record["message_id"], record["user_id"], record["level"]) == (
        "license.gate_blocked",
        "m-1",
        "u-9",
        "info",
    )


def test_redact_keeps_what_is_not_secret() -> None:
    """Ids, counts and booleans pass untouched; an unknown context key is refused."""
    kept = {
        "user_id": "u-1",
        "count": 3,
        "ok": True,
        "incident_key": "user:u-1:CountViolation",
        "row_key": "r",
    }
    assert redact(kept) == kept
    assert redact({"api_key": "k-123456", "signing_key": "s-123456"}) == {
        "api_key": REDACTED,
        "signing_key": REDACTED,
    }
    with pytest.raises(ValueError, match="not a log context key"), log_context(password="x"):
        pass


def test_canonical_line_carries_decision_reasons_and_context(captured: io.StringIO) -> None:
    """One line per unit of work: the decision, its reasons, and the ids bound by the trigger."""
    configure_logging("json", "DEBUG")
    with log_context(correlation_id="c-7", invocation_id="i-7"):
        canonical("membership.processed", decision="blocked", reasons=["no_base_license"], user_id="u-7")
    line = next(ln for ln in captured.getvalue().splitlines() if "membership.processed" in ln)
    record = json.loads(line.split(" ", 2)[2])
    assert {k: record[k] for k in ("decision", "reasons", "correlation_id", "invocation_id", "user_id")} == {
        "decision": "blocked",
        "reasons": ["no_base_license"],
        "correlation_id": "c-7",
        "invocation_id": "i-7",
        "user_id": "u-7",
    }


def test_alert_webhook_urls_from_settings_are_redacted(captured: io.StringIO) -> None:
    """A plain webhook URL (no signature in it) named by a policy route is redacted once registered."""
    url = "https://hooks.example.org/services/T0001/B0002/plainsecretpath"
    route = AlertRoute(name="ops", channel=AlertChannel.WEBHOOK, url_setting="OPS_WEBHOOK_URL")
    register_policy_secrets(
        Policy(licensing_groups=(), alerts=Alerts(routes=(route,))), {"OPS_WEBHOOK_URL": url}
    )
    get_logger("seatkeeper.test").warning("alert.channel_failed", target=url, status=500)
    out = captured.getvalue()
    assert "alert.channel_failed" in out
    assert "plainsecretpath" not in out
