"""The clientState of a group subscription, derived rather than stored: HMAC(key, group id ‖ generation).

No secret sits in a table: the webhook recomputes the value expected for a subscription from the key and the
subscription's record (group id, generation) and compares it in constant time. A new generation (a recreated
subscription) gets a new value, so a superseded subscription's deliveries no longer verify.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from typing import Final

from seatkeeper.core.sensitive import Secret

CLIENT_STATE_VERSION: Final = "v1"
MAX_CLIENT_STATE: Final = 128  # Graph's subscription page says 128; the changeNotification page says 255


@functools.lru_cache(maxsize=4096)  # the webhook checks every item: derive once per subscription
def derive_client_state(key: Secret, group_id: str, generation: int) -> Secret:
    """The clientState for the subscription of `group_id` at `generation` (base64url, 46 characters)."""
    message = f"{CLIENT_STATE_VERSION}\x1f{group_id.strip().lower()}\x1f{generation}".encode()
    digest = hmac.new(key.reveal().encode("utf-8"), message, hashlib.sha256).digest()
    return Secret(f"{CLIENT_STATE_VERSION}." + base64.urlsafe_b64encode(digest).decode().rstrip("="))


def client_state_matches(presented: object, key: Secret, group_id: str, generation: int) -> bool:
    """Constant-time check of a presented clientState against the one derived for the subscription."""
    if not isinstance(presented, str) or len(presented) > MAX_CLIENT_STATE:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), _expected(key, group_id, generation))


@functools.lru_cache(maxsize=4096)
def _expected(key: Secret, group_id: str, generation: int) -> bytes:
    return derive_client_state(key, group_id, generation).reveal().encode("utf-8")
