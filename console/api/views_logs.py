"""Read-only endpoints of the management API: the audit log (search, change sets, streamed
export with incremental pulls), the request log, and the directory's users and groups.

Each reads what the console's page reads, through the same filtersets and selectors:
the audit log is ``AuditLog`` (auditlog entries and directory change records, one
timeline, paged by its own row cursors ``e12``/``r34``); users and groups page by the
directory's keyset on the console's sort keys; the request log and pending operations
use the API's cursor pagination. Every list answers ``{"next", "previous", "results"}``.
"""

from __future__ import annotations

import uuid

from django.http import Http404, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from console import listing, oversight_selectors
from console import selectors as console_selectors
from console.change_records import record_rows
from console.diff import entry_diff
from console.filters import GroupFilter, UserFilter
from console.log_filters import (
    ACTION_CHOICES,
    METHOD_CHOICES,
    RESOURCE_TYPE_CHOICES,
    STATUS_CLASS_CHOICES,
    AuditFilter,
    RequestLogFilter,
)
from console.views import GROUP_LISTING, USER_LISTING
from console.views_audit import _pretty, type_label
from provisioning.audit import selectors as audit_selectors
from provisioning.audit.models import ChangeRecord, ChangeSet, RequestLog
from provisioning.directory import selectors as directory_selectors
from provisioning.scim import resources
from provisioning.scim.resources import scim_base_url
from provisioning.scim.schema import refresh_extensions

from .base import ApiView
from .schema import ErrorSerializer
from .serializers_logs import (
    AuditLogPageSerializer,
    ChangeSetSerializer,
    DirectoryGroupDetailSerializer,
    DirectoryUserDetailSerializer,
    GroupMemberPageSerializer,
    GroupPageSerializer,
    RequestLogDetailSerializer,
    RequestLogSerializer,
    UserPageSerializer,
)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_ACTIONS = {0: "create", 1: "update", 2: "delete", 3: "access"}

# --- Parameters ---------------------------------------------------------------------------


def _query(name: str, kind=OpenApiTypes.STR, description: str = "", **extra) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, required=False, description=description, **extra)


PAGE_SIZE_PARAM = _query(
    "page_size", OpenApiTypes.INT, f"Rows per page, 1 to {MAX_PAGE_SIZE} (default {PAGE_SIZE})."
)
AUDIT_FILTERS = [
    _query("q", description="Free text in changed values, names and ids."),
    _query("actor", description="An operator's username (case-insensitive)."),
    _query("client", OpenApiTypes.UUID, "A SCIM client's id."),
    _query(
        "resource_type",
        description="What the row is about (directory.membership: group member changes).",
        enum=[value for value, _label in RESOURCE_TYPE_CHOICES],
    ),
    _query("resource", description="A resource's id (UUID or number), userName or displayName."),
    _query(
        "action",
        description="create, update (a replace or a patch), delete, or access (sign-in and security).",
        enum=[value for value, _label in ACTION_CHOICES],
    ),
    _query("since", OpenApiTypes.DATETIME, "From this time (inclusive, ISO 8601; UTC if no offset)."),
    _query("until", OpenApiTypes.DATETIME, "Until this time (exclusive)."),
]
LOG_CURSORS = [
    _query("after", description="A row's cursor (e12, r34): the page of older rows after it."),
    _query("before", description="A row's cursor: the page of newer rows before it."),
]
NEWER_THAN = _query(
    "newer_than",
    description="A row's cursor (the cursor column of the last row you exported): only the "
    "rows after it in the log's order, oldest first. Keep the last row's cursor and pass it "
    "next time to pull only what was written since: no row is repeated or left out. Unknown "
    "cursor: 400.",
)
UUID_CURSORS = [
    _query("after", OpenApiTypes.UUID, "The last row's id of the previous page (use next)."),
    _query("before", OpenApiTypes.UUID, "The first row's id of the next page (use previous)."),
]
MEMBER_CURSORS = [
    _query("after", OpenApiTypes.INT, "A membership id (use next)."),
    _query("before", OpenApiTypes.INT, "A membership id (use previous)."),
]


def _sort_param(keys: dict, default: str) -> OpenApiParameter:
    return _query(
        "sort",
        description=f"A column, descending with a leading '-' (default {default}).",
        enum=[prefix + key for key in keys for prefix in ("", "-")],
    )


# --- Helpers -----------------------------------------------------------------------------


def _valid(filterset):
    """The filterset, validated: an invalid filter is a 400, never "no filter"."""
    if not filterset.is_valid():
        raise ValidationError({name: list(errors) for name, errors in filterset.errors.items()})
    return filterset


def _page_size(request: Request) -> int:
    value = request.query_params.get("page_size", "")
    if not value:
        return PAGE_SIZE
    if not value.isdecimal() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise ValidationError({"page_size": [f"A number from 1 to {MAX_PAGE_SIZE}."]})
    return int(value)


def _cursor(request: Request, name: str, parse):
    """The ``after``/``before`` parameter parsed, None when absent; unparseable: 400."""
    value = request.query_params.get(name, "")
    if not value:
        return None
    parsed = parse(value)
    if parsed is None:
        raise ValidationError({name: ["Not a cursor this API issued."]})
    return parsed


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _int(value: str) -> int | None:
    return int(value) if value.isdecimal() and len(value) < 19 else None


def _row_id(value) -> int:
    """A numeric id from the path (any sign, any length): outside the ids rows can have, 404."""
    number = int(value)
    if not 0 < number < 2**63:
        raise Http404("No such row.")
    return number


def _path_id(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.INT, OpenApiParameter.PATH)


def _log_cursor(value: str) -> str | None:
    return value if audit_selectors.parse_log_cursor(value) is not None else None


def _links(request: Request, next_after, previous_before) -> dict:
    """``next``/``previous`` URLs of a keyset page: this request with ``after`` (or
    ``before``) set to the boundary row's cursor."""
    url = request.build_absolute_uri()
    url = remove_query_param(remove_query_param(url, "after"), "before")
    return {
        "next": replace_query_param(url, "after", next_after) if next_after is not None else None,
        "previous": replace_query_param(url, "before", previous_before)
        if previous_before is not None
        else None,
    }


def _client(client) -> dict | None:
    return {"id": client.pk, "name": client.name} if client is not None else None


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def _changes(rows) -> list[dict]:
    return [{"attribute": r.name, "kind": r.kind, "before": r.before, "after": r.after} for r in rows]


# --- Audit log ---------------------------------------------------------------------------


def audit_log_rows(items: list[audit_selectors.LogRow]) -> list[dict]:
    """A page of the audit log as the API shows it. The page's change records are read
    again with their snapshots (one query) for their changes."""
    record_ids = [item.id for item in items if item.record is not None]
    full = ChangeRecord.objects.only(
        "id", "resource_type", "before", "after", "members_added", "members_removed"
    ).in_bulk(record_ids)
    rows = []
    for item in items:
        if item.entry is not None:
            entry = item.entry
            rows.append(
                {
                    "cursor": item.key,
                    "kind": item.kind,
                    "id": entry.pk,
                    "timestamp": entry.timestamp,
                    "action": _ACTIONS.get(entry.action, str(entry.action)),
                    "operation": None,
                    "object": {
                        "type": type_label(entry.content_type),
                        "id": entry.object_pk,
                        "name": entry.object_repr,
                    },
                    "operator": _username(entry.actor),
                    "client": _client(entry.scim_client),
                    "change_set_id": entry.change_set_id,
                    "correlation_id": entry.cid,
                    "changes": entry.changes if isinstance(entry.changes, dict) else {},
                }
            )
            continue
        record = item.record
        change_set = record.change_set
        rows.append(
            {
                "cursor": item.key,
                "kind": item.kind,
                "id": record.pk,
                "timestamp": record.created_at,
                "action": _ACTIONS[audit_selectors.RECORD_ACTION_CODES.get(record.action, 1)],
                "operation": record.action,
                "object": {
                    "type": record.resource_type,
                    "id": str(record.resource_id),
                    "name": record.resource_name,
                },
                "operator": _username(change_set.operator),
                "client": _client(change_set.scim_client),
                "change_set_id": record.change_set_id,
                "correlation_id": str(change_set.correlation_id),
                "changes": audit_selectors.record_changes(full[record.pk]),
            }
        )
    return rows


class AuditLogList(ApiView):
    """Search the audit log with the console's filters: configuration changes (audit
    entries) and directory changes (one change record per resource a change set touched)
    as one timeline, newest first. Rows page by their own cursors (``after``/``before``;
    follow ``next``), which stay stable while rows are written."""

    pagination_class = None

    @extend_schema(
        parameters=[*AUDIT_FILTERS, *LOG_CURSORS, PAGE_SIZE_PARAM],
        responses={200: AuditLogPageSerializer, 400: ErrorSerializer},
        operation_id="audit_log_list",
        tags=["audit log"],
    )
    def get(self, request: Request) -> Response:
        filterset = _valid(AuditFilter(request.query_params))
        after = _cursor(request, "after", _log_cursor)
        before = _cursor(request, "before", _log_cursor)
        page = filterset.log().page(after=after, before=before, size=_page_size(request))
        data = {**_links(request, page.next_after, page.previous_before), "results": audit_log_rows(page.items)}
        return Response(AuditLogPageSerializer(data).data)


class _AuditLogExport(ApiView):
    """The audit log under the console's filters, streamed in constant memory, as the
    console's export: newest first, or with ``newer_than`` only the rows written after
    that cursor, oldest first (an incremental pull). Every row carries its ``cursor``.

    A row becomes visible when its transaction commits; a write still in progress when
    you pull, stamped before the newest row you received, is not in a later pull. Pull
    from a few seconds back (``until``), or accept that window."""

    required_role = "approver"
    pagination_class = None
    media_type: str
    extension: str

    def perform_content_negotiation(self, request, force=False):
        # The export is text/csv or application/jsonl whatever Accept says; errors are JSON.
        return super().perform_content_negotiation(request, force=True)

    def render_rows(self, log, newer_than):
        raise NotImplementedError

    def get(self, request: Request):
        log = _valid(AuditFilter(request.query_params)).log()
        newer_than = request.query_params.get("newer_than") or None
        if newer_than is not None and (_log_cursor(newer_than) is None or not log.knows(newer_than)):
            raise ValidationError({"newer_than": ["No row of the audit log has this cursor."]})
        response = StreamingHttpResponse(
            self.render_rows(log, newer_than), content_type=f"{self.media_type}; charset=utf-8"
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{self.extension}"'
        response["Cache-Control"] = "no-store"
        return response


class AuditLogExportCsv(_AuditLogExport):
    media_type, extension = "text/csv", "csv"

    def render_rows(self, log, newer_than):
        return audit_selectors.export_log_csv(log, newer_than=newer_than)

    @extend_schema(
        parameters=[*AUDIT_FILTERS, NEWER_THAN],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="CSV, header first (formula-like cells prefixed with ').",
            ),
            400: ErrorSerializer,
        },
        operation_id="audit_log_export_csv",
        tags=["audit log"],
    )
    def get(self, request: Request):
        return super().get(request)


class AuditLogExportJsonl(_AuditLogExport):
    media_type, extension = "application/jsonl", "jsonl"

    def render_rows(self, log, newer_than):
        return audit_selectors.export_log_jsonl(log, newer_than=newer_than)

    @extend_schema(
        parameters=[*AUDIT_FILTERS, NEWER_THAN],
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR, description="JSON Lines: one object per row."
            ),
            400: ErrorSerializer,
        },
        operation_id="audit_log_export_jsonl",
        tags=["audit log"],
    )
    def get(self, request: Request):
        return super().get(request)


def _member_rows(rows: list[dict]) -> list[dict]:
    return [
        {"id": m["value"], "type": m["type"], "display": m["display"] or "", "exists": m["href"] is not None}
        for m in rows
    ]


class ChangeSetDetail(ApiView):
    """One change set: who changed what, when and through which request, with the
    per-resource diff and member deltas the console's change set page shows."""

    @extend_schema(
        parameters=[_path_id("change_set_id")],
        responses=ChangeSetSerializer,
        operation_id="change_sets_retrieve",
        tags=["audit log"],
    )
    def get(self, request: Request, change_set_id: str) -> Response:
        change_set = console_selectors.change_set_get(_row_id(change_set_id))
        if change_set is None:
            raise Http404("No such change set.")
        request_log = console_selectors.request_for_change_set(change_set)
        records = record_rows(console_selectors.change_set_records(change_set))
        entries = audit_selectors.audit_entries(change_set=change_set).order_by("id")
        data = {
            "id": change_set.pk,
            "created_at": change_set.created_at,
            "source": change_set.source,
            "source_label": ChangeSet.Source(change_set.source).label
            if change_set.source in ChangeSet.Source.values
            else change_set.source,
            "actor": change_set.actor_repr,
            "operator": _username(change_set.operator),
            "client": _client(change_set.scim_client),
            "correlation_id": change_set.correlation_id,
            "remote_addr": change_set.remote_addr,
            "request": change_set.request,
            "request_log": None
            if request_log is None
            else {
                "id": request_log.pk,
                "method": request_log.method,
                "path": request_log.path,
                "status": request_log.status,
                "timestamp": request_log.timestamp,
            },
            "records": [
                {
                    "id": row["record"].pk,
                    "cursor": f"r{row['record'].pk}",
                    "action": row["record"].action,
                    "resource_type": row["record"].resource_type,
                    "resource_id": row["record"].resource_id,
                    "resource_name": row["record"].resource_name,
                    "exists": row["href"] is not None,
                    "diff": _changes(row["diff"]),
                    "members_added": _member_rows(row["added"]),
                    "members_added_count": row["added_count"],
                    "members_removed": _member_rows(row["removed"]),
                    "members_removed_count": row["removed_count"],
                }
                for row in records
            ],
            "entries": [
                {
                    "id": entry.pk,
                    "cursor": f"e{entry.pk}",
                    "action": _ACTIONS.get(entry.action, str(entry.action)),
                    "object": {
                        "type": type_label(entry.content_type),
                        "id": entry.object_pk,
                        "name": entry.object_repr,
                    },
                    "diff": _changes(entry_diff(entry.changes)),
                }
                for entry in entries
            ],
        }
        return Response(ChangeSetSerializer(data).data)


# --- Request log -------------------------------------------------------------------------


def _request_data(row: RequestLog) -> dict:
    return {
        "id": row.pk,
        "timestamp": row.timestamp,
        "correlation_id": row.correlation_id,
        "client": _client(row.scim_client),
        "client_id": row.scim_client_id,
        "token_prefix": row.token_prefix,
        "method": row.method,
        "path": row.path,
        "query": row.query,
        "status": row.status,
        "latency_ms": row.latency_ms,
        "remote_addr": row.remote_addr,
        "request_size": row.request_size,
        "response_size": row.response_size,
    }


class RequestLogList(ApiView):
    """SCIM requests with the console's filters (client, status class, method, path,
    time), newest first. Bodies are in the detail."""

    queryset = RequestLog.objects.none()

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-timestamp", "-id")

    @extend_schema(
        parameters=[
            _query("client", OpenApiTypes.UUID, "A SCIM client's id."),
            _query("status", description="The status class: 2, 3, 4 or 5 (for 2xx ... 5xx).",
                   enum=[value for value, _label in STATUS_CLASS_CHOICES]),
            _query("method", description="The HTTP method.", enum=[value for value, _label in METHOD_CHOICES]),
            _query("path", description="A substring of the path."),
            _query("since", OpenApiTypes.DATETIME, "From this time (inclusive)."),
            _query("until", OpenApiTypes.DATETIME, "Until this time (exclusive)."),
        ],
        responses=RequestLogSerializer(many=True),
        operation_id="request_log_list",
        tags=["request log"],
    )
    def get(self, request: Request) -> Response:
        filterset = _valid(RequestLogFilter(request.query_params))
        queryset = filterset.qs.defer("request_body", "response_body")
        page = self.paginate_queryset(queryset)
        rows = RequestLogSerializer([_request_data(row) for row in page], many=True).data
        return self.get_paginated_response(rows)


class RequestLogDetail(ApiView):
    """One logged SCIM request with its bodies as stored (secrets redacted when it was
    logged; JSON indented as the console shows it) and the change sets it made."""

    @extend_schema(
        parameters=[_path_id("request_id")],
        responses=RequestLogDetailSerializer,
        operation_id="request_log_retrieve",
        tags=["request log"],
    )
    def get(self, request: Request, request_id: str) -> Response:
        row = console_selectors.request_log_get(_row_id(request_id))
        if row is None:
            raise Http404("No such request.")
        change_sets = audit_selectors.change_sets(correlation_id=row.correlation_id)[:20]
        data = {
            **_request_data(row),
            "request_body": _pretty(row.request_body),
            "request_truncated": row.request_truncated,
            "response_body": _pretty(row.response_body),
            "response_truncated": row.response_truncated,
            "escaped": row.escaped,
            "change_sets": [
                {"id": cs.pk, "created_at": cs.created_at, "source": cs.source} for cs in change_sets
            ],
        }
        return Response(RequestLogDetailSerializer(data).data)


# --- Directory (read-only) ---------------------------------------------------------------


def _sorted_page(request: Request, rows, sortable: listing.Sortable):
    value = request.query_params.get("sort", "")
    if value and value.removeprefix("-") not in sortable.keys:
        raise ValidationError({"sort": [f"One of {', '.join(sortable.keys)}, optionally with '-'."]})
    sort = listing.resolve_sort(value, sortable.keys, sortable.default)
    return directory_selectors.keyset_page(
        rows,
        key=sortable.keys[sort.key].expression,
        descending=sort.descending,
        after=_cursor(request, "after", _uuid),
        before=_cursor(request, "before", _uuid),
        size=_page_size(request),
    )


def _source(resource) -> dict | None:
    return {"id": resource.source_id, "name": resource.source.name} if resource.source_id else None


def _user_data(user) -> dict:
    return {
        "id": user.pk,
        "user_name": user.user_name,
        "display_name": user.display_name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "email": user.primary_email,
        "external_id": user.external_id,
        # Only an explicit active: false deactivates (as the console lists them).
        "active": user.active is not False,
        "source": _source(user),
        "created": user.created,
        "last_modified": user.last_modified,
    }


def _history(records) -> list[dict]:
    return [
        {
            "id": record.pk,
            "created_at": record.created_at,
            "action": record.action,
            "changed_attributes": record.changed_attributes,
            "members_added_count": len(record.members_added),
            "members_removed_count": len(record.members_removed),
            "actor": record.change_set.actor_repr,
            "source": record.change_set.source,
            "change_set_id": record.change_set_id,
        }
        for record in records
    ]


def _held(held) -> dict:
    return {
        "held": [
            {
                "id": pending.pk,
                "status": pending.status,
                "action": pending.action,
                "client": _client(pending.client),
                "created_at": pending.created_at,
            }
            for pending in held.items
        ],
        "held_count": held.count,
    }


class UserList(ApiView):
    """Users with the console's search and filters: ``q`` matches a substring of userName,
    displayName, given or family name, primary email or externalId; ``group`` keeps the
    group's direct members. Sorted by the console's columns.

    Read-only: identity providers write users and groups through the SCIM API
    (RFC 7644), which polices and audits every change.
    """

    pagination_class = None

    @extend_schema(
        parameters=[
            _query("q", description="A substring of userName, names, primary email or externalId."),
            _query("active", description="yes: active; no: deactivated.", enum=["yes", "no"]),
            _query("source", OpenApiTypes.UUID, "The SCIM client that created them."),
            _query("group", description="Direct members of this group (its id or displayName)."),
            _sort_param(directory_selectors.USER_SORT_KEYS, "userName"),
            *UUID_CURSORS,
            PAGE_SIZE_PARAM,
        ],
        responses={200: UserPageSerializer, 400: ErrorSerializer},
        operation_id="users_list",
        tags=["directory"],
    )
    def get(self, request: Request) -> Response:
        filterset = _valid(UserFilter(request.query_params))
        page = _sorted_page(request, filterset.qs, USER_LISTING)
        data = {
            **_links(request, page.next_after, page.previous_before),
            "results": [_user_data(user) for user in page.items],
        }
        return Response(UserPageSerializer(data).data)


class UserDetail(ApiView):
    """One user as the console's user page shows it: its attributes, its direct and
    indirect groups, its SCIM document, its latest changes and the identity providers'
    held changes to it. A user awaiting its scheduled deletion is shown too.

    Read-only: identity providers write users and groups through the SCIM API
    (RFC 7644), which polices and audits every change.
    """

    @extend_schema(responses=DirectoryUserDetailSerializer, operation_id="users_retrieve", tags=["directory"])
    def get(self, request: Request, user_id: uuid.UUID) -> Response:
        refresh_extensions()  # registered extension schemas decide which values are shown
        user = directory_selectors.user_get(user_id, retired=True)
        if user is None:
            raise Http404("No such user.")
        base = scim_base_url(request._request)
        memberships = directory_selectors.groups_of_users([user.pk]).get(user.pk, [])
        group_entries = [
            {"value": str(gid), "$ref": f"{base}/Groups/{gid}", "display": name, "type": kind}
            for gid, name, kind in memberships
        ]
        data = {
            **_user_data(user),
            "version": user.version,
            "scheduled_deletion": user.deletion_due,
            "manager": user.manager_id or None,
            "groups": [{"id": gid, "display_name": name, "kind": kind} for gid, name, kind in memberships],
            "scim": resources.user_document(user, base, group_entries),
            "history": _history(console_selectors.resource_history("User", user.pk)),
            **_held(oversight_selectors.held_idp_changes("User", user.pk)),
        }
        return Response(DirectoryUserDetailSerializer(data).data)


def _group_data(group, counts: dict | None = None) -> dict:
    if counts is None:
        counts = {"users": group.member_count - group.group_count, "groups": group.group_count}
    return {
        "id": group.pk,
        "display_name": group.display_name,
        "external_id": group.external_id,
        "users": counts["users"],
        "nested_groups": counts["groups"],
        "source": _source(group),
        "created": group.created,
        "last_modified": group.last_modified,
    }


class GroupList(ApiView):
    """Groups with the console's search (``q``: a substring of displayName or
    externalId) and their direct member counts.

    Read-only: identity providers write users and groups through the SCIM API
    (RFC 7644), which polices and audits every change.
    """

    pagination_class = None

    @extend_schema(
        parameters=[
            _query("q", description="A substring of displayName or externalId."),
            _sort_param(directory_selectors.GROUP_SORT_KEYS, "displayName"),
            *UUID_CURSORS,
            PAGE_SIZE_PARAM,
        ],
        responses={200: GroupPageSerializer, 400: ErrorSerializer},
        operation_id="groups_list",
        tags=["directory"],
    )
    def get(self, request: Request) -> Response:
        filterset = _valid(GroupFilter(request.query_params))
        page = _sorted_page(request, filterset.qs, GROUP_LISTING)
        data = {
            **_links(request, page.next_after, page.previous_before),
            "results": [_group_data(group) for group in page.items],
        }
        return Response(GroupPageSerializer(data).data)


def _group_or_404(group_id: uuid.UUID):
    group = directory_selectors.group_get(group_id)
    if group is None:
        raise Http404("No such group.")
    return group


class GroupDetail(ApiView):
    """One group as the console's group page shows it: counts, nested and parent groups,
    latest changes and held changes. Its members are a list of their own
    (``/groups/{id}/members``).

    Read-only: identity providers write users and groups through the SCIM API
    (RFC 7644), which polices and audits every change.
    """

    @extend_schema(
        responses=DirectoryGroupDetailSerializer, operation_id="groups_retrieve", tags=["directory"]
    )
    def get(self, request: Request, group_id: uuid.UUID) -> Response:
        group = _group_or_404(group_id)
        refs = [
            {"id": m.member_group.pk, "display_name": m.member_group.display_name}
            for m in directory_selectors.group_member_groups(group.pk)
        ]
        parents = [
            {"id": m.group.pk, "display_name": m.group.display_name}
            for m in directory_selectors.group_parent_groups(group.pk)
        ]
        data = {
            **_group_data(group, directory_selectors.group_member_counts(group.pk)),
            "version": group.version,
            "member_groups": refs,
            "parent_groups": parents,
            "history": _history(console_selectors.resource_history("Group", group.pk)),
            **_held(oversight_selectors.held_idp_changes("Group", group.pk)),
        }
        return Response(DirectoryGroupDetailSerializer(data).data)


class GroupMemberList(ApiView):
    """A group's direct members in the order they were added, a page at a time (as fast
    for the last page of 100,000 members as for the first).

    Read-only: identity providers write users and groups through the SCIM API
    (RFC 7644), which polices and audits every change.
    """

    pagination_class = None

    @extend_schema(
        parameters=[*MEMBER_CURSORS, PAGE_SIZE_PARAM],
        responses={200: GroupMemberPageSerializer, 400: ErrorSerializer},
        operation_id="groups_members_list",
        tags=["directory"],
    )
    def get(self, request: Request, group_id: uuid.UUID) -> Response:
        group = _group_or_404(group_id)
        page = directory_selectors.group_member_page(
            group.pk,
            after=_cursor(request, "after", _int),
            before=_cursor(request, "before", _int),
            size=_page_size(request),
        )
        results = []
        for membership in page.items:
            user, nested = membership.user, membership.member_group
            results.append(
                {
                    "id": user.pk if user is not None else nested.pk,
                    "type": "User" if user is not None else "Group",
                    "name": user.user_name if user is not None else nested.display_name,
                    "display": membership.display,
                    "active": (user.active is not False) if user is not None else None,
                    "added": membership.created,
                }
            )
        data = {**_links(request, page.next_after, page.previous_before), "results": results}
        return Response(GroupMemberPageSerializer(data).data)
