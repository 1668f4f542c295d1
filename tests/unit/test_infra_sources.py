"""Readers for the infra consistency tests: the Bicep app settings and queues, the functions that
function_app.py declares (as the Functions host indexes them), and the names the code uses."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
FUNCTION_APP_BICEP = INFRA / "modules" / "functionapp.bicep"
MAIN_BICEP = INFRA / "main.bicep"
SERVICE_BUS_BICEP = INFRA / "modules" / "servicebus.bicep"
ALERTS_BICEP = INFRA / "modules" / "alerts.bicep"

_KEY_VALUE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*):\s*(.+?)\s*$")


# The app-setting objects of the Function App module: always set, then one per choice the deployment makes
# (one Graph credential, Teams alerts or not). `siteSettings` unions them; every one is read here.
SETTINGS_OBJECTS = ("appSettings", "managedIdentitySettings", "certificateSettings", "teamsSettings")


def bicep_object(var_name: str, path: Path = FUNCTION_APP_BICEP) -> dict[str, str]:
    """The object literal `var <var_name> = {...}` of a Bicep file: key -> Bicep expression."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"var {var_name} = {{") + 1
    found: dict[str, str] = {}
    for line in lines[start:]:
        if line.strip() == "}":
            break
        match = _KEY_VALUE.match(line)
        if match and not line.strip().startswith("//"):
            found[match.group(1)] = match.group(2)
    return found


def bicep_app_settings() -> dict[str, str]:
    """Every app setting the Function App module may set (any choice): setting name -> Bicep expression."""
    settings: dict[str, str] = {}
    for var_name in SETTINGS_OBJECTS:
        settings.update(bicep_object(var_name))
    return settings


def bicep_string_array(path: Path, var_name: str) -> list[str]:
    """The string items of `var <var_name> = [...]` in a Bicep file."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"var {var_name} = \[(.*?)\]", text, re.DOTALL)
    assert match, f"no `var {var_name} = [...]` in {path.relative_to(ROOT)}"
    return re.findall(r"'([^']*)'", match.group(1))


def bicep_queue_properties() -> dict[str, str]:
    """The `queueProperties` object shared by every queue: property -> Bicep literal."""
    text = SERVICE_BUS_BICEP.read_text(encoding="utf-8")
    match = re.search(r"var queueProperties = \{(.*?)\n\}", text, re.DOTALL)
    assert match, "no queueProperties in servicebus.bicep"
    found = (_KEY_VALUE.match(line) for line in match.group(1).splitlines())
    return {m.group(1): m.group(2) for m in found if m}


def json_list(name: str) -> list[str]:
    """A JSON list of strings kept beside main.bicep (state tables, heartbeat functions)."""
    value = json.loads((INFRA / name).read_text(encoding="utf-8"))
    assert isinstance(value, list)
    return [str(item) for item in value]


@dataclass(frozen=True)
class DeclaredFunction:
    """One function of function_app.py and its bindings, as the host's indexer sees them."""

    name: str
    bindings: tuple[Mapping[str, Any], ...]

    @property
    def trigger(self) -> Mapping[str, Any]:
        """The trigger binding (every function has exactly one)."""
        return next(b for b in self.bindings if str(b.get("type", "")).endswith("Trigger"))


@functools.cache
def _indexed_functions() -> tuple[DeclaredFunction, ...]:
    # get_functions() may run once per app object (a second call sees duplicate names), and other tests
    # index the shared module: load a private copy of function_app.py (importing it has no side effects).
    spec = importlib.util.spec_from_file_location("function_app_for_infra_tests", ROOT / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = []
    for function in module.app.get_functions():
        bindings = function.get_bindings_dict()["bindings"]
        functions.append(DeclaredFunction(function.get_function_name(), tuple(bindings)))
    return tuple(functions)


def declared_functions() -> list[DeclaredFunction]:
    """Every function of function_app.py, indexed as the Functions host indexes it (no side effects)."""
    return list(_indexed_functions())


def setting_references(value: Any) -> Iterator[str]:
    """Every `%Name%` app-setting reference inside a binding value."""
    if isinstance(value, str):
        yield from (str(name) for name in re.findall(r"%([^%]+)%", value))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from setting_references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from setting_references(item)


def service_python_files() -> list[Path]:
    """The deployed Python code: seatkeeper/ and handlers/ and function_app.py (never sandbox or tests)."""
    files = [ROOT / "function_app.py"]
    for package in ("seatkeeper", "handlers"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def table_names() -> set[str]:
    """State tables the code declares: module constants named `*_TABLE` holding a string literal."""
    names: set[str] = set()
    for path in service_python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            target: ast.expr | None = None
            value: ast.expr | None = None
            if isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            if (
                isinstance(target, ast.Name)
                and target.id.endswith("_TABLE")
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                names.add(value.value)
    return names


def test_readers_find_what_the_infra_tests_check() -> None:
    """The readers see real content: a reader that finds nothing would make every infra test vacuous."""
    assert "ServiceBusConnection__fullyQualifiedNamespace" in bicep_app_settings()
    assert bicep_string_array(MAIN_BICEP, "queueNames")
    assert bicep_queue_properties()["requiresSession"] == "true"
    assert json_list("state-tables.json")
    assert table_names()
