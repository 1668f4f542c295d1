"""Graph's error body and the exception handlers raise to produce it.

Every Graph error answers `{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`; handlers raise `GraphError` and the router renders it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class GraphError(Exception):
    """A Graph error answer: HTTP status, Graph error code and message, optional extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, request_id: str, client_request_id: str) -> dict[str, Any]:
    """The documented Graph error shape."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    """400 with Graph's generic directory code."""
    return GraphError(400, code, message)


def not_found(object_id: str) -> GraphError:
    """404 as the directory answers for an unknown object id."""
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )
