"""SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): the protocol side.

One hand-written parser serves two consumers:

- ``parse_filter`` turns ``?filter=`` text into a small AST;
- ``parse_patch_path`` resolves a PATCH ``path`` (with an optional value filter)
  against a ``ResourceSchema``, and ``matches`` evaluates such a value filter
  against one element of a multi-valued attribute held in JSON.

The AST's translation into ORM expressions over the directory's columns lives in
``provisioning.directory.query``; both sides share the typing rules below
(``check_comparison`` and the ``as_*`` coercions), so SQL and Python agree.

Semantics chosen where the RFC leaves room (also asserted in the tests):

- Positions in error messages are 1-based character offsets into the text.
- ``ne`` is the negation of ``eq``: absent/NULL attributes match ``ne``; for a
  multi-valued attribute ``emails ne "x"`` means "no email equals x". Inside
  brackets, conditions apply per element.
- Comparing with ``null`` is an error (use ``not (attr pr)``): the RFC gives
  ``null`` no comparison semantics and silently matching nothing hides mistakes.
- ``attr eq ""`` means "absent" and ``attr ne ""`` means "present".
- ``pr`` means not NULL, not ``""`` (and, in JSON, not ``[]``/``{}``).
- String comparisons are case-insensitive unless the attribute is caseExact.
- Booleans accept ``true``/``false`` and the strings ``"true"``/``"false"`` (any
  case), with ``eq``/``ne`` only. dateTimes accept ISO 8601 (a date alone means
  midnight UTC; no offset means UTC), with ``eq ne gt ge lt le pr``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from .errors import InvalidFilter, InvalidPath
from .schema import GROUP, USER, Attribute, ResourceSchema

__all__ = [
    "And",
    "Compare",
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "Node",
    "Not",
    "ORDER_OPS",
    "Or",
    "PatchPath",
    "Present",
    "ValuePath",
    "as_bool",
    "as_datetime",
    "check_comparison",
    "filter_sub_attribute",
    "format_filter",
    "is_attribute_path",
    "matches",
    "parse_filter",
    "parse_patch_path",
]

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 50
COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
SUBSTRING_OPS = frozenset({"co", "sw", "ew"})

Scalar = str | int | float | bool | None


# --- AST ---------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """``path op value``; ``op`` is lower-case, ``value`` a decoded JSON scalar."""

    path: str
    op: str
    value: Scalar


@dataclass(frozen=True)
class Present:
    """``path pr``."""

    path: str


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    expr: Node


@dataclass(frozen=True)
class ValuePath:
    """``path[filter]``: ``filter`` paths are sub-attributes of ``path``."""

    path: str
    filter: Node


Node = Compare | Present | And | Or | Not | ValuePath


# --- Lexer -------------------------------------------------------------------

_NAME = r"[A-Za-z$][A-Za-z0-9_$-]*"
# A URN prefix ends at the last colon; ATTRNAME may not contain one.
_ATTR_PATH_RE = re.compile(rf"(?:urn:[A-Za-z0-9_.:+%-]*:)?{_NAME}(?:\.{_NAME})?", re.IGNORECASE)
_ATTR_REST_RE = re.compile(rf"{_NAME}(?:\.{_NAME})?")
_WORD_RE = re.compile(r"[A-Za-z$][A-Za-z0-9_.:+%$-]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_HEX4_RE = re.compile(r"[0-9a-fA-F]{4}")
_PUNCT = "()[]"


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "word" "string" "number" "end"
    text: str
    start: int
    end: int
    value: Any = None

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "end" else f"'{self.text}'"


class _Parser:
    """Recursive descent over RFC 7644 Figure 1; lexes lazily so callers can stop early."""

    def __init__(self, text: str, pos: int = 0, error: type[Exception] = InvalidFilter):
        self.text = text
        self.pos = pos
        self.depth = 0
        self.error = error
        self._peeked: _Token | None = None

    def fail(self, message: str, at: int) -> Exception:
        return self.error(f"Invalid filter: {message} at position {at + 1}")

    # Lexing

    def peek(self) -> _Token:
        if self._peeked is None:
            self._peeked = self._lex()
        return self._peeked

    def next(self) -> _Token:
        token = self.peek()
        self._peeked = None
        self.pos = token.end
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            raise self.fail(f"expected {what}, found {token.describe()}", token.start)
        return self.next()

    def _lex(self) -> _Token:
        text, i = self.text, self.pos
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return _Token("end", "", i, i)
        c = text[i]
        if c in _PUNCT:
            return _Token(c, c, i, i + 1)
        if c == '"':
            return self._lex_string(i)
        if m := _WORD_RE.match(text, i):
            return _Token("word", m.group(), i, m.end())
        if m := _NUMBER_RE.match(text, i):
            number = float(m.group()) if m.group(1) or m.group(2) else int(m.group())
            # No column or JSON value holds more than a 64-bit integer or a finite double.
            if isinstance(number, int) and not -(2**63) <= number < 2**63:
                raise self.fail("integer out of the 64-bit range", i)
            if isinstance(number, float) and not math.isfinite(number):
                raise self.fail("number out of range", i)
            return _Token("number", m.group(), i, m.end(), number)
        hint = " (strings must be in double quotes)" if c == "'" else ""
        raise self.fail(f"unexpected character {c!r}{hint}", i)

    def _lex_string(self, start: int) -> _Token:
        text, i = self.text, start + 1
        while i < len(text):
            c = text[i]
            if c == '"':
                raw = text[start : i + 1]
                value = json.loads(raw)
                # PostgreSQL rejects NUL and lone surrogates with a 500, so refuse them here.
                if "\x00" in value:
                    raise self.fail("NUL characters are not allowed in strings", start)
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise self.fail("invalid \\u escape (lone surrogate)", start) from None
                return _Token("string", raw, start, i + 1, value)
            if c == "\\":
                escape = text[i + 1 : i + 2]
                if escape == "u":
                    if not _HEX4_RE.fullmatch(text, i + 2, i + 6):
                        raise self.fail("expected four hex digits after '\\u'", i)
                    i += 6
                    continue
                if not escape or escape not in '"\\/bfnrt':
                    raise self.fail(f"invalid escape '\\{escape}' in string", i)
                i += 2
                continue
            if c < " ":
                raise self.fail("control characters in strings must be escaped", i)
            i += 1
        raise self.fail("unterminated string starting", start)

    # Grammar

    def _enter(self, at: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels", at)

    def _keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token.kind == "word" and token.text.lower() in words:
            return token.text.lower()
        return None

    def parse_or(self, in_brackets: bool) -> Node:
        node = self.parse_and(in_brackets)
        while self._keyword("or"):
            self.next()
            node = Or(node, self.parse_and(in_brackets))
        return node

    def parse_and(self, in_brackets: bool) -> Node:
        node = self.parse_unary(in_brackets)
        while self._keyword("and"):
            self.next()
            node = And(node, self.parse_unary(in_brackets))
        return node

    def parse_unary(self, in_brackets: bool) -> Node:
        token = self.peek()
        if self._keyword("not"):
            self.next()
            self.expect("(", "'(' after 'not'")
            return Not(self._group(in_brackets, token.start))
        if token.kind == "(":
            self.next()
            return self._group(in_brackets, token.start)
        return self.parse_attr_expression(in_brackets)

    def _group(self, in_brackets: bool, at: int) -> Node:
        self._enter(at)
        node = self.parse_or(in_brackets)
        self.expect(")", "'and', 'or' or ')'")
        self.depth -= 1
        return node

    def parse_attr_expression(self, in_brackets: bool) -> Node:
        token = self.next()
        if token.kind != "word" or token.text.lower() in ("and", "or"):
            raise self.fail(f"expected an attribute name, found {token.describe()}", token.start)
        if not _ATTR_PATH_RE.fullmatch(token.text):
            raise self.fail(f"invalid attribute path '{token.text}'", token.start)
        path = token.text
        op = self.peek()
        if op.kind == "[":
            if in_brackets:
                raise self.fail("value filters cannot be nested", op.start)
            self.next()
            self._enter(op.start)
            inner = self.parse_or(in_brackets=True)
            self.expect("]", "'and', 'or' or ']'")
            self.depth -= 1
            return ValuePath(path, inner)
        name = op.text.lower() if op.kind == "word" else ""
        if name == "pr":
            self.next()
            return Present(path)
        if name in COMPARE_OPS:
            self.next()
            return Compare(path, name, self.parse_value())
        raise self.fail(
            f"expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{path}', "
            f"found {op.describe()}",
            op.start,
        )

    def parse_value(self) -> Scalar:
        token = self.next()
        if token.kind in ("string", "number"):
            return token.value
        literals = {"true": True, "false": False, "null": None}
        if token.kind == "word" and token.text.lower() in literals:
            return literals[token.text.lower()]
        raise self.fail(
            "expected a value (a string in double quotes, a number, true, false or null), "
            f"found {token.describe()}",
            token.start,
        )


def _check_length(text: object, error: type[Exception], what: str) -> str:
    if not isinstance(text, str):
        raise error(f"The {what} must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise error(f"The {what} is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise error(f"The {what} is empty")
    return text


def is_attribute_path(text: str) -> bool:
    """Whether ``text`` is an attribute path as filters write it (optional URN, one dot)."""
    return _ATTR_PATH_RE.fullmatch(text) is not None


def parse_filter(text: str) -> Node:
    """Parse a SCIM filter into an AST; any syntax error raises ``InvalidFilter``."""
    parser = _Parser(_check_length(text, InvalidFilter, "filter"))
    node = parser.parse_or(in_brackets=False)
    end = parser.peek()
    if end.kind != "end":
        raise parser.fail(
            f"expected 'and', 'or' or the end of the filter, found {end.describe()}", end.start
        )
    return node


# --- PATCH paths -------------------------------------------------------------


@dataclass(frozen=True)
class PatchPath:
    """A resolved PATCH path (RFC 7644 §3.5.2): canonical attributes, optional value filter.

    ``attribute`` is None when the path names a whole extension schema. The
    filter's paths are canonical sub-attribute names of ``attribute``.
    """

    urn: str
    attribute: Attribute | None
    sub_attribute: Attribute | None = None
    value_filter: Node | None = None

    def __str__(self) -> str:
        if self.attribute is None:
            return self.urn
        text = (
            self.attribute.name
            if self.urn in (USER, GROUP)
            else f"{self.urn}:{self.attribute.name}"
        )
        if self.value_filter is not None:
            text += f"[{format_filter(self.value_filter)}]"
        if self.sub_attribute is not None:
            text += f".{self.sub_attribute.name}"
        return text


def parse_patch_path(text: str, schema: ResourceSchema) -> PatchPath:
    """Parse and resolve a PATCH ``path``.

    Malformed paths and unknown attributes raise ``InvalidPath``; problems inside
    the brackets raise ``InvalidFilter`` (RFC 7644 Table 9 lists invalidFilter for
    PATCH path filters).
    """
    text = _check_length(text, InvalidPath, "PATCH path").strip()
    bracket = text.find("[")
    head = text if bracket < 0 else text[:bracket]
    urn, rest = schema.split_urn(head)
    if not rest:
        if bracket >= 0 or urn == schema.core:
            raise InvalidPath(f"Invalid path '{text}': expected an attribute name")
        return PatchPath(urn, None)
    if not _ATTR_REST_RE.fullmatch(rest):
        raise InvalidPath(f"Invalid path '{text}': malformed attribute name '{rest}'")
    resolved = schema.resolve(head)
    if bracket < 0:
        return PatchPath(resolved.urn, resolved.attribute, resolved.sub_attribute)

    attribute = resolved.attribute
    if resolved.sub_attribute is not None or not (attribute.multi_valued and attribute.is_complex):
        raise InvalidPath(
            f"Invalid path '{text}': a value filter needs a multi-valued complex attribute"
        )
    parser = _Parser(text, bracket + 1)
    parser._enter(bracket)
    node = _bind(parser.parse_or(in_brackets=True), attribute)
    parser.expect("]", "'and', 'or' or ']'")
    sub_attribute = None
    if tail := text[parser.pos :]:
        name = tail[1:] if tail.startswith(".") and re.fullmatch(_NAME, tail[1:]) else ""
        sub_attribute = attribute.sub(name) if name else None
        if sub_attribute is None:
            raise InvalidPath(
                f"Invalid path '{text}': expected '.' and a sub-attribute of "
                f"'{attribute.name}' after ']', found '{tail}'"
            )
    return PatchPath(resolved.urn, attribute, sub_attribute, node)


def _bind(node: Node, attribute: Attribute) -> Node:
    """Check a value filter against ``attribute`` and canonicalize its sub-attribute names."""
    if isinstance(node, And | Or):
        return replace(node, left=_bind(node.left, attribute), right=_bind(node.right, attribute))
    if isinstance(node, Not):
        return Not(_bind(node.expr, attribute))
    if isinstance(node, ValuePath):
        raise InvalidFilter("Value filters cannot be nested")
    sub = filter_sub_attribute(attribute, node.path)
    if isinstance(node, Compare):
        check_comparison(sub, node.op, node.value, node.path)
    return replace(node, path=sub.name)


def format_filter(node: Node) -> str:
    """Render an AST back to filter text (canonical spacing; used for messages and paths)."""
    if isinstance(node, Compare):
        return f"{node.path} {node.op} {json.dumps(node.value)}"
    if isinstance(node, Present):
        return f"{node.path} pr"
    if isinstance(node, And):
        return f"({format_filter(node.left)} and {format_filter(node.right)})"
    if isinstance(node, Or):
        return f"({format_filter(node.left)} or {format_filter(node.right)})"
    if isinstance(node, Not):
        return f"not ({format_filter(node.expr)})"
    return f"{node.path}[{format_filter(node.filter)}]"


# --- Typing rules shared by the evaluator and provisioning.directory.query ---

_TRUTH = {"true": True, "false": False}


def as_bool(value: object) -> bool | None:
    """``True``/``False`` for a boolean or the strings "true"/"false" (any case), else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _TRUTH.get(value.strip().lower())
    return None


def _as_number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_datetime(value: object) -> datetime | None:
    """The instant ISO 8601 text names, in UTC (a date alone is midnight UTC), else None.

    None too for an instant outside years 1 to 9999 in UTC (``9999-12-31T23:00:00-05:00``):
    neither Python nor the databases can hold it, and a UTC value is what both compare.
    """
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif not isinstance(value, str):
        return None
    else:
        try:
            parsed = parse_datetime(value.strip())
            if parsed is None and (day := parse_date(value.strip())):
                parsed = datetime.combine(day, time.min)
        except ValueError:
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def check_comparison(attr: Attribute, op: str, value: Scalar, path: str) -> None:
    """Reject operator/value combinations that have no meaning for ``attr``'s type."""
    if value is None:
        raise InvalidFilter(
            f"Comparing '{path}' with null is not supported; use 'not ({path} pr)' for absence"
        )
    kind = attr.type
    if kind == "complex":
        raise InvalidFilter(f"'{path}' is complex; compare one of its sub-attributes")
    if kind == "boolean":
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"Operator '{op}' is not supported for boolean attribute '{path}'")
        if as_bool(value) is None:
            raise InvalidFilter(f"'{path}' is boolean; compare it with true or false")
    elif kind in ("integer", "decimal"):
        if op in SUBSTRING_OPS:
            raise InvalidFilter(f"Operator '{op}' is not supported for numeric attribute '{path}'")
        if _as_number(value) is None or isinstance(value, str):
            raise InvalidFilter(f"'{path}' is numeric; compare it with a number")
    elif kind == "dateTime":
        if op in SUBSTRING_OPS:
            raise InvalidFilter(f"Operator '{op}' is not supported for dateTime attribute '{path}'")
        if as_datetime(value) is None:
            raise InvalidFilter(
                f"'{path}' is a dateTime; {json.dumps(value)} is not an ISO 8601 date-time "
                "between the years 1 and 9999 (UTC)"
            )
    else:
        if kind == "binary" and op in ORDER_OPS:
            raise InvalidFilter(f"Operator '{op}' is not supported for binary attribute '{path}'")
        if not isinstance(value, str):
            raise InvalidFilter(f"'{path}' is a string; compare it with a quoted string")


def filter_sub_attribute(attribute: Attribute, name: str) -> Attribute:
    """The sub-attribute a value filter names; ``InvalidFilter`` when ``attribute`` has none."""
    sub = attribute.sub(name)
    if sub is None:
        raise InvalidFilter(f"Unknown attribute '{name}' in the value filter of '{attribute.name}'")
    return sub


# --- In-memory evaluation ----------------------------------------------------


def matches(node: Node, element: dict, attribute: Attribute) -> bool:
    """Whether one element of multi-valued ``attribute`` (JSON, as stored) satisfies ``node``.

    ``node`` is a value filter (the text inside brackets); its paths name
    sub-attributes of ``attribute``. Element keys are matched case-insensitively.
    """
    if isinstance(node, And):
        return matches(node.left, element, attribute) and matches(node.right, element, attribute)
    if isinstance(node, Or):
        return matches(node.left, element, attribute) or matches(node.right, element, attribute)
    if isinstance(node, Not):
        return not matches(node.expr, element, attribute)
    if isinstance(node, ValuePath):
        raise InvalidFilter("Value filters cannot be nested")
    sub = filter_sub_attribute(attribute, node.path)
    actual = _element_value(element, sub.name)
    if isinstance(node, Present):
        return actual not in (None, "", [], {})
    check_comparison(sub, node.op, node.value, node.path)
    if node.op == "ne":
        return not _compare(sub, "eq", actual, node.value)
    return _compare(sub, node.op, actual, node.value)


def _element_value(element: object, name: str) -> object:
    if not isinstance(element, dict):
        return None
    if name in element:
        return element[name]
    lowered = name.lower()
    return next((v for k, v in element.items() if str(k).lower() == lowered), None)


def _compare(attr: Attribute, op: str, actual: object, expected: Scalar) -> bool:
    left: Any
    right: Any
    if attr.type == "boolean":
        left, right = as_bool(actual), as_bool(expected)
    elif attr.type in ("integer", "decimal"):
        left, right = _as_number(actual), _as_number(expected)
    elif attr.type == "dateTime":
        left, right = as_datetime(actual), as_datetime(expected)
    else:
        if not isinstance(actual, str) or not isinstance(expected, str):
            return False
        left, right = (actual, expected) if attr.case_exact else (actual.lower(), expected.lower())
    if left is None or right is None:
        return False  # an absent or unreadable value never compares
    match op:
        case "eq":
            return bool(left == right)
        case "co":
            return right in left
        case "sw":
            return left.startswith(right)
        case "ew":
            return left.endswith(right)
        case "gt":
            return bool(left > right)
        case "ge":
            return bool(left >= right)
        case "lt":
            return bool(left < right)
        case "le":
            return bool(left <= right)
    raise InvalidFilter(f"Unknown operator '{op}'")
