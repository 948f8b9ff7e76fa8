"""Console pages for the audit trail: audit log search and export, change sets, the request log.

Everything here reads; the queries are ``provisioning.audit.selectors``'s
(through the filtersets) or ``console.selectors``'s. Listings page by keyset
on (time, id), newest first, and answer htmx with their results fragment.

Exports need the approver role. A viewer reads the same entries a page at a
time; an export hands over every matching change value (names, emails,
employee numbers of the whole directory) in one file, which is a bulk
disclosure we reserve for the operators already trusted to act on the log.
"""

from __future__ import annotations

import json

from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from provisioning.audit import selectors as audit_selectors
from provisioning.audit.models import ChangeSet

from . import listing, selectors
from .change_records import record_rows
from .diff import entry_diff
from .log_filters import RESOURCE_TYPE_CHOICES, AuditFilter, RequestLogFilter
from .permissions import has_role, require_role

NEWEST_FIRST = F("timestamp")
# Pagination cursors are not filters: exports and "export this" links drop them.
_CURSORS = ("after", "before")


def _filter_query(request: HttpRequest) -> str:
    query = request.GET.copy()
    for name in _CURSORS:
        query.pop(name, None)
    return query.urlencode()


def _pretty(body: str) -> str:
    """A stored (already redacted) body indented for reading; anything not JSON as it is."""
    if not body:
        return ""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


# --- Audit log -----------------------------------------------------------------------


@require_role("viewer")
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    """Search the audit log (configuration entries and directory change records) by
    operator, client, resource, action, time and free text, newest first."""
    filterset = AuditFilter(request.GET)
    log = filterset.log()
    page = log.page(
        after=request.GET.get("after"), before=request.GET.get("before"), size=listing.PAGE_SIZE
    )
    if page.previous_before is None and page.next_after is None:
        count, capped = len(page.items), False
    else:
        searching = bool(listing.search_term(filterset, "q"))
        count, capped = log.count(listing.SEARCH_COUNT_CAP if searching else listing.COUNT_CAP)
    context = {
        "filter": filterset,
        "page": page,
        "count": count,
        "capped": capped,
        "rows": log_rows(page.items),
        "filter_query": _filter_query(request),
        "can_export": has_role(request.user, "approver"),
    }
    return listing.respond(request, "console/audit/list.html", context)


def log_rows(items: list[audit_selectors.LogRow]) -> list[dict]:
    """Audit log rows as ``console/audit/list.html`` shows them, whichever kind."""
    rows = []
    for item in items:
        if item.entry is not None:
            entry = item.entry
            changes = entry.changes if isinstance(entry.changes, dict) else {}
            rows.append(
                {
                    "timestamp": entry.timestamp,
                    "action": entry.action,
                    "action_label": entry.get_action_display(),
                    "type": type_label(entry.content_type),
                    "object": entry.object_repr,
                    "link": _entry_link(entry),
                    "event": changes.get("event") if entry.action == entry.Action.ACCESS else None,
                    "changes": changes,
                    "changed": list(changes) if entry.action == entry.Action.UPDATE else [],
                    "operator": entry.actor,
                    "client": entry.scim_client,
                    "change_set_id": entry.change_set_id,
                }
            )
            continue
        record = item.record
        change_set = record.change_set
        action = audit_selectors.RECORD_ACTION_CODES.get(record.action, 1)
        rows.append(
            {
                "timestamp": record.created_at,
                "action": action,
                "action_label": _RECORD_ACTION_LABELS.get(record.action, record.action),
                "type": record.resource_type,
                "object": record.resource_name or str(record.resource_id),
                "link": None if record.action == "delete" else _record_link(record),
                "event": None,
                "changes": record.changed_attributes,
                "changed": record.changed_attributes if action == 1 else [],
                "operator": change_set.operator,
                "client": change_set.scim_client,
                "change_set_id": record.change_set_id,
            }
        )
    return rows


_RECORD_ACTION_LABELS = {"create": "create", "replace": "update", "patch": "update", "delete": "delete"}


def _record_link(record) -> str | None:
    name = "console:user_detail" if record.resource_type == "User" else "console:group_detail"
    argument = "user_id" if record.resource_type == "User" else "group_id"
    return reverse(name, kwargs={argument: record.resource_id})


def _export(request: HttpRequest, render_rows, content_type: str, extension: str) -> HttpResponse:
    filterset = AuditFilter(request.GET)
    if not filterset.is_valid():
        # Never export more than asked for: an invalid filter is an error, not "no filter".
        return HttpResponse(
            "Invalid filter: "
            + "; ".join(f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    response = StreamingHttpResponse(render_rows(filterset.log()), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


@require_role("approver")
@require_GET
def audit_export_csv(request: HttpRequest) -> HttpResponse:
    """The audit log of the current filter as CSV, streamed (constant memory)."""
    return _export(request, audit_selectors.export_log_csv, "text/csv; charset=utf-8", "csv")


@require_role("approver")
@require_GET
def audit_export_jsonl(request: HttpRequest) -> HttpResponse:
    """The audit log of the current filter as JSON Lines, streamed."""
    return _export(
        request, audit_selectors.export_log_jsonl, "application/jsonl; charset=utf-8", "jsonl"
    )


# What the log calls each kind of object: auth.User is an operator, not a directory user.
_TYPE_LABELS = {
    tuple(value.lower().split(".")) if "." in value else ("directory", value.lower()): label
    for value, label in RESOURCE_TYPE_CHOICES
}


def type_label(content_type) -> str:
    key = (content_type.app_label, content_type.model)
    return _TYPE_LABELS.get(key) or str(content_type.name).capitalize()


# Where an audit entry's object lives in the console, by content type.
_OBJECT_PAGES = {
    ("directory", "user"): ("console:user_detail", "user_id"),
    ("directory", "group"): ("console:group_detail", "group_id"),
    ("access", "scimclient"): ("console:client_detail", "client_id"),
    ("access", "role"): ("console:role_detail", "role_id"),
    ("events", "eventstream"): ("console:stream_detail", "stream_id"),
}


def _entry_link(entry) -> str | None:
    content_type = entry.content_type
    target = _OBJECT_PAGES.get((content_type.app_label, content_type.model))
    if target is None or entry.action == entry.Action.DELETE:
        return None
    name, argument = target
    try:
        return reverse(name, kwargs={argument: entry.object_pk})
    except NoReverseMatch:
        return None


@require_role("viewer")
@require_GET
def change_set_detail(request: HttpRequest, change_set_id: int) -> HttpResponse:
    """Who changed what, when and through which request, with a diff per resource."""
    change_set = selectors.change_set_get(change_set_id)
    if change_set is None:
        raise Http404("No such change set")
    entries = audit_selectors.audit_entries(change_set=change_set).order_by("id")
    context = {
        "change_set": change_set,
        "source_label": ChangeSet.Source(change_set.source).label
        if change_set.source in ChangeSet.Source.values
        else change_set.source,
        "request_json": json.dumps(change_set.request, indent=2, ensure_ascii=False)
        if change_set.request
        else "",
        "request_log": selectors.request_for_change_set(change_set),
        "records": record_rows(selectors.change_set_records(change_set)),
        "entries": [
            {
                "entry": entry,
                "href": _entry_link(entry),
                "type": type_label(entry.content_type),
                "diff": entry_diff(entry.changes),
            }
            for entry in entries
        ],
    }
    return render(request, "console/audit/change_set.html", context)


# --- Request log ---------------------------------------------------------------------


@require_role("viewer")
@require_GET
def request_list(request: HttpRequest) -> HttpResponse:
    """SCIM requests by client, status class, method, path and time, newest first."""
    filterset = RequestLogFilter(request.GET)
    return listing.render_listing(
        request,
        "console/requests/list.html",
        filterset,
        queryset=filterset.qs.defer("request_body", "response_body"),
        key=NEWEST_FIRST,
        descending=True,
        cursor=listing.int_cursor,
    )


@require_role("viewer")
@require_GET
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    """One logged request: summary, and the (stored redacted) bodies pretty-printed."""
    row = selectors.request_log_get(request_id)
    if row is None:
        raise Http404("No such request")
    change_sets = audit_selectors.change_sets(correlation_id=row.correlation_id)[:20]
    context = {
        "row": row,
        "request_body": _pretty(row.request_body),
        "response_body": _pretty(row.response_body),
        "change_sets": list(change_sets),
    }
    return render(request, "console/requests/detail.html", context)
