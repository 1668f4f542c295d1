"""Structured logs: structlog rendered into stdlib `logging` (the Functions worker forwards root-logger
records), JSON in Azure and readable on a terminal, with ids bound through contextvars and one redaction
step that every record passes, ours and the libraries', so no secret reaches a log.

Event names are dotted (`license.gate_blocked`); data goes in keys, ids only. Each unit of work (a message,
a request, a timer tick) ends with one canonical line: `canonical("membership.processed", decision=...,
reasons=[...], group_id=...)`, under the ids that `log_context` bound at the trigger.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import structlog

from seatkeeper.core.sensitive import REDACTED, Secret

# Ids a unit of work is known by; trigger bodies bind them, every line below carries them.
CONTEXT_KEYS: Final = (
    "correlation_id",
    "invocation_id",
    "message_id",
    "delivery_count",
    "user_id",
    "group_id",
)

# Keys whose values are secret whatever they hold.
_SECRET_KEY: Final = re.compile(
    r"(secret|token|password|passphrase|client_?state|signature|authorization|cookie|webhook|api_?key|"
    r"credential|assertion|(?:^|_)(?:api|access|signing|shared|private|account|sas|master)_?key$|^key$|^sig$|_sig$)",
    re.IGNORECASE,
)
# Secret-shaped text inside any string: JWTs, bearer tokens, signed-URL and token query parameters.
_SECRET_TEXT: Final = (
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1" + REDACTED),
    (
        re.compile(
            r"(?i)([?&](?:sig|signature|code|token|access_token|client_secret|clientstate|validationtoken|"
            r"api-key|key)=)[^&\s\"']+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)(\"?client_?secret\"?\s*[:=]\s*\"?)[^\s\"',&]+"), r"\1" + REDACTED),
)

_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_QUIET_LIBRARIES: Final = ("httpx", "httpcore", "msal", "azure", "urllib3", "asyncio")


def register_secret(value: Secret | str | None) -> None:
    """Remember a secret value so that it is redacted wherever it appears in a log line."""
    text = value.reveal() if isinstance(value, Secret) else value
    if text and len(text) >= 6:
        with _secrets_lock:
            _known_secrets.add(text)


def redact_text(text: str) -> str:
    """`text` with every registered secret and every secret-shaped part replaced."""
    with _secrets_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    """A copy of a log value with secrets replaced: by key name, by type (Secret) and by content."""
    secret_key = bool(key) and _SECRET_KEY.search(key) is not None and value not in (None, "", True, False)
    if secret_key or isinstance(value, Secret):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact_text(value if isinstance(value, str) else repr(value))


def _redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog step: redact every key of the event (including a formatted exception)."""
    return {
        k: redact(v, "" if k in ("event", "exception", "level", "timestamp") else k)
        for k, v in event_dict.items()
    }


def _install_record_redaction() -> None:
    """Redact every stdlib record at creation, whichever logger or handler it goes through."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_seatkeeper_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return record

    factory._seatkeeper_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def in_azure(environ: Mapping[str, str] | None = None) -> bool:
    """True inside an Azure Functions host (the platform sets WEBSITE_INSTANCE_ID)."""
    return bool((os.environ if environ is None else environ).get("WEBSITE_INSTANCE_ID"))


def configure_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Set up structlog over stdlib logging once per process; safe to call again (later calls win)."""
    use_json = log_format == "json" or (log_format == "auto" and (in_azure() or not sys.stderr.isatty()))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_event,
            renderer,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=False,
    )
    _install_record_redaction()
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers and not in_azure():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str = "seatkeeper") -> structlog.stdlib.BoundLogger:
    """A structured logger; its lines go through stdlib logging to the root logger's handlers."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


@contextmanager
def log_context(**ids: str | int | None) -> Iterator[None]:
    """Bind ids (correlation_id, invocation_id, message_id, user_id, group_id...) for a unit of work."""
    unknown = set(ids) - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"not a log context key: {', '.join(sorted(unknown))}")
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in ids.items() if v is not None}):
        yield


def canonical(event: str, *, decision: str, reasons: Sequence[str] = (), **fields: Any) -> None:
    """The one line that sums up a unit of work: what was decided and why (machine-readable reasons)."""
    get_logger("seatkeeper.work").info(event, decision=decision, reasons=list(reasons), **fields)
