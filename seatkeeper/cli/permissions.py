"""`seatkeeper permissions list|grant`: the Graph application permissions Seatkeeper needs, per operation,
and their grant to its managed identity (or app registration) as app-role assignments.

OPERATION_PERMISSIONS is the one table of which Graph operation needs which permission: the grant, the docs
(docs/permissions.md) and tests/unit/test_infra_permissions.py (which finds every Graph path the code calls)
all read it. A new Graph call without a row here fails that test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from seatkeeper.core.graph_port import GraphPort

# Microsoft Graph's own application (the resource whose app roles are the application permissions).
GRAPH_APP_ID: Final = "00000003-0000-0000-c000-000000000000"
MAIL_SEND: Final = "Mail.Send"
NO_PERMISSION: Final = "none"


@dataclass(frozen=True)
class Need:
    """The least application permission one Graph operation needs, and where that fact comes from.

    NO_PERMISSION marks an operation that needs none (the Lifecycle Workflows `resume` callback made by
    the app named in the extension, graph-facts F1)."""

    permission: str
    source: str
    optional: bool = False  # only needed when a feature is configured (email alerts)


# Operation names as the Graph client counts them (`METHOD /path`, ids as `{id}`); graph-facts B4 and rows.
OPERATION_PERMISSIONS: Final[Mapping[str, Need]] = {
    # change-notification subscriptions on groups: create, renew, list, delete (graph-facts A1)
    "POST /subscriptions": Need("Group.Read.All", "graph-facts A1 (create-subscription table)"),
    "PATCH /subscriptions/{id}": Need("Group.Read.All", "graph-facts A1 (renew: as create)"),
    "GET /subscriptions": Need("Group.Read.All", "graph-facts A1 (as create)"),
    "DELETE /subscriptions/{id}": Need("Group.Read.All", "graph-facts A1 (as create)"),
    # groups: properties and members (graph-facts B4, I)
    "GET /groups/{id}": Need("GroupMember.Read.All", "graph-facts B4 (group reads)"),
    "GET /groups/{id}/membersWithLicenseErrors": Need(
        "GroupMember.Read.All",
        "graph-facts B3; [U] no permission published for it: as list members (Group.Read.All is granted too)",
    ),
    "GET /groups/{id}/members": Need("GroupMember.Read.All", "graph-facts B4 (list members)"),
    "GET /groups/delta": Need("GroupMember.Read.All", "graph-facts A7 (group delta, $select=members)"),
    "PATCH /groups/{id}": Need(
        "GroupMember.ReadWrite.All", "graph-facts I (members@odata.bind, 20 a request)"
    ),
    "DELETE /groups/{id}/members/{id}/$ref": Need("GroupMember.ReadWrite.All", "graph-facts B4"),
    # users: license facts with $select, usage location, reprocessing (graph-facts B2)
    "GET /users": Need("User.Read.All", "graph-facts B2 (health: one cheap read)"),
    "GET /users/{id}": Need("User.Read.All", "graph-facts B2 (licenseAssignmentStates with $select)"),
    "PATCH /users/{id}": Need("User.ReadWrite.All", "graph-facts B2 (usageLocation)"),
    "POST /users/{id}/reprocessLicenseAssignment": Need(
        "User.ReadWrite.All", "graph-facts B2 (not LicenseAssignment.*)"
    ),
    # seats (graph-facts B1)
    "GET /subscribedSkus": Need("LicenseAssignment.Read.All", "graph-facts B1"),
    # email alerts only (graph-facts G)
    "POST /users/{id}/sendMail": Need(MAIL_SEND, "graph-facts G (email alerts only)", optional=True),
}

# A permission that includes another: granting both would be more than the code needs.
INCLUDES: Final[Mapping[str, frozenset[str]]] = {
    "GroupMember.ReadWrite.All": frozenset({"GroupMember.Read.All"}),
    "User.ReadWrite.All": frozenset({"User.Read.All"}),
    "LicenseAssignment.ReadWrite.All": frozenset({"LicenseAssignment.Read.All"}),
    "Group.ReadWrite.All": frozenset({"Group.Read.All"}),
}


def required_permissions(*, include_optional: bool) -> frozenset[str]:
    """The smallest set of permissions that covers every operation (optional ones only when asked)."""
    wanted = {
        need.permission
        for need in OPERATION_PERMISSIONS.values()
        if (include_optional or not need.optional) and need.permission != NO_PERMISSION
    }
    covered = {inner for outer in wanted for inner in INCLUDES.get(outer, frozenset())}
    return frozenset(wanted - covered)


@dataclass(frozen=True)
class GrantReport:
    """What a grant did: permissions added, already there, removed, and extra ones left in place."""

    principal_id: str
    added: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    dry_run: bool = False
    unknown: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line per permission, for the terminal."""
        verb = "would grant" if self.dry_run else "granted"
        out = [f"permissions for service principal {self.principal_id}:"]
        out += [f"  {verb:<12} {name}" for name in self.added]
        out += [f"  {'kept':<12} {name}" for name in self.already]
        out += [f"  {'would remove' if self.dry_run else 'removed':<12} {name}" for name in self.removed]
        out += [f"  {'extra':<12} {name} (not needed; --prune removes it)" for name in self.extra]
        out += [
            f"  {'unknown':<12} {name} (Graph has no such application permission)" for name in self.unknown
        ]
        return out


async def grant(
    graph: GraphPort,
    principal_id: str,
    *,
    include_optional: bool = False,
    prune: bool = False,
    dry_run: bool = False,
) -> GrantReport:
    """Give `principal_id` exactly the required Graph app roles; with `prune`, take back the others."""
    graph_sp = await graph.get(
        f"/servicePrincipals(appId='{GRAPH_APP_ID}')", params={"$select": "id,appRoles"}
    )
    resource_id = str(graph_sp["id"])
    role_ids = {
        str(role["value"]): str(role["id"])
        for role in graph_sp.get("appRoles", [])
        if "Application" in role.get("allowedMemberTypes", [])
    }
    names_by_id = {role_id: name for name, role_id in role_ids.items()}
    current: dict[str, str] = {}  # permission name -> assignment id
    async for page in graph.pages(f"/servicePrincipals/{principal_id}/appRoleAssignments"):
        for item in page.items:
            if str(item.get("resourceId")) == resource_id:
                name = names_by_id.get(str(item.get("appRoleId")), str(item.get("appRoleId")))
                current[name] = str(item["id"])
    wanted = required_permissions(include_optional=include_optional)
    unknown = sorted(wanted - role_ids.keys())
    to_add = sorted((wanted - current.keys()) - set(unknown))
    extra = sorted(current.keys() - wanted)
    if not dry_run:
        for name in to_add:
            await graph.send(
                "POST",
                f"/servicePrincipals/{principal_id}/appRoleAssignments",
                {"principalId": principal_id, "resourceId": resource_id, "appRoleId": role_ids[name]},
            )
        if prune:
            for name in extra:
                await graph.send(
                    "DELETE",
                    f"/servicePrincipals/{principal_id}/appRoleAssignments/{current[name]}",
                    idempotent=True,
                )
    return GrantReport(
        principal_id=principal_id,
        added=tuple(to_add),
        already=tuple(sorted(wanted & current.keys())),
        removed=tuple(extra) if prune else (),
        extra=() if prune else tuple(extra),
        dry_run=dry_run,
        unknown=tuple(unknown),
    )


def permission_rows() -> list[dict[str, str]]:
    """The table of docs/permissions.md: operation, permission, source, whether optional."""
    return [
        {
            "operation": operation,
            "permission": need.permission,
            "source": need.source,
            "optional": "yes" if need.optional else "no",
        }
        for operation, need in sorted(OPERATION_PERMISSIONS.items())
    ]


def _print_lines(lines: Iterable[str]) -> None:
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def markdown_rows() -> list[str]:
    """The operation table of docs/permissions.md, one Markdown row per operation."""
    return [
        f"| `{row['operation']}` | {row['permission']} | {row['optional']} | {row['source']} |"
        for row in permission_rows()
    ]


def _list(args: argparse.Namespace) -> int:
    rows = permission_rows()
    if args.markdown:
        _print_lines(markdown_rows())
        return 0
    if args.json:
        _print_lines(
            [json.dumps({"operations": rows, "grant": sorted(required_permissions(include_optional=True))})]
        )
        return 0
    width = max(len(row["operation"]) for row in rows)
    _print_lines(
        f"{row['operation']:<{width}}  {row['permission']}{' (optional)' if row['optional'] == 'yes' else ''}"
        for row in rows
    )
    return 0


async def _grant_with_cli_login(args: argparse.Namespace) -> GrantReport:
    """Run the grant as the signed-in admin (`az login`), through the project's own Graph client."""
    from azure.identity import AzureCliCredential

    from seatkeeper.adapters.graph.client import GraphClient, build_http_client, ssl_context

    credential = AzureCliCredential()
    parts = urlsplit(args.graph_url)
    resource = f"{parts.scheme}://{parts.netloc}"

    async def token() -> str:
        access = await asyncio.to_thread(credential.get_token, f"{resource}/.default")
        return str(access.token)

    http = build_http_client(verify=ssl_context(), timeout_seconds=30.0)
    client = GraphClient(graph_url=args.graph_url, http=http, token=token)
    try:
        return await grant(
            client,
            args.principal_id,
            include_optional=args.mail,
            prune=args.prune,
            dry_run=args.dry_run,
        )
    finally:
        await client.aclose()


def _grant(args: argparse.Namespace) -> int:
    report = asyncio.run(_grant_with_cli_login(args))
    _print_lines(report.lines())
    return 1 if report.unknown else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `seatkeeper permissions list|grant`."""
    parser = subparsers.add_parser("permissions", help="Graph application permissions: list or grant")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every Graph operation the code calls and its permission")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--markdown", action="store_true", help="the table rows of docs/permissions.md")
    listing.set_defaults(func=_list)
    granting = actions.add_parser(
        "grant", help="grant exactly the needed permissions to a service principal (as the az login admin)"
    )
    granting.add_argument(
        "--principal-id",
        required=True,
        help="object id of the managed identity's (or app's) service principal: azd output "
        "SEATKEEPER_IDENTITY_PRINCIPAL_ID",
    )
    granting.add_argument("--mail", action="store_true", help="also grant Mail.Send (email alert route)")
    granting.add_argument("--prune", action="store_true", help="remove Graph permissions not needed")
    granting.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    granting.add_argument(
        "--graph-url", default="https://graph.microsoft.com/v1.0", help="Graph root (sovereign clouds)"
    )
    granting.set_defaults(func=_grant)
