"""PATCH (RFC 7644 §3.5.2) as a pure function over a resource's SCIM document.

The engine never touches the database: it takes the resource's writable
attributes as a SCIM document and returns a new document plus, for Groups, the
membership deltas (groups can have 100,000 members, so members are never part
of the document). Nothing is mutated until every operation has succeeded,
which is what makes a PATCH request atomic.

IdP dialects (see SCIM-DIALECTS.md) are accepted on purpose: capitalised
``op`` names, string booleans, path-less replaces whose keys are paths, the
manager as a bare id or a one-element list, ``remove members`` with a value
list, and Entra's ``emails[type eq "work"].value`` on a user without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from . import limits
from .errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget, ScimError
from .filters import And, Compare, Node, Not, Or, PatchPath, matches, parse_patch_path
from .resources import clean_single, clean_value, copy_json, normalise_manager
from .schema import ENTERPRISE_USER, GROUP, Attribute, ResourceSchema

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

OpKind = Literal["add", "remove", "replace"]
_KINDS: tuple[OpKind, ...] = ("add", "remove", "replace")


@dataclass(frozen=True)
class PatchOperation:
    """One entry of ``Operations``: ``op`` lower-cased, ``path`` None when absent."""

    op: OpKind
    path: str | None = None
    value: Any = None


@dataclass(frozen=True)
class MemberOp:
    """A membership delta for a Group, applied by the service with set-based SQL.

    ``add``: insert ``members``; ``remove``: delete ``members`` (by ``value``) or,
    when ``filter`` is set, the memberships it matches; ``replace``: make
    ``members`` the whole membership (``[]`` removes everyone).
    """

    kind: OpKind
    members: list[dict] = field(default_factory=list)
    filter: Node | None = None


@dataclass(frozen=True)
class PatchOutcome:
    """The patched document (a new dict), membership deltas in request order, and
    whether anything changed at all (replacing a value by itself does not)."""

    document: dict
    member_ops: list[MemberOp]
    changed: bool


# --- Request parsing -------------------------------------------------------------


def parse_patch_request(body: Any) -> list[PatchOperation]:
    """Validate a PatchOp request body and return its operations in order.

    Member names (``Operations``, ``op``, ...) are matched case-insensitively,
    as SCIM attribute names are; ``op`` values too, since Entra sends ``Add``.
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("The PATCH body must be a JSON object")
    message = _lower_keys(body)
    schemas = message.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP.lower() not in {
        s.lower() for s in schemas if isinstance(s, str)
    }:
        raise InvalidSyntax(f"A PATCH body's 'schemas' must include '{PATCH_OP}'")
    operations = message.get("operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("'Operations' must be a non-empty array")
    # Counted before any operation is read: an oversized request costs nothing more.
    limits.budget().count_operations(len(operations))
    return [_parse_operation(index, raw) for index, raw in enumerate(operations)]


def _parse_operation(index: int, raw: Any) -> PatchOperation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise InvalidSyntax(f"{where} must be an object")
    fields = _lower_keys(raw)
    op = fields.get("op")
    if not isinstance(op, str) or op.lower() not in _KINDS:
        raise InvalidSyntax(f"{where}: 'op' must be one of add, remove, replace")
    kind = cast(OpKind, op.lower())
    path = fields.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidPath(f"{where}: 'path' must be a string")
    if kind != "remove" and "value" not in fields:
        raise InvalidValue(f"{where}: '{kind}' needs a 'value'")
    return PatchOperation(kind, (path or "").strip() or None, fields.get("value"))


def _lower_keys(obj: dict) -> dict:
    return {key.lower(): value for key, value in obj.items() if isinstance(key, str)}


# --- Applying --------------------------------------------------------------------


def apply_patch(
    document: dict, operations: list[PatchOperation], schema: ResourceSchema
) -> PatchOutcome:
    """Apply ``operations`` to a copy of ``document``; the first failure is raised.

    ``document`` holds the resource's writable attributes (core ones at the top
    level, extensions under their URN; never Group ``members``). It is not
    modified, so a failing operation leaves the resource as it was. The copy is
    made once; each operation then costs what it touches, not the whole document
    (see ``_Values`` for multi-valued attributes).
    """
    engine = _Engine(copy_json(document), schema, limits.budget())
    for index, operation in enumerate(operations):
        try:
            engine.apply(operation)
        except ScimError as exc:
            # With dozens of operations per request the client needs to know which failed.
            exc.detail = f"Operations[{index}]: {exc.detail}"
            raise
    engine.finish()
    changed = engine.document != document or bool(engine.member_ops)
    return PatchOutcome(engine.document, engine.member_ops, changed)


class _Engine:
    def __init__(self, document: dict, schema: ResourceSchema, budget: limits.Budget):
        self.document = document
        self.schema = schema
        self.budget = budget
        self.member_ops: list[MemberOp] = []

    def apply(self, operation: PatchOperation) -> None:
        if operation.path is not None:
            self.budget.count_work(len(operation.path) * limits.PATH_CHARACTER)
            path = parse_patch_path(operation.path, self.schema)
            self.apply_path(operation.op, path, operation.value, explicit=True)
            return
        if operation.op == "remove":
            raise NoTarget("'remove' needs a 'path'")
        if not isinstance(operation.value, dict):
            raise InvalidValue(f"A path-less '{operation.op}' needs an object value")
        for key, value in operation.value.items():
            # 'schemas' is message metadata; id and meta (Okta sends id in a group
            # rename) are readOnly and dropped below.
            if key.lower() != "schemas":
                self.budget.count_work(len(key) * limits.PATH_CHARACTER)
                path = parse_patch_path(key, self.schema)
                self.apply_path(operation.op, path, value, explicit=False)

    def finish(self) -> None:
        """Put the multi-valued attributes the operations worked on back as plain lists."""
        containers = [self.document] + [v for v in self.document.values() if isinstance(v, dict)]
        for container in containers:
            for key, value in list(container.items()):
                if isinstance(value, _Values):
                    container[key] = value.elements()

    def apply_path(self, op: OpKind, path: PatchPath, value: Any, *, explicit: bool) -> None:
        """Apply one operation to one path.

        ``explicit`` is False for keys of a path-less value, where read-only
        attributes are echoes of what the client read and are ignored (RFC 7643
        §2.2); named in a ``path`` they are a client error.
        """
        attribute = path.attribute
        if attribute is None:
            self._extension(op, path.urn, value)
            return
        target = path.sub_attribute or attribute
        if "readOnly" in (attribute.mutability, target.mutability):
            if explicit:
                raise Mutability(f"'{path}' is read-only")
            return
        if attribute.name == "password":
            return  # not a credential store: accepted and dropped, like on POST
        if self.schema.core == GROUP and attribute.name == "members":
            self._members(op, path, value)
            return
        if op != "remove" and _is_empty(value):
            if op == "add":
                return  # adding nothing
            op, value = "remove", None  # RFC 7644 §3.5.2.3 / Entra: replace with null or "" clears
        container = self._container(path.urn, create=op != "remove")
        if container is not None:
            if attribute.multi_valued:
                self._multi_valued(op, path, container, value)
            else:
                self._single_valued(op, path, container, value)
            self._drop_if_empty(path.urn)

    # --- targets ---

    def _single_valued(self, op: OpKind, path: PatchPath, container: dict, value: Any) -> None:
        attribute, name = path.attribute, path.attribute.name
        if path.sub_attribute is not None:
            # name.givenName is a merge of {"givenName": value} into name
            op, value = "replace", _sub_patch(op, path, value)
        if op == "remove":
            if name in container:
                _ensure_optional(attribute)
                del container[name]
        elif attribute.is_complex:
            container[name] = _merge(attribute, container.get(name), value, str(path))
        else:
            container[name] = clean_single(attribute, value, str(path))
        _drop_empty(container, name)

    def _multi_valued(self, op: OpKind, path: PatchPath, container: dict, value: Any) -> None:
        attribute = path.attribute
        values = container.get(attribute.name)
        if not isinstance(values, _Values):
            values = _Values(attribute, values if isinstance(values, list) else [], self.budget)
        if path.value_filter is None and path.sub_attribute is None:
            if op == "remove":
                values.remove_given(path, value)
            else:
                values.add(op, path, value)
        else:
            values.update(op, path, value)
        # Checked as each operation ends, so no request can grow a list without bound
        # on its way to a result that would be refused anyway.
        limits.check_values(attribute, values.live, attribute.name, stored=values.stored)
        if values.live:
            container[attribute.name] = values
        else:
            container.pop(attribute.name, None)

    def _extension(self, op: OpKind, urn: str, value: Any) -> None:
        """A bare schema URN as path: its value is an object of that schema's attributes."""
        if op == "remove" or (op == "replace" and _is_empty(value)):
            extension = self.document.get(urn) or {}
            for attribute in self.schema.extension_attributes(urn).values():
                if attribute.name in extension:
                    _ensure_optional(attribute)
            self.document.pop(urn, None)
            self._sync_schemas(urn)
            return
        if _is_empty(value):
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"'{urn}' needs an object value")
        for key, item in value.items():
            if key.lower() == "schemas":
                continue  # a serialised extension object may name its own schema
            path = parse_patch_path(f"{urn}:{key}", self.schema)
            self.apply_path(op, path, item, explicit=False)

    def _members(self, op: OpKind, path: PatchPath, value: Any) -> None:
        """Group membership becomes deltas; the service checks that members exist."""
        if path.sub_attribute is not None:
            raise Mutability("Member sub-attributes are immutable; remove and add the member")
        if path.value_filter is not None:
            if op != "remove":
                raise InvalidPath(f"'{op}' takes no filter on 'members'; use remove, then add")
            self.member_ops.append(MemberOp("remove", filter=path.value_filter))
            return
        # Counted before they are validated: an oversized list costs nothing more.
        self.budget.count_members(len(value) if isinstance(value, list) else 1)
        members = _clean_members(path.attribute, value)
        if op == "remove" and value is None:
            self.member_ops.append(MemberOp("replace", []))  # remove with no value: everyone
        elif op == "replace" or members:
            self.member_ops.append(MemberOp(op, members))

    # --- containers ---

    def _container(self, urn: str, *, create: bool) -> dict | None:
        """The dict holding ``urn``'s attributes: the document itself for the core schema."""
        if urn == self.schema.core:
            return self.document
        extension = self.document.get(urn)
        if not isinstance(extension, dict) and create:
            extension = self.document[urn] = {}
            self._sync_schemas(urn)
        return extension if isinstance(extension, dict) else None

    def _drop_if_empty(self, urn: str) -> None:
        if urn != self.schema.core and self.document.get(urn) == {}:
            del self.document[urn]
            self._sync_schemas(urn)

    def _sync_schemas(self, urn: str) -> None:
        """Keep a ``schemas`` list, if the document has one, naming the extensions present."""
        schemas = self.document.get("schemas")
        if not isinstance(schemas, list):
            return
        if urn in self.document and urn not in schemas:
            schemas.append(urn)
        elif urn not in self.document and urn in schemas:
            schemas.remove(urn)


# --- Multi-valued attributes ------------------------------------------------------------

_GONE = object()  # the place of a removed element until the request's operations are done


class _Values:
    """The elements of one multi-valued attribute while one PATCH request is applied.

    Each operation costs what it selects and writes, not the length of the list:

    - a removed element leaves a hole, so positions stay valid; the list is compacted
      once, when every operation has been applied (``elements``);
    - a value filter made of ``eq`` comparisons on string sub-attributes (``value eq
      "x"``, ``type eq "work" and primary eq true``: what IdPs send) finds its
      candidates in an index built once per sub-attribute; only those are evaluated.
      Other filters (``co``, ``or``, ``not``, ...) are evaluated on every element;
    - ``add`` finds duplicates, and removal by value its targets, through an index of
      the elements under the attribute's case rules; the one ``primary`` is tracked.

    The list lives in the document in place of the attribute's value while the
    request is applied (``_Engine.finish`` puts the plain list back), so the document
    always says whether the attribute is present.
    """

    def __init__(self, attribute: Attribute, elements: list, budget: limits.Budget):
        self.attribute = attribute
        self.budget = budget
        self.slots: list = list(elements)
        self.live = len(self.slots)
        # Stored before the limit existed, a longer list may stay as long, not grow.
        self.stored = self.live
        self._by_sub: dict[str, dict[Any, set[int]]] = {}
        self._by_identity: dict[Any, set[int]] | None = None
        self._primaries: set[int] | None = None

    # --- reading ---

    def elements(self) -> list:
        return [element for element in self.slots if element is not _GONE]

    def positions(self) -> list[int]:
        return [index for index, element in enumerate(self.slots) if element is not _GONE]

    def select(self, node: Node | None) -> list[int]:
        """Positions of the elements ``node`` matches (all of them without a filter)."""
        if node is None:
            return self.positions()
        candidates = self._candidates(node)
        positions = self.positions() if candidates is None else sorted(candidates)
        self.budget.count_work(len(positions) * _comparisons(node) * limits.COMPARISON)
        return [
            index
            for index in positions
            if isinstance(self.slots[index], dict) and matches(node, self.slots[index], self.attribute)
        ]

    def _candidates(self, node: Node) -> set[int] | None:
        """Positions that may match ``node`` (a superset), or None when only a scan can tell."""
        if isinstance(node, And | Or):
            left, right = self._candidates(node.left), self._candidates(node.right)
            if isinstance(node, Or):
                return None if left is None or right is None else left | right
            if left is None or right is None:
                return right if left is None else left
            return left & right
        if not isinstance(node, Compare) or node.op != "eq" or not isinstance(node.value, str):
            return None
        sub = self.attribute.sub(node.path)
        if sub is None or sub.type not in ("string", "reference", "binary"):
            return None
        return self._index(sub).get(_identity(sub, node.value), set())

    def _index(self, sub: Attribute) -> dict[Any, set[int]]:
        index = self._by_sub.get(sub.name)
        if index is None:
            index = self._by_sub[sub.name] = {}
            for position in self.positions():
                self._index_one(sub.name, index, position, self.slots[position], add=True)
        return index

    def _index_one(self, name: str, index: dict, position: int, element: Any, *, add: bool) -> None:
        sub = self.attribute.sub(name)
        if sub is None or not isinstance(element, dict):
            return
        key = _identity(sub, _element_value(element, sub.name))
        if add:
            index.setdefault(key, set()).add(position)
        elif key in index:
            index[key].discard(position)

    def _identities(self) -> dict[Any, set[int]]:
        if self._by_identity is None:
            self._by_identity = {}
            for position in self.positions():
                key = _identity(self.attribute, self.slots[position])
                self._by_identity.setdefault(key, set()).add(position)
        return self._by_identity

    def primaries(self) -> set[int]:
        if self._primaries is None:
            self._primaries = {i for i in self.positions() if _get(self.slots[i], "primary") is True}
        return self._primaries

    # --- writing ---

    def _forget(self, position: int) -> None:
        element = self.slots[position]
        for name, index in self._by_sub.items():
            self._index_one(name, index, position, element, add=False)
        if self._by_identity is not None:
            self._by_identity.get(_identity(self.attribute, element), set()).discard(position)
        if self._primaries is not None:
            self._primaries.discard(position)

    def _remember(self, position: int) -> None:
        element = self.slots[position]
        for name, index in self._by_sub.items():
            self._index_one(name, index, position, element, add=True)
        if self._by_identity is not None:
            self._by_identity.setdefault(_identity(self.attribute, element), set()).add(position)
        if self._primaries is not None and _get(element, "primary") is True:
            self._primaries.add(position)

    def put(self, position: int, element: Any) -> None:
        """Write ``element`` at ``position``; an element left empty (``{}``) is removed."""
        self._forget(position)
        if element == {}:
            self.slots[position] = _GONE
            self.live -= 1
            return
        self.slots[position] = element
        self._remember(position)

    def append(self, element: Any) -> int:
        self.slots.append(element)
        self.live += 1
        self._remember(len(self.slots) - 1)
        return len(self.slots) - 1

    def remove(self, position: int) -> None:
        if self.slots[position] is not _GONE:
            self._forget(position)
            self.slots[position] = _GONE
            self.live -= 1

    def clear(self) -> None:
        self.slots, self.live = [], 0
        self._by_sub, self._by_identity, self._primaries = {}, None, None

    def settle_primary(self, written: list[int]) -> None:
        """RFC 7643 §2.4: at most one ``primary``; the one just written wins."""
        written = [i for i in written if self.slots[i] is not _GONE]
        chosen = [i for i in written if _get(self.slots[i], "primary") is True]
        if len(chosen) > 1:
            raise InvalidValue("At most one value may be primary")
        if chosen:
            for other in sorted(self.primaries() - {chosen[0]}):
                self.put(other, {**self.slots[other], "primary": False})

    # --- the operations ---

    def add(self, op: OpKind, path: PatchPath, value: Any) -> None:
        """``add`` appends values not already present; ``replace`` swaps the whole list."""
        new = _clean(self.attribute, value, str(path)) or []
        self.budget.count_work(len(new) * limits.WRITE)
        if op == "replace":
            self.clear()
        identities = self._identities()
        added = []
        for element in new:
            if not identities.get(_identity(self.attribute, element)):
                added.append(self.append(element))
        self.settle_primary(added)

    def remove_given(self, path: PatchPath, value: Any) -> None:
        """Remove every value, or (Entra) those listed: ``{"value": [{"value": "x"}]}``.

        A listed object with a ``value`` removes the elements with that ``value``;
        anything else removes the elements equal to it.
        """
        if value is None:
            self.clear()
            return
        doomed = _clean(self.attribute, value, str(path)) or []
        value_attribute = self.attribute.sub("value")
        for given in doomed:
            if isinstance(given, dict) and "value" in given and value_attribute is not None:
                positions = self._index(value_attribute).get(
                    _identity(value_attribute, given["value"]), set()
                )
            else:
                positions = self._identities().get(_identity(self.attribute, given), set())
            for position in sorted(positions):
                self.remove(position)

    def update(self, op: OpKind, path: PatchPath, value: Any) -> None:
        """Write into, or remove, the elements a filter selects (all of them without one).

        When none match, Entra expects ``emails[type eq "work"].value`` to create the
        work email: the new element is built from the filter's ``eq`` conditions.
        """
        selected = self.select(path.value_filter)
        if path.sub_attribute is None and op == "remove":
            for position in selected:
                self.remove(position)
            return
        patch = value if path.sub_attribute is None else _sub_patch(op, path, value)
        if not selected and op != "remove":
            selected = [self.append(_element_from_filter(path))]
        self.budget.count_work(len(selected) * limits.WRITE)
        for position in selected:
            self.put(position, _merge(self.attribute, self.slots[position], patch, str(path)))
        self.settle_primary(selected)


def _comparisons(node: Node) -> int:
    """How many comparisons evaluating ``node`` on one value makes (at most)."""
    if isinstance(node, And | Or):
        return _comparisons(node.left) + _comparisons(node.right)
    if isinstance(node, Not):
        return _comparisons(node.expr)
    return 1


def _identity(attribute: Attribute, value: Any) -> Any:
    """A hashable key: two values have the same key exactly when the attribute's
    equality (``caseExact`` strings, exact keys, ``==`` for everything else) holds."""
    if isinstance(value, dict):
        return (
            "object",
            frozenset(
                (key, _identity(attribute.sub(key) or attribute, item))
                for key, item in value.items()
            ),
        )
    if isinstance(value, str):
        return ("string", value if attribute.case_exact else value.lower())
    if isinstance(value, list):
        return ("array", tuple(_exact(item) for item in value))
    return ("scalar", value)


def _exact(value: Any) -> Any:
    if isinstance(value, dict):
        return ("object", frozenset((key, _exact(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_exact(item) for item in value))
    if isinstance(value, str):
        return ("string", value)
    return ("scalar", value)


def _element_value(element: dict, name: str) -> Any:
    """A sub-attribute of a stored element (names as stored are canonical; any case is read)."""
    if name in element:
        return element[name]
    lowered = name.lower()
    return next((item for key, item in element.items() if str(key).lower() == lowered), None)


def _element_from_filter(path: PatchPath) -> dict:
    """The element a filter of ``eq`` comparisons describes (``{"type": "work"}``)."""
    node = path.value_filter
    conditions = {} if node is None else _equalities(node)
    if conditions is None:
        raise NoTarget(f"No value matches '{path}'")
    subs = path.attribute.sub_attributes
    return {
        name: clean_single(subs[name.lower()], value, str(path))
        for name, value in conditions.items()
    }


def _equalities(node: Node) -> dict | None:
    """``{sub-attribute: value}`` for a conjunction of ``eq`` comparisons, else None."""
    if isinstance(node, Compare):
        return {node.path: node.value} if node.op == "eq" else None
    if isinstance(node, And):
        left, right = _equalities(node.left), _equalities(node.right)
        if left is None or right is None:
            return None
        if any(left[name] != right[name] for name in left.keys() & right.keys()):
            return None  # type eq "work" and type eq "home" describes no element
        return {**left, **right}
    return None


# --- Values ---------------------------------------------------------------------


def _clean(attribute: Attribute, value: Any, where: str) -> Any:
    """Validate and normalise a whole attribute value; None when it is empty."""
    if attribute.name == "manager" and attribute.urn == ENTERPRISE_USER:
        value = normalise_manager(value)
    if attribute.multi_valued and isinstance(value, dict):
        value = [value]  # a lone object where an array belongs (seen for members)
    return clean_value(attribute, value, where)


def _merge(attribute: Attribute, current: Any, value: Any, where: str) -> dict:
    """Write the sub-attributes ``value`` names over ``current`` (RFC 7644 §3.5.2.3).

    Sub-attributes it does not name are kept; a null or "" one is cleared, as
    null clears an attribute.
    """
    if isinstance(value, list) and len(value) == 1:
        value = value[0]  # Entra's manager, and some filtered values, come wrapped in an array
    cleared = set()
    if isinstance(value, dict):
        subs = (attribute.sub(key) for key, item in value.items() if _is_empty(item))
        cleared = {sub.name for sub in subs if sub and sub.mutability != "readOnly"}
    if attribute.name == "manager" and attribute.urn == ENTERPRISE_USER:
        value = normalise_manager(value)
    patch = clean_single(attribute, value, where) or {}
    current = current if isinstance(current, dict) else {}
    previous = current.get("value")
    if not attribute.multi_valued and patch.get("value", previous) != previous:
        current = {}  # a new manager: the $ref kept would still point at the old one
    for name in cleared & current.keys():
        _ensure_optional(attribute.sub(name))
    return {key: item for key, item in current.items() if key not in cleared} | patch


def _sub_patch(op: OpKind, path: PatchPath, value: Any) -> dict:
    """``attr.sub`` as the object merged into ``attr``: ``{"sub": value}`` (None removes)."""
    return {path.sub_attribute.name: None if op == "remove" else value}


def _clean_members(attribute: Attribute, value: Any) -> list[dict]:
    members = _clean(attribute, value, "members") or []
    for member in members:
        if not isinstance(member.get("value"), str):
            raise InvalidValue("Each member needs a string 'value'")
    return members


def _get(element: Any, name: str) -> Any:
    return element.get(name) if isinstance(element, dict) else None


def _ensure_optional(attribute: Attribute) -> None:
    # RFC 7644 §3.5.2.2: unassigning a required attribute is a mutability error.
    if attribute.required:
        raise Mutability(f"'{attribute.name}' is required and cannot be removed")


def _drop_empty(container: dict, key: str) -> None:
    if container.get(key) in ({}, [], None, ""):
        container.pop(key, None)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []
