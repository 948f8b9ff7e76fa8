"""Functions that read the directory, shaped so that pages cost a constant number of queries."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import (
    BigIntegerField,
    Count,
    DateTimeField,
    F,
    Field,
    Func,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import Col, OrderBy
from django.db.models.functions import Coalesce, Lower, Upper
from django.db.models.lookups import (
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from provisioning.access.authorization import EVERYTHING, ReadScope, own_resources_only, owned_by
from provisioning.access.models import ScimClient
from provisioning.scim.errors import ScimError

from . import statements
from .jsonsql import ChosenElement, Instant, JsonScalar
from .models import Group, Membership, ResourceCount, User

# From this offset on, ``page`` selects the page's keys first, then their rows.
DEEP_OFFSET = 1000


def resource_total(model: type[User] | type[Group]) -> int | None:
    """How many users (or groups) exist, from the trigger-kept counter; None if unknown."""
    return statements.scalar(
        ("resource_total", model.__name__),
        lambda: ResourceCount.objects.filter(resource_type=model.__name__).values_list(
            "total", flat=True
        )[:1],
    )


def _present_users() -> QuerySet:
    """The users' counter less the users awaiting a scheduled deletion (they are rows
    but not in the directory): a count over a small partial index, in the counter's
    own statement."""
    retired = (
        retired_users()
        .order_by()
        .annotate(n=Func(F("pk"), function="COUNT", output_field=BigIntegerField()))
        .values("n")
    )
    return (
        ResourceCount.objects.filter(resource_type=User.__name__)
        .annotate(present=F("total") - Subquery(retired[:1]))
        .values_list("present", flat=True)[:1]
    )


def _counted_total(queryset: QuerySet) -> int | None:
    """The counter's total when ``queryset`` is every user or every group (users
    awaiting deletion subtracted); else None. Compiled once per process."""
    if queryset.model is Group and not queryset.query.where:
        return resource_total(Group)
    if queryset.model is User and queryset.query.where == User.objects.all().query.where:
        return statements.scalar(("present_users",), _present_users)
    return None


def count(queryset: QuerySet) -> int:
    """``queryset.count()``, but an unfiltered list of users or groups reads its counter."""
    total = _counted_total(queryset)
    return queryset.count() if total is None else total


def page(
    queryset: QuerySet, *, order: list, offset: int, limit: int, time_limit: bool = True
) -> tuple[int, list]:
    """At most one count (``count``: the counter row when unfiltered) and one LIMIT/OFFSET
    query (two from ``DEEP_OFFSET`` on); ``order`` always ends in the primary key.

    Below ``DEEP_OFFSET`` the page is read first: a page that is not full but not empty
    (or an empty first page) ends the result, so the total follows from it and no COUNT
    runs: a filter by userName or externalId costs one query.

    The queries may take ``SCIM_LIST_TIMEOUT_MS`` together: a filter no index serves
    (substring comparisons by the dozen over every user) is refused with 400 ``tooMany``
    (RFC 7644 §3.12: more than the server is willing to process) instead of holding a
    worker and a database connection for as long as it takes. ``time_limit=False``: a
    filter an index answers in one probe, whose statements cannot run long (nor pay for
    the limit's own statements).
    """
    if not time_limit:
        return _page(queryset, order=order, offset=offset, limit=limit)
    with _time_limited(settings.SCIM_LIST_TIMEOUT_MS):
        return _page(queryset, order=order, offset=offset, limit=limit)


def page_total(offset: int, limit: int, rows: list, counted: Callable[[], int]) -> int:
    """The total of a page read below ``DEEP_OFFSET``: a page that is not full but not
    empty (or an empty first page) ends the result; otherwise ``counted()``."""
    if len(rows) < limit and (rows or offset == 0):
        return offset + len(rows)
    return counted()


def _page(queryset: QuerySet, *, order: list, offset: int, limit: int) -> tuple[int, list]:
    ordered = queryset.order_by(*order, "pk")
    if limit > 0 and offset < DEEP_OFFSET:
        rows = list(ordered[offset : offset + limit])
        return page_total(offset, limit, rows, lambda: count(queryset)), rows
    total = count(queryset)
    if limit <= 0 or offset >= total:
        return total, []
    # A deep page: OFFSET still steps over ``offset`` rows, but only through the ordering
    # index (an index-only scan of the primary keys for the default (created, id) order),
    # then the page's rows alone are fetched with everything the queryset loads.
    ids = list(ordered.values_list("pk", flat=True)[offset : offset + limit])
    return total, list(queryset.filter(pk__in=ids).order_by(*order, "pk"))


def directory_page(
    client: ScimClient | None, model: type[User] | type[Group], *, offset: int, limit: int
) -> tuple[int, list]:
    """``page`` of every ``model`` resource in the default (created, id) order, for a
    client that may read every one (the caller checks it, and the read permission), its
    statements compiled once per process whatever the page (``statements.fetch``).

    Below ``DEEP_OFFSET`` one statement, and the counter when the page is full, bounded
    by the page: at most ``DEEP_OFFSET`` entries of the index more than it holds, so
    without the time limit. From it on the counter, then, under the time limit, one
    statement whose subquery steps over the keys in the index alone (an index-only
    scan) and whose rows are read by primary key, the page's alone: what ``_page`` does
    in two statements.
    """
    if own_resources_only(client):
        raise ValueError("directory_page reads every resource; this client may read its own only")
    order = ("created", "pk")

    def counted() -> int:
        return count(model.objects.all())

    if limit > 0 and offset < DEEP_OFFSET:
        rows = scoped_rows(
            client,
            model,
            (model.__name__, "all"),
            None,
            None,
            None,
            order=order,
            start=offset,
            stop=offset + limit,
        )
        return page_total(offset, limit, rows, counted), rows
    total = counted()
    if limit <= 0 or offset >= total:
        return total, []

    def build(*, start: int, stop: int) -> QuerySet:
        keys = model.objects.order_by(*order).values("pk")[start:stop]
        return model.objects.filter(pk__in=keys).order_by(*order)

    with list_time_limit():
        rows = statements.fetch(
            ("deep", model.__name__, order), build, (), (), start=offset, stop=offset + limit
        )
    return total, rows


@contextmanager
def list_time_limit() -> Iterator[None]:
    """The database time one SCIM list may take (``SCIM_LIST_TIMEOUT_MS``), for lists that
    run their queries themselves (cursor pages): 400 ``tooMany`` beyond it, as in ``page``."""
    with _time_limited(settings.SCIM_LIST_TIMEOUT_MS):
        yield


# --- Keyset pages (SCIM cursors, RFC 9865) -----------------------------------------
#
# The order is ``key`` (ascending or descending, NULLs last either way), then the
# primary key ascending, as ``page`` orders a sorted list. A boundary is the
# (key value, pk) of a row; the rows strictly after it (or before it) are found with
# comparisons, not OFFSET, so rows inserted or deleted elsewhere move no other row
# across the boundary.

SEEK = "_seek"


def _never_null(expression) -> bool:
    """Whether an annotated sort key is known never to be NULL (a NOT NULL column, or LOWER
    of one): its order and conditions then need no NULL handling and match the indexes."""
    if isinstance(expression, Col):
        return not expression.target.null
    if isinstance(expression, Lower | Upper):
        return all(_never_null(source) for source in expression.get_source_expressions())
    return False


_COMPARISONS = {
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}


def _key_compared(annotation: Any, op: str, value: Any) -> Q:
    """``SEEK <op> value`` with the key's own comparison semantics.

    A JSON key (``KeyTransform``, a JSON output field) is compared through its alias, with
    Django's JSON lookups (they encode the value as each database compares JSON); any
    other expression (a column, ``LOWER``, the text of a JSON key) through the plain SQL
    comparison, the value typed by the expression's output field.
    """
    if isinstance(annotation.output_field, JSONField):
        return Q(**{f"{SEEK}__{op}": value})
    if isinstance(annotation, JsonScalar | ChosenElement) and isinstance(
        annotation.output_field, DateTimeField
    ):
        # A JSON dateTime key is an instant in the database's own form (SQLite: ISO text
        # with a "T"); a plain parameter would compare as other text.
        return Q(_COMPARISONS[op](F(SEEK), Instant(value)))
    return Q(_COMPARISONS[op](F(SEEK), Value(value, output_field=annotation.output_field)))


def _seek_queryset(
    queryset: QuerySet, key: Any, *, descending: bool, boundary: tuple | None, backwards: bool
) -> QuerySet:
    """``queryset`` with the key annotated as ``SEEK``, limited to the rows after (before,
    ``backwards``) ``boundary`` and ordered from it outwards (reversed when ``backwards``)."""
    queryset = queryset.annotate(**{SEEK: key})
    annotation = queryset.query.annotations[SEEK]
    nullable = not _never_null(annotation)
    forward_gt = "lt" if descending else "gt"  # the key comparison that moves forward
    cmp = {"gt": "lt", "lt": "gt"}[forward_gt] if backwards else forward_gt
    pk_cmp = "lt" if backwards else "gt"
    # SQL NULL, as the ordering sees it (a JSON key's isnull lookup means "key absent").
    is_null = Q(IsNull(F(SEEK), True))
    if boundary is not None:
        value, pk = boundary
        if value is None:
            # The boundary is in the NULL tail: forwards, only NULLs with a larger pk follow;
            # backwards, NULLs with a smaller pk and every non-NULL key come before.
            seek = is_null & Q(**{f"pk__{pk_cmp}": pk})
            if backwards:
                seek |= ~is_null
        else:
            # The redundant range condition lets the database start an index scan at the
            # boundary instead of filtering every row before it.
            seek = _key_compared(annotation, f"{cmp}e", value) & (
                _key_compared(annotation, cmp, value) | Q(**{f"pk__{pk_cmp}": pk})
            )
            if nullable and not backwards:
                seek |= is_null
        queryset = queryset.filter(seek)
    key_descending = descending != backwards
    # NULLs last going forwards, hence first going backwards; a key that is never NULL
    # is ordered plainly, so that PostgreSQL can walk its index either way.
    placement = {}
    if nullable:
        placement = {"nulls_first": True} if backwards else {"nulls_last": True}
    return queryset.order_by(
        OrderBy(F(SEEK), descending=key_descending, **placement),
        OrderBy(F("pk"), descending=backwards),
    )


def seek_rows(
    queryset: QuerySet,
    *,
    key: Any,
    descending: bool = False,
    boundary: tuple | None = None,
    backwards: bool = False,
    limit: int,
) -> list:
    """At most ``limit`` rows of ``queryset`` in keyset order, in that order: the first ones
    after ``boundary`` (key value, pk), or with ``backwards`` the last ones before it (from
    the end without a boundary). One query; each row carries its key value as ``SEEK``."""
    if limit <= 0:
        return []
    ordered = _seek_queryset(
        queryset, key, descending=descending, boundary=boundary, backwards=backwards
    )
    rows = list(ordered[:limit])
    if backwards:
        rows.reverse()
    return rows


def seek_exists(
    queryset: QuerySet, *, key: Any, descending: bool = False, boundary: tuple, backwards: bool = False
) -> bool:
    """Whether any row of ``queryset`` follows (precedes, ``backwards``) ``boundary``."""
    ordered = _seek_queryset(
        queryset, key, descending=descending, boundary=boundary, backwards=backwards
    )
    return ordered.exists()


@contextmanager
def _time_limited(milliseconds: int) -> Iterator[None]:
    """Let the queries inside run for ``milliseconds`` in all (0: no limit).

    PostgreSQL: before each statement, a ``statement_timeout`` of the time left, in a
    savepoint, so that a cancelled query leaves the transaction usable and the settings
    as they were; JIT compilation off. SQLite: a progress handler that interrupts the statement once the time
    is up.
    """
    if milliseconds <= 0 or connection.vendor not in ("postgresql", "sqlite"):
        yield
        return
    deadline = time.monotonic() + milliseconds / 1000
    try:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            with _time_limited_transaction(deadline):
                yield
        elif connection.vendor == "postgresql":
            with transaction.atomic():
                raw = connection.connection

                def limited(execute, sql, params, many, context):
                    # Each statement gets what is left of the time.
                    _set_statement_timeout(raw, _time_left(deadline))
                    return execute(sql, params, many, context)

                with raw.cursor() as cursor:
                    cursor.execute("SELECT current_setting('statement_timeout'), current_setting('jit')")
                    previous, jit = cursor.fetchone()
                    # JIT compiling a long filter's expressions takes seconds and cannot be
                    # interrupted; these queries run in milliseconds without it.
                    cursor.execute("SELECT set_config('jit', 'off', true)")
                with connection.execute_wrapper(limited):
                    yield
                _set_statement_timeout(raw, previous)
                with raw.cursor() as cursor:
                    cursor.execute("SELECT set_config('jit', %s, true)", [jit])
        else:
            connection.ensure_connection()
            raw = connection.connection
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            try:
                yield
            finally:
                raw.set_progress_handler(None, 0)
    except OperationalError as exc:
        if not _cancelled(exc):
            raise
        raise ScimError(
            f"This list needs more than the {milliseconds} ms of database time a list may "
            "take; narrow the filter (eq on userName, externalId or an email is served by an "
            "index) or ask for fewer results",
            scim_type="tooMany",
        ) from None


# How far a list may overrun its time limit so that a later statement of it need not set
# its own timeout first (one round trip saved per statement on a quick list).
LIMIT_SLACK_MS = 25


@contextmanager
def _time_limited_transaction(deadline: float) -> Iterator[None]:
    """``_time_limited`` outside any transaction (a SCIM list, in autocommit): a
    transaction of its own whose settings are ``SET LOCAL`` (``set_config(..., true)``),
    so its end restores them; nothing is read first or restored after. One statement
    sets them and the first statement's timeout.

    A later statement gets what is left of the time, set before it, unless the timeout was
    set less than ``LIMIT_SLACK_MS`` ago: a statement starting ``t`` after the timeout was
    set to the time left then can end at most ``t`` after the deadline, so the whole list
    overruns its limit by less than the slack, and the statements of a quick list (a page,
    then its count) need no setting of their own.
    """
    slack = min(LIMIT_SLACK_MS / 1000, (deadline - time.monotonic()) / 20)
    with transaction.atomic():
        raw = connection.connection

        def limited(execute, sql, params, many, context):
            nonlocal set_at
            now = time.monotonic()
            if now - set_at >= slack:
                _set_statement_timeout(raw, _time_left(deadline))
                set_at = now
            return execute(sql, params, many, context)

        set_at = time.monotonic()
        with raw.cursor() as cursor:
            # JIT compiling a long filter's expressions takes seconds and cannot be
            # interrupted; these queries run in milliseconds without it.
            cursor.execute(
                "SELECT set_config('jit', 'off', true), set_config('statement_timeout', %s, true)",
                [_time_left(deadline)],
            )
        with connection.execute_wrapper(limited):
            yield


def _time_left(deadline: float) -> str:
    """What is left until ``deadline`` (``time.monotonic()``) as a ``statement_timeout``."""
    return f"{max(1, int((deadline - time.monotonic()) * 1000))}ms"


def _set_statement_timeout(raw, value: str) -> None:
    """``statement_timeout`` for the rest of the current transaction."""
    with raw.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [value])


def _cancelled(exc: OperationalError) -> bool:
    cause = exc.__cause__
    if cause is not None and type(cause).__name__ == "QueryCanceled":  # PostgreSQL
        return True
    return "interrupted" in str(exc)  # SQLite


def users(q: Q | None = None) -> QuerySet[User]:
    return User.objects.filter(q) if q is not None else User.objects.all()


def groups(q: Q | None = None) -> QuerySet[Group]:
    return Group.objects.filter(q) if q is not None else Group.objects.all()


def user_get(user_id: uuid.UUID, *, retired: bool = False) -> User | None:
    """A user of the directory; with ``retired``, also one awaiting its scheduled deletion
    (the console shows those, to restore them)."""
    manager = User.with_retired if retired else User.objects
    return manager.filter(pk=user_id).first()


def retired_users(*, due_by: datetime | None = None) -> QuerySet[User]:
    """Users whose SCIM deletion was deferred (deactivate before delete); with ``due_by``,
    those whose hard delete is due by then. Served by a partial index."""
    retired = User.with_retired.filter(deletion_due__isnull=False)
    return retired if due_by is None else retired.filter(deletion_due__lte=due_by)


def users_due_for_deletion(now: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Ids of users whose scheduled deletion is due, the longest overdue first."""
    due = retired_users(due_by=now).order_by("deletion_due", "id")
    return list(due.values_list("pk", flat=True)[:limit])


def scoped_rows(
    client: ScimClient | None,
    model: type[User] | type[Group],
    key: tuple,
    where: Callable[[Any], Q] | None,
    value: Any,
    field: Field | None,
    *,
    order: Sequence[str],
    start: int = 0,
    stop: int = 1,
    for_update: bool = False,
    groups: ReadScope | None = None,
) -> list:
    """``model.objects.filter(where(value))`` narrowed to what ``client`` may see (as
    ``authorization.scope_queryset``), ordered, ``[start:stop]``, locked ``for_update``;
    its SQL compiled once per process for ``key`` whatever the page (``statements.fetch``).
    ``where`` must give the same SQL for every value ``key`` covers; ``field`` prepares
    the value for the database. ``where`` None: every resource (``value`` and ``field``
    unused). The caller checks the permission first.

    ``groups``, for users: the scope their ``groups`` are rendered for. Where one
    statement can read them with the users (``groups_column``), each user carries them
    as ``fetched_groups`` gives them back; elsewhere nothing is read for them here."""
    own = own_resources_only(client)

    def build(*values, start: int, stop: int) -> QuerySet:
        rows = model.objects.all()
        if where is not None:
            rows = rows.filter(where(values[0]))
        if own:  # as authorization.scope_queryset narrows it, the client's id a value
            rows = rows.filter(owned_by(values[-1]))
        if for_update:
            rows = rows.select_for_update()
        return rows.order_by(*order)[start:stop]

    source = model._meta.get_field("source").target_field
    values, fields = ((value,), (field,)) if where is not None else ((), ())
    values, fields = ((*values, client.pk), (*fields, source)) if own else (values, fields)
    column = None
    if groups is not None and model is User and not for_update:
        column = groups_column(groups)
    if column is not None:
        key_with = (own, for_update, tuple(order), "groups", *key)
        rows = statements.fetch_with(key_with, build, values, fields, column, start=start, stop=stop)
        if rows is not None:
            for user, value in rows:
                setattr(user, _FETCHED_GROUPS, (groups, groups_from_column(user.pk, value)))
            return [user for user, _value in rows]
    return statements.fetch(
        (own, for_update, tuple(order), *key), build, values, fields, start=start, stop=stop
    )


# Where ``scoped_rows`` leaves the groups it read with a user.
_FETCHED_GROUPS = "_scimgate_fetched_groups"


def fetched_groups(users: Sequence[User], scope: ReadScope) -> dict[uuid.UUID, list[tuple]] | None:
    """The groups ``scoped_rows`` read with each of ``users`` for ``scope`` (as
    ``groups_of_users`` gives them), or None unless it read them for every one."""
    found = {}
    for user in users:
        fetched = getattr(user, _FETCHED_GROUPS, None)
        if fetched is None or fetched[0] != scope:
            return None
        found[user.pk] = fetched[1]
    return found


def group_get(group_id: uuid.UUID) -> Group | None:
    return Group.objects.filter(pk=group_id).first()


def group_named(display_name: str) -> Group | None:
    """The group with this displayName, case-insensitively (its unique index on LOWER)."""
    return Group.objects.annotate(l=Lower("display_name")).filter(l=display_name.lower()).first()


def any_of(column: str, values: list) -> tuple[str, list]:
    """SQL for ``column`` being one of ``values``, and its parameters: on PostgreSQL one
    array parameter (``= ANY(%s)``), so that a page of 100 ids is one statement text with
    one parameter, which psycopg parses and the server prepares once, whatever the count;
    elsewhere a list of parameters (``IN (%s, ...)``). One value is ``= %s`` everywhere
    (a read by id: the server's generic plan for an array expects several)."""
    if len(values) == 1:
        return f"{column} = %s", values
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


# Nesting depth bounds the walk up to indirect groups, whatever the data holds.
MAX_NESTING = 10


def groups_of_users(
    user_ids: Iterable[uuid.UUID], scope: ReadScope = EVERYTHING
) -> dict[uuid.UUID, list[tuple]]:
    """Direct and indirect groups of each user: {user_id: [(group_id, displayName, type)]}.

    One query whatever the page size or nesting: a recursive walk up from the users'
    direct memberships, at most ``MAX_NESTING`` levels. Direct groups come first (in
    membership order), then indirect ones ordered by id.

    Only groups ``scope`` may read are listed, and the walk goes up through those
    alone: a group reached only through one the reader cannot see is not shown either,
    so its ``indirect`` entry does not hint at a hidden group in between.
    """
    user_ids = list(user_ids)
    if not user_ids or not scope.groups:
        return defaultdict(list)
    group = Group._meta.db_table
    prepare = Membership._meta.get_field("user").target_field.get_db_prep_value
    among, ids = any_of("m.user_id", [prepare(pk, connection, prepared=False) for pk in user_ids])
    visible_m = visible_p = ""
    direct_params, step_params = [], []
    if scope.source_id is not None:
        source = Group._meta.get_field("source").get_db_prep_value(
            scope.source_id, connection, prepared=False
        )
        # Table names come from the models; the source is a parameter.
        owned = "AND EXISTS (SELECT 1 FROM {table} v WHERE v.id = {alias}.group_id AND v.source_id = %s)"
        visible_m = owned.format(table=group, alias="m")
        visible_p = owned.format(table=group, alias="p")
        direct_params, step_params = [source], [source]
    sql = _reach_sql(among, visible_m, visible_p, "%s")
    params = [*ids, *direct_params, MAX_NESTING, *step_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    as_uuid = Membership._meta.get_field("user").target_field.to_python
    return _groups_from_rows(
        (as_uuid(user_id), as_uuid(group_id), name, depth, position)
        for user_id, group_id, name, depth, position in rows
    )


def _reach_sql(among: str, visible_m: str, visible_p: str, nesting: str) -> str:
    """The walk of ``groups_of_users``: (user, group, displayName, depth, position) of
    the groups of the users ``among`` selects, direct (depth 0, position the membership's
    id) and indirect, through the memberships the ``visible_*`` conditions keep."""
    membership, group = Membership._meta.db_table, Group._meta.db_table
    # Table names come from the models; every value is a parameter (or, for
    # ``groups_column``, the module's own integer).
    return f"""
        WITH RECURSIVE reach(user_id, group_id, depth, position) AS (
            SELECT m.user_id, m.group_id, 0, m.id FROM {membership} m
            WHERE {among} {visible_m}
          UNION
            SELECT r.user_id, p.group_id, r.depth + 1, 0
            FROM reach r JOIN {membership} p ON p.member_group_id = r.group_id
            WHERE r.depth < {nesting} {visible_p}
        )
        SELECT r.user_id, r.group_id,
               (SELECT g.display_name FROM {group} g WHERE g.id = r.group_id),
               MIN(r.depth), MAX(r.position)
        FROM reach r GROUP BY r.user_id, r.group_id
    """  # noqa: S608


def _groups_from_rows(rows: Iterable[tuple]) -> dict[uuid.UUID, list[tuple]]:
    """``groups_of_users``' answer from the walk's rows (user, group, name, depth,
    position), ids as UUIDs: direct groups by position, then indirect ones by id."""
    result: dict[uuid.UUID, list[tuple]] = defaultdict(list)
    direct, indirect = [], []
    for user_id, group_id, name, depth, position in rows:
        entry = (user_id, group_id, name)
        if depth == 0:
            direct.append((position, entry))
        else:
            indirect.append((str(group_id), entry))
    for _key, (user_id, group_id, name) in sorted(direct, key=lambda item: item[0]):
        result[user_id].append((group_id, name, "direct"))
    for _key, (user_id, group_id, name) in sorted(indirect, key=lambda item: item[0]):
        result[user_id].append((group_id, name, "indirect"))
    return result


def groups_column(scope: ReadScope) -> str | None:
    """SQL of a column of a user's row, named ``{row}`` (a correlated subquery, no
    parameters), holding its groups as ``groups_of_users`` walks them for ``scope``: a JSON
    array of [group id, displayName, depth, position], or NULL for none. Read it with
    ``groups_from_column``. PostgreSQL only, for a scope that may read every group;
    None otherwise (``groups_of_users`` then reads them)."""
    if connection.vendor != "postgresql" or not scope.groups or scope.source_id is not None:
        return None
    user = "{row}." + connection.ops.quote_name(User._meta.pk.column)
    walk = _reach_sql(f"m.user_id = {user}", "", "", str(int(MAX_NESTING)))
    # Names come from the models, the nesting is the module's integer: no value of a request.
    head = "(SELECT json_agg(json_build_array(w.group_id, w.name, w.depth, w.position)) "
    return f"{head}FROM ({walk}) AS w(user_id, group_id, name, depth, position))"  # noqa: S608


def groups_from_column(user_id: uuid.UUID, value: Any) -> list[tuple]:
    """A user's groups, as ``groups_of_users`` lists them, from its ``groups_column``."""
    if value is None:
        return []
    if isinstance(value, str | bytes):
        value = json.loads(value)
    as_uuid = Membership._meta.get_field("group").target_field.to_python
    rows = [(user_id, as_uuid(gid), name, depth, position) for gid, name, depth, position in value]
    return _groups_from_rows(rows).get(user_id, [])


def group_ancestors(group_ids: Iterable[uuid.UUID]) -> list[Group]:
    """Every group that contains one of ``group_ids``, directly or through nesting at any depth.

    One recursive query; ``UNION`` drops rows already reached, so it ends even on a
    cycle left by older data. Loads only id, displayName, the privileged flag and the source.
    """
    group_ids = list(group_ids)
    if not group_ids:
        return []
    membership, group = Membership._meta.db_table, Group._meta.db_table
    prepare = Membership._meta.get_field("member_group").target_field.get_db_prep_value
    among, params = any_of(
        "m.member_group_id", [prepare(pk, connection, prepared=False) for pk in group_ids]
    )
    # Table names come from the models; every value is a parameter.
    sql = f"""
        WITH RECURSIVE up(id) AS (
            SELECT m.group_id FROM {membership} m WHERE {among}
          UNION
            SELECT m.group_id FROM up JOIN {membership} m ON m.member_group_id = up.id
        )
        SELECT g.id, g.display_name, g.privileged, g.source_id
        FROM {group} g WHERE g.id IN (SELECT id FROM up)
    """  # noqa: S608
    return list(Group.objects.raw(sql, params))


def visible_members(scope: ReadScope) -> Q | None:
    """The memberships whose member ``scope`` may read, as a ``Q`` over ``Membership``
    (None: every member). Used for rendering ``members`` and for filters on them."""
    if scope.unrestricted:
        return None
    q = Q(pk__isnull=False)
    if not scope.users:
        q &= Q(user__isnull=True)
    if not scope.groups:
        q &= Q(member_group__isnull=True)
    if scope.source_id is not None:
        q &= Q(user__source_id=scope.source_id) | Q(member_group__source_id=scope.source_id)
    return q


def visible_groups(scope: ReadScope) -> Q | None:
    """The memberships whose group ``scope`` may read, as a ``Q`` over ``Membership``
    (None: every group). Used for filters on a user's ``groups``, which list only
    those groups (``groups_of_users``)."""
    if not scope.groups:
        return Q(pk__in=[])
    if scope.source_id is not None:
        return Q(group__source_id=scope.source_id)
    return None


def member_rows(group_ids: Iterable[uuid.UUID], scope: ReadScope = EVERYTHING) -> QuerySet:
    """``(group_id, user_id, member_group_id, display)`` of the groups' members that
    ``scope`` may read, in membership (insertion) order."""
    rows = Membership.objects.filter(group_id__in=list(group_ids))
    rows = rows.filter(Membership.LIVE)  # not a user awaiting its scheduled deletion
    visible = visible_members(scope)
    if visible is not None:
        rows = rows.filter(visible)
    return rows.order_by("group_id", "id").values_list(
        "group_id", "user_id", "member_group_id", "display"
    )


def members_of_groups(
    group_ids: Iterable[uuid.UUID], scope: ReadScope = EVERYTHING
) -> dict[uuid.UUID, list[tuple]]:
    """{group_id: [(member_id, is_group, display)]} in one query, in insertion order;
    only members ``scope`` may read."""
    result: dict[uuid.UUID, list[tuple]] = defaultdict(list)
    for group_id, user_id, member_group_id, display in member_rows(group_ids, scope).iterator(
        chunk_size=5000
    ):
        result[group_id].append((user_id or member_group_id, member_group_id is not None, display))
    return result


# --- Console listings ------------------------------------------------------------
#
# Listings page by keyset ("seek") rather than OFFSET: each page is
# ``WHERE (key, id) > (last key, last id) ORDER BY key, id LIMIT n + 1`` over an
# indexed sort key, so page 2,000 of 100,000 users costs what page 1 costs. The
# cursor is the id of the boundary row; its sort key is read back by primary key,
# so URLs stay short and a forged cursor can only point at a real row.


@dataclass(frozen=True)
class SortKey:
    """One sortable column: the expression to order by (an indexed one) and its label."""

    expression: Any
    label: str


USER_SORT_KEYS: dict[str, SortKey] = {
    "userName": SortKey(Lower("user_name"), "userName"),
    "displayName": SortKey(Lower("display_name"), "Display name"),
    "email": SortKey(Lower("primary_email"), "Email"),
    "created": SortKey(F("created"), "Created"),
    "lastModified": SortKey(F("last_modified"), "Last modified"),
}
GROUP_SORT_KEYS: dict[str, SortKey] = {
    "displayName": SortKey(Lower("display_name"), "Display name"),
    "created": SortKey(F("created"), "Created"),
    "lastModified": SortKey(F("last_modified"), "Last modified"),
}


@dataclass(frozen=True)
class KeysetPage:
    items: list
    # Ids of the boundary rows to pass as ``after``/``before``; None when there is no such page.
    next_after: Any = None
    previous_before: Any = None


def keyset_page(
    queryset: QuerySet,
    *,
    key: Any,
    descending: bool = False,
    after: Any = None,
    before: Any = None,
    size: int = 50,
) -> KeysetPage:
    """One page of ``queryset`` ordered by ``key`` then ``pk``, starting after or ending before
    the row with the given primary key. A cursor whose row has gone restarts at the first page.
    """
    base = queryset
    queryset = queryset.annotate(_sort=key)
    cursor_pk = after if after is not None else before
    cursor = None
    if cursor_pk is not None:
        cursor = queryset.model.objects.annotate(_sort=key).filter(pk=cursor_pk)
        cursor = cursor.values_list("_sort", "pk").first()
    backwards = cursor is not None and after is None
    # Walking backwards is walking forwards in the reversed order, then flipping the page.
    reverse = descending != backwards
    if cursor is not None:
        value, pk = cursor
        # The redundant range condition lets the database start the index scan at the
        # cursor instead of filtering every row before it.
        if reverse:
            seek = Q(_sort__lte=value) & (Q(_sort__lt=value) | Q(pk__lt=pk))
        else:
            seek = Q(_sort__gte=value) & (Q(_sort__gt=value) | Q(pk__gt=pk))
        queryset = queryset.filter(seek)
    order = ["-_sort", "-pk"] if reverse else ["_sort", "pk"]
    rows = list(queryset.order_by(*order)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        if not more:
            # Back at the start: show a full first page rather than a short one.
            return keyset_page(base, key=key, descending=descending, size=size)
        rows.reverse()
        return KeysetPage(rows, next_after=rows[-1].pk, previous_before=rows[0].pk)
    return KeysetPage(
        rows,
        next_after=rows[-1].pk if more and rows else None,
        previous_before=rows[0].pk if cursor is not None and rows else None,
    )


def count_capped(queryset: QuerySet, cap: int) -> tuple[int, bool]:
    """``(count, capped)``: counting stops at ``cap`` rows, so a broad search never counts
    the whole directory (``SELECT COUNT(*) FROM (... LIMIT cap + 1)``). Unfiltered users
    or groups: the exact total from their counter, never capped."""
    total = _counted_total(queryset)
    if total is not None:
        return total, False
    count = queryset.order_by()[: cap + 1].count()
    return min(count, cap), count > cap


def user_listing(
    *,
    search: str = "",
    active: bool | None = None,
    source_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> QuerySet[User]:
    """Users for the console list: ``search`` matches a substring of userName, displayName,
    given or family name, primary email or externalId; ``group_id`` keeps direct members."""
    queryset = User.objects.select_related("source").only(
        "id",
        "user_name",
        "display_name",
        "given_name",
        "family_name",
        "primary_email",
        "external_id",
        "active",
        "created",
        "last_modified",
        "source__name",
    )
    search = search.strip()
    if search:
        queryset = queryset.filter(
            Q(user_name__icontains=search)
            | Q(display_name__icontains=search)
            | Q(given_name__icontains=search)
            | Q(family_name__icontains=search)
            | Q(primary_email__icontains=search)
            | Q(external_id__icontains=search)
        )
    # Only an explicit ``active: false`` deactivates; an absent ``active`` counts as active.
    if active is True:
        queryset = queryset.filter(Q(active=True) | Q(active__isnull=True))
    elif active is False:
        queryset = queryset.filter(active=False)
    if source_id is not None:
        queryset = queryset.filter(source_id=source_id)
    if group_id is not None:
        members = Membership.objects.filter(group_id=group_id, user__isnull=False)
        queryset = queryset.filter(pk__in=members.values("user_id"))
    return queryset


def _member_count_subqueries() -> dict[str, Any]:
    """Correlated counts of a group's direct members and of its nested groups, each an
    index-only scan: all members over the group foreign-key index, nested groups over the
    partial unique index on (group, member_group). Users are the difference. (Counting
    users with ``user IS NOT NULL`` directly lets PostgreSQL pick a sequential scan per
    group when one group holds most memberships.)"""
    direct = Membership.objects.filter(group_id=OuterRef("pk")).order_by().values("group_id")
    # A user awaiting its scheduled deletion is not a member (a join, for users only).
    members = direct.filter(Membership.LIVE).annotate(n=Count("*")).values("n")
    nested = direct.filter(member_group__isnull=False).annotate(n=Count("*")).values("n")
    return {
        "member_count": Coalesce(Subquery(members), 0),
        "group_count": Coalesce(Subquery(nested), 0),
    }


def group_listing(*, search: str = "") -> QuerySet[Group]:
    """Groups with their direct ``member_count`` and nested ``group_count`` (users are the
    difference). The counts are correlated subqueries over indexes, computed only for the
    rows of the page."""
    queryset = Group.objects.select_related("source").only(
        "id", "display_name", "external_id", "created", "last_modified", "source__name"
    )
    search = search.strip()
    if search:
        queryset = queryset.filter(
            Q(display_name__icontains=search) | Q(external_id__icontains=search)
        )
    return queryset.annotate(**_member_count_subqueries())


def group_member_page(
    group_id: uuid.UUID, *, after: int | None = None, before: int | None = None, size: int = 50
) -> KeysetPage:
    """A page of a group's memberships in insertion order, keyset on the membership id over
    the (group, id) index: as fast for the last page of 100,000 members as for the first."""
    queryset = (
        Membership.objects.filter(group_id=group_id)
        .select_related("user", "member_group")
        .only(
            "id",
            "group_id",
            "display",
            "created",
            "user__id",
            "user__user_name",
            "user__display_name",
            "user__active",
            "member_group__id",
            "member_group__display_name",
        )
    )
    if after is not None:
        rows = list(queryset.filter(id__gt=after).order_by("id")[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return KeysetPage(rows, rows[-1].pk if more else None, rows[0].pk if rows else None)
    if before is not None:
        rows = list(queryset.filter(id__lt=before).order_by("-id")[: size + 1])
        if len(rows) > size:
            rows = rows[:size][::-1]
            return KeysetPage(rows, rows[-1].pk, rows[0].pk)
    rows = list(queryset.order_by("id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return KeysetPage(rows, rows[-1].pk if more else None, None)


def group_member_counts(group_id: uuid.UUID) -> dict[str, int]:
    """Users and nested groups that are direct members, counted from indexes alone."""
    counts = Group.objects.filter(pk=group_id).annotate(**_member_count_subqueries())
    row = counts.values("member_count", "group_count").first()
    if row is None:
        return {"users": 0, "groups": 0}
    return {"users": row["member_count"] - row["group_count"], "groups": row["group_count"]}


def group_member_groups(group_id: uuid.UUID, limit: int = 200) -> list[Membership]:
    """Groups nested directly in ``group_id``, by name."""
    return list(
        Membership.objects.filter(group_id=group_id, member_group__isnull=False)
        .select_related("member_group")
        .only("id", "group_id", "member_group__id", "member_group__display_name")
        .order_by(Lower("member_group__display_name"))[:limit]
    )


def group_parent_groups(group_id: uuid.UUID, limit: int = 200) -> list[Membership]:
    """Groups that ``group_id`` is a direct member of, by name."""
    return list(
        Membership.objects.filter(member_group_id=group_id)
        .select_related("group")
        .only("id", "group__id", "group__display_name")
        .order_by(Lower("group__display_name"))[:limit]
    )


def directory_totals() -> dict[str, int]:
    """Users (all, active, deactivated) in one aggregate query, groups in another."""
    totals = User.objects.aggregate(
        n_users=Count("id"),
        n_active=Count("id", filter=Q(active=True) | Q(active__isnull=True)),
        n_inactive=Count("id", filter=Q(active=False)),
    )
    return {
        "users": totals["n_users"],
        "active": totals["n_active"],
        "inactive": totals["n_inactive"],
        "groups": Group.objects.count(),
    }


def users_per_source() -> dict[uuid.UUID | None, int]:
    """{source client id: number of users it created} in one grouped query."""
    rows = User.objects.order_by().values_list("source_id").annotate(n=Count("id"))
    return dict(rows)


def user_activity(*, days: int, now: datetime | None = None) -> list[dict]:
    """Users created and modified per UTC day over the last ``days`` days, oldest first, in
    one aggregate query (one filtered COUNT per day and kind).

    ``last_modified`` keeps only the latest change, so a user modified on several days counts
    once, on the day of its latest change; "modified" means changed after its creation.
    """
    now = now or timezone.now()
    first = (now.astimezone(dt.UTC) - dt.timedelta(days=days - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    bounds = [first + dt.timedelta(days=i) for i in range(days + 1)]
    aggregates = {}
    for i in range(days):
        start, end = bounds[i], bounds[i + 1]
        aggregates[f"created_{i}"] = Count("id", filter=Q(created__gte=start, created__lt=end))
        aggregates[f"modified_{i}"] = Count(
            "id", filter=Q(last_modified__gte=start, last_modified__lt=end, version__gt=1)
        )
    recent = User.objects.filter(Q(created__gte=first) | Q(last_modified__gte=first))
    counts = recent.aggregate(**aggregates)
    return [
        {
            "day": bounds[i].date(),
            "created": counts[f"created_{i}"],
            "modified": counts[f"modified_{i}"],
        }
        for i in range(days)
    ]
