"""A preview of dynamic-group `membershipRule`s: the subset Seatkeeper understands, parsed and evaluated
against a user's Graph attributes, so an admin sees who a rule edit would add or drop before saving it.

Written from Microsoft's "Manage rules for dynamic membership groups" page: `user.<property> <operator>
<value>`; operators `-eq`, `-ne`, `-in [..]`, `-notIn [..]` (also without the hyphen); `-and` binds
tighter than `-or`; parentheses; string comparisons are case-insensitive; `null` is the null value; a
backtick escapes a double quote inside a string; a rule is at most 3,072 characters. Anything else (for
example `-startsWith`, `-match`, `-not`, `-any`) is refused with the position, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

MAX_RULE_LENGTH: Final = 3072

# Graph property names (as `$select` spells them) the preview evaluates.
PROPERTIES: Final = ("department", "jobTitle", "country", "usageLocation", "companyName", "accountEnabled")
_BY_LOWER: Final = {p.lower(): p for p in PROPERTIES}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[()\[\],])
      | (?P<string>"(?:`"|[^"])*")
      | (?P<operator>[-\u2013]?[A-Za-z]+(?=[\s(\["]|$))
      | (?P<property>user\.[A-Za-z]+)
      | (?P<bare>[^\s()\[\],"]+)
    )""",
    re.VERBOSE,
)


class RuleError(ValueError):
    """The rule is malformed or outside the previewable subset; `position` is the 0-based offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.position = position


class Operator(StrEnum):
    """The comparison operators of the subset."""

    EQ = "-eq"
    NE = "-ne"
    IN = "-in"
    NOT_IN = "-notIn"


@dataclass(frozen=True)
class Comparison:
    """`user.<prop> <op> <values>`; a value None is `null`."""

    prop: str
    op: Operator
    values: tuple[str | None, ...]


@dataclass(frozen=True)
class AllOf:
    """Every part holds (`-and`)."""

    parts: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one part holds (`-or`)."""

    parts: tuple[Rule, ...]


Rule = Comparison | AllOf | AnyOf

_OPERATORS: Final = {
    "eq": Operator.EQ,
    "ne": Operator.NE,
    "in": Operator.IN,
    "notin": Operator.NOT_IN,
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise RuleError(f"unexpected text {text[position : position + 20].strip()!r}", position)
        start = match.start(match.lastgroup)
        tokens.append(_Token(match.lastgroup, match.group(match.lastgroup), start))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, what: str) -> _Token:
        token = self.peek()
        if token is None:
            raise RuleError(f"the rule ends where {what} was expected", len(self.text))
        self.index += 1
        return token

    def logical(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "operator" and _word(token.text) == word:
            self.index += 1
            return True
        return False

    def any_of(self) -> Rule:
        parts = [self.all_of()]
        while self.logical("or"):
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all_of(self) -> Rule:
        parts = [self.factor()]
        while self.logical("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def factor(self) -> Rule:
        token = self.take("an expression")
        if token.kind == "paren" and token.text == "(":
            inner = self.any_of()
            closing = self.take("')'")
            if closing.text != ")":
                raise RuleError("expected ')'", closing.position)
            return inner
        if token.kind != "property":
            raise RuleError(f"expected user.<property>, found {token.text!r}", token.position)
        name = token.text.split(".", 1)[1]
        prop = _BY_LOWER.get(name.lower())
        if prop is None:
            supported = ", ".join(PROPERTIES)
            raise RuleError(
                f"property {name!r} is outside the preview (supported: {supported})", token.position
            )
        op_token = self.take("an operator")
        op = _OPERATORS.get(_word(op_token.text)) if op_token.kind in ("operator", "bare") else None
        if op is None:
            raise RuleError(
                f"operator {op_token.text!r} is outside the preview (supported: -eq, -ne, -in, -notIn)",
                op_token.position,
            )
        if op in (Operator.IN, Operator.NOT_IN):
            return Comparison(prop, op, self.value_list())
        return Comparison(prop, op, (self.value(),))

    def value(self) -> str | None:
        token = self.take("a value")
        if token.kind == "string":
            return token.text[1:-1].replace('`"', '"').lower()
        if token.kind in ("bare", "operator") and not token.text.startswith(("-", "\u2013")):
            # Unquoted values: `null`, booleans and numbers (double quotes are optional but for strings).
            return None if token.text.lower() == "null" else token.text.lower()
        raise RuleError(f"expected a value, found {token.text!r}", token.position)

    def value_list(self) -> tuple[str | None, ...]:
        opening = self.take("'['")
        if opening.text != "[":
            raise RuleError("expected '[' after -in / -notIn", opening.position)
        values = [self.value()]
        while True:
            separator = self.take("',' or ']'")
            if separator.text == "]":
                return tuple(values)
            if separator.text != ",":
                raise RuleError("expected ',' or ']'", separator.position)
            values.append(self.value())


def _word(text: str) -> str:
    return text.lstrip("-\u2013").lower()


def parse_rule(text: str) -> Rule:
    """Parse a membership rule; RuleError names what is wrong and where."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"the rule is longer than {MAX_RULE_LENGTH} characters", MAX_RULE_LENGTH)
    if not text.strip():
        raise RuleError("the rule is empty", 0)
    parser = _Parser(text)
    rule = parser.any_of()
    rest = parser.peek()
    if rest is not None:
        raise RuleError(f"unexpected {rest.text!r}", rest.position)
    return rule


def _normalised(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text.lower() if text else None


def matches(rule: Rule, user: Mapping[str, object]) -> bool:
    """Whether a user (Graph properties, as `$select`ed) satisfies the rule."""
    if isinstance(rule, AllOf):
        return all(matches(part, user) for part in rule.parts)
    if isinstance(rule, AnyOf):
        return any(matches(part, user) for part in rule.parts)
    actual = _normalised(user.get(rule.prop))
    if rule.op is Operator.EQ:
        return actual == rule.values[0]
    if rule.op is Operator.NE:
        return actual != rule.values[0]
    inside = actual in rule.values
    return inside if rule.op is Operator.IN else not inside


def properties_of(rule: Rule) -> frozenset[str]:
    """The Graph properties a rule reads (what to `$select`)."""
    if isinstance(rule, Comparison):
        return frozenset({rule.prop})
    return frozenset().union(*(properties_of(part) for part in rule.parts))
