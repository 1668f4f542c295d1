"""Graph permissions: every Graph operation the code calls maps to a permission the grant gives (no more,
no less), the grant converges on exactly those app roles, and docs/permissions.md lists every row."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from seatkeeper.cli import permissions
from seatkeeper.cli.permissions import OPERATION_PERMISSIONS, grant, required_permissions
from seatkeeper.core.graph_port import (
    REQUIRED_APP_ROLES,
    GraphPage,
    GraphRequest,
    GraphResponse,
    MemberAddResult,
    OperationCount,
)
from tests.unit.test_infra_sources import ROOT, service_python_files

# First path segments of Graph resources (a path literal starting with one of these is a Graph call).
GRAPH_ROOTS = frozenset(
    {
        "users",
        "groups",
        "subscriptions",
        "subscribedSkus",
        "directoryObjects",
        "identityGovernance",
        "servicePrincipals",
        "organization",
        "applications",
        "me",
    }
)
# The grant itself runs as an admin with delegated permissions (docs/permissions.md), not as Seatkeeper.
ADMIN_ONLY = {ROOT / "seatkeeper" / "cli" / "permissions.py"}
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


def _template(node: ast.expr) -> str | None:
    """A string literal or f-string as a path template; every `{...}` becomes `{id}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant) else "{id}" for part in node.values)
    return None


def _graph_path(template: str) -> str | None:
    """`/users/{id}/sendMail` for a Graph path template; None for anything else."""
    if not template.startswith("/"):
        return None
    path = template.split("?", maxsplit=1)[0]
    first = path.split("/")[1].split("(")[0]
    if first not in GRAPH_ROOTS:
        return None
    return "/".join("{id}" if "(" in segment else segment for segment in path.split("/"))


def _method(call: ast.Call, argument: ast.expr) -> str | None:
    """The HTTP method of a call that passes `argument` as its path, when the call says it."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name in {"get", "pages"} and call.args[:1] == [argument]:
        return "GET"
    if len(call.args) >= 2 and call.args[1] is argument:
        first = call.args[0]
        if isinstance(first, ast.Constant) and str(first.value).upper() in _METHODS:
            return str(first.value).upper()
    return None


def graph_calls(source: str) -> set[tuple[str | None, str]]:
    """(method or None, path) for every Graph path literal in Python source."""
    tree = ast.parse(source)
    methods: dict[int, str | None] = {}
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            nested.update(id(part) for part in node.values)
        if isinstance(node, ast.Call):
            for argument in node.args:
                methods[id(argument)] = _method(node, argument)
    found: set[tuple[str | None, str]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr) or id(node) in nested:
            continue
        template = _template(node)
        path = _graph_path(template) if template is not None else None
        if path is not None:
            found.add((methods.get(id(node)), path))
    return found


def code_graph_calls() -> set[tuple[str | None, str]]:
    """Every Graph call of the deployed code (the admin-only grant excluded)."""
    calls: set[tuple[str | None, str]] = set()
    for path in service_python_files():
        if path not in ADMIN_ONLY:
            calls |= graph_calls(path.read_text(encoding="utf-8"))
    return calls


def _table() -> set[tuple[str, str]]:
    return {(op.split(" ", 1)[0], op.split(" ", 1)[1]) for op in OPERATION_PERMISSIONS}


def _matches(call: tuple[str | None, str], row: tuple[str, str]) -> bool:
    return call[1] == row[1] and call[0] in (None, row[0])


def test_the_scanner_finds_paths_methods_and_f_strings() -> None:
    """The scanner reads literals, f-strings and methods, and ignores what is not a Graph path."""
    source = (
        "async def f(graph, uid):\n"
        "    await graph.get(f'/users/{uid}', params={'$select': 'id'})\n"
        "    await graph.send('POST', f'/users/{uid}/reprocessLicenseAssignment')\n"
        "    url = f'{base}/directoryObjects/{uid}'\n"
        "    path = '/groups/delta?$select=members'\n"
        "    other = '/api/health'\n"
    )
    assert graph_calls(source) == {
        ("GET", "/users/{id}"),
        ("POST", "/users/{id}/reprocessLicenseAssignment"),
        (None, "/groups/delta"),
    }


def test_every_graph_call_of_the_code_has_a_permission_row() -> None:
    """No less: each Graph path the code calls has a row in OPERATION_PERMISSIONS."""
    calls = code_graph_calls()
    assert calls, "the scanner found no Graph call in the code"
    missing = sorted(
        f"{method or '?'} {path}"
        for method, path in calls
        if not any(_matches((method, path), row) for row in _table())
    )
    assert missing == [], "add these to OPERATION_PERMISSIONS in seatkeeper/cli/permissions.py"


def test_every_permission_row_is_an_operation_the_code_calls() -> None:
    """No more: a row for an operation nobody calls would grant a permission nobody uses."""
    calls = code_graph_calls()
    unused = sorted(f"{m} {p}" for m, p in _table() if not any(_matches(call, (m, p)) for call in calls))
    assert unused == []


def test_grant_gives_the_smallest_covering_set() -> None:
    """A ReadWrite permission makes its Read twin redundant; optional Mail.Send only when asked."""
    wanted = required_permissions(include_optional=True)
    assert wanted
    for outer, inner in permissions.INCLUDES.items():
        assert not (outer in wanted and inner & wanted)
    assert permissions.MAIL_SEND not in required_permissions(include_optional=False)
    assert permissions.MAIL_SEND in wanted
    assert permissions.NO_PERMISSION not in wanted


def test_grant_is_within_what_the_health_check_expects() -> None:
    """Everything the grant gives is a role health (REQUIRED_APP_ROLES) asks for, or included in one."""
    health = set(REQUIRED_APP_ROLES) | {permissions.MAIL_SEND}
    covered = health | {inner for outer in health for inner in permissions.INCLUDES.get(outer, frozenset())}
    assert sorted(required_permissions(include_optional=True) - covered) == []


def test_health_expects_nothing_the_grant_does_not_give() -> None:
    """Every role the health check requires is one the grant gives (no less)."""
    assert sorted(set(REQUIRED_APP_ROLES) - required_permissions(include_optional=False)) == []


def test_docs_list_every_operation_and_permission() -> None:
    """docs/permissions.md has a row for each operation with its permission."""
    text = (ROOT / "docs" / "permissions.md").read_text(encoding="utf-8")
    rows = permissions.markdown_rows()
    assert len(rows) == len(OPERATION_PERMISSIONS)
    missing = [row for row in rows if row not in text.splitlines()]
    assert missing == [], "regenerate with `seatkeeper permissions list --markdown`"


GRAPH_SP = "11111111-1111-1111-1111-111111111111"
MI_SP = "22222222-2222-2222-2222-222222222222"


@dataclass
class FakeGraph:
    """Graph's service principal and one principal's app-role assignments, as state that changes."""

    roles: dict[str, str]  # permission name -> app role id on Graph's service principal
    assignments: dict[str, str] = field(default_factory=dict)  # assignment id -> app role id

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, retry_not_found: bool = False
    ) -> Mapping[str, Any]:
        assert path == f"/servicePrincipals(appId='{permissions.GRAPH_APP_ID}')"
        app_roles = [
            {"value": name, "id": role_id, "allowedMemberTypes": ["Application"]}
            for name, role_id in self.roles.items()
        ]
        return {"id": GRAPH_SP, "appRoles": app_roles}

    async def pages(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[GraphPage]:
        assert path == f"/servicePrincipals/{MI_SP}/appRoleAssignments"
        items = tuple(
            {"id": aid, "resourceId": GRAPH_SP, "appRoleId": rid} for aid, rid in self.assignments.items()
        )
        yield GraphPage(items=items)

    async def send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        prefix = f"/servicePrincipals/{MI_SP}/appRoleAssignments"
        if method == "POST" and path == prefix and body is not None:
            assert body["principalId"] == MI_SP
            assert body["resourceId"] == GRAPH_SP
            self.assignments[f"a{len(self.assignments) + 1}-{body['appRoleId']}"] = str(body["appRoleId"])
        elif method == "DELETE" and path.startswith(prefix + "/"):
            del self.assignments[path.rsplit("/", 1)[1]]
        else:
            raise AssertionError(f"unexpected {method} {path}")
        return None

    async def batch(self, requests: Sequence[GraphRequest]) -> Sequence[GraphResponse]:
        raise AssertionError("not used")

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> MemberAddResult:
        raise AssertionError("not used")

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        raise AssertionError("not used")

    async def granted_roles(self) -> frozenset[str]:
        return frozenset()

    def counters(self) -> Mapping[str, OperationCount]:
        return {}

    def granted(self) -> set[str]:
        by_id = {role_id: name for name, role_id in self.roles.items()}
        return {by_id[rid] for rid in self.assignments.values()}


def _fake(assigned: set[str]) -> FakeGraph:
    names = set(required_permissions(include_optional=True)) | {"Directory.ReadWrite.All", "User.Read.All"}
    fake = FakeGraph(roles={name: f"role-{name}" for name in sorted(names)})
    for name in assigned:
        fake.assignments[f"old-{name}"] = f"role-{name}"
    return fake


def test_grant_adds_exactly_the_missing_permissions() -> None:
    """From nothing, the principal ends with exactly the required roles; the report says what it did."""
    fake = _fake(set())
    report = asyncio.run(grant(fake, MI_SP))
    assert fake.granted() == set(required_permissions(include_optional=False))
    assert set(report.added) == fake.granted()


def test_grant_twice_changes_nothing() -> None:
    """Idempotent: a second run adds nothing and reports every permission as kept."""
    fake = _fake(set())
    asyncio.run(grant(fake, MI_SP))
    before = dict(fake.assignments)
    report = asyncio.run(grant(fake, MI_SP))
    assert fake.assignments == before
    assert report.added == ()


def test_grant_reports_extra_permissions_and_prune_removes_them() -> None:
    """A broader role found is reported, kept without --prune and removed with it."""
    fake = _fake({"Directory.ReadWrite.All"})
    kept = asyncio.run(grant(fake, MI_SP))
    assert kept.extra == ("Directory.ReadWrite.All",)
    assert "Directory.ReadWrite.All" in fake.granted()
    pruned = asyncio.run(grant(fake, MI_SP, prune=True))
    assert pruned.removed == ("Directory.ReadWrite.All",)
    assert fake.granted() == set(required_permissions(include_optional=False))


def test_dry_run_changes_nothing() -> None:
    """--dry-run reports what it would grant and writes nothing."""
    fake = _fake(set())
    report = asyncio.run(grant(fake, MI_SP, include_optional=True, dry_run=True))
    assert fake.assignments == {}
    assert set(report.added) == set(required_permissions(include_optional=True))


def test_permissions_list_prints_every_operation(capsys: pytest.CaptureFixture[str]) -> None:
    """`seatkeeper permissions list` prints each operation with its permission."""
    from seatkeeper.cli import build_parser

    args = build_parser().parse_args(["permissions", "list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert all(op in out for op in OPERATION_PERMISSIONS)


def test_grant_report_names_every_permission_and_what_happened() -> None:
    """The printed report has one line per permission with its outcome, and no secret or token."""
    fake = _fake({"Directory.ReadWrite.All"})
    lines = asyncio.run(grant(fake, MI_SP)).lines()
    text = "\n".join(lines)
    assert MI_SP in lines[0]
    for name in required_permissions(include_optional=False):
        assert f"granted      {name}" in text
    assert "extra        Directory.ReadWrite.All" in text


def test_grant_through_the_project_graph_client_over_http() -> None:
    """The grant works through the real GraphClient (paging, paths, writes) over an injected transport."""
    import json as jsonlib

    import httpx

    from seatkeeper.adapters.graph.client import GraphClient

    state = _fake({"Directory.ReadWrite.All"})
    prefix = f"/v1.0/servicePrincipals/{MI_SP}/appRoleAssignments"

    async def graph(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and "servicePrincipals(appId=" in path:
            return httpx.Response(200, json=dict(await state.get(path.removeprefix("/v1.0"))))
        if request.method == "GET" and path == prefix:
            items = [
                {"id": aid, "resourceId": GRAPH_SP, "appRoleId": rid}
                for aid, rid in state.assignments.items()
            ]
            if request.url.params.get("page") != "2":  # two pages: the client must follow nextLink
                return httpx.Response(
                    200, json={"value": items[:0], "@odata.nextLink": f"https://graph.test{prefix}?page=2"}
                )
            return httpx.Response(200, json={"value": items})
        if request.method == "POST" and path == prefix:
            body = jsonlib.loads(request.content)
            state.assignments[f"new-{body['appRoleId']}"] = body["appRoleId"]
            return httpx.Response(201, json={"id": f"new-{body['appRoleId']}"})
        if request.method == "DELETE" and path.startswith(prefix + "/"):
            del state.assignments[path.rsplit("/", 1)[1]]
            return httpx.Response(204)
        return httpx.Response(404, json={"error": {"code": "Request_ResourceNotFound", "message": path}})

    async def token() -> str:
        return "test-token"

    async def run() -> permissions.GrantReport:
        http = httpx.AsyncClient(transport=httpx.MockTransport(graph))
        client = GraphClient(graph_url="https://graph.test/v1.0", http=http, token=token)
        try:
            return await grant(client, MI_SP, prune=True)
        finally:
            await client.aclose()

    report = asyncio.run(run())
    assert state.granted() == set(required_permissions(include_optional=False))
    assert report.removed == ("Directory.ReadWrite.All",)
