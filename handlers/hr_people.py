"""One ordering record per human (table `hrpeople`), whichever door their events come through.

The HR feed keys a person by employeeId, Lifecycle Workflows by Entra object id. Once both keys of a human
are known — an HR event names the object id, or onboarding found the Entra user, which it reads anyway —
the record lives under the object id and the employeeId's row points to it, so both doors' events are
ordered against one record. Linking costs state-store reads only, never a Graph read of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

import structlog

from seatkeeper.core.hr_events import HrRecord
from seatkeeper.core.hr_ordering import PersonRecord, newest
from seatkeeper.core.ports import Entity, StateStore

PEOPLE_TABLE: Final = "hrpeople"
RECORD_ROW: Final = "record"
ALIAS_FIELD: Final = "alias_of"
"""A row holding only this field is a link: the human's record lives under that key (an object id)."""
_KEY: Final = re.compile(r"^[^/\\#?\x00-\x1f\x7f-\x9f]{1,64}$")
_log = structlog.get_logger("seatkeeper.hr")


def usable_key(key: str | None) -> bool:
    """True for a key a record can live under (HR's schema ensures it for employeeIds it sends; Entra's
    employeeId attribute is free text)."""
    return key is not None and _KEY.match(key) is not None


def _alias(entity: Entity | None) -> str | None:
    return str(entity.data[ALIAS_FIELD]) if entity is not None and ALIAS_FIELD in entity.data else None


def _record(key: str, entity: Entity | None) -> PersonRecord | None:
    if entity is None or ALIAS_FIELD in entity.data:
        return None
    return PersonRecord.from_data(key, entity.data)


@dataclass(frozen=True)
class Held:
    """A human's record as read: the key it lives under, the record (None: none yet) and the row (etag)."""

    key: str
    record: PersonRecord | None
    entity: Entity | None


class PeopleBook:
    """Reads and writes the one record of each human; writes are conditional on what was read, so a
    concurrent change raises ConcurrencyConflict (transient: the message is retried and orders again)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    async def _get(self, key: str) -> Entity | None:
        return await self.state.get(PEOPLE_TABLE, key, RECORD_ROW)

    async def held(self, key: str) -> Held:
        """The record under `key`, following its link (one hop: links only ever point to object ids)."""
        entity = await self._get(key)
        target = _alias(entity)
        if target is not None:
            key, entity = target, await self._get(target)
        return Held(key, _record(key, entity), entity)

    async def for_event(self, person: HrRecord) -> Held:
        """The record that orders this person's events. An event naming the object id links its
        employeeId to it at once (no Graph read needed to know who it is)."""
        if person.object_id and person.object_id != person.employee_id:
            return await self.link(person.employee_id, person.object_id)
        return await self.held(person.employee_id)

    async def link(self, other: str, object_id: str) -> Held:
        """Make `object_id` the one key of the human also known as `other` (an employeeId): the newer of
        the two records goes under the object id and `other` points to it. Repeating it changes nothing."""
        object_id = object_id.lower()
        if other == object_id:
            return await self.held(object_id)
        source, target = await self._get(other), await self._get(object_id)
        kept = _record(object_id, target)
        pointed = _alias(source)
        if pointed == object_id:
            return Held(object_id, kept, target)
        moved = _record(other, source)
        if pointed is not None:
            # The employeeId led to another Entra user before (HR corrected it): the record follows it.
            _log.warning("hr.person_relinked", employee_id=other, user_id=object_id, was=pointed)
            moved = _record(pointed, await self._get(pointed))
        merged = newest(kept, moved)
        took = merged is not None and merged is not kept
        if merged is not None and took:
            merged = replace(merged, employee_id=object_id)
            target = await self._write(object_id, target, merged)
        await self._write_alias(other, source, object_id)
        _log.info("hr.person_linked", employee_id=other, user_id=object_id, moved=took)
        return Held(object_id, merged, target)

    async def write(self, held: Held, record: PersonRecord) -> Held:
        """Write the human's record where it lives, if nobody changed it since it was read."""
        entity = await self._write(held.key, held.entity, replace(record, employee_id=held.key))
        return Held(held.key, record, entity)

    async def _write(self, key: str, entity: Entity | None, record: PersonRecord) -> Entity:
        data = record.to_data()
        if entity is None:
            return await self.state.insert(PEOPLE_TABLE, key, RECORD_ROW, data)
        return await self.state.replace(entity, data)

    async def _write_alias(self, key: str, entity: Entity | None, object_id: str) -> None:
        data = {ALIAS_FIELD: object_id}
        if entity is None:
            await self.state.insert(PEOPLE_TABLE, key, RECORD_ROW, data)
        else:
            await self.state.replace(entity, data)
