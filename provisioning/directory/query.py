"""SCIM filters and ``sortBy`` as ORM expressions over the directory's tables.

``provisioning.scim.filters`` parses the text into an AST; this module translates
that AST (RFC 7644 §3.4.2.2) and ``sortBy`` (§3.4.2.3) into parameterized ``Q``
and ``OrderBy`` expressions. Every attribute of the served schemas can be filtered
and sorted on; where it lives decides how:

- Columns and index rows (``_filterable``: userName, displayName, name.givenName,
  name.familyName, emails, externalId, id, meta.created/lastModified, active,
  employeeNumber, manager, a group's displayName and members, a user's groups) are
  compared in SQL over those columns, served by their indexes.
- Everything else the IdP sent lives in the resource's ``attributes`` JSON: core
  attributes under their name (``attributes["title"]``), extension attributes under
  their schema URN (``attributes[urn]["department"]``). Those are compared with the
  database's JSON operators (``provisioning.directory.jsonsql``), with the same
  semantics, never in Python.
- ``meta.resourceType`` and ``meta.version`` are derived from the row.
- Refused with 400: attributes no served schema has; attributes never stored or
  returned (``password``); references built from the request's base URL
  (``meta.location``, ``members.$ref``, ``groups.$ref``).

How the shared semantics map onto SQL:

- Absent strings are stored as ``""`` (or NULL where the column allows it), so
  ``attr eq ""`` is "absent" and ``pr`` is "not NULL and not ``""``". In JSON, a
  missing key, ``null`` and ``""`` are all absent.
- Case-insensitive comparisons use ``LOWER()`` on both sides, as the unique and
  functional indexes do. ``co``/``sw``/``ew`` compile to ``STRPOS``/``LEFT``/
  ``RIGHT``, not ``LIKE``: there are no wildcards to escape, and SQLite's
  ``LIKE`` is case-insensitive, which would break case-exact attributes.
- A multi-valued attribute is a row per element in its own table (emails, members,
  a user's groups) or a JSON array, filtered with ``EXISTS``; ``ne`` means "no
  element equals"; the conditions of a value path apply to one element.
- Every JSON comparison is true or false, never NULL, so ``not (...)`` of a
  comparison on an absent attribute is true.
- ``id``, ``members.value`` and ``groups.value`` are UUIDs compared exactly: any other
  text (uppercase, braces, garbage) matches nothing rather than failing, because
  IdPs probe with ids of their own.
- A user's ``groups`` in a filter are its direct groups that the reader may read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from functools import cache

from django.db.models import Exists, F, Model, OuterRef, Q, TextField, Value
from django.db.models.expressions import Expression, OrderBy
from django.db.models.functions import Cast, Left, Length, Lower, NullIf, Right, StrIndex
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
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
    matches,
)
from provisioning.scim.schema import (
    ENTERPRISE_USER,
    GROUP_SCHEMA,
    RESOURCE_SCHEMAS,
    Attribute,
    AttributePath,
    ResourceSchema,
)

from .jsonsql import ChosenElement, Instant, JsonScalar, SomeElement, safe_key
from .models import Membership, UserEmail

__all__ = ["filter_to_q", "membership_q", "sort_expression"]


@dataclass(frozen=True)
class _Column:
    """A filterable attribute stored in a column of the row being filtered.

    ``kind`` refines the SCIM type: ``uuid`` (primary key), ``member`` (the
    member's id: user or group), ``member_type`` (derived from which is set),
    ``group`` (a user's group: the membership's group id) and ``group_type``
    (a membership row is a direct group).
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
_STRINGS = ("string", "reference", "binary")
# Built from the base URL of the request, which a filter does not know.
_URL_DERIVED = {"meta.location", "members.$ref", "groups.$ref"}


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
            Membership.LIVE,
        )
        return {**common, "displayName": _Column("display_name"), "members": members}
    emails = _Rows(
        UserEmail,
        "user",
        {"value": _Column("value"), "type": _Column("type"), "primary": _Column("primary")},
    )
    # A user's direct groups, as memberships joined to their group.
    groups = _Rows(
        Membership,
        "user",
        {
            "value": _Column("group_id", "group"),
            "display": _Column("group__display_name"),
            "type": _Column("type", "group_type"),
        },
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
        "groups": groups,
    }


def _schema(resource: str) -> ResourceSchema:
    try:
        return RESOURCE_SCHEMAS[resource]
    except KeyError:
        raise ValueError(f"Unknown resource type {resource!r}") from None


def _resolve(path: str, resource: str, error: type[InvalidFilter | InvalidValue]) -> AttributePath:
    """Resolve ``path`` against the resource's schemas; refuse what can never match."""
    try:
        resolved = _schema(resource).resolve(path)
    except InvalidPath:
        where = "sortBy" if error is InvalidValue else "filter"
        raise error(f"Unknown attribute '{path}' in {where}") from None
    verb = "Sorting by" if error is InvalidValue else "Filtering on"
    for attribute in (resolved.attribute, resolved.sub_attribute):
        if attribute is not None and (
            attribute.returned == "never" or attribute.mutability == "writeOnly"
        ):
            # RFC 7643 §7: never returned; this server does not store it either.
            raise error(f"{verb} '{path}' is not supported: it is never stored or returned")
    if resolved.urn == _schema(resource).core and resolved.dotted in _URL_DERIVED:
        raise error(f"{verb} '{path}' is not supported: it is built from the request's URL")
    return resolved


def _indexed(resolved: AttributePath) -> str:
    """The allow-list key of ``resolved``'s attribute (without the sub-attribute)."""
    return str(replace(resolved, sub_attribute=None))


def _entry(resolved: AttributePath, resource: str) -> _Column | _Rows | None:
    """The column or index rows that hold ``resolved``, or None (JSON or derived)."""
    table = _filterable(resource)
    entry = table.get(str(resolved))
    if entry is None and resolved.sub_attribute is not None:
        entry = table.get(_indexed(resolved))
        if not isinstance(entry, _Rows):
            entry = None
    return entry


def _target(resolved: AttributePath) -> Attribute:
    # A complex attribute without a sub-attribute stands for its "value" (RFC 7644 §3.4.2.2).
    return resolved.sub_attribute or resolved.attribute.sub("value") or resolved.attribute


def _json_keys(resolved: AttributePath, resource: str) -> tuple[str, ...]:
    """Where ``resolved``'s attribute lives in ``attributes``: core attributes under their
    name, extension attributes under their schema's URN."""
    name = resolved.attribute.name
    keys = (name,) if resolved.urn == _schema(resource).core else (resolved.urn, name)
    if not all(safe_key(key) for key in keys):
        raise InvalidFilter(f"Filtering on '{resolved}' is not supported")
    return keys


@dataclass(frozen=True)
class _Scopes:
    """Which rows of other resources a reader may see through a filter."""

    members: Q | None = None
    groups: Q | None = None

    def rows(self, entry: _Rows) -> _Rows:
        if entry.model is not Membership:
            return entry
        if entry.outer == "group":
            # A reader's visible members, of the members there are (``Membership.LIVE``).
            scope = entry.scope if self.members is None else entry.scope & self.members
        else:
            scope = self.groups
        return entry if scope is None else replace(entry, scope=scope)


def filter_to_q(
    node: Node,
    resource: str,
    *,
    visible_members: Q | None = None,
    visible_groups: Q | None = None,
) -> Q:
    """Translate a parsed filter into a ``Q`` for the ``User`` or ``Group`` model.

    Attributes no served schema has raise ``InvalidFilter`` naming the attribute, so
    a filter never silently widens. ``visible_members`` (a ``Q`` over ``Membership``)
    limits ``members`` conditions to the members the reader may see, and
    ``visible_groups`` (also over ``Membership``) limits a user's ``groups`` to the
    groups it may see, so a filter matches what the response shows and cannot probe
    for the others.
    """
    return _filter_q(node, resource, _Scopes(visible_members, visible_groups))


def _filter_q(node: Node, resource: str, scopes: _Scopes) -> Q:
    if isinstance(node, And):
        return _filter_q(node.left, resource, scopes) & _filter_q(node.right, resource, scopes)
    if isinstance(node, Or):
        return _filter_q(node.left, resource, scopes) | _filter_q(node.right, resource, scopes)
    if isinstance(node, Not):
        return ~_filter_q(node.expr, resource, scopes)
    resolved = _resolve(node.path, resource, InvalidFilter)
    if isinstance(node, ValuePath):
        return _value_path_q(node, resolved, resource, scopes)
    return _leaf_q(node, resolved, resource, scopes)


def _leaf_q(node: Compare | Present, resolved: AttributePath, resource: str, scopes: _Scopes) -> Q:
    entry = _entry(resolved, resource)
    target = _target(resolved)
    if isinstance(entry, _Column):
        return _column_q(entry, target, node)
    if isinstance(entry, _Rows):
        column = entry.columns.get(target.name.lower())
        if column is not None:
            rows = scopes.rows(entry)
            if isinstance(node, Compare) and node.op == "ne":
                # "no element equals", so resources without elements match too
                return ~_exists(rows, _column_q(column, target, replace(node, op="eq")))
            return _exists(rows, _column_q(column, target, node))
        if entry.model is not UserEmail:
            raise InvalidFilter(f"Filtering on '{node.path}' is not supported")
        # The other email sub-attributes are read from the document's JSON.
    if resolved.dotted.startswith("meta.") and resolved.urn == _schema(resource).core:
        return _meta_q(node, resolved, resource)
    attribute, sub = resolved.attribute, resolved.sub_attribute
    keys = _json_keys(resolved, resource)
    document = F("attributes")
    if attribute.multi_valued:
        if isinstance(node, Present) and sub is None:
            return Q(SomeElement(document, keys))
        element = (target.name,) if attribute.is_complex else ()
        if target is attribute and attribute.is_complex:
            check_comparison(target, node.op, node.value, node.path)  # complex: refused
        if isinstance(node, Compare) and node.op == "ne":
            return ~Q(SomeElement(document, keys, _json_q(None, element, target, replace(node, op="eq"))))
        return Q(SomeElement(document, keys, _json_q(None, element, target, node)))
    if attribute.is_complex and sub is None:
        if isinstance(node, Present):
            return _complex_present_q(node, resolved, resource, scopes)
        if target is attribute:
            check_comparison(target, node.op, node.value, node.path)  # complex: refused
    if target is not attribute:
        keys = (*keys, target.name)
    return _json_q(document, keys, target, node)


def _complex_present_q(node: Present, resolved: AttributePath, resource: str, scopes: _Scopes) -> Q:
    """A single-valued complex attribute is present when one of its sub-attributes is."""
    q: Q | None = None
    for sub in resolved.attribute.sub_attributes.values():
        part = replace(resolved, sub_attribute=sub)
        try:
            part_q = _leaf_q(Present(f"{node.path}.{sub.name}"), _resolve(str(part), resource, InvalidFilter), resource, scopes)
        except InvalidFilter:
            continue  # e.g. meta.location: another sub-attribute decides
        q = part_q if q is None else q | part_q
    if q is None:
        raise InvalidFilter(f"Filtering on '{node.path}' is not supported")
    return q


def _value_path_q(node: ValuePath, resolved: AttributePath, resource: str, scopes: _Scopes) -> Q:
    attribute = resolved.attribute
    if resolved.sub_attribute is not None or not attribute.is_complex:
        raise InvalidFilter(f"'{node.path}' does not take a value filter")
    if not attribute.multi_valued:
        # One object: ``name[givenName eq "x"]`` is ``name.givenName eq "x"``.
        return _filter_q(_prefixed(node.filter, node.path), resource, scopes)
    entry = _entry(resolved, resource)
    if isinstance(entry, _Rows):
        if _covered(node.filter, attribute, entry):
            return _exists(scopes.rows(entry), _element_q(node.filter, attribute, entry))
        if entry.model is not UserEmail:
            _element_q(node.filter, attribute, entry)  # raises, naming the sub-attribute
    # All conditions apply to the same element (RFC 7644 §3.4.2.2, valuePath).
    keys = _json_keys(resolved, resource)
    return Q(SomeElement(F("attributes"), keys, _json_element_q(node.filter, attribute)))


def _prefixed(node: Node, prefix: str) -> Node:
    if isinstance(node, And | Or):
        return replace(node, left=_prefixed(node.left, prefix), right=_prefixed(node.right, prefix))
    if isinstance(node, Not):
        return Not(_prefixed(node.expr, prefix))
    if isinstance(node, ValuePath):
        raise InvalidFilter("Value filters cannot be nested")
    if "." in node.path or ":" in node.path:
        raise InvalidFilter(f"Unknown attribute '{node.path}' in the value filter of '{prefix}'")
    return replace(node, path=f"{prefix}.{node.path}")


def _covered(node: Node, attribute: Attribute, rows: _Rows) -> bool:
    """Whether every sub-attribute the value filter names has a column in ``rows``."""
    if isinstance(node, And | Or):
        return _covered(node.left, attribute, rows) and _covered(node.right, attribute, rows)
    if isinstance(node, Not):
        return _covered(node.expr, attribute, rows)
    if isinstance(node, ValuePath):
        raise InvalidFilter("Value filters cannot be nested")
    return filter_sub_attribute(attribute, node.path).name.lower() in rows.columns


def _json_element_q(node: Node, attribute: Attribute) -> Q:
    """A value filter over one element of a JSON array of objects."""
    if isinstance(node, And):
        return _json_element_q(node.left, attribute) & _json_element_q(node.right, attribute)
    if isinstance(node, Or):
        return _json_element_q(node.left, attribute) | _json_element_q(node.right, attribute)
    if isinstance(node, Not):
        return ~_json_element_q(node.expr, attribute)
    if isinstance(node, ValuePath):
        raise InvalidFilter("Value filters cannot be nested")
    sub = filter_sub_attribute(attribute, node.path)
    return _json_q(None, (sub.name,), sub, node)


def _json_q(source: Expression | None, keys: tuple[str, ...], attr: Attribute, node: Compare | Present) -> Q:
    """``node`` on the JSON scalar at ``keys`` (``source`` None: the current array element),
    with the column translation's semantics. Always true or false, never NULL."""
    text = JsonScalar(source, keys, "text")
    present = Q(IsNull(text, False))
    if attr.type in _STRINGS:
        present &= ~Q(Exact(text, Value("")))
    if isinstance(node, Present):
        return present
    op, value = node.op, node.value
    check_comparison(attr, op, value, node.path)
    if attr.type in _STRINGS and value == "" and op in ("eq", "ne"):
        return present if op == "ne" else ~present
    if op == "ne":
        return ~_json_q(source, keys, attr, replace(node, op="eq"))
    lookup = Exact if op == "eq" else _ORDER_LOOKUPS.get(op)
    if attr.type == "boolean":
        truth = "true" if as_bool(value) else "false"
        return Q(Exact(Lower(text), Value(truth))) & Q(IsNull(text, False))
    if attr.type in ("integer", "decimal"):
        number = JsonScalar(source, keys, "number")
        return Q(lookup(number, Value(value))) & Q(IsNull(number, False))
    if attr.type == "dateTime":
        instant = JsonScalar(source, keys, "dateTime")
        return Q(lookup(instant, Instant(as_datetime(value)))) & Q(IsNull(instant, False))
    # Strings: LOWER() on both sides unless case-exact, as for columns.
    assert isinstance(value, str)
    lhs = text if attr.case_exact else Lower(text)
    rhs = Value(value) if attr.case_exact else Lower(Value(value))
    if value == "":
        return present  # every present value contains, starts and ends with ""
    if op == "eq":
        q = Q(Exact(lhs, rhs))
    elif op in ORDER_OPS:
        q = Q(lookup(lhs, rhs)) & present
    elif op == "co":
        q = Q(GreaterThan(StrIndex(lhs, rhs), 0))
    elif op == "sw":
        q = Q(Exact(Left(lhs, Length(rhs)), rhs))
    else:
        q = Q(Exact(Right(lhs, Length(rhs)), rhs))
    return q & Q(IsNull(text, False))


def _meta_q(node: Compare | Present, resolved: AttributePath, resource: str) -> Q:
    """``meta.resourceType`` and ``meta.version``, derived from the row."""
    attr = resolved.target
    if isinstance(node, Present):
        return _ALWAYS
    check_comparison(attr, node.op, node.value, node.path)
    if attr.name == "resourceType":
        # The same for every row: decided here, as the in-memory evaluator decides it.
        return _ALWAYS if matches(replace(node, path=attr.name), {attr.name: resource}, resolved.attribute) else _NEVER
    if attr.name == "version":
        if node.op not in ("eq", "ne"):
            raise InvalidFilter(f"Operator '{node.op}' is not supported for '{node.path}'")
        text = str(node.value)
        number = text[3:-1] if text.startswith('W/"') and text.endswith('"') else ""
        q = Q(version=int(number)) if number.isdigit() and len(number) < 19 else _NEVER
        return ~q if node.op == "ne" else q
    raise InvalidFilter(f"Filtering on '{node.path}' is not supported")


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

    if kind in ("uuid", "member", "member_type", "group", "group_type"):
        if op != "eq":
            raise InvalidFilter(f"Operator '{op}' is not supported for '{node.path}'")
        assert isinstance(value, str)
        if kind == "member_type":
            member = {"user": "user", "group": "member_group"}.get(value.lower())
            return Q(**{f"{member}__isnull": False}) if member else _NEVER
        if kind == "group_type":
            # Rows are direct memberships. Indirect groups are listed in documents but not
            # filtered on: say so rather than match nothing.
            if value.lower() == "indirect":
                raise InvalidFilter(
                    f"'{node.path}': filters on a user's groups consider its direct groups "
                    "only; read a group's members to find indirect ones"
                )
            return _ALWAYS if value.lower() == "direct" else _NEVER
        try:
            ident = uuid.UUID(value)
        except ValueError:
            return _NEVER
        if str(ident) != value:
            return _NEVER  # ids are case-exact: only the canonical form we issue matches
        if kind == "group":
            return Q(group_id=ident)
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
    """ORM ordering for ``sortBy`` (RFC 7644 §3.4.2.3) over any single-valued attribute,
    and over multi-valued ones by their primary (else first) value.

    Unknown or unsortable attributes raise ``InvalidValue``. Absent values sort last
    in both directions; the caller appends ``pk`` as a tiebreaker. The ordering's
    ``expression`` can be annotated: equal values compare equal.
    """
    if not isinstance(sort_by, str) or not is_attribute_path(sort_by.strip()):
        raise InvalidValue(f"sortBy {sort_by!r} is not an attribute path")
    path = sort_by.strip()
    expression = _sort_value(path, _resolve(path, resource, InvalidValue), resource)
    return expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)


def _sort_value(path: str, resolved: AttributePath, resource: str) -> Expression:
    entry = _entry(resolved, resource)
    target = _target(resolved)
    if target.is_complex:
        raise InvalidValue(f"Sorting by '{path}' is not supported: name one of its sub-attributes")
    if isinstance(entry, _Rows):
        # The primary email is denormalized into a column, so it sorts like one.
        if entry.model is UserEmail and target.name == "value":
            entry = _Column("primary_email")
        elif entry.model is not UserEmail:
            raise InvalidValue(f"Sorting by '{path}' is not supported")
    if isinstance(entry, _Column):
        column = "pk" if entry.kind == "uuid" else entry.name
        textual = target.type in ("string", "reference") and entry.kind != "uuid"
        return Lower(column) if textual and not target.case_exact else F(column)
    if resolved.urn == _schema(resource).core and resolved.dotted == "meta.resourceType":
        return Cast(Value(resource), TextField())
    if resolved.urn == _schema(resource).core and resolved.dotted == "meta.version":
        return F("version")
    attribute = resolved.attribute
    try:
        keys = _json_keys(resolved, resource)
    except InvalidFilter:
        raise InvalidValue(f"Sorting by '{path}' is not supported") from None
    if attribute.multi_valued:
        element = (target.name,) if attribute.is_complex else ()
        return ChosenElement(
            F("attributes"),
            keys,
            _sortable(JsonScalar(None, element, _kind(target)), target),
            primary=attribute.sub("primary") is not None,
        )
    if target is not attribute:
        keys = (*keys, target.name)
    return _sortable(JsonScalar(F("attributes"), keys, _kind(target)), target)


def _kind(attr: Attribute) -> str:
    if attr.type in ("integer", "decimal"):
        return "number"
    return "dateTime" if attr.type == "dateTime" else "text"


def _sortable(value: JsonScalar, attr: Attribute) -> Expression:
    """Numbers and instants as they are; text folded unless case-exact, "" as absent."""
    if value.kind != "text":
        return value
    return NullIf(value if attr.case_exact else Lower(value), Value(""), output_field=TextField())
