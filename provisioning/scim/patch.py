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

from .errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget, ScimError
from .filters import And, Compare, Node, PatchPath, matches, parse_patch_path
from .resources import clean_single, clean_value, copy_json, normalise_manager
from .schema import GROUP, Attribute, ResourceSchema

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 1000

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
    if len(operations) > MAX_OPERATIONS:
        raise InvalidValue(f"At most {MAX_OPERATIONS} operations are accepted per PATCH request")
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
    modified, so a failing operation leaves the resource as it was.
    """
    engine = _Engine(copy_json(document), schema)
    for index, operation in enumerate(operations):
        try:
            engine.apply(operation)
        except ScimError as exc:
            # With dozens of operations per request the client needs to know which failed.
            exc.detail = f"Operations[{index}]: {exc.detail}"
            raise
    changed = engine.document != document or bool(engine.member_ops)
    return PatchOutcome(engine.document, engine.member_ops, changed)


class _Engine:
    def __init__(self, document: dict, schema: ResourceSchema):
        self.document = document
        self.schema = schema
        self.member_ops: list[MemberOp] = []

    def apply(self, operation: PatchOperation) -> None:
        if operation.path is not None:
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
                path = parse_patch_path(key, self.schema)
                self.apply_path(operation.op, path, value, explicit=False)

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
            handler = self._multi_valued if attribute.multi_valued else self._single_valued
            handler(op, path, container, value)
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
        elements = container.get(attribute.name)
        elements = list(elements) if isinstance(elements, list) else []
        if path.value_filter is None and path.sub_attribute is None:
            handler = _remove_elements if op == "remove" else _add_elements
            elements = handler(op, path, elements, value)
        else:
            elements = _update_elements(op, path, elements, value)
        container[attribute.name] = elements
        _drop_empty(container, attribute.name)

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


def _add_elements(op: OpKind, path: PatchPath, elements: list, value: Any) -> list:
    """``add`` appends values not already present; ``replace`` swaps the whole list."""
    attribute = path.attribute
    new = _clean(attribute, value, str(path)) or []
    result = [] if op == "replace" else elements
    added = []
    for element in new:
        if not any(_same(attribute, element, existing) for existing in result):
            result.append(element)
            added.append(element)
    _settle_primary(result, added)
    return result


def _update_elements(op: OpKind, path: PatchPath, elements: list, value: Any) -> list:
    """Write into, or remove, the elements a filter selects (all of them without one).

    When none match, Entra expects ``emails[type eq "work"].value`` to create the
    work email: the new element is built from the filter's ``eq`` conditions.
    """
    selected = _select(path, elements)
    if path.sub_attribute is None and op == "remove":
        return [element for index, element in enumerate(elements) if index not in selected]
    patch = value if path.sub_attribute is None else _sub_patch(op, path, value)
    if not selected and op != "remove":
        elements.append(_element_from_filter(path))
        selected = [len(elements) - 1]
    for index in selected:
        elements[index] = _merge(path.attribute, elements[index], patch, str(path))
    _settle_primary(elements, [elements[index] for index in selected])
    return [element for element in elements if element != {}]


def _remove_elements(op: OpKind, path: PatchPath, elements: list, value: Any) -> list:
    """Remove every value, or (Entra) those listed: ``{"value": [{"value": "x"}]}``."""
    if value is None:
        return []
    doomed = _clean(path.attribute, value, str(path)) or []
    return [e for e in elements if not any(_same_value(path.attribute, d, e) for d in doomed)]


def _select(path: PatchPath, elements: list) -> list[int]:
    """Indices of the elements the path's filter matches (all without a filter)."""
    node = path.value_filter
    return [
        index
        for index, element in enumerate(elements)
        if node is None or (isinstance(element, dict) and matches(node, element, path.attribute))
    ]


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


def _settle_primary(elements: list, written: list) -> None:
    """RFC 7643 §2.4: at most one ``primary``; the one just written wins."""
    primaries = [e for e in written if isinstance(e, dict) and e.get("primary") is True]
    if len(primaries) > 1:
        raise InvalidValue("At most one value may be primary")
    for index, element in enumerate(elements):
        if primaries and element is not primaries[0] and _get(element, "primary") is True:
            elements[index] = {**element, "primary": False}


# --- Values ---------------------------------------------------------------------


def _clean(attribute: Attribute, value: Any, where: str) -> Any:
    """Validate and normalise a whole attribute value; None when it is empty."""
    if attribute.name == "manager":
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
    if attribute.name == "manager":
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


def _same(attribute: Attribute, a: Any, b: Any) -> bool:
    """Equality under the attribute's case rules (``emails`` values are caseExact=false)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(
            _same(attribute.sub(key) or attribute, a[key], b[key]) for key in a
        )
    if isinstance(a, str) and isinstance(b, str) and not attribute.case_exact:
        return a.lower() == b.lower()
    return a == b


def _same_value(attribute: Attribute, given: Any, element: Any) -> bool:
    """Whether a remove-by-value entry names ``element``: by ``value`` when it has one."""
    if isinstance(given, dict) and "value" in given and isinstance(element, dict):
        value_attribute = attribute.sub("value") or attribute
        return _same(value_attribute, given["value"], element.get("value"))
    return _same(attribute, given, element)


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
