"""The console's navigation: sections, their pages, the role each needs, the counts they show.

A new page gets an entry here; ``count`` is for numbers that need an operator's
attention, such as pending operations, and is shown next to the link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from provisioning.events.selectors import streams_needing_attention_count

from . import oversight_selectors as oversight


@dataclass(frozen=True)
class Link:
    label: str
    url_name: str
    role: str = "viewer"
    count: Callable[[], int] | None = None


@dataclass(frozen=True)
class Section:
    label: str | None
    links: list[Link] = field(default_factory=list)


SECTIONS: list[Section] = [
    Section(None, [Link("Dashboard", "console:home")]),
    Section(
        "Directory",
        [
            Link("Users", "console:user_list"),
            Link("Groups", "console:group_list"),
            Link("Extension schemas", "console:schema_list"),
        ],
    ),
    Section(
        "Oversight",
        [
            Link("Pending operations", "console:pending_list", count=oversight.pending_count),
            Link("Flagged changes", "console:review_list", count=oversight.flagged_count),
            Link("Quarantines", "console:quarantine_list", count=oversight.quarantined_count),
        ],
    ),
    Section(
        "Access",
        [
            Link("SCIM clients", "console:client_list"),
            Link("Roles", "console:role_list"),
            Link("Policies", "console:policy_list"),
        ],
    ),
    Section(
        "Events",
        [
            Link("Event streams", "console:stream_list", count=streams_needing_attention_count),
            Link("Delivery log", "console:delivery_list"),
        ],
    ),
    Section(
        "Logs",
        [Link("Audit log", "console:audit_list"), Link("Request log", "console:request_list")],
    ),
]
