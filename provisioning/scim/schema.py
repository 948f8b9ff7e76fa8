"""Schema definitions (RFC 7643) and attribute-path resolution.

The schema documents are django-scim2's, corrected where they disagree with the
RFC or with what this server stores (userName is required and unique, group
members carry ``display``). Everything that needs attribute characteristics
(filters, PATCH, projection, discovery) resolves paths through ``ResourceSchema``.

Besides the built-in schemas, administrators register extension schemas (RFC 7643
§3.3, e.g. Entra's ``urn:ietf:params:scim:schemas:extension:<Name>:2.0:User``). This
module has no database: the directory installs a *source* (``set_extension_source``)
and every entry point calls ``refresh_extensions()``, which asks the source for its
revision (one tiny query) and reloads the registered schemas only when it changed.
``USER_SCHEMA``, ``GROUP_SCHEMA`` and ``schema_documents()`` then include them.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import django_scim.schemas
from django_scim.constants import SchemaURI

from .errors import InvalidPath

USER = SchemaURI.USER
GROUP = SchemaURI.GROUP
ENTERPRISE_USER = SchemaURI.ENTERPRISE_USER

_SCHEMA_DIR = Path(django_scim.schemas.__file__).parent


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    sub_attributes: dict[str, Attribute] = field(default_factory=dict, compare=False)
    urn: str = ""
    # The longest string value accepted, in characters (None: bounded only by the request).
    max_length: int | None = None

    @property
    def is_complex(self) -> bool:
        return self.type == "complex"

    def sub(self, name: str) -> Attribute | None:
        return self.sub_attributes.get(name.lower())

    @classmethod
    def from_document(cls, doc: dict, urn: str, parent: str = "") -> Attribute:
        dotted = f"{parent}.{doc['name']}" if parent else doc["name"]
        subs = {
            s["name"].lower(): cls.from_document(s, urn, dotted)
            for s in doc.get("subAttributes", [])
        }
        return cls(
            name=doc["name"],
            type=doc.get("type", "string"),
            multi_valued=bool(doc.get("multiValued")),
            required=bool(doc.get("required")),
            case_exact=bool(doc.get("caseExact")),
            mutability=doc.get("mutability") or "readWrite",
            returned=doc.get("returned") or "default",
            uniqueness=doc.get("uniqueness") or "none",
            sub_attributes=subs,
            urn=urn,
            max_length=MAX_LENGTHS.get(urn, {}).get(dotted),
        )


@dataclass(frozen=True)
class AttributePath:
    """A resolved attribute path: ``urn:...:attr.sub`` with canonical names."""

    attribute: Attribute
    sub_attribute: Attribute | None = None

    @property
    def urn(self) -> str:
        return self.attribute.urn

    @property
    def target(self) -> Attribute:
        return self.sub_attribute or self.attribute

    @property
    def dotted(self) -> str:
        """Canonical ``attr`` or ``attr.sub`` (without URN)."""
        if self.sub_attribute:
            return f"{self.attribute.name}.{self.sub_attribute.name}"
        return self.attribute.name

    def __str__(self) -> str:
        prefix = "" if self.urn in ("", USER, GROUP) else f"{self.urn}:"
        return prefix + self.dotted


# The longest value, in characters, of every attribute stored in a database column: the
# sizes of those columns (provisioning.directory.models). Documents are checked against
# them when they are cleaned, before any write, so SQLite (which ignores column sizes) and
# PostgreSQL refuse the same values with the same invalidValue. RFC 7643 §7 has no
# characteristic for a maximum length, so /Schemas states it in each attribute's
# description (and the common attributes' in the schema's).
MAX_LENGTHS: dict[str, dict[str, int]] = {
    USER: {
        "userName": 255,
        "displayName": 255,
        "name.givenName": 255,
        "name.familyName": 255,
        "emails.value": 320,
        "emails.type": 64,
    },
    ENTERPRISE_USER: {"employeeNumber": 255, "manager.value": 255},
    GROUP: {"displayName": 255, "members.display": 255},
}
COMMON_MAX_LENGTHS = {"externalId": 255}


def _length_note(limit: int) -> str:
    return f"This server accepts at most {limit} characters."


def _document_limits(doc: dict, urn: str) -> None:
    """Append each attribute's maximum length to its description, and the common
    attributes' to the schema's."""
    limits = MAX_LENGTHS.get(urn, {})

    def visit(attribute: dict, parent: str) -> None:
        dotted = f"{parent}.{attribute['name']}" if parent else attribute["name"]
        if dotted in limits:
            description = attribute.get("description", "").rstrip()
            attribute["description"] = f"{description} {_length_note(limits[dotted])}".strip()
        for sub in attribute.get("subAttributes", []):
            visit(sub, dotted)

    for attribute in doc["attributes"]:
        visit(attribute, "")
    if urn in (USER, GROUP):
        common = ", ".join(f"{name} at most {n}" for name, n in COMMON_MAX_LENGTHS.items())
        doc["description"] = (
            f"{doc.get('description', '').rstrip()}. Common attributes (RFC 7643 §3.1): "
            f"{common} characters."
        ).lstrip(". ")


# RFC 7643 §2.4: "Unless otherwise specified, the default sub-attributes of multi-valued
# attributes are type, primary, display, value and $ref" (§8.3's addresses carry "primary").
_DEFAULT_SUB_ATTRIBUTES = (
    ("type", "string", "A label indicating the attribute's function, e.g. 'work' or 'home'."),
    ("primary", "boolean", "Whether this is the preferred value; at most one is primary."),
    ("display", "string", "A human-readable name, primarily used for display purposes."),
    ("value", "string", "The attribute's significant value."),
    ("$ref", "reference", "The reference URI of a target resource, if it is one."),
)


def add_default_sub_attributes(attribute: dict) -> None:
    """Give a multi-valued complex attribute document the default sub-attributes it lacks,
    with the mutability its own sub-attributes have when they all agree (read-only
    ``groups`` stays read-only)."""
    if not attribute.get("multiValued") or attribute.get("type") != "complex":
        return
    subs = attribute.setdefault("subAttributes", [])
    have = {sub["name"].lower() for sub in subs}
    mutabilities = {sub.get("mutability", "readWrite") for sub in subs}
    mutability = mutabilities.pop() if len(mutabilities) == 1 else "readWrite"
    if any(sub["name"] == "value" and sub.get("type") == "reference" for sub in subs):
        have.add("$ref")  # the value is itself the reference (photos)
    for name, type_, description in _DEFAULT_SUB_ATTRIBUTES:
        if name.lower() in have:
            continue
        sub = {
            "name": name,
            "type": type_,
            "multiValued": False,
            "description": description,
            "required": False,
            "caseExact": name == "$ref",
            "mutability": mutability,
            "returned": "default",
            "uniqueness": "none",
        }
        if type_ == "reference":
            sub["referenceTypes"] = ["external", "uri"]
        subs.append(sub)


def _common_attributes() -> dict[str, Attribute]:
    """``id``, ``externalId`` and ``meta`` belong to every resource (RFC 7643 §3.1)."""
    meta_subs = {
        name.lower(): Attribute(name=name, type=type_, mutability="readOnly", case_exact=exact)
        for name, type_, exact in (
            ("resourceType", "string", True),
            ("created", "dateTime", False),
            ("lastModified", "dateTime", False),
            ("location", "reference", True),
            ("version", "string", True),
        )
    }
    return {
        "id": Attribute(
            name="id", mutability="readOnly", returned="always", case_exact=True, uniqueness="server"
        ),
        "externalid": Attribute(
            name="externalId", case_exact=True, max_length=COMMON_MAX_LENGTHS["externalId"]
        ),
        "meta": Attribute(
            name="meta", type="complex", mutability="readOnly", sub_attributes=meta_subs
        ),
    }


def _load(relative: str) -> dict:
    with open(_SCHEMA_DIR / relative) as fp:
        return json.load(fp)


def _schema_documents() -> dict[str, dict]:
    user = _load("core/User.json")
    group = _load("core/Group.json")
    enterprise = _load("extension/Enterprise-User.json")
    for attr in user["attributes"]:
        if attr["name"] == "userName":
            attr.update(required=True, uniqueness="server", caseExact=False)
        if attr["name"] == "groups":
            for sub in attr["subAttributes"]:
                sub["mutability"] = "readOnly"
        for sub in attr.get("subAttributes", []):
            sub.setdefault("required", False)
    for attr in group["attributes"]:
        if attr["name"] == "displayName":
            attr.update(required=True)
        if attr["name"] == "members":
            attr["subAttributes"].append(
                {
                    "name": "display",
                    "type": "string",
                    "multiValued": False,
                    "description": "A human-readable name for the member, as the client sent it.",
                    "required": False,
                    "caseExact": False,
                    "mutability": "immutable",
                    "returned": "default",
                    "uniqueness": "none",
                }
            )
            # A member's id is a UUID assigned by this server and matched exactly.
            for sub in attr["subAttributes"]:
                if sub["name"] == "value":
                    sub["caseExact"] = True
    for attr in enterprise["attributes"]:
        if attr["name"] == "manager":
            for sub in attr["subAttributes"]:
                if sub["name"] == "$ref":
                    sub["referenceTypes"] = ["User"]
    for attr in group["attributes"]:
        if attr["name"] == "displayName":
            # Enforced: a case variant of an existing group's name is a 409 (uniqueness).
            attr["uniqueness"] = "server"
    for doc in (user, enterprise):
        for attr in doc["attributes"]:
            add_default_sub_attributes(attr)
    for doc in (user, group, enterprise):
        for attr in doc["attributes"]:
            attr.setdefault("required", False)
            for sub in attr.get("subAttributes", []):
                sub.setdefault("required", False)
    for urn, doc in ((USER, user), (GROUP, group), (ENTERPRISE_USER, enterprise)):
        _document_limits(doc, urn)
    return {USER: user, GROUP: group, ENTERPRISE_USER: enterprise}


_builtin_documents = cache(_schema_documents)


def schema_documents() -> dict[str, dict]:
    """Every schema this server serves, by URN: the built-in ones, then the registered
    extensions (as last loaded by ``refresh_extensions``). Do not change the documents."""
    registered = _registry.documents
    if not registered:
        return _builtin_documents()
    return {**_builtin_documents(), **registered}


@dataclass(frozen=True)
class _View:
    """What a resource type's schemas are at one moment: replaced whole on a reload, so a
    reader never sees half of one set of extensions and half of another."""

    extensions: tuple[str, ...]
    attributes: dict[str, dict[str, Attribute]]
    urns: dict[str, str]
    # Lower-cased URNs, longest first (``split_urn`` tries the most specific one first).
    by_length: tuple[tuple[str, str], ...]
    # Registered extensions only: attribute names never rendered (returned "never",
    # mutability "writeOnly"), rendered only on request, rendered always.
    hidden: dict[str, frozenset[str]] = field(default_factory=dict)
    on_request: dict[str, frozenset[str]] = field(default_factory=dict)
    always: dict[str, frozenset[str]] = field(default_factory=dict)
    # URN -> names of required attributes (checked on create and replace).
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # URN -> names of immutable attributes (set once, never changed afterwards).
    immutable: dict[str, tuple[str, ...]] = field(default_factory=dict)


class ResourceSchema:
    """Attributes of one resource type (core schema plus extensions).

    ``extensions`` are the built-in ones given here followed by the registered ones
    for this resource type (see ``refresh_extensions``).
    """

    def __init__(self, name: str, endpoint: str, core: str, extensions: tuple[str, ...] = ()):
        self.name = name
        self.endpoint = endpoint
        self.core = core
        self.builtin_extensions = extensions
        docs = _builtin_documents()
        # Common attributes belong to the core schema of each resource type.
        core_attrs = {k: replace(a, urn=core) for k, a in _common_attributes().items()}
        for a in docs[core]["attributes"]:
            core_attrs[a["name"].lower()] = Attribute.from_document(a, core)
        self._builtin: dict[str, dict[str, Attribute]] = {core.lower(): core_attrs}
        for ext in extensions:
            self._builtin[ext.lower()] = {
                a["name"].lower(): Attribute.from_document(a, ext) for a in docs[ext]["attributes"]
            }
        self._view = self._build(())

    def _build(self, registered: Iterable[RegisteredExtension]) -> _View:
        attributes = dict(self._builtin)
        extensions = list(self.builtin_extensions)
        hidden, on_request, always, required, immutable = {}, {}, {}, {}, {}
        for extension in registered:
            if extension.resource_type != self.name:
                continue
            urn = extension.urn
            extensions.append(urn)
            attrs = {
                a["name"].lower(): Attribute.from_document(a, urn)
                for a in extension.document["attributes"]
            }
            attributes[urn.lower()] = attrs
            hidden[urn] = frozenset(
                a.name for a in attrs.values() if a.returned == "never" or a.mutability == "writeOnly"
            )
            on_request[urn] = frozenset(a.name for a in attrs.values() if a.returned == "request")
            always[urn] = frozenset(a.name for a in attrs.values() if a.returned == "always")
            required[urn] = tuple(a.name for a in attrs.values() if a.required)
            immutable[urn] = tuple(a.name for a in attrs.values() if a.mutability == "immutable")
        urns = {urn.lower(): urn for urn in (self.core, *extensions)}
        return _View(
            extensions=tuple(extensions),
            attributes=attributes,
            urns=urns,
            by_length=tuple(sorted(urns.items(), key=lambda kv: -len(kv[0]))),
            hidden={k: v for k, v in hidden.items() if v},
            on_request={k: v for k, v in on_request.items() if v},
            always={k: v for k, v in always.items() if v},
            required={k: v for k, v in required.items() if v},
            immutable={k: v for k, v in immutable.items() if v},
        )

    @property
    def extensions(self) -> tuple[str, ...]:
        return self._view.extensions

    @property
    def registered_extensions(self) -> tuple[str, ...]:
        return self._view.extensions[len(self.builtin_extensions) :]

    @property
    def attributes(self) -> dict[str, dict[str, Attribute]]:
        return self._view.attributes

    @property
    def schemas(self) -> tuple[str, ...]:
        return (self.core, *self._view.extensions)

    @property
    def view(self) -> _View:
        """The current schemas as one consistent snapshot (for rendering rules)."""
        return self._view

    def canonical_urn(self, urn: str) -> str | None:
        return self._view.urns.get(urn.lower())

    def core_attribute(self, name: str) -> Attribute | None:
        return self._builtin[self.core.lower()].get(name.lower())

    def extension_attributes(self, urn: str) -> dict[str, Attribute]:
        return self._view.attributes[urn.lower()]

    def split_urn(self, path: str) -> tuple[str, str]:
        """Split ``urn:...:User:manager.value`` into (canonical URN, ``manager.value``).

        A path without a known URN prefix belongs to the core schema.
        """
        lowered = path.lower()
        for urn_lower, urn in self._view.by_length:
            if lowered == urn_lower:
                return urn, ""
            if lowered.startswith(urn_lower + ":"):
                return urn, path[len(urn) + 1 :]
        if lowered.startswith("urn:"):
            raise InvalidPath(f"Unknown schema in attribute path '{path}'. {REGISTRATION_HINT}")
        return self.core, path

    def resolve(self, path: str) -> AttributePath:
        """Resolve ``[urn:]attr[.sub]`` to canonical attributes; unknown names are InvalidPath."""
        urn, rest = self.split_urn(path.strip())
        if not rest:
            raise InvalidPath(f"'{path}' names a schema, not an attribute")
        name, _, sub_name = rest.partition(".")
        attribute = self._view.attributes[urn.lower()].get(name.lower())
        if attribute is None:
            raise InvalidPath(f"Unknown attribute '{path}' for {self.name}")
        if not sub_name:
            return AttributePath(attribute)
        sub = attribute.sub(sub_name)
        if sub is None or "." in sub_name:
            raise InvalidPath(f"Unknown sub-attribute '{path}' for {self.name}")
        return AttributePath(attribute, sub)

    def schema_document(self, urn: str) -> dict:
        return copy.deepcopy(schema_documents()[urn])


USER_SCHEMA = ResourceSchema("User", "/Users", USER, (ENTERPRISE_USER,))
GROUP_SCHEMA = ResourceSchema("Group", "/Groups", GROUP)
RESOURCE_SCHEMAS = {"User": USER_SCHEMA, "Group": GROUP_SCHEMA}


# --- Registered extension schemas ---------------------------------------------------

# Told to a client that names an extension this server does not know.
REGISTRATION_HINT = (
    "An administrator can register an extension schema on the console page "
    "'Extension schemas' or with 'manage.py loadschema <schema.json>'."
)

ATTRIBUTE_TYPES = ("string", "boolean", "decimal", "integer", "dateTime", "reference", "complex")
MUTABILITIES = ("readWrite", "readOnly", "immutable", "writeOnly")
RETURNED = ("default", "always", "never", "request")
RESOURCE_TYPE_NAMES = ("User", "Group")
# Limits on one registered schema, so that a schema cannot make every request slow.
MAX_URN_LENGTH = 255
MAX_EXTENSION_ATTRIBUTES = 100
MAX_SUB_ATTRIBUTES = 50
MAX_NAME_LENGTH = 128
MAX_DESCRIPTION_LENGTH = 2000
MAX_CANONICAL_VALUES = 200

# RFC 7643 §2.1: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA.
_ATTRNAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
# RFC 8141: "urn:" NID ":" NSS, without r-/q-/f-components; this server also refuses a
# trailing ":" (a path's attribute name follows the URN after one).
_URN = re.compile(
    r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:"
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=@/:]|%[0-9A-Fa-f]{2})*"
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=@/]|%[0-9A-Fa-f]{2})\Z",
    re.IGNORECASE,  # the "urn" scheme and the namespace are case-insensitive (RFC 8141)
)
# What a URN may hold to prefix attribute paths (RFC 7644 §3.4.2.2 ATTRPATH, as filters,
# sortBy and PATCH paths parse it) and to stand in a URL path segment (/Schemas/<id>).
_PATH_SAFE_URN = re.compile(r"urn:[A-Za-z0-9._:%+-]*[A-Za-z0-9._%+-]\Z", re.IGNORECASE)
# Namespaces only RFC 7643/7644 define schemas in.
_RESERVED_NAMESPACES = ("urn:ietf:params:scim:schemas:core:", "urn:ietf:params:scim:api:")
# Names that mean something else inside a resource, and are dropped when a client sends them.
RESERVED_ATTRIBUTE_NAMES = frozenset({"schemas", "id", "meta", "externalid", "groups", "password"})
_DOCUMENT_KEYS = {"id", "name", "description", "attributes", "schemas", "meta"}
_ATTRIBUTE_KEYS = {
    "name",
    "type",
    "multiValued",
    "required",
    "mutability",
    "returned",
    "caseExact",
    "uniqueness",
    "subAttributes",
    "canonicalValues",
    "referenceTypes",
    "description",
}


class InvalidSchemaDocument(ValueError):
    """A schema document that cannot be registered; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RegisteredExtension:
    """An extension schema an administrator registered for one resource type.

    ``document`` is its normalised RFC 7643 §7 schema (``id``, ``name``,
    ``description``, ``attributes`` with every characteristic spelled out).
    """

    urn: str
    resource_type: str
    document: dict

    @property
    def required(self) -> bool:
        """RFC 7643 §6: an extension with a required attribute must be on every resource."""
        return any(a.get("required") for a in self.document["attributes"])


def builtin_urns() -> tuple[str, ...]:
    return tuple(_builtin_documents())


def urn_problems(urn: Any, taken: Iterable[str] = ()) -> list[str]:
    """Why ``urn`` cannot name a new extension schema (empty when it can).

    ``taken``: the URNs of the other registered extensions; the built-in schemas are
    always taken. One URN may not be the prefix of another followed by ``:``, or
    ``urn:...:User:attr`` paths would name two attributes.
    """
    if not isinstance(urn, str) or not urn.strip():
        return ["'id' must be the schema's URN (a string such as 'urn:example:2.0:User')."]
    if len(urn) > MAX_URN_LENGTH:
        return [f"'id' may have at most {MAX_URN_LENGTH} characters."]
    if not _URN.match(urn):
        return [
            f"'id' “{urn}” is not a URN: use 'urn:<namespace>:<name>' (RFC 8141), without "
            "spaces, not ending with ':'."
        ]
    if not _PATH_SAFE_URN.match(urn):
        return [
            f"'id' “{urn}” has characters attribute paths cannot carry: filters, sortBy, "
            "PATCH paths and /Schemas/<id> need letters, digits and . _ : % + - only."
        ]
    lowered = urn.lower()
    if lowered.startswith(_RESERVED_NAMESPACES):
        return [f"'id' “{urn}” is in a namespace reserved for the SCIM specifications."]
    problems = []
    for other in (*builtin_urns(), *taken):
        other_lower = other.lower()
        if lowered == other_lower:
            problems.append(f"The schema “{other}” already exists (URNs are compared ignoring case).")
        elif lowered.startswith(other_lower + ":") or other_lower.startswith(lowered + ":"):
            problems.append(
                f"'id' “{urn}” and the schema “{other}” would make attribute paths ambiguous: "
                "one URN may not continue the other."
            )
    return problems


def _bool(attribute: dict, key: str, where: str, problems: list[str]) -> bool:
    value = attribute.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{where}: '{key}' must be true or false.")
        return False
    return value


def _choice(attribute: dict, key: str, choices, default: str, where: str, problems) -> str:
    value = attribute.get(key, default)
    if value not in choices:
        problems.append(f"{where}: '{key}' must be one of {', '.join(choices)} (got {value!r}).")
        return default
    return value


def _text(value: Any, key: str, where: str, limit: int, problems: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        problems.append(f"{where}: '{key}' must be text of at most {limit} characters.")
        return ""
    return value


def _canonical_value_ok(kind: str, value: Any) -> bool:
    if kind in ("string", "reference", "dateTime"):
        return isinstance(value, str) and bool(value)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def _attribute_definition(raw: Any, where: str, problems: list[str], *, sub: bool) -> dict | None:
    """One normalised attribute definition, or None when it is too broken to describe."""
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object.")
        return None
    unknown = sorted(set(raw) - _ATTRIBUTE_KEYS)
    if unknown:
        problems.append(
            f"{where}: unknown characteristic{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; use {', '.join(sorted(_ATTRIBUTE_KEYS))}."
        )
    name = raw.get("name")
    name_ok = isinstance(name, str) and (
        (_ATTRNAME.match(name) and len(name) <= MAX_NAME_LENGTH) or (sub and name == "$ref")
    )
    if not name_ok:
        problems.append(
            f"{where}: 'name' {name!r} is not an attribute name (RFC 7643 §2.1: a letter, then "
            f"letters, digits, '-' or '_'; at most {MAX_NAME_LENGTH} characters)."
        )
        return None
    where = f"{where} “{name}”"
    if not sub and name.lower() in RESERVED_ATTRIBUTE_NAMES:
        problems.append(f"{where}: '{name}' is reserved for every resource; choose another name.")
    kind = raw.get("type", "string")
    if kind == "binary":
        problems.append(f"{where}: type 'binary' is not supported by this server.")
    elif kind not in ATTRIBUTE_TYPES:
        problems.append(f"{where}: 'type' must be one of {', '.join(ATTRIBUTE_TYPES)} (got {kind!r}).")
        kind = "string"
    definition: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": _bool(raw, "multiValued", where, problems),
        "description": _text(raw.get("description"), "description", where, MAX_DESCRIPTION_LENGTH, problems),
        "required": _bool(raw, "required", where, problems),
        "caseExact": _bool(raw, "caseExact", where, problems),
        "mutability": _choice(raw, "mutability", MUTABILITIES, "readWrite", where, problems),
        "returned": _choice(raw, "returned", RETURNED, "default", where, problems),
    }
    uniqueness = raw.get("uniqueness", "none")
    if uniqueness in ("server", "global"):
        problems.append(
            f"{where}: uniqueness '{uniqueness}' is not enforced for extension attributes by "
            "this server; use 'none'."
        )
    elif uniqueness != "none":
        problems.append(f"{where}: 'uniqueness' must be 'none' (got {uniqueness!r}).")
    definition["uniqueness"] = "none"
    if definition["mutability"] == "writeOnly" and definition["returned"] != "never":
        problems.append(f"{where}: a writeOnly attribute is never returned; set returned to 'never'.")
    if definition["mutability"] == "readOnly" and definition["required"]:
        problems.append(
            f"{where}: a readOnly attribute cannot be required (clients cannot send it)."
        )
    if sub and definition["multiValued"]:
        problems.append(f"{where}: sub-attributes cannot be multi-valued.")
    if sub and definition["required"]:
        problems.append(f"{where}: required sub-attributes are not enforced by this server.")
    if sub and definition["mutability"] != "readWrite" and definition["mutability"] != "readOnly":
        problems.append(f"{where}: sub-attributes may be readWrite or readOnly only.")
    if sub and definition["returned"] not in ("default", "always"):
        problems.append(f"{where}: sub-attributes are returned with their attribute ('default').")
    if "canonicalValues" in raw:
        values = raw["canonicalValues"]
        if kind == "complex":
            problems.append(f"{where}: a complex attribute has no canonical values.")
        elif (
            not isinstance(values, list)
            or len(values) > MAX_CANONICAL_VALUES
            or not all(_canonical_value_ok(kind, v) for v in values)
        ):
            problems.append(
                f"{where}: 'canonicalValues' must be a list of at most {MAX_CANONICAL_VALUES} "
                f"{kind} values."
            )
        else:
            definition["canonicalValues"] = values
    if kind == "reference":
        types = raw.get("referenceTypes", ["external"])
        if not isinstance(types, list) or not types or not all(
            isinstance(t, str) and t.strip() for t in types
        ):
            problems.append(f"{where}: 'referenceTypes' must be a non-empty list of names.")
        else:
            definition["referenceTypes"] = types
    elif "referenceTypes" in raw:
        problems.append(f"{where}: 'referenceTypes' applies only to attributes of type reference.")
    subs = raw.get("subAttributes")
    if kind == "complex":
        if sub:
            problems.append(f"{where}: complex attributes cannot be nested (RFC 7643 §2.3.8).")
        elif not isinstance(subs, list) or not subs:
            problems.append(f"{where}: a complex attribute needs a non-empty 'subAttributes' list.")
        elif len(subs) > MAX_SUB_ATTRIBUTES:
            problems.append(f"{where}: at most {MAX_SUB_ATTRIBUTES} sub-attributes.")
        else:
            definition["subAttributes"] = _attribute_list(subs, where, problems, sub=True)
    elif subs is not None:
        problems.append(f"{where}: only complex attributes have 'subAttributes'.")
    return definition


def _attribute_list(raw: list, where: str, problems: list[str], *, sub: bool) -> list[dict]:
    definitions, seen = [], set()
    label = "subAttributes" if sub else "attributes"
    for index, item in enumerate(raw):
        definition = _attribute_definition(item, f"{where} {label}[{index}]".strip(), problems, sub=sub)
        if definition is None:
            continue
        if definition["name"].lower() in seen:
            problems.append(
                f"{where} {label}[{index}]: the name “{definition['name']}” is used twice "
                "(names are compared ignoring case).".strip()
            )
            continue
        seen.add(definition["name"].lower())
        definitions.append(definition)
    return definitions


def infer_resource_type(urn: str) -> str | None:
    """``User`` or ``Group`` when the URN's last part says so (``...:2.0:User``)."""
    last = urn.rsplit(":", 1)[-1] if isinstance(urn, str) else ""
    return last if last in RESOURCE_TYPE_NAMES else None


def parse_extension_document(
    document: Any, resource_type: str | None = None, *, taken: Iterable[str] = ()
) -> RegisteredExtension:
    """Validate an RFC 7643 §7 schema document for registration as an extension of
    ``resource_type`` (None: from the URN's last part); raise ``InvalidSchemaDocument``
    listing every problem. ``taken``: URNs of the other registered extensions."""
    if not isinstance(document, dict):
        raise InvalidSchemaDocument(["A schema document must be a JSON object."])
    problems: list[str] = []
    unknown = sorted(set(document) - _DOCUMENT_KEYS)
    if unknown:
        problems.append(
            f"Unknown member{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"a schema has {', '.join(sorted(_DOCUMENT_KEYS - {'schemas', 'meta'}))}."
        )
    urn = document.get("id")
    problems += urn_problems(urn, taken)
    if resource_type is None:
        resource_type = infer_resource_type(urn)
        if resource_type is None:
            problems.append(
                "Say which resource type the schema extends (User or Group); its URN does not "
                "end with ':User' or ':Group'."
            )
    elif resource_type not in RESOURCE_TYPE_NAMES:
        problems.append(f"The resource type must be User or Group, not {resource_type!r}.")
    name = _text(document.get("name"), "name", "The schema", MAX_NAME_LENGTH, problems)
    description = _text(
        document.get("description"), "description", "The schema", MAX_DESCRIPTION_LENGTH, problems
    )
    raw_attributes = document.get("attributes")
    attributes: list[dict] = []
    if not isinstance(raw_attributes, list) or not raw_attributes:
        problems.append("'attributes' must be a non-empty list of attribute definitions.")
    elif len(raw_attributes) > MAX_EXTENSION_ATTRIBUTES:
        problems.append(f"A schema may define at most {MAX_EXTENSION_ATTRIBUTES} attributes.")
    else:
        attributes = _attribute_list(raw_attributes, "", problems, sub=False)
    if problems:
        raise InvalidSchemaDocument(problems)
    for attribute in attributes:
        add_default_sub_attributes(attribute)  # RFC 7643 §2.4, as for the built-in schemas
    normalised = {
        "id": urn,
        "name": name or urn.rsplit(":", 1)[-1],
        "description": description,
        "attributes": attributes,
    }
    return RegisteredExtension(urn=urn, resource_type=resource_type, document=normalised)


# --- Keeping every process's view current --------------------------------------------

_UNLOADED = object()


@dataclass(frozen=True)
class _Registry:
    revision: Any
    extensions: tuple[RegisteredExtension, ...] = ()
    documents: dict[str, dict] = field(default_factory=dict)


_registry = _Registry(_UNLOADED)
_reload_lock = threading.Lock()
_source: dict[str, Callable] = {}


def set_extension_source(
    revision: Callable[[], Any], load: Callable[[], Iterable[RegisteredExtension]]
) -> None:
    """Install where registered extensions come from: ``revision()`` is a cheap value that
    changes whenever they change (compared for equality), ``load()`` returns them all."""
    global _registry
    _source["revision"], _source["load"] = revision, load
    _registry = _Registry(_UNLOADED, _registry.extensions, _registry.documents)


def install_extensions(extensions: Iterable[RegisteredExtension], revision: Any = _UNLOADED) -> None:
    """Make ``extensions`` the registered ones in this process (all resource types)."""
    global _registry
    extensions = tuple(extensions)
    for schema in RESOURCE_SCHEMAS.values():
        schema._view = schema._build(extensions)
    documents = {e.urn: copy.deepcopy(e.document) for e in extensions}
    _registry = _Registry(revision, extensions, documents)


# Inside ``checked_once()``: whether the revision was already checked there.
_scope: ContextVar[list[bool] | None] = ContextVar("scimgate_extension_scope", default=None)


@contextmanager
def checked_once() -> Iterator[None]:
    """Inside, ``refresh_extensions`` checks the revision at most once: a SCIM request
    (all of a Bulk request's operations included) sees one set of extensions and pays
    for one check."""
    token = _scope.set([False])
    try:
        yield
    finally:
        _scope.reset(token)


def refresh_extensions() -> bool:
    """Reload the registered extensions if the source's revision changed since the last
    load (one primary-key read otherwise). Call it where a request, task or write starts.
    Returns whether it reloaded."""
    if not _source:
        return False
    scope = _scope.get()
    if scope is not None:
        if scope[0]:
            return False
        scope[0] = True
    revision = _source["revision"]()
    if revision == _registry.revision:
        return False
    with _reload_lock:
        if revision == _registry.revision:
            return False
        # Read the revision before the rows: a change between the two makes the next
        # refresh load again rather than keep a stale set.
        install_extensions(_source["load"](), revision)
    return True


def forget_extensions() -> None:
    """Make the next ``refresh_extensions`` reload (as a process that never loaded would)."""
    global _registry
    _registry = _Registry(_UNLOADED, _registry.extensions, _registry.documents)


def registered_extensions() -> tuple[RegisteredExtension, ...]:
    return _registry.extensions
