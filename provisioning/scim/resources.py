"""SCIM documents for directory resources: validation, storage split, rendering, projection.

Columns hold the attributes that are filtered, sorted or enforced; the rest of
the document lives in ``attributes`` exactly as the IdP sent it. These
functions are the only place that knows how the two are combined.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from .errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability
from .schema import (
    ENTERPRISE_USER,
    GROUP,
    GROUP_SCHEMA,
    REGISTRATION_HINT,
    RESOURCE_SCHEMAS,
    USER,
    USER_SCHEMA,
    Attribute,
    ResourceSchema,
)

# Attributes a client may send but which are never stored: the server owns
# read-only ones, and this server is not a credential store.
_IGNORED_ON_WRITE = {"id", "meta", "schemas", "groups", "password"}

_TRUE = {"true": True, "false": False}


def isoformat(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def coerce_boolean(value: Any, where: str) -> bool:
    """Booleans, tolerating the strings Entra sends (``"False"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return _TRUE[value.strip().lower()]
    raise InvalidValue(f"'{where}' must be a boolean")


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def clean_value(attribute: Attribute, value: Any, where: str) -> Any:
    """Validate ``value`` against ``attribute``; return it normalised, or None when empty.

    Empty values (null, "", [], {}) mean "absent": RFC 7644 §3.5.2.3 clears on null
    and IdPs send empty arrays for attributes they do not manage.
    """
    if _is_empty(value):
        return None
    if attribute.multi_valued:
        if not isinstance(value, list):
            raise InvalidValue(f"'{where}' is multi-valued and must be an array")
        items = [clean_single(attribute, item, where) for item in value]
        items = [item for item in items if item is not None and not _only_labels(attribute, item)]
        if attribute.is_complex:
            _single_primary(items, where)
        return items or None
    return clean_single(attribute, value, where)


# Sub-attributes that qualify an entry of a multi-valued attribute rather than hold it
# (RFC 7643 §2.4): an entry left with nothing else once blank members are removed, such
# as ``{"value": "", "type": "work"}`` (how IdPs clear a phone number), holds no value
# and is dropped. (An entry with a ``display`` but no value is kept as sent, or refused
# where a value is needed, as for group members.)
_LABELS = frozenset({"type", "primary"})


def _only_labels(attribute: Attribute, item: Any) -> bool:
    return attribute.is_complex and isinstance(item, dict) and item.keys() <= _LABELS


def clean_single(attribute: Attribute, value: Any, where: str) -> Any:
    if _is_empty(value):
        return None
    if attribute.is_complex:
        if not isinstance(value, dict):
            raise InvalidValue(f"'{where}' must be an object")
        cleaned = {}
        for key, sub_value in value.items():
            sub = attribute.sub(key)
            if sub is None:
                raise InvalidValue(f"Unknown sub-attribute '{where}.{key}'")
            if sub.mutability == "readOnly":
                continue
            sub_clean = clean_single(sub, sub_value, f"{where}.{sub.name}")
            if sub_clean is not None:
                cleaned[sub.name] = sub_clean
        return cleaned or None
    kind = attribute.type
    if kind == "boolean":
        return coerce_boolean(value, where)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"'{where}' must be an integer")
        if not -(2**63) <= value < 2**63:
            raise InvalidValue(f"'{where}' must fit in 64 bits")
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"'{where}' must be a number")
        return value
    if not isinstance(value, str):
        raise InvalidValue(f"'{where}' must be a string")
    if attribute.max_length is not None and len(value) > attribute.max_length:
        # Declared in /Schemas; refused here so that no database sees a value its column
        # cannot hold (SQLite would keep it, PostgreSQL would fail).
        raise InvalidValue(
            f"'{where}' may hold at most {attribute.max_length} characters ({len(value)} sent)"
        )
    if kind == "dateTime" and not _is_datetime(value):
        raise InvalidValue(f"'{where}' must be an ISO 8601 date-time")
    return value


def _is_datetime(value: str) -> bool:
    try:
        return parse_datetime(value) is not None
    except ValueError:  # well-formed but impossible, such as February 30th
        return False


def _single_primary(items: list[dict], where: str) -> None:
    if sum(1 for item in items if item.get("primary") is True) > 1:
        raise InvalidValue(f"At most one value of '{where}' may be primary")


def clean_document(schema: ResourceSchema, body: Any) -> dict:
    """Validate a POST/PUT body and return it with canonical attribute names.

    Unknown attributes are an error rather than silently dropped, so that no
    value an IdP sends is lost without it being told.
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a JSON object")
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas)
    ):
        raise InvalidSyntax("'schemas' must be an array of URIs")
    document: dict[str, Any] = {}
    for key, value in body.items():
        if key.lower() in _IGNORED_ON_WRITE:
            continue
        urn = schema.canonical_urn(key)
        if urn and urn != schema.core:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InvalidValue(f"'{key}' must be an object")
            extension = _clean_extension(schema, urn, value)
            if extension:
                document[urn] = extension
            continue
        if key.lower().startswith("urn:"):
            # Schema-qualified attributes (Entra sends custom extension attributes as
            # ``urn:...:2.0:User:costCenter`` keys), or an extension we do not serve.
            try:
                schema.split_urn(key)
            except InvalidPath:
                raise InvalidValue(
                    f"Unknown schema extension '{key}'. {REGISTRATION_HINT}"
                ) from None
            try:
                path = schema.resolve(key)
            except InvalidPath as exc:
                raise InvalidValue(exc.detail) from None
            _set_resolved(document, schema, path.attribute, value, key)
            continue
        attribute = schema.core_attribute(key)
        if attribute is None:
            raise InvalidValue(f"Unknown attribute '{key}' for {schema.name}")
        _set_resolved(document, schema, attribute, value, key)
    return document


def _set_resolved(document: dict, schema: ResourceSchema, attribute: Attribute, value, where):
    if attribute.mutability == "readOnly" or attribute.name.lower() in _IGNORED_ON_WRITE:
        return
    cleaned = clean_value(attribute, value, where)
    target = document if attribute.urn == schema.core else document.setdefault(attribute.urn, {})
    if cleaned is not None:
        target[attribute.name] = cleaned


def _clean_extension(schema: ResourceSchema, urn: str, value: dict) -> dict:
    attributes = schema.extension_attributes(urn)
    cleaned = {}
    for key, sub_value in value.items():
        if key.lower() in _IGNORED_ON_WRITE:
            continue
        attribute = attributes.get(key.lower())
        if attribute is None:
            raise InvalidValue(f"Unknown attribute '{urn}:{key}'")
        if attribute.mutability == "readOnly":
            continue  # RFC 7643 §2.2: the server owns it; a client's value is ignored
        if attribute.name == "manager" and urn == ENTERPRISE_USER:
            sub_value = normalise_manager(sub_value)
        result = clean_value(attribute, sub_value, f"{urn}:{attribute.name}")
        if result is not None:
            cleaned[attribute.name] = result
    return cleaned


def check_extension_rules(
    schema: ResourceSchema, action: str, before: dict | None, after: dict | None
) -> None:
    """The registered extensions' ``required`` and ``immutable`` attributes, checked on a
    planned write's documents (stored shape: extension attributes under their URN).

    ``required`` (RFC 7643 §7): a create or replace without the attribute is refused.
    PATCH may leave an attribute absent that was absent before (a user stored before the
    attribute became required can still be deactivated); removing it is refused by the
    PATCH engine. ``immutable`` (RFC 7643 §7): once it has a value, that value stays.
    """
    view = schema.view
    if after is None:
        return
    if action in ("create", "replace"):
        for urn, names in view.required.items():
            values = after.get(urn) if isinstance(after.get(urn), dict) else {}
            missing = [name for name in names if name not in values]
            if missing:
                raise InvalidValue(
                    f"'{urn}:{missing[0]}' is required (RFC 7643 §7); send it with every "
                    f"{schema.name} created or replaced"
                )
    if before is None:
        return
    for urn, names in view.immutable.items():
        old = before.get(urn) if isinstance(before.get(urn), dict) else {}
        new = after.get(urn) if isinstance(after.get(urn), dict) else {}
        for name in names:
            if name in old and new.get(name) != old[name]:
                raise Mutability(f"'{urn}:{name}' is immutable: it keeps the value it was given")


def normalise_manager(value: Any) -> Any:
    """Entra sends the manager as an id string or as ``[{"$ref": .., "value": id}]``."""
    if isinstance(value, str):
        return {"value": value} if value else None
    if isinstance(value, list):
        if len(value) > 1:
            raise InvalidValue("'manager' takes a single value")
        value = value[0] if value else None
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None} or None
    return value


# --- Users --------------------------------------------------------------------

# Scalar attributes stored in User columns: (path in the document, column).
_USER_COLUMNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("displayName",), "display_name"),
    (("name", "givenName"), "given_name"),
    (("name", "familyName"), "family_name"),
    ((ENTERPRISE_USER, "employeeNumber"), "employee_number"),
    ((ENTERPRISE_USER, "manager", "value"), "manager_id"),
)


def _pop_path(document: dict, path: tuple[str, ...]) -> Any:
    *parents, leaf = path
    node = document
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return None
    value = node.pop(leaf, None)
    # Drop parents left empty so the JSON holds only what remains.
    for depth in range(len(parents), 0, -1):
        container = _walk(document, parents[: depth - 1])
        if container is not None and container.get(parents[depth - 1]) == {}:
            del container[parents[depth - 1]]
    return value


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars): what ``copy.deepcopy`` gives
    for documents, at a third of its cost (no memo; scalars are immutable)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def _walk(document: dict, path: Iterable[str]) -> dict | None:
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _put_path(document: dict, path: tuple[str, ...], value: Any) -> None:
    if value in (None, ""):
        return
    *parents, leaf = path
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def primary_email(emails: list[dict] | None) -> str:
    """The primary email, else the first work email, else the first email."""
    emails = [e for e in emails or [] if isinstance(e.get("value"), str)]
    for choose in (
        lambda e: e.get("primary") is True,
        lambda e: str(e.get("type", "")).lower() == "work",
        lambda e: True,
    ):
        for email in emails:
            if choose(email):
                return email["value"]
    return ""


def user_fields(document: dict) -> dict[str, Any]:
    """Column values and the JSON remainder for a cleaned user document."""
    document = copy_json(document)
    user_name = document.pop("userName", None)
    if not isinstance(user_name, str) or not user_name.strip():
        raise InvalidValue("'userName' is required")
    fields: dict[str, Any] = {
        "user_name": user_name,
        "external_id": document.pop("externalId", None),
        "active": document.pop("active", None),
    }
    for path, column in _USER_COLUMNS:
        value = _pop_path(document, path)
        fields[column] = value if value is not None else ""
    fields["primary_email"] = primary_email(document.get("emails"))
    fields["attributes"] = document
    return fields


def user_editable_document(user, *, shared: bool = False) -> dict:
    """The user's writable attributes as a SCIM document (what PATCH operates on).

    A private deep copy, unless ``shared``: then only the objects this function writes
    into are copied and the rest is shared with ``user.attributes`` (for rendering a
    response, which reads the document and never changes it).
    """
    if shared:
        document, put = dict(user.attributes), _put_path_copying
    else:
        document, put = copy_json(user.attributes), _put_path
    document["userName"] = user.user_name
    if user.external_id is not None:
        document["externalId"] = user.external_id
    if user.active is not None:
        document["active"] = user.active
    for path, column in _USER_COLUMNS:
        put(document, path, getattr(user, column))
    return document


def _put_path_copying(document: dict, path: tuple[str, ...], value: Any) -> None:
    """``_put_path`` on a shallow copy: every parent object on the way is copied first."""
    if value in (None, ""):
        return
    *parents, leaf = path
    node = document
    for key in parents:
        child = node.get(key)
        node[key] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[leaf] = value


def scim_base_url(request) -> str:
    """The SCIM base URL (the "tenant URL" IdPs ask for) of ``request``, without a trailing
    slash: ``SCIM_BASE_URL`` when set (behind a proxy), else the request's own host."""
    return settings.SCIM_BASE_URL or request.build_absolute_uri("/scim/v2").rstrip("/")


def meta(resource, resource_type: str, location: str) -> dict:
    return {
        "resourceType": resource_type,
        "created": isoformat(resource.created),
        "lastModified": isoformat(resource.last_modified),
        "location": location,
        "version": resource.etag,
    }


def user_document(user, base_url: str, groups: list[dict] | None = None) -> dict:
    """The full SCIM representation of ``user`` (``groups`` given when requested); it
    shares unchanged values with ``user.attributes``: read it, do not change it."""
    body = _returnable(USER_SCHEMA, user_editable_document(user, shared=True))
    location = f"{base_url}/Users/{user.id}"
    schemas = [USER] + [urn for urn in USER_SCHEMA.extensions if urn in body]
    document = {"schemas": schemas, "id": str(user.id), **_core_first(body)}
    if groups:
        document["groups"] = groups
    document["meta"] = meta(user, "User", location)
    return document


def group_entries(rows, base_url: str) -> list[dict]:
    """A user's ``groups`` from ``selectors.groups_of_users`` rows (id, displayName, type)."""
    return [
        {"value": str(gid), "$ref": f"{base_url}/Groups/{gid}", "display": name, "type": kind}
        for gid, name, kind in rows
    ]


def _returnable(schema: ResourceSchema, body: dict) -> dict:
    """``body`` without the registered extensions' attributes that are never returned
    (``returned: never``, ``mutability: writeOnly``; RFC 7643 §7). Values of an extension
    that is no longer registered are not shown either. Objects it changes are copied."""
    view = schema.view
    for key in [k for k in body if k.startswith("urn:") and k.lower() not in view.urns]:
        body = {k: v for k, v in body.items() if k != key}
    for urn, hidden in view.hidden.items():
        values = body.get(urn)
        if isinstance(values, dict) and hidden & values.keys():
            kept = {name: value for name, value in values.items() if name not in hidden}
            body = {**body, urn: kept} if kept else {k: v for k, v in body.items() if k != urn}
    return body


HIDDEN_VALUE = "[not shown: returned never]"


def mask_hidden(resource_type: str, document: dict) -> dict:
    """``document`` with the values of attributes that are never returned (``returned:
    never``, ``writeOnly``) replaced by ``HIDDEN_VALUE``, for the audit trail's diffs and
    search text: they show that such a value changed, never what it is. The stored change
    record keeps the value (a rollback or restore needs it)."""
    schema = RESOURCE_SCHEMAS.get(resource_type)
    if schema is None or not isinstance(document, dict):
        return document
    for urn, hidden in schema.view.hidden.items():
        values = document.get(urn)
        if isinstance(values, dict) and hidden & values.keys():
            masked = {k: HIDDEN_VALUE if k in hidden else v for k, v in values.items()}
            document = {**document, urn: masked}
    return document


def _core_first(body: dict) -> dict:
    """Put core attributes before extension objects, userName first, for readable output."""
    ordered = {}
    for key in ("externalId", "userName"):
        if key in body:
            ordered[key] = body[key]
    for key, value in body.items():
        if key not in ordered and not key.startswith("urn:"):
            ordered[key] = value
    for key, value in body.items():
        if key.startswith("urn:"):
            ordered[key] = value
    return ordered


# --- Groups -------------------------------------------------------------------


def group_fields(document: dict) -> dict[str, Any]:
    """Column values and JSON remainder for a cleaned group document (members excluded)."""
    document = copy_json(document)
    document.pop("members", None)
    display_name = document.pop("displayName", None)
    if not isinstance(display_name, str) or not display_name.strip():
        raise InvalidValue("'displayName' is required")
    return {
        "display_name": display_name,
        "external_id": document.pop("externalId", None),
        "attributes": document,
    }


def group_editable_document(group) -> dict:
    document = copy_json(group.attributes)
    document["displayName"] = group.display_name
    if group.external_id is not None:
        document["externalId"] = group.external_id
    return document


def group_document(group, base_url: str, members: list[dict] | None = None) -> dict:
    body = _returnable(GROUP_SCHEMA, group_editable_document(group))
    schemas = [GROUP] + [urn for urn in GROUP_SCHEMA.extensions if urn in body]
    document = {"schemas": schemas, "id": str(group.id), **_core_first(body)}
    if members is not None:
        document["members"] = members
    document["meta"] = meta(group, "Group", f"{base_url}/Groups/{group.id}")
    return document


def member_entry(member_id, is_group: bool, display: str | None, base_url: str) -> dict:
    kind = "Group" if is_group else "User"
    entry = {"value": str(member_id), "$ref": f"{base_url}/{kind}s/{member_id}", "type": kind}
    if display:
        entry["display"] = display
    return entry


# --- Projection (attributes / excludedAttributes, RFC 7644 §3.4.2.5) ------------


def parse_attribute_list(
    schema: ResourceSchema, raw: str | list | None, *, ignore_unknown: bool = False
) -> list:
    """Parse ``attributes``/``excludedAttributes`` into (urn, attribute, sub) triples.

    Unknown names raise InvalidPath, unless ``ignore_unknown`` (a root ``.search``
    spans resource types, and a name may belong to only one of them).
    """
    if raw is None or raw == "" or raw == []:
        return []
    items = raw if isinstance(raw, list) else raw.split(",")
    paths = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            continue
        try:
            urn, rest = schema.split_urn(item.strip())
            if not rest:
                paths.append((urn, None, None))
                continue
            resolved = schema.resolve(item.strip())
        except InvalidPath:
            if ignore_unknown:
                continue
            raise
        paths.append((resolved.urn, resolved.attribute, resolved.sub_attribute))
    return paths


def requests_attribute(schema: ResourceSchema, name: str, attributes: list, excluded: list) -> bool:
    """Whether a response needs attribute ``name`` (e.g. whether to load group members)."""
    attribute = schema.core_attribute(name)
    if attributes:
        return any(attr is not None and attr is attribute for _, attr, _ in attributes)
    return not any(attr is attribute and sub is None for _, attr, sub in excluded)


def project(schema: ResourceSchema, document: dict, attributes: list, excluded: list) -> dict:
    """Apply ``attributes``/``excludedAttributes`` honouring ``returned: always`` and
    (registered extensions) ``returned: request``: such an attribute appears only when
    ``attributes`` names it or its schema (RFC 7643 §7)."""
    view = schema.view
    if attributes:
        result: dict[str, Any] = {}
        for urn, attr, sub in attributes:
            source = document if urn == schema.core else document.get(urn)
            if not isinstance(source, dict):
                continue
            target = result if urn == schema.core else result.setdefault(urn, {})
            if attr is None:
                target.update(copy_json(source))
                continue
            if attr.name not in source:
                continue
            if sub is None:
                target[attr.name] = copy_json(source[attr.name])
            elif attr.multi_valued:
                values = [
                    {sub.name: v[sub.name]} for v in source[attr.name] if sub.name in v
                ]
                if values:
                    target[attr.name] = values
            elif sub.name in source[attr.name]:
                target.setdefault(attr.name, {})[sub.name] = source[attr.name][sub.name]
        for urn, names in view.always.items():
            source = document.get(urn)
            if isinstance(source, dict) and names & source.keys():
                target = result.setdefault(urn, {})
                for name in names & source.keys():
                    target.setdefault(name, copy_json(source[name]))
        result = {k: v for k, v in result.items() if v != {}}
        result["schemas"] = document["schemas"]
        result["id"] = document["id"]
        return result
    document = _without_on_request(view, document)
    if not excluded:
        return document
    result = copy_json(document)
    for urn, attr, sub in excluded:
        if attr is None or attr.returned == "always":
            continue
        target = result if urn == schema.core else result.get(urn)
        if not isinstance(target, dict) or attr.name not in target:
            continue
        if sub is None:
            del target[attr.name]
        elif attr.multi_valued:
            for value in target[attr.name]:
                value.pop(sub.name, None)
        else:
            target[attr.name].pop(sub.name, None)
    return result


def _without_on_request(view, document: dict) -> dict:
    """``document`` without the ``returned: request`` attributes (copied only if any)."""
    for urn, names in view.on_request.items():
        values = document.get(urn)
        if isinstance(values, dict) and names & values.keys():
            kept = {name: value for name, value in values.items() if name not in names}
            document = {k: (kept if k == urn else v) for k, v in document.items() if k != urn or kept}
            if not kept and isinstance(document.get("schemas"), list):
                document["schemas"] = [u for u in document["schemas"] if u != urn]
    return document
