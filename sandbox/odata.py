"""The OData query options the sandbox honours, with Graph's refusals: `$select`, `$filter` (a documented
subset), `$top` (1-999) and `$skiptoken` paging with `@odata.nextLink`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from sandbox.graph_errors import GraphError

Predicate = Callable[[Any], bool]
# (entity) -> property values; filters read through this so users and groups share the parser.
Getter = Callable[[Any, str], Any]
LambdaHandler = Callable[[str], Predicate]

_SAFE = "$,:/()'"
UNSUPPORTED_OPTIONS = ("$expand", "$orderby", "$search", "$count", "$skip", "$format", "$apply")


def check_options(query: Mapping[str, str]) -> None:
    """Refuse the query options the sandbox does not simulate (never silently ignore them)."""
    for option in UNSUPPORTED_OPTIONS:
        if option in query:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"The query option '{option}' is not supported by the sandbox.",
            )


def parse_select(query: Mapping[str, str], known: Mapping[str, str], type_name: str) -> list[str] | None:
    """The selected properties in canonical case, or None when `$select` is absent; 400 for unknown ones."""
    raw = query.get("$select")
    if raw is None:
        return None
    selected: list[str] = []
    for name in (p.strip() for p in raw.split(",")):
        if not name:
            continue
        canonical = known.get(name.lower())
        if canonical is None:
            raise GraphError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named '{name}' on type "
                f"'microsoft.graph.{type_name}'.",
            )
        if canonical not in selected:
            selected.append(canonical)
    return selected


def parse_top(query: Mapping[str, str], default: int = 100) -> int:
    """The page size: `$top` must be 1-999, as Graph requires."""
    raw = query.get("$top")
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if not 1 <= top <= 999:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
        )
    return top


def page(
    items: Sequence[Any], query: Mapping[str, str], base_url: str, default_top: int = 100
) -> tuple[list[Any], str | None]:
    """One page of `items` and the `@odata.nextLink` to the next, if any."""
    top = parse_top(query, default_top)
    start = 0
    token = query.get("$skiptoken")
    if token is not None:
        try:
            start = int(base64.urlsafe_b64decode(token.encode() + b"==").decode().removeprefix("o:"))
        except ValueError as exc:
            raise GraphError(
                400, "Directory_ExpiredPageToken", "The specified page token value has expired."
            ) from exc
    chunk = list(items[start : start + top])
    if start + top >= len(items):
        return chunk, None
    params = {k: v for k, v in query.items() if k != "$skiptoken"}
    params["$skiptoken"] = base64.urlsafe_b64encode(f"o:{start + top}".encode()).decode().rstrip("=")
    return chunk, f"{base_url}?{urlencode(params, safe=_SAFE)}"


# $filter ------------------------------------------------------------------------------------------

_CLAUSE = re.compile(r"^\s*([A-Za-z][\w]*)\s+(eq|ne|gt|ge|lt|le|in)\s+(.+?)\s*$", re.IGNORECASE | re.S)
_LAMBDA = re.compile(
    r"^\s*([A-Za-z]\w*)/(any|all)\(\s*(\w+)\s*:\s*\3/(\w+)\s+eq\s+(.+?)\s*\)\s*$", re.IGNORECASE | re.S
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _GUID.match(text):
        return ("guid", text.lower())
    raise GraphError(400, "BadRequest", f"Invalid filter clause: syntax error near '{text}'.")


def _split_and(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    in_str = False
    current = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            in_str = not in_str
        elif not in_str and ch == "(":
            depth += 1
        elif not in_str and ch == ")":
            depth -= 1
        if not in_str and depth == 0 and text[i : i + 5].lower() == " and ":
            parts.append(current)
            current = ""
            i += 5
            continue
        if not in_str and depth == 0 and text[i : i + 4].lower() == " or ":
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        current += ch
        i += 1
    parts.append(current)
    return parts


def parse_filter(
    text: str,
    *,
    resource: str,
    known: Mapping[str, str],
    eq_props: set[str],
    getter: Getter,
    lambdas: Mapping[str, LambdaHandler] | None = None,
) -> Predicate:
    """Compile the supported `$filter` subset (`prop eq literal`, lambdas, `and`); 400 otherwise."""
    predicates: list[Predicate] = []
    for clause in _split_and(text):
        lam = _LAMBDA.match(clause)
        if lam:
            prop, kind, _, inner, value = lam.groups()
            canonical = known.get(prop.lower())
            handler = (lambdas or {}).get(f"{canonical}/{kind.lower()}/{inner.lower()}")
            if handler is None:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    unsupported(prop, resource),
                )
            predicates.append(handler(value.strip()))
            continue
        m = _CLAUSE.match(clause)
        if not m:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: syntax error in '{clause.strip()}'.")
        prop, op, value = m.groups()
        canonical = known.get(prop.lower())
        if canonical is None:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.{resource.lower()}'.",
            )
        if op.lower() != "eq" or canonical not in eq_props:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                unsupported(canonical, resource),
            )
        literal = _literal(value)
        predicates.append(_eq(canonical, literal, getter))
    return lambda entity: all(p(entity) for p in predicates)


def unsupported(prop: str, resource: str) -> str:
    """Graph's message for a filter it does not support on a property."""
    clause = "Unsupported or invalid query filter clause specified"
    return f"{clause} for property '{prop}' of resource '{resource}'."


def _eq(prop: str, literal: Any, getter: Getter) -> Predicate:
    if isinstance(literal, tuple):
        expected: Any = literal[1]
        return lambda e: str(getter(e, prop) or "").lower() == expected
    if isinstance(literal, str):
        lowered = literal.lower()
        return lambda e: isinstance(getter(e, prop), str) and getter(e, prop).lower() == lowered
    return lambda e: getter(e, prop) == literal


def guid_literal(text: str, resource: str, prop: str) -> str:
    """An unquoted GUID literal (Graph refuses a quoted string for an Edm.Guid)."""
    if not _GUID.match(text):
        raise GraphError(
            400,
            "BadRequest",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and "
            f"'Edm.String' for operator kind 'Equal' ({resource}.{prop}).",
        )
    return text.lower()
