"""The console's navigation: sections, their pages, the role each needs, the counts they show.

Pages that later work adds (pending operations, flagged changes, clients,
roles, policies, audit log, request log) get an entry here when the page
exists; ``count`` is for numbers that need an operator's attention, such as
pending operations, and is shown next to the link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


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
        [Link("Users", "console:user_list"), Link("Groups", "console:group_list")],
    ),
    # Oversight: pending operations, flagged changes (their counts belong in ``count``).
    # Access: SCIM clients (quarantined count), roles, policies.
    # Logs: audit log, request log.
]
