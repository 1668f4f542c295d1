"""Azure Functions route templates (`users/{id}`, `{id:int?}`, `{*rest}`) compiled to regular expressions."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAM = re.compile(r"\{(?P<star>\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<kind>[a-z]+))?(?P<opt>\?)?\}")
_KINDS = {"int": r"-?\d+", "long": r"-?\d+", "guid": r"[0-9A-Fa-f-]{36}", "alpha": r"[A-Za-z]+"}


@dataclass(frozen=True)
class RouteTemplate:
    """One compiled route; `match` returns the route parameters or None."""

    template: str
    pattern: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters of `path` (without the `/api/` prefix) if it matches, else None."""
        found = self.pattern.fullmatch(path.strip("/"))
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}


def compile_route(template: str) -> RouteTemplate:
    """Compile a route template; matching ignores case of literal segments, as ASP.NET routing does."""
    parts: list[str] = []
    segments = template.strip("/").split("/") if template.strip("/") else []
    for index, segment in enumerate(segments):
        whole = _PARAM.fullmatch(segment)
        prefix = "/" if index else ""
        if whole and whole["opt"]:
            # An optional segment takes its slash with it, so `items/{id?}` matches `items`.
            parts.append(f"(?:{prefix}(?P<{whole['name']}>{_value(whole)}))?")
            continue
        pieces: list[str] = []
        last = 0
        for param in _PARAM.finditer(segment):
            pieces.append(re.escape(segment[last : param.start()]))
            pieces.append(f"(?P<{param['name']}>{_value(param)})")
            last = param.end()
        pieces.append(re.escape(segment[last:]))
        parts.append(prefix + "".join(pieces))
    return RouteTemplate(template, re.compile("".join(parts), re.IGNORECASE))


def _value(param: re.Match[str]) -> str:
    if param["star"]:
        return ".*"
    return _KINDS.get(param["kind"] or "", r"[^/]+")
