"""SCIM filters and ``sortBy`` as ORM expressions over the directory's tables.

``provisioning.scim.filters`` parses the text into an AST; this module translates
that AST (RFC 7644 §3.4.2.2) and ``sortBy`` (§3.4.2.3) into parameterized ``Q``
and ``OrderBy`` expressions over an explicit allow-list of columns, so a filter
on an attribute we do not index is refused rather than silently widened.

How the shared semantics map onto SQL:

- Absent strings are stored as ``""`` (or NULL where the column allows it), so
  ``attr eq ""`` is "absent" and ``pr`` is "not NULL and not ``""``".
- Case-insensitive comparisons use ``LOWER()`` on both sides, as the unique and
  functional indexes do. ``co``/``sw``/``ew`` compile to ``STRPOS``/``LEFT``/
  ``RIGHT``, not ``LIKE``: there are no wildcards to escape, and SQLite's
  ``LIKE`` is case-insensitive, which would break case-exact attributes.
- A multi-valued attribute (emails, members) is a row per element in its own
  table, filtered with ``EXISTS``; ``ne`` means "no element equals".
- ``id`` and ``members.value`` are UUIDs compared exactly: any other text
  (uppercase, braces, garbage) matches nothing rather than failing, because
  IdPs probe with ids of their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from functools import cache

from django.db.models import Exists, F, Model, OuterRef, Q, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Left, Length, Lower, Right, StrIndex
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)

from provisioning.scim.errors import InvalidFilter, InvalidPath, InvalidValue
from provisioning.scim.filters import (
    ORDER_OPS,
    And,
    Compare,
    Node,
    Not,
    Or,
    Present,
    ValuePath,
    as_bool,
    as_datetime,
    check_comparison,
    filter_sub_attribute,
    is_attribute_path,
)
from provisioning.scim.schema import (
    ENTERPRISE_USER,
    GROUP_SCHEMA,
    RESOURCE_SCHEMAS,
    Attribute,
    AttributePath,
    ResourceSchema,
)

from .models import Membership, UserEmail

__all__ = ["filter_to_q", "membership_q", "sort_expression"]


@dataclass(frozen=True)
class _Column:
    """A filterable attribute stored in a column of the row being filtered.

    ``kind`` refines the SCIM type: ``uuid`` (primary key), ``member`` (the
    member's id: user or group) and ``member_type`` (derived from which is set).
    """

    name: str
    kind: str = "scim"  # "scim" = follow the attribute's SCIM type
    nullable: bool = False


@dataclass(frozen=True)
class _Rows:
    """A multi-valued attribute indexed as rows of another model, one per element."""

    model: type[Model]
    outer: str
    columns: dict[str, _Column]
    # Only these rows count (the members a reader may see); None: every row.
    scope: Q | None = None


_ALWAYS = Q(pk__isnull=False)  # Q() would vanish, and ~Q() would then match everything
_NEVER = Q(pk__in=[])


@cache
def _filterable(resource: str) -> dict[str, _Column | _Rows]:
    common: dict[str, _Column | _Rows] = {
        "id": _Column("pk", "uuid"),
        "externalId": _Column("external_id", nullable=True),
        "meta.created": _Column("created"),
        "meta.lastModified": _Column("last_modified"),
    }
    if resource == "Group":
        members = _Rows(
            Membership,
            "group",
            {
                # Derived from user_id / member_group_id; the names are only labels.
                "value": _Column("value", "member"),
                "type": _Column("type", "member_type"),
                "display": _Column("display", nullable=True),
            },
        )
        return {**common, "displayName": _Column("display_name"), "members": members}
    emails = _Rows(
        UserEmail,
        "user",
        {"value": _Column("value"), "type": _Column("type"), "primary": _Column("primary")},
    )
    manager = _Column("manager_id")
    return {
        **common,
        "userName": _Column("user_name"),
        "displayName": _Column("display_name"),
        "name.givenName": _Column("given_name"),
        "name.familyName": _Column("family_name"),
        # NULL: the IdP never sent ``active``; the document omits it, so it is absent here too.
        "active": _Column("active", nullable=True),
        f"{ENTERPRISE_USER}:employeeNumber": _Column("employee_number"),
        f"{ENTERPRISE_USER}:manager": manager,
        f"{ENTERPRISE_USER}:manager.value": manager,
        "emails": emails,
    }


def _schema(resource: str) -> ResourceSchema:
    try:
        return RESOURCE_SCHEMAS[resource]
    except KeyError:
        raise ValueError(f"Unknown resource type {resource!r}") from None


def _lookup(
    path: str, resource: str, error: type[InvalidFilter | InvalidValue]
) -> tuple[AttributePath, Attribute, _Column | _Rows]:
    """Resolve ``path`` to (resolved path, compared attribute, allow-list entry)."""
    try:
        resolved = _schema(resource).resolve(path)
    except InvalidPath:
        where = "sortBy" if error is InvalidValue else "filter"
        raise error(f"Unknown attribute '{path}' in {where}") from None
    entry = _filterable(resource).get(str(resolved))
    if entry is None and resolved.sub_attribute is not None:
        entry = _filterable(resource).get(str(replace(resolved, sub_attribute=None)))
        if not isinstance(entry, _Rows):
            entry = None
    if entry is None:
        verb = "Sorting by" if error is InvalidValue else "Filtering on"
        raise error(f"{verb} '{path}' is not supported")
    # A complex attribute without a sub-attribute stands for its "value" (RFC 7644 §3.4.2.2).
    target = resolved.sub_attribute or resolved.attribute.sub("value") or resolved.attribute
    return resolved, target, entry


def filter_to_q(node: Node, resource: str, *, visible_members: Q | None = None) -> Q:
    """Translate a parsed filter into a ``Q`` for the ``User`` or ``Group`` model.

    Only allow-listed attributes are accepted; anything else raises
    ``InvalidFilter`` naming the attribute, so a filter never silently widens.
    ``visible_members`` (a ``Q`` over ``Membership``) limits ``members`` conditions to
    the members the reader may see, so a filter matches what the response shows and
    cannot probe for the others.
    """
    scoped = {"visible_members": visible_members}
    if isinstance(node, And):
        return filter_to_q(node.left, resource, **scoped) & filter_to_q(node.right, resource, **scoped)
    if isinstance(node, Or):
        return filter_to_q(node.left, resource, **scoped) | filter_to_q(node.right, resource, **scoped)
    if isinstance(node, Not):
        return ~filter_to_q(node.expr, resource, **scoped)
    resolved, target, entry = _lookup(node.path, resource, InvalidFilter)
    if isinstance(entry, _Rows) and entry.model is Membership and visible_members is not None:
        entry = replace(entry, scope=visible_members)
    if isinstance(node, ValuePath):
        if not isinstance(entry, _Rows) or resolved.sub_attribute is not None:
            raise InvalidFilter(f"'{node.path}' does not take a value filter")
        return _exists(entry, _element_q(node.filter, resolved.attribute, entry))
    if isinstance(entry, _Rows):
        column = entry.columns.get(target.name.lower())
        if column is None:
            raise InvalidFilter(f"Filtering on '{node.path}' is not supported")
        if isinstance(node, Compare) and node.op == "ne":
            # "no element equals", so resources without elements match too
            return ~_exists(entry, _column_q(column, target, replace(node, op="eq")))
        return _exists(entry, _column_q(column, target, node))
    assert isinstance(entry, _Column)
    return _column_q(entry, target, node)


def membership_q(node: Node) -> Q:
    """A ``members`` value filter (``members[value eq "..."]``) as a ``Q`` over ``Membership`` rows.

    Lets PATCH remove exactly the matching memberships with one set-based DELETE.
    """
    rows = _filterable("Group")["members"]
    assert isinstance(rows, _Rows)
    return _element_q(node, GROUP_SCHEMA.core_attribute("members"), rows)


def _exists(rows: _Rows, condition: Q) -> Q:
    elements = rows.model.objects.filter(condition, **{rows.outer: OuterRef("pk")})
    if rows.scope is not None:
        elements = elements.filter(rows.scope)
    return Q(Exists(elements))


def _element_q(node: Node, attribute: Attribute, rows: _Rows) -> Q:
    """Conditions inside brackets, all on the same element row."""
    if isinstance(node, And):
        return _element_q(node.left, attribute, rows) & _element_q(node.right, attribute, rows)
    if isinstance(node, Or):
        return _element_q(node.left, attribute, rows) | _element_q(node.right, attribute, rows)
    if isinstance(node, Not):
        return ~_element_q(node.expr, attribute, rows)
    if isinstance(node, ValuePath):
        raise InvalidFilter("Value filters cannot be nested")
    sub = filter_sub_attribute(attribute, node.path)
    column = rows.columns.get(sub.name.lower())
    if column is None:
        raise InvalidFilter(f"Filtering on '{attribute.name}.{sub.name}' is not supported")
    return _column_q(column, sub, node)


_ORDER_LOOKUPS = {
    "gt": GreaterThan,
    "ge": GreaterThanOrEqual,
    "lt": LessThan,
    "le": LessThanOrEqual,
}


def _column_q(column: _Column, attr: Attribute, node: Compare | Present) -> Q:
    col = column.name
    kind = column.kind if column.kind != "scim" else attr.type
    # Absent strings are stored as "" (or NULL where the column allows it).
    empty = Q(**{col: ""}) if kind in ("string", "reference") else None
    if isinstance(node, Present):
        if empty is None:
            return Q(**{f"{col}__isnull": False}) if column.nullable else _ALWAYS
        return ~empty & Q(**{f"{col}__isnull": False}) if column.nullable else ~empty
    op, value = node.op, node.value
    check_comparison(attr, op, value, node.path)
    if empty is not None and value == "" and op in ("eq", "ne"):
        present = _column_q(column, attr, Present(node.path))
        return present if op == "ne" else ~present
    if op == "ne":
        q = ~_column_q(column, attr, replace(node, op="eq"))
        return q | Q(**{f"{col}__isnull": True}) if column.nullable else q

    if kind in ("uuid", "member", "member_type"):
        if op != "eq":
            raise InvalidFilter(f"Operator '{op}' is not supported for '{node.path}'")
        assert isinstance(value, str)
        if kind == "member_type":
            member = {"user": "user", "group": "member_group"}.get(value.lower())
            return Q(**{f"{member}__isnull": False}) if member else _NEVER
        try:
            ident = uuid.UUID(value)
        except ValueError:
            return _NEVER
        if str(ident) != value:
            return _NEVER  # ids are case-exact: only the canonical form we issue matches
        return Q(user_id=ident) | Q(member_group_id=ident) if kind == "member" else Q(pk=ident)
    if kind == "boolean":
        return Q(**{col: as_bool(value)})
    if kind == "dateTime":
        when = as_datetime(value)
        return Q(**{col: when}) if op == "eq" else Q(_ORDER_LOOKUPS[op](F(col), when))

    # Strings: LOWER() on both sides unless case-exact, so SQL and Python agree on folding.
    lhs = F(col) if attr.case_exact else Lower(col)
    rhs = Value(value) if attr.case_exact else Lower(Value(value))
    if op == "eq":
        return Q(Exact(lhs, rhs))
    if op in ORDER_OPS:
        q = Q(_ORDER_LOOKUPS[op](lhs, rhs)) & ~empty
    elif op == "co":
        q = Q(GreaterThan(StrIndex(lhs, rhs), 0))
    elif op == "sw":
        q = Q(Exact(Left(lhs, Length(rhs)), rhs))
    else:
        q = Q(Exact(Right(lhs, Length(rhs)), rhs))
    if value == "":
        q = ~empty  # every present value contains, starts and ends with ""
    return q & Q(**{f"{col}__isnull": False}) if column.nullable else q


# --- sortBy ------------------------------------------------------------------


def sort_expression(sort_by: str, resource: str, descending: bool = False) -> OrderBy:
    """ORM ordering for ``sortBy`` (RFC 7644 §3.4.2.3) over single-valued allow-listed columns.

    Unsupported or unknown attributes raise ``InvalidValue``. NULLs sort last in
    both directions; the caller appends ``pk`` as a tiebreaker.
    """
    if not isinstance(sort_by, str) or not is_attribute_path(sort_by.strip()):
        raise InvalidValue(f"sortBy {sort_by!r} is not an attribute path")
    _, target, entry = _lookup(sort_by.strip(), resource, InvalidValue)
    if isinstance(entry, _Rows):
        # The primary email is denormalized into a column, so it sorts like one.
        if resource != "User" or target.name != "value":
            raise InvalidValue(f"Sorting by '{sort_by}' is not supported")
        entry = _Column("primary_email")
    assert isinstance(entry, _Column)
    column = "pk" if entry.kind == "uuid" else entry.name
    textual = target.type in ("string", "reference") and entry.kind != "uuid"
    expression = Lower(column) if textual and not target.case_exact else F(column)
    return expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
