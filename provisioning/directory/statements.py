"""Querysets compiled once per process and shape, run again with other values.

The ORM builds and compiles a queryset into SQL at every run. For the reads that most
SCIM requests make (a user or group by id, the ``userName eq`` and ``externalId eq``
lookups an IdP sends before each create) that is about a third of a millisecond of
Python, more than the database takes to answer.

``fetch`` builds its queryset once per database vendor and ``key`` with marker values,
compiles it, and keeps the SQL with the position of each marker among its parameters.
Later runs put the values in those positions, execute the SQL and turn the rows into
instances with the compiler's own converters and ``Model.from_db``, as the ORM does
(or, where ``from_db`` would do nothing more, assembled directly: ``_maker``).
A shape whose markers do not each appear exactly once among the parameters (a value the
ORM transforms, or leaves out) is not kept: it runs through the ORM every time.

A paged shape (``start``/``stop`` given) takes its bounds as parameters too: it is
compiled with marker bounds, and the ``LIMIT … OFFSET …`` they compile to (once in the
statement, wherever ``build`` slices: the statement or a subquery of it) becomes
``LIMIT %s OFFSET %s``. Every page of a shape is then one statement text, which the
database prepares once, and one entry here, whatever pages a client asks for.

``fetch_with`` adds one column of the caller's SQL to every row of a paged shape (a
correlated subquery over the row, with no parameters of its own) and gives it back
beside each instance: a user and its groups in one statement.

``key`` must name everything the queryset's SQL depends on besides the values (and
tell a paged shape from one that is not, and one with an added column from one
without); the
values must not change the SQL (a caller keeps apart the values that do, an empty
string for instance). Every other parameter is kept as it was compiled: a queryset that
compares with the time, or any value that changes between runs, is not for ``fetch``
unless that value is one of its values.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any

from django.db import connections
from django.db.models import Field, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query import ModelIterable
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.db.transaction import TransactionManagementError

# Shapes kept per process; the least recently used goes beyond this (a key holds page
# bounds, which a client chooses).
MAX_STATEMENTS = 256


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    positions: tuple[int, ...]  # where each value goes among ``params``
    fields: tuple[Field, ...]  # each value's field, which prepares it for the database
    model: type[Model]
    for_update: bool  # SELECT ... FOR UPDATE where the database has it
    attnames: tuple[str, ...]
    # (column index, its converters, its expression): what the ORM applies to each row.
    converters: tuple[tuple[int, tuple, Any], ...]
    # A paged shape: where LIMIT's and OFFSET's values go among the parameters.
    bounds_at: int | None = None
    # An added column (``fetch_with``): the last of each row, not the model's.
    added: bool = False


# A paged shape's marker bounds: no real page starts or stops there.
_START_MARK, _LIMIT_MARK = 7_340_033_201, 9_110_000_389
# A placeholder, or an escaped percent sign (``%%``) that is none.
_PLACEHOLDER = re.compile(r"%%|%s")

_UNCACHEABLE = object()
_compiled: OrderedDict[tuple, _Compiled | object] = OrderedDict()
_lock = Lock()


def _marker(field: Field) -> Any:
    """A value of ``field``'s type that no real parameter equals."""
    token = uuid.uuid4()
    return token if field.get_internal_type() == "UUIDField" else f"\x1fmarker:{token.hex}"


def _plain(queryset: QuerySet) -> bool:
    """Rows of the model's own columns, one instance each: what ``from_db`` rebuilds."""
    query = queryset.query
    return (
        queryset._iterable_class is ModelIterable
        and not query.select_related
        and not query.annotation_select
        and not query.extra_select
        and query.deferred_loading == (frozenset(), True)
        and not queryset._prefetch_related_lookups
        and not (
            query.select_for_update_nowait
            or query.select_for_update_skip_locked
            or query.select_for_update_of
            or getattr(query, "select_for_no_key_update", False)
        )
    )


def _parametrised_bounds(connection, sql: str) -> tuple[str, int] | None:
    """``sql`` with the marker bounds' ``LIMIT … OFFSET …`` made placeholders, and the
    index among the parameters where their values go; None unless it occurs once."""
    bounds = connection.ops.limit_offset_sql(_START_MARK, _START_MARK + _LIMIT_MARK)
    if sql.count(bounds) != 1:
        return None
    at = sql.index(bounds)
    before = sum(1 for found in _PLACEHOLDER.findall(sql[:at]) if found == "%s")
    return sql[:at] + "LIMIT %s OFFSET %s" + sql[at + len(bounds) :], before


# An ORDER BY item of a compiled shape: a column of the model's table, and its direction.
_ORDER_ITEM = re.compile(r'^"(\w+)"\."(\w+)" (ASC|DESC)$')
_PAGE = '"page"'


def _with_column(sql: str, column: str, table: str) -> str | None:
    """A paged shape's ``sql`` (``SELECT <the model's columns> FROM … ORDER BY … LIMIT %s
    OFFSET %s``) as the subquery of a statement adding ``column`` after those columns,
    where ``{row}`` in ``column`` names the page's row; in the same order. None when its
    order cannot be told (or ``column`` has parameters).

    The column is computed above the page's LIMIT, once for each row the page keeps: a
    plan the database can prepare once for every value (below it, an unknown OFFSET
    makes the generic plan look dearer than planning the statement at every run).
    """
    suffix = " LIMIT %s OFFSET %s"
    if "%s" in column or not sql.startswith("SELECT ") or not sql.endswith(suffix):
        return None
    head, _by, order = sql[: -len(suffix)].rpartition(" ORDER BY ")
    if not head or ")" in order:
        return None
    items = []
    for item in order.split(", "):
        match = _ORDER_ITEM.match(item)
        if match is None or match.group(1) != table:
            return None
        items.append(f'{_PAGE}."{match.group(2)}" {match.group(3)}')
    added = column.replace("{row}", _PAGE)
    # The shape's own compiled SQL and the caller's column: no value of a request.
    return f"SELECT {_PAGE}.*, {added} FROM ({sql}) AS {_PAGE} ORDER BY {', '.join(items)}"  # noqa: S608


def _compile(
    connection,
    build: Callable[..., QuerySet],
    fields: Sequence[Field],
    paged: bool = False,
    column: str | None = None,
) -> _Compiled | object:
    markers = [_marker(field) for field in fields]
    if paged:
        queryset = build(*markers, start=_START_MARK, stop=_START_MARK + _LIMIT_MARK)
    else:
        queryset = build(*markers)
    if not _plain(queryset):
        return _UNCACHEABLE
    compiler = queryset.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    bounds_at = None
    if paged:
        found = _parametrised_bounds(connection, sql)
        if found is None:
            return _UNCACHEABLE
        sql, bounds_at = found
    if column is not None:
        if not paged:
            return _UNCACHEABLE
        sql = _with_column(sql, column, queryset.model._meta.db_table)
        if sql is None:
            return _UNCACHEABLE
    positions = []
    for field, marker in zip(fields, markers, strict=True):
        prepared = field.get_db_prep_value(marker, connection, prepared=False)
        found = [i for i, param in enumerate(params) if param == prepared]
        if len(found) != 1:
            return _UNCACHEABLE
        positions.append(found[0] + (2 if bounds_at is not None and found[0] >= bounds_at else 0))
    if bounds_at is not None:
        params = [*params[:bounds_at], None, None, *params[bounds_at:]]
    model = queryset.model
    concrete = model._meta.concrete_fields
    columns = [expression for expression, _sql, _alias in compiler.select]
    if [getattr(selected, "target", None) for selected in columns] != list(concrete):
        return _UNCACHEABLE
    converters = compiler.get_converters(columns)
    return _Compiled(
        sql=sql,
        params=tuple(params),
        positions=tuple(positions),
        fields=tuple(fields),
        model=model,
        for_update=bool(queryset.query.select_for_update)
        and connection.features.has_select_for_update,
        attnames=tuple(field.attname for field in concrete),
        converters=tuple(
            (index, tuple(convs), expression) for index, (convs, expression) in converters.items()
        ),
        bounds_at=bounds_at,
        added=column is not None,
    )


def _entry(
    key: tuple, connection, build, fields, paged: bool, column: str | None = None
) -> _Compiled | object:
    full_key = (connection.alias, connection.vendor, *key)
    with _lock:
        entry = _compiled.get(full_key)
        if entry is not None:
            _compiled.move_to_end(full_key)
            return entry
    entry = _compile(connection, build, fields, paged, column)
    with _lock:
        _compiled[full_key] = entry
        while len(_compiled) > MAX_STATEMENTS:
            _compiled.popitem(last=False)
    return entry


def fetch(
    key: tuple,
    build: Callable[..., QuerySet],
    values: Sequence[Any],
    fields: Sequence[Field],
    *,
    start: int | None = None,
    stop: int | None = None,
    using: str = "default",
) -> list[Model]:
    """What ``list(build(*values))`` returns, compiled once for ``key``; with ``start``
    and ``stop``, what ``list(build(*values, start=start, stop=stop))`` returns, where
    ``build`` slices a queryset ``[start:stop]`` (the rows themselves, or a subquery).

    ``fields``: the model field each value is compared with (it prepares the value for
    the database as the ORM would).
    """
    rows = _run(key, build, values, fields, start=start, stop=stop, using=using, column=None)
    return [instance for instance, _added in rows]


def fetch_with(
    key: tuple,
    build: Callable[..., QuerySet],
    values: Sequence[Any],
    fields: Sequence[Field],
    column: str,
    *,
    start: int | None = None,
    stop: int | None = None,
    using: str = "default",
) -> list[tuple[Model, Any]] | None:
    """``fetch``'s instances of a page, each with the value ``column`` has in its row,
    as the database driver reads it; None when the shape cannot carry the column (the
    caller reads it another way). ``column``: SQL without parameters, in which ``{row}``
    names the row (``{row}."id"``: its id)."""
    return _run(key, build, values, fields, start=start, stop=stop, using=using, column=column)


def _run(
    key: tuple,
    build: Callable[..., QuerySet],
    values: Sequence[Any],
    fields: Sequence[Field],
    *,
    start: int | None,
    stop: int | None,
    using: str,
    column: str | None,
) -> list[tuple[Model, Any]] | None:
    connection = connections[using]
    paged = start is not None
    if paged and (stop is None or start < 0 or stop <= start):
        raise ValueError("a page needs 0 <= start < stop")
    entry = _entry(key, connection, build, fields, paged, column)
    if entry is _UNCACHEABLE:
        if column is not None:
            return None
        if paged:
            return [(instance, None) for instance in build(*values, start=start, stop=stop)]
        return [(instance, None) for instance in build(*values)]
    assert isinstance(entry, _Compiled)
    if paged is (entry.bounds_at is None) or entry.added is (column is None):
        raise ValueError(f"{key!r} names two shapes (paged or not, with a column or not)")
    if entry.for_update and connection.get_autocommit():
        # What the ORM says of such a queryset: its lock would end with the statement.
        raise TransactionManagementError(
            "select_for_update cannot be used outside of a transaction."
        )
    params = list(entry.params)
    for position, field, value in zip(entry.positions, entry.fields, values, strict=True):
        params[position] = field.get_db_prep_value(value, connection, prepared=False)
    if entry.bounds_at is not None:
        params[entry.bounds_at : entry.bounds_at + 2] = [stop - start, start]
    with connection.cursor() as cursor:
        cursor.execute(entry.sql, params)
        rows = cursor.fetchall()
    make = _maker(entry.model, entry.attnames, using)
    instances = []
    for row in rows:
        added = row[-1] if entry.added else None
        if entry.converters or entry.added:
            row = list(row[:-1] if entry.added else row)
            for index, converters, expression in entry.converters:
                value = row[index]
                for convert in converters:
                    value = convert(value, expression, connection)
                row[index] = value
        instances.append((make(row), added))
    return instances


def _plain_model(model: type[Model]) -> bool:
    """Whether ``model.from_db``, given every concrete column, makes nothing more than
    the instance ``_maker`` assembles: the model keeps Django's own ``__init__`` and
    ``from_db``, and each field's class attribute is a plain one (``DeferredAttribute``,
    or a foreign key id's, whose setter only clears a cached object a new instance
    does not have)."""
    if model.__init__ is not Model.__init__ or model.from_db.__func__ is not Model.from_db.__func__:
        return False
    return all(
        type(model.__dict__.get(field.attname)) in (DeferredAttribute, ForeignKeyDeferredAttribute)
        for field in model._meta.concrete_fields
    )


_plain_models: dict[type[Model], bool] = {}


def _maker(model: type[Model], attnames: tuple[str, ...], using: str) -> Callable[[Sequence], Model]:
    """What turns a row of every concrete column into an instance: ``model.from_db``,
    or, where it would do nothing more (``_plain_model``, and no receiver of
    ``pre_init``/``post_init`` for the model now), the instance assembled directly: a
    loaded instance's state and the row's values. A 100-user list page took 11.1 ms
    in process instead of 12.2 ms."""
    plain = _plain_models.get(model)
    if plain is None:
        plain = _plain_models[model] = _plain_model(model)
    if not plain or pre_init.has_listeners(model) or post_init.has_listeners(model):
        return lambda row: model.from_db(using, attnames, row)

    def assembled(row: Sequence) -> Model:
        instance = object.__new__(model)
        state = ModelState()
        state.adding, state.db = False, using
        values = instance.__dict__
        values["_state"] = state
        values.update(zip(attnames, row, strict=True))
        return instance

    return assembled


_scalars: dict[tuple, tuple[str, tuple]] = {}


def scalar(key: tuple, build: Callable[[], QuerySet], *, using: str = "default") -> Any:
    """The first column of the first row of ``build()`` (a ``values_list`` of one
    column, an integer or text the database driver returns as Python has it), or None
    without rows; its SQL, which has no values of its own, compiled once for ``key``."""
    connection = connections[using]
    full_key = (connection.alias, connection.vendor, *key)
    compiled = _scalars.get(full_key)
    if compiled is None:
        queryset = build()
        sql, params = queryset.query.get_compiler(connection=connection).as_sql()
        compiled = _scalars[full_key] = (sql, tuple(params))
    sql, params = compiled
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def forget() -> None:
    """Drop every compiled statement (tests that change the schema under them)."""
    with _lock:
        _compiled.clear()
        _scalars.clear()
