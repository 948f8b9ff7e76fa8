"""Cursor pagination for every list: opaque ``next``/``previous`` links, stable under
inserts (no page skips or repeats rows as the queue changes), no COUNT."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-pk")

    def get_ordering(self, request, queryset, view):
        """The view's ``cursor_ordering(request)`` when it has one (an order that depends
        on the filters), else the class's."""
        chosen = getattr(view, "cursor_ordering", None)
        return tuple(chosen(request)) if chosen is not None else self.ordering

    def decode_cursor(self, request):
        """A cursor the API did not issue is a bad parameter (400), not a missing page."""
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: ["Not a cursor this API issued."]}) from None
