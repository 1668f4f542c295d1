"""Rollouts (`seatkeeper rollout`): a list of people to license in one Copilot group, as pure data — the
CSV format, the plan the gate makes of it, per-person progress that lets an interrupted run resume without
double work, and the named rule a recorded rollout becomes.

The CSV format (docs: README "Admin"):
- UTF-8 (a byte-order mark is ignored), comma-separated; blank lines and lines starting with `#` are not rows.
- With a header: the first row names columns; `userPrincipalName` (or `upn`), `id` (or `objectId`) and
  `employeeId` identify a person (case, spaces and `_` ignored); other columns are ignored; a row uses the
  first filled identifier in the order id, UPN, employeeId.
- Without a header (the first row names no known column): one identifier per row, first column only; a GUID
  is an object id, a value with `@` a UPN, anything else an employeeId.
- Every bad row is reported with its line number (empty identifier, malformed GUID or UPN, a person listed
  twice); none is skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from seatkeeper.core.hr_rules import RuleChoice, choose_group
from seatkeeper.core.reasons import Reason

if TYPE_CHECKING:
    from seatkeeper.core.people import Person
    from seatkeeper.core.policy import Policy

_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_UPN: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class IdKind(StrEnum):
    """How a row names a person (the Graph property it is matched on)."""

    OBJECT_ID = "id"
    UPN = "userPrincipalName"
    EMPLOYEE_ID = "employeeId"


_HEADERS: Final = {
    "id": IdKind.OBJECT_ID,
    "objectid": IdKind.OBJECT_ID,
    "userprincipalname": IdKind.UPN,
    "upn": IdKind.UPN,
    "employeeid": IdKind.EMPLOYEE_ID,
}
_PRECEDENCE: Final = (IdKind.OBJECT_ID, IdKind.UPN, IdKind.EMPLOYEE_ID)


@dataclass(frozen=True)
class ListedPerson:
    """One good row: who (kind and value, as written) and on which line of the file."""

    line: int
    kind: IdKind
    value: str

    @property
    def key(self) -> str:
        """Identity of the row for duplicates and progress: kind and case-folded value."""
        return f"{self.kind.value}:{self.value.strip().lower()}"


@dataclass(frozen=True)
class BadRow:
    """A row that names nobody usable, with its line number and the problem."""

    line: int
    text: str
    problem: str


@dataclass(frozen=True)
class RolloutList:
    """A parsed rollout file: the people in file order and every bad row."""

    people: tuple[ListedPerson, ...]
    bad_rows: tuple[BadRow, ...]
    header: bool


def _column(name: str) -> str:
    return re.sub(r"[\s_]", "", name).lower()


def _kind_of(value: str) -> IdKind:
    if _GUID.match(value):
        return IdKind.OBJECT_ID
    return IdKind.UPN if "@" in value else IdKind.EMPLOYEE_ID


def _check(kind: IdKind, value: str) -> str | None:
    if not value:
        return "no identifier in this row"
    if kind is IdKind.OBJECT_ID and not _GUID.match(value):
        return f"{value!r} is not an object id (a GUID)"
    if kind is IdKind.UPN and not _UPN.match(value):
        return f"{value!r} is not a user principal name (name@domain)"
    return None


def parse_rollout_csv(lines: Iterable[str]) -> RolloutList:
    """Parse a rollout file given as text lines (line numbers count from 1, as editors do)."""
    numbered = [(n, line.removeprefix("\ufeff") if n == 1 else line) for n, line in enumerate(lines, 1)]
    rows = [(n, line) for n, line in numbered if line.strip() and not line.lstrip().startswith("#")]
    people: list[ListedPerson] = []
    bad: list[BadRow] = []
    if not rows:
        return RolloutList((), (BadRow(1, "", "the file lists nobody"),), header=False)
    first = next(csv.reader([rows[0][1]]))
    columns = {i: _HEADERS[_column(c)] for i, c in enumerate(first) if _column(c) in _HEADERS}
    has_header = bool(columns)
    if has_header:
        rows = rows[1:]
    seen: dict[str, int] = {}
    for number, text in rows:
        try:
            cells = next(csv.reader([text]))
        except csv.Error as error:
            bad.append(BadRow(number, text.strip(), f"not valid CSV: {error}"))
            continue
        if has_header:
            filled = {
                kind: cells[i].strip() for i, kind in columns.items() if i < len(cells) and cells[i].strip()
            }
            kind = next((k for k in _PRECEDENCE if k in filled), IdKind.UPN)
            value = filled.get(kind, "")
        else:
            value = cells[0].strip() if cells else ""
            kind = _kind_of(value)
        problem = _check(kind, value)
        if problem is not None:
            bad.append(BadRow(number, text.strip(), problem))
            continue
        person = ListedPerson(number, kind, value)
        if person.key in seen:
            bad.append(BadRow(number, text.strip(), f"the same person as line {seen[person.key]}"))
            continue
        seen[person.key] = number
        people.append(person)
    return RolloutList(tuple(people), tuple(bad), has_header)


# --- the plan: what the gate said of each person ----------------------------------------------------------


class Planned(StrEnum):
    """What the rollout does, or did, for one listed person."""

    TO_ADMIT = "to_admit"  # eligible: admitted through the `admit` path (not yet done)
    # Blocked by seats alone: sent through the same `admit` path (not yet done), which puts the person on
    # the first-come-first-served waitlist, served when seats free up — as an HR joiner would be.
    TO_WAITLIST = "to_waitlist"
    BLOCKED = "blocked"
    ALREADY_LICENSED = "already_licensed"
    ALREADY_MEMBER = "already_member"
    NOT_FOUND = "not_found"
    # Results of the admission itself (handlers/admission.py `Result`), once done.
    ADDED = "added"
    PENDING = "pending"
    OBSERVED = "observed"
    REFUSED = "refused"


# States whose people still go through the `admit` path; everyone else needs nothing more from this
# rollout, and resuming skips them.
TO_SEND: Final = frozenset({Planned.TO_ADMIT, Planned.TO_WAITLIST})
FINAL: Final = frozenset(set(Planned) - TO_SEND)
_SEAT_ONLY: Final = (Reason.NO_SEAT.value,)  # the one blocker the waitlist resolves


@dataclass(frozen=True)
class PersonPlan:
    """One listed person: the row, the user found (None: not found), the state, reasons and one sentence."""

    listed: ListedPerson
    user_id: str | None
    upn: str | None
    state: Planned
    reasons: tuple[str, ...] = ()
    summary: str = ""

    @property
    def waits_for_seat(self) -> bool:
        """True when the person waits (or, in a dry run, would wait) on the group's waitlist for a seat."""
        return self.state is Planned.TO_WAITLIST or (
            self.state is Planned.PENDING and self.reasons == _SEAT_ONLY
        )

    @property
    def row_key(self) -> str:
        """The progress row of this person (state-store keys may not hold `/ \\ # ?`: hashed)."""
        return "p-" + hashlib.sha256(self.listed.key.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Totals:
    """Counts for the table's footer: by state, blockers by reason, and seats."""

    by_state: Mapping[str, int]
    blocked_by_reason: Mapping[str, int]
    bad_rows: int
    seats_used: int
    free_seats: int
    waiting_for_seat: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "by_state": dict(sorted(self.by_state.items())),
            "blocked_by_reason": dict(sorted(self.blocked_by_reason.items())),
            "bad_rows": self.bad_rows,
            "seats_used": self.seats_used,
            "free_seats": self.free_seats,
            "waiting_for_seat": self.waiting_for_seat,
        }


def totals(plans: Sequence[PersonPlan], *, bad_rows: int, free_seats: int) -> Totals:
    """The footer: states, blockers, the seats the rollout uses (admitted or to admit) and how many people
    wait (or would wait) for a seat."""
    states = Counter(p.state.value for p in plans)
    blockers = Counter(
        r
        for p in plans
        if p.state in (Planned.BLOCKED, Planned.PENDING, Planned.TO_WAITLIST)
        for r in p.reasons
    )
    used = states[Planned.TO_ADMIT.value] + states[Planned.ADDED.value]
    waiting = sum(p.waits_for_seat for p in plans)
    return Totals(dict(states), dict(blockers), bad_rows, used, free_seats, waiting)


def remaining(plans: Iterable[PersonPlan]) -> tuple[PersonPlan, ...]:
    """The people still to send through admission, in file order (resuming skips everyone already done)."""
    return tuple(sorted((p for p in plans if p.state in TO_SEND), key=lambda p: p.listed.line))


def waitlist_positions(plans: Iterable[PersonPlan], waiting: Sequence[str]) -> dict[str, int]:
    """Each waiting rollout person's place (from 1) on the group's waitlist, by progress row key.

    `waiting` is the group's waitlist, first come first (user ids). A person already on it has their place;
    a person a dry run would put on it comes after everyone waiting, in file order. A person recorded as
    waiting but no longer on the list (served, or gone) has no place.
    """
    place = {user.strip().lower(): n for n, user in enumerate(waiting, 1)}
    positions: dict[str, int] = {}
    last = len(place)
    for plan in sorted(plans, key=lambda p: p.listed.line):
        if not plan.waits_for_seat or not plan.user_id:
            continue
        known = place.get(plan.user_id.strip().lower())
        if known is not None:
            positions[plan.row_key] = known
        elif plan.state is Planned.TO_WAITLIST:
            last += 1
            positions[plan.row_key] = last
    return positions


def chunks(plans: Sequence[PersonPlan], size: int = 20) -> Iterable[tuple[PersonPlan, ...]]:
    """The people to admit in groups of `size` (one bulk add of 20 per group, then progress is saved)."""
    for start in range(0, len(plans), size):
        yield tuple(plans[start : start + size])


# --- the named rule a recorded rollout becomes ------------------------------------------------------------


def check_name(name: str) -> str:
    """A rollout name: letters, digits, `.`, `_`, `-`, at most 63 characters (it keys the state store)."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a rollout name (letters, digits, '.', '_', '-'; at most 63)")
    return name


@dataclass(frozen=True)
class RolloutRule:
    """A recorded rollout as a rule: these people belong in `group_id`, whatever the HR rules say, until
    the rollout is removed (so a mover or reconciliation decision keeps them instead of undoing it)."""

    name: str
    group_id: str
    user_ids: frozenset[str] = field(default_factory=frozenset)

    def keeps(self, user_id: str) -> bool:
        """True when the rollout lists this user (object id, any case)."""
        return user_id.strip().lower() in self.user_ids


def rollout_for(rules: Iterable[RolloutRule], user_id: str) -> RolloutRule | None:
    """The first recorded rollout that lists this user (rollouts are kept in name order)."""
    return next((r for r in sorted(rules, key=lambda r: r.name) if r.keeps(user_id)), None)


def choose_target(policy: Policy, person: Person) -> RuleChoice:
    """The Copilot group a person belongs in: a recorded rollout that lists them first, then the HR rules.

    `RuleChoice.rule` names what chose: `rollout:<name>` or the HR rule's name (None: no rule matched).
    """
    rollout = rollout_for(policy.rollouts, person.id)
    if rollout is not None and policy.group(rollout.group_id) is not None:
        return RuleChoice(rollout.group_id.lower(), f"rollout:{rollout.name}")
    return choose_group(policy.hr_rules, person)
