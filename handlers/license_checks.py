"""The `license-checks` queue consumer: parse and validate the envelope, run its handler once (idempotency
record), dispatch `admit` to admission, and `license.check` and the group delta reader's `member.changed`
to verification.

Invalid messages complete with a logged reason (retrying cannot fix them); transient errors propagate so
the queue redelivers (and dead-letters past the limit, which the dead-letter watcher alerts).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from handlers.admission import Admission, handle_admit
from handlers.license_commands import LicenseDeps
from handlers.verification import Checked, handle_check, verify_members
from seatkeeper.core.errors import InvalidInput
from seatkeeper.core.idempotency import IdempotencyRecord
from seatkeeper.core.license_messages import ADMIT_KIND, LICENSE_CHECK_KIND, Change, LicenseCheck
from seatkeeper.core.member_changes import MEMBER_CHANGED
from seatkeeper.core.messages import LICENSE_CHECKS, Message, validate

log = structlog.get_logger("seatkeeper.license")


@dataclass(frozen=True)
class Handled:
    """What became of one message: its kind, whether it ran (False: a duplicate), and its outcome."""

    kind: str
    ran: bool
    outcome: Admission | Checked | None = None
    invalid: tuple[str, ...] = ()


async def handle_license_message(
    body: bytes, deps: LicenseDeps, *, message_id: str, idempotency: IdempotencyRecord
) -> Handled:
    """Handle one message of the `license-checks` queue."""
    try:
        message = Message.from_body(LICENSE_CHECKS, body, message_id=message_id)
        validate(message)
    except InvalidInput as error:
        log.warning("license.message_invalid", message_id=message_id, problems=list(error.errors))
        return Handled(kind="", ran=False, invalid=error.errors or (str(error),))

    async def run() -> Admission | Checked:
        if message.kind == ADMIT_KIND:
            return await handle_admit(message, deps)
        if message.kind == MEMBER_CHANGED.name:
            return await _member_changed(message, deps)
        return await handle_check(message, deps)

    if message.kind not in (ADMIT_KIND, LICENSE_CHECK_KIND, MEMBER_CHANGED.name):
        log.warning("license.message_unhandled", message_id=message_id, kind=message.kind)
        return Handled(kind=message.kind, ran=False, invalid=(f"kind: {message.kind!r} is not handled here",))
    ran, outcome = await idempotency.run_once(
        LICENSE_CHECKS, message_id, kind=message.kind, now=deps.clock.now(), handler=run
    )
    if not ran:
        log.info("license.message_duplicate", message_id=message_id, kind=message.kind)
    return Handled(kind=message.kind, ran=ran, outcome=outcome)


async def _member_changed(message: Message, deps: LicenseDeps) -> Checked:
    """A member arrived (verify its license) or left (free its seat, serve the waitlist)."""
    payload = message.payload
    check = LicenseCheck(
        user_id=str(payload["user_id"]).lower(),
        group_id=str(payload["group_id"]).lower(),
        change=Change(str(payload["change"])),
        source=str(payload.get("detected_by", "delta")),
    )
    [checked], _ = await verify_members(
        [check], deps, correlation_id=message.correlation_id, version=message.version
    )
    return checked
