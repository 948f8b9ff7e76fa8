"""Directory changes arranged for reading: the rows ``console/audit/records.html`` shows.

A change record (and a held operation) names the resource it touched and the
members it added or removed. Each becomes a row with its attribute diff, its
member deltas (the first ``MEMBER_LIMIT`` of each, with the full count) and
links to the resources that still exist, looked up in two queries for the page.
"""

from __future__ import annotations

from django.urls import reverse

from provisioning.audit.models import ChangeRecord

from . import selectors
from .diff import record_diff

# Members listed per delta; a 100,000-member import stays readable.
MEMBER_LIMIT = 200


def member_reference(member: dict) -> tuple[str, str]:
    """``(type, id)`` of a member as a change record stores it (``{value, type}``)
    or as a held operation does (``{id, is_group}``)."""
    kind = member.get("type") or ("Group" if member.get("is_group") else "User")
    return kind, str(member.get("value") or member.get("id") or "")


def resource_href(resource_type: str, resource_id, names: dict[str, str]) -> str | None:
    """The console page of a user or group that still exists (is in ``names``), else None."""
    if str(resource_id) not in names:
        return None
    name = "console:user_detail" if resource_type == "User" else "console:group_detail"
    return reverse(name, args=[resource_id])


def existing_names(resources: list[tuple[str, str]]) -> dict[str, str]:
    """``{id: name}`` of those ``(type, id)`` resources that still exist (two queries)."""
    users = {rid for kind, rid in resources if kind == "User"}
    groups = {rid for kind, rid in resources if kind == "Group"}
    return selectors.resource_names(users, groups)


def member_rows(members: list[dict], names: dict[str, str]) -> list[dict]:
    """The first ``MEMBER_LIMIT`` members as rows for ``console/audit/members.html``:
    the name the change carried, else the resource's current name."""
    rows = []
    for member in (members or [])[:MEMBER_LIMIT]:
        kind, value = member_reference(member)
        rows.append(
            {
                "value": value,
                "type": kind,
                "display": member.get("display") or names.get(value, ""),
                "href": resource_href(kind, value, names),
            }
        )
    return rows


def shown_members(*deltas: list[dict]) -> list[tuple[str, str]]:
    """``(type, id)`` of the members ``member_rows`` shows from each delta."""
    return [member_reference(member) for delta in deltas for member in delta[:MEMBER_LIMIT]]


def record_rows(records: list[ChangeRecord]) -> list[dict]:
    """Change records as rows for ``console/audit/records.html`` (two queries in all)."""
    touched = [(record.resource_type, str(record.resource_id)) for record in records]
    for record in records:
        touched += shown_members(record.members_added, record.members_removed)
    names = existing_names(touched)
    return [
        {
            "record": record,
            "href": resource_href(record.resource_type, record.resource_id, names),
            "diff": record_diff(record.before, record.after, record.resource_type),
            "added": member_rows(record.members_added, names),
            "added_count": len(record.members_added),
            "removed": member_rows(record.members_removed, names),
            "removed_count": len(record.members_removed),
        }
        for record in records
    ]
