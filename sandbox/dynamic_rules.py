"""Dynamic membership rules: the subset the sandbox understands, parsed once and evaluated per user.

Grammar: `(user.prop -eq "v")`, `-ne`, `-in ["a","b"]`, `-notIn [...]`, joined with `-and` / `-or` and
parentheses; values compare case-insensitively, as Entra's rule engine does. Properties: department,
jobTitle, country, usageLocation, companyName, city, employeeId, accountEnabled, userPrincipalName.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PROPERTIES = {
    "department",
    "jobtitle",
    "country",
    "usagelocation",
    "companyname",
    "city",
    "employeeid",
    "accountenabled",
    "userprincipalname",
}
_TOKEN = re.compile(r'\s*(\(|\)|\[|\]|,|"(?:[^"\\]|\\.)*"|-\w+|user\.\w+|true|false|null)', re.IGNORECASE)

Rule = Callable[[dict[str, Any]], bool]


class RuleError(ValueError):
    """The membership rule is outside the supported subset or malformed."""


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise RuleError(f"unexpected text at {pos}: {text[pos : pos + 20]!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _value(token: str) -> str | None:
    if token.startswith('"'):
        return token[1:-1].replace('\\"', '"').lower()
    if token.lower() == "null":
        return None
    return token.lower()


def _norm(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _either(a: Rule, b: Rule) -> Rule:
    return lambda u: a(u) or b(u)


def _both(a: Rule, b: Rule) -> Rule:
    return lambda u: a(u) and b(u)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        nxt = self.peek()
        if nxt is None:
            raise RuleError("rule ends too early")
        self.pos += 1
        return nxt

    def expr(self) -> Rule:
        left = self.term()
        while (self.peek() or "").lower() == "-or":
            self.take()
            right = self.term()
            left = _either(left, right)
        return left

    def term(self) -> Rule:
        left = self.factor()
        while (self.peek() or "").lower() == "-and":
            self.take()
            right = self.factor()
            left = _both(left, right)
        return left

    def factor(self) -> Rule:
        head = self.take()
        if head == "(":
            inner = self.expr()
            if self.take() != ")":
                raise RuleError("missing ')'")
            return inner
        if not head.lower().startswith("user."):
            raise RuleError(f"expected user.property, got {head!r}")
        prop = head[5:]
        if prop.lower() not in PROPERTIES:
            raise RuleError(f"unsupported property {prop!r}")
        op = self.take().lower()
        if op in ("-eq", "-ne"):
            expected = _value(self.take())
            equal = op == "-eq"
            return lambda u: (_norm(u.get(prop)) == expected) == equal
        if op in ("-in", "-notin"):
            if self.take() != "[":
                raise RuleError("expected '['")
            values: set[str | None] = set()
            while True:
                values.add(_value(self.take()))
                sep = self.take()
                if sep == "]":
                    break
                if sep != ",":
                    raise RuleError("expected ',' or ']'")
            inside = op == "-in"
            return lambda u: (_norm(u.get(prop)) in values) == inside
        raise RuleError(f"unsupported operator {op!r}")


def parse_rule(text: str) -> Rule:
    """Compile a membership rule into a predicate over a user's Graph properties."""
    parser = _Parser(_tokens(text))
    rule = parser.expr()
    if parser.peek() is not None:
        raise RuleError(f"unexpected {parser.peek()!r}")
    return rule
