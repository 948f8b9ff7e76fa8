"""Before/after differences, arranged for reading on the change set page.

A change record stores snapshots of the resource (``{"document": {...}, "version": ...}``);
an audit entry stores ``{field: [old, new]}``. Both become rows of attribute,
kind (added, removed, changed) and the two values as text. Templates escape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioning.scim.resources import HIDDEN_VALUE, mask_hidden

from .attributes import text

# Snapshot keys other than the document worth showing when they change.
_META = ("version", "source")
_MEMBERS = "members"


@dataclass(frozen=True)
class AttributeChange:
    name: str
    kind: str  # "added", "removed" or "changed"
    before: str | None
    after: str | None


def _flatten(document: dict) -> dict[str, Any]:
    """One level of complex attributes and extensions opened up: ``name.givenName``,
    ``urn:...:User:department``; multi-valued attributes stay whole."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key == "schemas":
            continue
        if isinstance(value, dict) and value:
            separator = ":" if key.startswith("urn:") else "."
            for inner, inner_value in value.items():
                flat[f"{key}{separator}{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def compare(before: dict | None, after: dict | None) -> list[AttributeChange]:
    """Attribute-level differences between two flat-ish dicts, in attribute order."""
    before, after = before or {}, after or {}
    rows = []
    for key in sorted(
        before.keys() | after.keys(), key=lambda k: (k.startswith("urn:"), k.lower())
    ):
        had, has = (
            key in before and before[key] is not None,
            key in after and after[key] is not None,
        )
        if had and has:
            if before[key] != after[key]:
                rows.append(AttributeChange(key, "changed", text(before[key]), text(after[key])))
        elif has:
            rows.append(AttributeChange(key, "added", None, text(after[key])))
        elif had:
            rows.append(AttributeChange(key, "removed", text(before[key]), None))
    return rows


def record_diff(
    before: dict | None, after: dict | None, resource_type: str = ""
) -> list[AttributeChange]:
    """The attribute changes of a change record, from its before and after snapshots.

    Membership is left out: the record's ``members_added``/``members_removed`` are
    the exact delta and are shown as lists of links. Values never returned (registered
    extension attributes with ``returned: never``) show as changed, not as what they are.
    """

    hidden: set[str] = set()

    def view(snapshot: dict | None) -> dict | None:
        if snapshot is None:
            return None
        document = snapshot.get("document") or {}
        masked = _flatten(mask_hidden(resource_type, document))
        flat = _flatten({k: v for k, v in document.items() if k != _MEMBERS})
        hidden.update(key for key, value in masked.items() if value == HIDDEN_VALUE)
        for key in _META:
            if key in snapshot:
                flat[f"meta.{key}"] = snapshot[key]
        return flat

    # Compared on the values, shown masked: that it changed, never what it is.
    rows = compare(view(before), view(after))
    return [
        AttributeChange(
            row.name,
            row.kind,
            None if row.before is None else HIDDEN_VALUE,
            None if row.after is None else HIDDEN_VALUE,
        )
        if row.name in hidden
        else row
        for row in rows
    ]


def entry_diff(changes: Any) -> list[AttributeChange]:
    """django-auditlog's ``{field: [old, new]}`` (or an m2m description) as rows."""
    if not isinstance(changes, dict):
        return []
    rows = []
    for field_name, value in sorted(changes.items()):
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = value
            old = None if old in (None, "None") else old
            new = None if new in (None, "None") else new
            kind = "added" if old is None else "removed" if new is None else "changed"
            rows.append(
                AttributeChange(
                    field_name,
                    kind,
                    None if old is None else text(old),
                    None if new is None else text(new),
                )
            )
        else:
            rows.append(AttributeChange(field_name, "changed", None, text(value)))
    return rows
