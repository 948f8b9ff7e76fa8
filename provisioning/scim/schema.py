"""Schema definitions (RFC 7643) and attribute-path resolution.

The schema documents are django-scim2's, corrected where they disagree with the
RFC or with what this server stores (userName is required and unique, group
members carry ``display``). Everything that needs attribute characteristics
(filters, PATCH, projection, discovery) resolves paths through ``ResourceSchema``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

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


@cache
def schema_documents() -> dict[str, dict]:
    return _schema_documents()


class ResourceSchema:
    """Attributes of one resource type (core schema plus extensions)."""

    def __init__(self, name: str, endpoint: str, core: str, extensions: tuple[str, ...] = ()):
        self.name = name
        self.endpoint = endpoint
        self.core = core
        self.extensions = extensions
        docs = schema_documents()
        self.attributes: dict[str, dict[str, Attribute]] = {}
        # Common attributes belong to the core schema of each resource type.
        core_attrs = {k: replace(a, urn=core) for k, a in _common_attributes().items()}
        for a in docs[core]["attributes"]:
            core_attrs[a["name"].lower()] = Attribute.from_document(a, core)
        self.attributes[core.lower()] = core_attrs
        for ext in extensions:
            self.attributes[ext.lower()] = {
                a["name"].lower(): Attribute.from_document(a, ext) for a in docs[ext]["attributes"]
            }
        self._urns = {urn.lower(): urn for urn in (core, *extensions)}

    @property
    def schemas(self) -> tuple[str, ...]:
        return (self.core, *self.extensions)

    def canonical_urn(self, urn: str) -> str | None:
        return self._urns.get(urn.lower())

    def core_attribute(self, name: str) -> Attribute | None:
        return self.attributes[self.core.lower()].get(name.lower())

    def extension_attributes(self, urn: str) -> dict[str, Attribute]:
        return self.attributes[urn.lower()]

    def split_urn(self, path: str) -> tuple[str, str]:
        """Split ``urn:...:User:manager.value`` into (canonical URN, ``manager.value``).

        A path without a known URN prefix belongs to the core schema.
        """
        lowered = path.lower()
        for urn_lower, urn in sorted(self._urns.items(), key=lambda kv: -len(kv[0])):
            if lowered == urn_lower:
                return urn, ""
            if lowered.startswith(urn_lower + ":"):
                return urn, path[len(urn) + 1 :]
        if lowered.startswith("urn:"):
            raise InvalidPath(f"Unknown schema in attribute path '{path}'")
        return self.core, path

    def resolve(self, path: str) -> AttributePath:
        """Resolve ``[urn:]attr[.sub]`` to canonical attributes; unknown names are InvalidPath."""
        urn, rest = self.split_urn(path.strip())
        if not rest:
            raise InvalidPath(f"'{path}' names a schema, not an attribute")
        name, _, sub_name = rest.partition(".")
        attribute = self.attributes[urn.lower()].get(name.lower())
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
