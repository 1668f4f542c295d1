"""A Teams Workflows ("When a Teams webhook request is received") endpoint that captures what it is sent.

The URL it hands out carries a `sig` like Workflows URLs do; it takes `type: message` with an Adaptive
Card attachment (202) and refuses anything else (400).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from sandbox.model import iso
from sandbox.state import SandboxState

ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def valid_message(body: Any) -> str | None:
    """Why this body is not a Workflows message with an Adaptive Card, or None when it is."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return "the body must be a JSON object with type 'message'"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "'attachments' must be a non-empty array"
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE:
            return f"every attachment must have contentType '{ADAPTIVE}'"
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return "every attachment's content must be an AdaptiveCard"
    return None


def handler(state: SandboxState, workflow_id: str, signature: str) -> Any:
    """The aiohttp handler for `/workflows/{id}/triggers/manual/paths/invoke?...&sig=`."""

    async def invoke(request: web.Request) -> web.Response:
        sig = request.query.get("sig", "")
        if request.match_info["workflow"] != workflow_id or not hmac.compare_digest(sig, signature):
            return web.json_response(
                {
                    "error": {
                        "code": "DirectApiAuthorizationRequired",
                        "message": "The request must be authenticated.",
                    }
                },
                status=401,
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        problem = valid_message(body)
        if problem is not None:
            return web.json_response(
                {"error": {"code": "InvalidRequestContent", "message": problem}}, status=400
            )
        state.captures.teams.append(
            {"workflowId": workflow_id, "receivedDateTime": iso(state.clock.now()), "body": body}
        )
        return web.Response(status=202)

    return invoke
