"""A SCIM user document arranged for reading: labelled fields, multi-valued tables.

Values are returned as plain data; templates escape them. Nothing here
interprets what an IdP sent beyond choosing a label for it.
"""

from __future__ import annotations

import json
from typing import Any

from provisioning.scim.schema import ENTERPRISE_USER

CORE = [
    ("userName", "userName"),
    ("externalId", "externalId"),
    ("displayName", "Display name"),
    ("nickName", "Nickname"),
    ("title", "Title"),
    ("userType", "User type"),
    ("preferredLanguage", "Preferred language"),
    ("locale", "Locale"),
    ("timezone", "Time zone"),
    ("profileUrl", "Profile URL"),
]
NAME = [
    ("formatted", "Formatted"),
    ("honorificPrefix", "Prefix"),
    ("givenName", "Given name"),
    ("middleName", "Middle name"),
    ("familyName", "Family name"),
    ("honorificSuffix", "Suffix"),
]
ENTERPRISE = [
    ("employeeNumber", "Employee number"),
    ("costCenter", "Cost center"),
    ("organization", "Organization"),
    ("division", "Division"),
    ("department", "Department"),
]
MULTI_VALUED = [
    ("emails", "Emails"),
    ("phoneNumbers", "Phone numbers"),
    ("ims", "Instant messaging"),
    ("photos", "Photos"),
    ("roles", "Roles"),
    ("entitlements", "Entitlements"),
    ("x509Certificates", "X.509 certificates"),
]
ADDRESS_PARTS = ["streetAddress", "locality", "region", "postalCode", "country"]
SHOWN = (
    {key for key, _ in CORE}
    | {
        "name",
        "addresses",
        "active",
        "id",
        "meta",
        "schemas",
        "groups",
    }
    | {key for key, _ in MULTI_VALUED}
)


def text(value: Any) -> str:
    """A scalar as the IdP sent it; anything structured as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _fields(source: Any, labels: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not isinstance(source, dict):
        return []
    return [
        (label, text(source[key])) for key, label in labels if source.get(key) not in (None, "")
    ]


def _table(items: Any) -> dict | None:
    """Rows of a multi-valued attribute with the sub-attributes that occur, value first."""
    items = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    if not items:
        return None
    order = ["value", "display", "type", "primary"]
    keys = [k for k in order if any(k in item for item in items)]
    keys += sorted({k for item in items for k in item} - set(keys))
    return {
        "columns": keys,
        "rows": [[text(item[k]) if k in item else "" for k in keys] for item in items],
    }


def _addresses(items: Any) -> list[dict]:
    result = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        lines = [text(item["formatted"])] if item.get("formatted") else []
        if not lines:
            lines = [text(item[k]) for k in ADDRESS_PARTS if item.get(k)]
        result.append(
            {
                "type": text(item.get("type", "")),
                "primary": item.get("primary") is True,
                "lines": lines,
            }
        )
    return result


def user_sections(document: dict) -> dict:
    """Labelled sections of a SCIM user document for the detail page."""
    enterprise = document.get(ENTERPRISE_USER)
    manager = enterprise.get("manager") if isinstance(enterprise, dict) else None
    other_core = [
        (key, text(value))
        for key, value in document.items()
        if key not in SHOWN and not key.startswith("urn:")
    ]
    extensions = [
        (urn, [(key, text(value)) for key, value in body.items()])
        for urn, body in document.items()
        if urn.startswith("urn:") and urn != ENTERPRISE_USER and isinstance(body, dict)
    ]
    enterprise_other = []
    if isinstance(enterprise, dict):
        known = {key for key, _ in ENTERPRISE} | {"manager"}
        enterprise_other = [(k, text(v)) for k, v in enterprise.items() if k not in known]
    return {
        "core": _fields(document, CORE) + other_core,
        "name": _fields(document.get("name"), NAME),
        "multi_valued": [
            (label, table)
            for key, label in MULTI_VALUED
            if (table := _table(document.get(key))) is not None
        ],
        "addresses": _addresses(document.get("addresses")),
        "enterprise": _fields(enterprise, ENTERPRISE) + enterprise_other,
        "manager": {
            "value": text(manager.get("value", "")),
            "display": text(manager.get("displayName", "")),
        }
        if isinstance(manager, dict) and manager.get("value")
        else None,
        "extensions": extensions,
    }
