"""Sortable, keyset-paginated listings: which columns exist and which of them sort.

Only keys in a selector's allow-list sort; anything else in ``?sort=`` falls
back to the default, so a hand-edited URL never reaches ``order_by``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import HttpRequest

from provisioning.directory import selectors
from provisioning.directory.selectors import KeysetPage, SortKey

PAGE_SIZE = 50
# Counting stops here: a broad filter over 100,000 users never counts them all.
COUNT_CAP = 10_000
# A substring search is matched row by row across several columns; its count stops sooner
# ("More than 1000 users matching ..."), which keeps a common surname's page fast.
SEARCH_COUNT_CAP = 1_000


@dataclass(frozen=True)
class Column:
    label: str
    sort: str | None = None  # a key of the listing's sort keys
    numeric: bool = False


@dataclass(frozen=True)
class Sort:
    key: str
    descending: bool

    @property
    def param(self) -> str:
        return f"-{self.key}" if self.descending else self.key


def resolve_sort(value: str | None, keys: dict[str, SortKey], default: str) -> Sort:
    value = (value or "").strip()
    descending = value.startswith("-")
    key = value.removeprefix("-")
    if key not in keys:
        return Sort(default, False)
    return Sort(key, descending)


def headers(columns: list[Column], sort: Sort) -> list[dict]:
    """Each column's label, the ``sort`` value its link asks for and its ``aria-sort``."""
    result = []
    for column in columns:
        header = {"column": column, "param": None, "aria_sort": None}
        if column.sort:
            current = column.sort == sort.key
            descending_next = current and not sort.descending
            header["param"] = f"-{column.sort}" if descending_next else column.sort
            if current:
                header["aria_sort"] = "descending" if sort.descending else "ascending"
        result.append(header)
    return result


def total(queryset: QuerySet, page: KeysetPage, *, search: str = "") -> tuple[int, bool]:
    """``(count, capped)`` for a listing. A page with neither a previous nor a next page
    holds every match, so the common narrow search costs no second scan; an unfiltered
    list of users or groups reads its exact counter."""
    if page.previous_before is None and page.next_after is None:
        return len(page.items), False
    return selectors.count_capped(queryset, SEARCH_COUNT_CAP if search.strip() else COUNT_CAP)


def cursor(request: HttpRequest, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.GET.get(name, ""))
    except ValueError:
        return None


def int_cursor(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdecimal() and len(value) < 19 else None


def wants_partial(request: HttpRequest) -> bool:
    """An htmx swap gets the results fragment; a history restore needs the whole page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted
