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

    @property
    def is_complex(self) -> bool:
        return self.type == "complex"

    def sub(self, name: str) -> Attribute | None:
        return self.sub_attributes.get(name.lower())

    @classmethod
    def from_document(cls, doc: dict, urn: str) -> Attribute:
        subs = {
            s["name"].lower(): cls.from_document(s, urn) for s in doc.get("subAttributes", [])
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
        "externalid": Attribute(name="externalId", case_exact=True),
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
    for doc in (user, group, enterprise):
        for attr in doc["attributes"]:
            attr.setdefault("required", False)
            for sub in attr.get("subAttributes", []):
                sub.setdefault("required", False)
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
