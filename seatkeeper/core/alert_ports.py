"""The port every alert channel implements (Teams Workflows, mail, generic webhook), one per policy route."""

from __future__ import annotations

from typing import Protocol

from seatkeeper.core.incidents import Digest, Incident, Notice


class NoticeChannel(Protocol):
    """Delivers notices and digests to one destination.

    Raises TransientError when a later try may succeed (the alert is retried) and PermanentError when it
    never will (the delivery is marked failed and logged); returning means the destination accepted it.
    """

    async def send_notice(self, incident: Incident, notice: Notice) -> None: ...

    async def send_digest(self, digest: Digest) -> None: ...
