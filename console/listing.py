"""Filtered, keyset-paginated listings: one page of a filterset's rows, its total, and
the whole page or (for htmx) only its results fragment (``render_listing``).

Only keys in a selector's allow-list sort; anything else in ``?sort=`` falls
back to the default, so a hand-edited URL never reaches ``order_by``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_filters import FilterSet

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
class Sortable:
    """A listing ordered by the column header the operator chose."""

    columns: list[Column]
    keys: dict[str, SortKey]
    default: str


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


def search_term(filterset: FilterSet, field: str) -> str:
    """The free-text search the listing applied ("" when none). Like the listing, it
    ignores the other fields' errors: an invalid field is left out, the search is not."""
    filterset.is_valid()  # validates once; cleaned_data then holds the valid fields
    return filterset.form.cleaned_data.get(field) or ""


def respond(
    request: HttpRequest, template: str, context: dict, *, partial: str = "results"
) -> HttpResponse:
    """The whole page, or for an htmx swap only its ``partial``; one URL serves both."""
    name = f"{template}#{partial}" if wants_partial(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def render_listing(
    request: HttpRequest,
    template: str,
    filterset: FilterSet,
    *,
    key: Any = None,
    descending: bool = False,
    sortable: Sortable | None = None,
    queryset: QuerySet | None = None,
    cursor: Callable[[HttpRequest, str], Any] = cursor,
    search: str | None = None,
    extra: Callable[[KeysetPage], dict] | None = None,
) -> HttpResponse:
    """One page of ``filterset``'s rows (or of ``queryset``, the same rows narrowed)
    with its total, as the template's whole page or its ``results`` fragment.

    The order is ``key`` (``descending``), or the column the operator chose from
    ``sortable``. ``cursor`` parses the ``after``/``before`` ids (``int_cursor`` for
    integer keys). ``search`` names the free-text field, whose count stops sooner.
    ``extra(page)`` adds what the template needs about the page's rows.

    The context holds ``filter``, ``page``, ``count`` and ``capped``; a sortable
    listing adds ``sort`` and ``headers``.
    """
    rows = filterset.qs if queryset is None else queryset
    context: dict[str, Any] = {"filter": filterset}
    if sortable is not None:
        sort = resolve_sort(request.GET.get("sort"), sortable.keys, sortable.default)
        key, descending = sortable.keys[sort.key].expression, sort.descending
        context.update(sort=sort, headers=headers(sortable.columns, sort))
    page = selectors.keyset_page(
        rows,
        key=key,
        descending=descending,
        after=cursor(request, "after"),
        before=cursor(request, "before"),
        size=PAGE_SIZE,
    )
    count, capped = total(rows, page, search=search_term(filterset, search) if search else "")
    context.update(page=page, count=count, capped=capped)
    if extra is not None:
        context.update(extra(page))
    return respond(request, template, context)
