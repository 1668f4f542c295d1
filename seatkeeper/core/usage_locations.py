"""Usage-location rules of the policy: what blocks a person, and what Seatkeeper may set in its place.

Under group-based licensing a user without `usageLocation` silently inherits the tenant's country
(graph-facts E), so the policy may require one; Seatkeeper writes one only from the configured source.
"""

from __future__ import annotations

from seatkeeper.core.people import Person
from seatkeeper.core.policy import Policy, UsageLocationSource


def fix_for(person: Person, policy: Policy) -> str | None:
    """The usage location the policy lets Seatkeeper set for this person, or None (no source, no value)."""
    fix = policy.usage_location_fix
    if fix.source is UsageLocationSource.FIXED:
        value = fix.fixed_code
    elif fix.source is UsageLocationSource.HR_COUNTRY:
        value = person.hr_country
    else:
        value = None
    if value is None or len(value.strip()) != 2:
        return None
    return value.strip().upper()


def usable_fix(person: Person, policy: Policy) -> str | None:
    """A fix worth writing: allowed, different from what the user has, and a country where Copilot is sold."""
    value = fix_for(person, policy)
    if value is None or value == person.usage_location or not policy.copilot_sold_in(value):
        return None
    return value
