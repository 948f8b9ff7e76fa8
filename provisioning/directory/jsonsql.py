"""SQL expressions over values inside a resource's ``attributes`` JSON document.

``provisioning.directory.query`` translates filters and ``sortBy`` on attributes that
have no column into these expressions. Each compiles to PostgreSQL ``jsonb``
operators (``#>``, ``#>>``, ``jsonb_array_elements``) or SQLite JSON1 functions
(``json_extract``, ``json_type``, ``json_each``), and behaves the same on both:

- A path is a tuple of JSON keys taken from the schema (never from the request). The
  keys go to the database as parameters: an ``ARRAY[%s, ...]`` on PostgreSQL, a JSON
  path with every key quoted (``$."urn:...:2.0:User"."department"``) on SQLite, so a
  dot or bracket inside a key stays part of the key.
- A scalar is read as one of three kinds: ``text`` (JSON strings as they are, ``true``
  and ``false`` as the words, numbers as their text), ``number`` (JSON numbers only,
  compared numerically) and ``dateTime`` (ISO 8601 text as an instant in UTC). Anything
  else — a missing key, JSON ``null``, a value of another kind — is SQL NULL.
- ``SomeElement`` is ``EXISTS`` over the elements of an array (anything but an array
  has no elements); inside its condition, ``JsonScalar(None, keys, kind)`` reads the
  current element (``keys=()``: the element itself).
- ``ChosenElement`` picks one value of an array for sorting: that of the first element
  whose ``primary`` is true, else that of the first element (RFC 7644 §3.4.2.3).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import NotSupportedError
from django.db.models import BooleanField, DateTimeField, FloatField, Q, TextField
from django.db.models.expressions import Expression

__all__ = ["ChosenElement", "Instant", "JsonScalar", "SomeElement", "safe_key"]

# Attribute names (RFC 7643 §2.1 ATTRNAME, plus "$ref") and schema URNs: no quotes,
# backslashes, brackets or whitespace, so a key never needs escaping in a JSON path.
_SAFE_KEY = re.compile(r"[A-Za-z$][A-Za-z0-9_.:+%$-]*")
# What PostgreSQL's timestamptz input accepts of what SCIM dateTimes look like; other
# text would make the cast fail, so it reads as NULL (not a dateTime) instead.
_ISO_8601 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$"
# SQLite: an instant as UTC text with milliseconds, which orders like the instant.
_SQLITE_INSTANT = "%Y-%m-%dT%H:%M:%f"
# The current element of SomeElement / ChosenElement. Value filters do not nest, so one
# name serves every subquery.
_ELEMENT = "_scim_e"


def safe_key(key: str) -> bool:
    return _SAFE_KEY.fullmatch(key) is not None


def _check_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    for key in keys:
        if not safe_key(key):
            raise ValueError(f"Unsupported JSON key {key!r}")
    return keys


def _pg_path(keys: tuple[str, ...]) -> tuple[str, list]:
    if not keys:
        return "ARRAY[]::text[]", []
    return "ARRAY[" + ", ".join(["%s"] * len(keys)) + "]::text[]", list(keys)


def _sqlite_path(keys: tuple[str, ...]) -> str:
    return "$" + "".join("." + json.dumps(key) for key in keys)


def _vendor(connection) -> str:
    if connection.vendor not in ("postgresql", "sqlite"):
        raise NotSupportedError("Filters on JSON attributes need PostgreSQL or SQLite")
    return connection.vendor


_OUTPUT = {"text": TextField, "number": FloatField, "dateTime": DateTimeField}


class JsonScalar(Expression):
    """The scalar at ``keys`` inside the JSON of ``source`` (None: the current array
    element), as ``kind``; NULL when absent, null, or of another kind."""

    def __init__(self, source: Expression | None, keys: tuple[str, ...], kind: str):
        if kind not in _OUTPUT:
            raise ValueError(f"Unknown kind {kind!r}")
        super().__init__(output_field=_OUTPUT[kind]())
        self.source = source
        self.keys = _check_keys(tuple(keys))
        self.kind = kind

    def get_source_expressions(self):
        return [self.source] if self.source is not None else []

    def set_source_expressions(self, exprs):
        if self.source is not None:
            [self.source] = exprs

    def as_sql(self, compiler, connection):
        if _vendor(connection) == "postgresql":
            return self._postgresql(compiler)
        return self._sqlite(compiler)

    def _postgresql(self, compiler) -> tuple[str, list]:
        if self.source is None:
            doc, doc_params = f"{_ELEMENT}.v", []
        else:
            doc, doc_params = compiler.compile(self.source)
        path, path_params = _pg_path(self.keys)
        text, text_params = f"({doc} #>> {path})", [*doc_params, *path_params]
        if self.kind == "text":
            return text, text_params
        if self.kind == "number":
            return (
                f"(CASE WHEN jsonb_typeof({doc} #> {path}) = 'number' THEN {text}::numeric END)",
                [*doc_params, *path_params, *text_params],
            )
        return (
            f"(CASE WHEN {text} ~ %s THEN {text}::timestamptz END)",
            [*text_params, _ISO_8601, *text_params],
        )

    def _sqlite(self, compiler) -> tuple[str, list]:
        if self.source is None and not self.keys:
            # The element itself (an array of scalars): json_each gives its type and value.
            kind_sql, value_sql, params = f"{_ELEMENT}.type", f"{_ELEMENT}.value", []
            type_params: list = []
        else:
            if self.source is None:
                # Only an object element has keys (json_extract on other text would fail).
                doc, doc_params = f"(CASE WHEN {_ELEMENT}.type = 'object' THEN {_ELEMENT}.value END)", []
            else:
                doc, doc_params = compiler.compile(self.source)
            path = _sqlite_path(self.keys)
            kind_sql, type_params = f"json_type({doc}, %s)", [*doc_params, path]
            value_sql, params = f"json_extract({doc}, %s)", [*doc_params, path]
        if self.kind == "text":
            return (
                f"(CASE {kind_sql} WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"WHEN 'null' THEN NULL ELSE CAST({value_sql} AS TEXT) END)",
                [*type_params, *params],
            )
        if self.kind == "number":
            return (
                f"(CASE WHEN {kind_sql} IN ('integer', 'real') THEN {value_sql} END)",
                [*type_params, *params],
            )
        return (
            f"strftime(%s, CASE WHEN {kind_sql} = 'text' THEN {value_sql} END)",
            [_SQLITE_INSTANT, *type_params, *params],
        )


class Instant(Expression):
    """A dateTime literal, comparable with ``JsonScalar(..., "dateTime")``."""

    output_field = DateTimeField()

    def __init__(self, value: datetime):
        super().__init__()
        self.value = value.astimezone(UTC)

    def as_sql(self, compiler, connection):
        if _vendor(connection) == "postgresql":
            return "%s::timestamptz", [self.value]
        return "strftime(%s, %s)", [_SQLITE_INSTANT, self.value.isoformat()]


class _ArrayExpression(Expression):
    """Shared by the two array expressions: the array at ``keys`` in ``source``."""

    def __init__(self, source: Expression, keys: tuple[str, ...], inner, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.keys = _check_keys(tuple(keys))
        self.inner = inner

    def get_source_expressions(self):
        return [self.source, self.inner]

    def set_source_expressions(self, exprs):
        self.source, self.inner = exprs

    def _elements(self, compiler, connection, ordinality: bool = False) -> tuple[str, str, list]:
        """(FROM clause, WHERE guard, params) iterating the array's elements."""
        doc, doc_params = compiler.compile(self.source)
        if _vendor(connection) == "postgresql":
            path, path_params = _pg_path(self.keys)
            array, array_params = f"({doc} #> {path})", [*doc_params, *path_params]
            columns = f"{_ELEMENT}(v, i)" if ordinality else f"{_ELEMENT}(v)"
            return (
                f"jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} "
                f"ELSE '[]'::jsonb END){' WITH ORDINALITY' if ordinality else ''} AS {columns}",
                "TRUE",
                [*array_params, *array_params],
            )
        path = _sqlite_path(self.keys)
        return (
            f"json_each({doc}, %s) AS {_ELEMENT}",
            f"json_type({doc}, %s) = 'array'",
            [*doc_params, path, *doc_params, path],
        )


class SomeElement(_ArrayExpression):
    """``EXISTS`` an element of the array at ``keys`` satisfying ``condition`` (a ``Q``
    over ``JsonScalar(None, ...)``; None: any element)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, source: Expression, keys: tuple[str, ...], condition: Q | None = None):
        super().__init__(source, keys, condition)

    def as_sql(self, compiler, connection):
        source, guard, params = self._elements(compiler, connection)
        where, where_params = "1 = 1", []
        if self.inner is not None:
            try:
                where, where_params = compiler.compile(self.inner)
            except EmptyResultSet:
                where = "1 = 0"
            except FullResultSet:
                pass
        # The guard and the condition are ANDed inside the subquery: NULL is never the answer.
        # Compiled fragments only; every key and value is a parameter.
        return (
            f"EXISTS (SELECT 1 FROM {source} WHERE {guard} AND ({where}))",  # noqa: S608
            [*params, *where_params],
        )


class ChosenElement(_ArrayExpression):
    """``value`` (an expression over ``JsonScalar(None, ...)``) of the primary element
    of the array at ``keys``, else of its first element; NULL for no element."""

    def __init__(self, source: Expression, keys: tuple[str, ...], value: Expression, *, primary: bool):
        super().__init__(source, keys, value, output_field=value.output_field)
        self.primary = primary

    def as_sql(self, compiler, connection):
        value, value_params = compiler.compile(self.inner)
        if _vendor(connection) == "postgresql":
            source, guard, params = self._elements(compiler, connection, ordinality=True)
            first = f"{_ELEMENT}.i"
            primary = f"({_ELEMENT}.v -> 'primary') = 'true'::jsonb"
        else:
            source, guard, params = self._elements(compiler, connection)
            first = f"{_ELEMENT}.key"
            primary = (
                f"{_ELEMENT}.type = 'object' AND json_type({_ELEMENT}.value, '$.\"primary\"') = 'true'"
            )
        order = f"CASE WHEN {primary} THEN 0 ELSE 1 END, {first}" if self.primary else first
        # Compiled fragments only; every key and value is a parameter.
        return (
            f"(SELECT {value} FROM {source} WHERE {guard} ORDER BY {order} LIMIT 1)",  # noqa: S608
            [*value_params, *params],
        )
