"""What Seatkeeper knows of a licensing group from Graph, and whether Graph lets it write the membership.

Graph refuses member writes to dynamic groups (the rule owns membership) and to mail-enabled security
groups (Exchange owns it); those are watched and reported on, never edited (design §1, graph-facts I).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from seatkeeper.core.graph_fields import FieldReader

GROUP_SELECT: Final = ("id", "displayName", "groupTypes", "mailEnabled", "securityEnabled")
"""The group fields the ownership check needs."""

_DYNAMIC: Final = "dynamicmembership"
_UNIFIED: Final = "unified"


@dataclass(frozen=True)
class GroupSnapshot:
    """A group's type flags as Graph reports them."""

    id: str
    display_name: str = ""
    group_types: frozenset[str] = frozenset()
    mail_enabled: bool = False
    security_enabled: bool = True

    @property
    def is_dynamic(self) -> bool:
        """Membership comes from a rule (`groupTypes` holds `DynamicMembership`)."""
        return _DYNAMIC in {t.lower() for t in self.group_types}

    @property
    def is_microsoft_365(self) -> bool:
        """A Microsoft 365 group (`groupTypes` holds `Unified`)."""
        return _UNIFIED in {t.lower() for t in self.group_types}

    @property
    def is_mail_enabled_security(self) -> bool:
        """A mail-enabled security group: membership is managed in Exchange, not through Graph."""
        return self.mail_enabled and self.security_enabled and not self.is_microsoft_365

    @property
    def membership_writable(self) -> bool:
        """Graph lets Seatkeeper add and remove members: assigned security or Microsoft 365 groups only."""
        if self.is_dynamic or self.is_mail_enabled_security:
            return False
        return self.is_microsoft_365 or (self.security_enabled and not self.mail_enabled)


def group_from_graph(data: Mapping[str, Any] | object) -> GroupSnapshot:
    """Parse a Graph group object (as selected with GROUP_SELECT); raises InvalidInput on a malformed one."""
    reader = FieldReader(data, "group")
    group_id = reader.required_str("id")
    snapshot = GroupSnapshot(
        id=group_id.strip().lower(),
        display_name=reader.optional_str("displayName") or "",
        group_types=frozenset(reader.str_list("groupTypes")),
        mail_enabled=bool(reader.optional_bool("mailEnabled")),
        security_enabled=bool(reader.optional_bool("securityEnabled")),
    )
    reader.raise_if_invalid("the Graph group object is malformed")
    return snapshot
