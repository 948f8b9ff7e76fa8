"""SCIM resource endpoints: Users, Groups, their ``.search`` and the root ``.search``.

Views parse the request, call a directory service or selector and render the
result; the rules live in those layers.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Any

from django.conf import settings
from django.db.models import F, Field, Q, QuerySet
from rest_framework.response import Response

from provisioning.access import authorization
from provisioning.access.models import ScimClient
from provisioning.directory import selectors, services
from provisioning.directory.models import Group, User
from provisioning.directory.pipeline import OperationHeld
from provisioning.directory.query import filter_to_q, sort_expression

from . import cursors, errors, filters, resources, streaming
from .api import ScimRenderer, ScimView
from .patch import parse_patch_request
from .pending import async_held_response, held_response, write_via
from .schema import GROUP_SCHEMA, USER_SCHEMA, ResourceSchema

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResourceType:
    name: str
    schema: ResourceSchema
    queryset: Callable
    model: type[User] | type[Group]

    def render(
        self,
        items: list,
        base_url: str,
        attributes: list,
        excluded: list,
        scope: authorization.ReadScope,
        *,
        created: bool = False,
    ) -> list[dict]:
        """Render a page of resources with a constant number of queries.

        A user's ``groups`` and a group's ``members`` list only what ``scope`` (the
        reading client's) may read: a client without Group:read sees no groups, an
        ownership-limited one only its own (RFC 7643 §4.1.2, §4.2; others do not exist
        for it). Users ``created`` by the request being answered belong to no group yet
        (``groups`` is read-only, RFC 7643 §4.1.2: memberships are written through
        groups), so their groups are not read.
        """
        ids = [item.pk for item in items]
        if self.name == "User":
            groups = {}
            if not created and resources.requests_attribute(
                USER_SCHEMA, "groups", attributes, excluded
            ):
                # Read with the users where one statement could (``readable_rows``).
                groups = selectors.fetched_groups(items, scope)
                if groups is None:
                    groups = selectors.groups_of_users(ids, scope)
            documents = [
                resources.user_document(
                    user, base_url, resources.group_entries(groups.get(user.pk, ()), base_url)
                )
                for user in items
            ]
        else:
            members = None
            if resources.requests_attribute(GROUP_SCHEMA, "members", attributes, excluded):
                members = selectors.members_of_groups(ids, scope)
            documents = [
                resources.group_document(
                    group,
                    base_url,
                    None
                    if members is None
                    else [
                        resources.member_entry(mid, is_group, display, base_url)
                        for mid, is_group, display in members.get(group.pk, ())
                    ],
                )
                for group in items
            ]
        return [resources.project(self.schema, d, attributes, excluded) for d in documents]


USERS = ResourceType("User", USER_SCHEMA, selectors.users, User)
GROUPS = ResourceType("Group", GROUP_SCHEMA, selectors.groups, Group)
RESOURCE_TYPES = {"User": USERS, "Group": GROUPS}


# --- Query parameters -----------------------------------------------------------


@dataclass
class ListQuery:
    filter: str | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1
    count: int = 100
    attributes: str | list | None = None
    excluded: str | list | None = None
    # RFC 9865: None is index paging; "" the first page in cursor mode; else a cursor.
    cursor: str | None = None
    # Whether ``count`` was sent (a cursor keeps its own page size otherwise).
    count_given: bool = False


# Paging numbers must fit the databases' 64-bit integers (RFC 7644 §3.4.2.4 leaves the
# range open); within it, values past the end give an empty page.
_INT64 = 2**63 - 1


def _integer(value, name: str, default: int) -> int:
    """An integer from a query string (text) or a SearchRequest (a JSON integer or text)."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:  # also more digits than Python converts
            raise errors.InvalidValue(f"'{name}' must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidValue(f"'{name}' must be an integer")
    if not -_INT64 <= value <= _INT64:
        raise errors.InvalidValue(f"'{name}' must be between {-_INT64} and {_INT64}")
    return value


def _text(params, name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise errors.InvalidValue(f"'{name}' must be a string")
    return value or None


def _attribute_names(params, name: str) -> str | list | None:
    """``attributes``/``excludedAttributes``: comma-separated text, or (in a SearchRequest)
    an array of strings (RFC 7644 §3.4.3)."""
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise errors.InvalidValue(f"'{name}' must be an array of attribute names or a string")


def _cursor(params) -> str | None:
    """``cursor`` (RFC 9865 §2): absent (or JSON null) is index paging; present without a
    value (``?cursor``, ``"cursor": ""``) is the first page in cursor mode."""
    cursor = params.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise errors.InvalidCursor("'cursor' must be a string")
    if cursor is not None and params.get("startIndex") not in (None, ""):
        # RFC 9865 §2.4: startIndex asks for index paging, cursor for cursor paging.
        raise errors.InvalidValue(
            "Use either 'startIndex' (index paging) or 'cursor' (cursor paging), not both"
        )
    return cursor


def list_query(params) -> ListQuery:
    """Read list parameters from a query string or a SearchRequest body (RFC 7644 §3.4.2,
    RFC 9865 §2-3)."""
    order = _text(params, "sortOrder") or "ascending"
    if order.lower() not in ("ascending", "descending"):
        raise errors.InvalidValue("'sortOrder' must be 'ascending' or 'descending'")
    max_results = settings.SCIM["MAX_RESULTS"]
    cursor = _cursor(params)
    given = params.get("count") not in (None, "")
    # A negative count counts as 0 (RFC 7644 §3.4.2.4, RFC 9865 §2).
    count = max(0, _integer(params.get("count"), "count", settings.SCIM["DEFAULT_COUNT"]))
    if cursor is None or not given:
        # RFC 7644 §3.4.2.4: a count above the maximum is lowered to it, never an error.
        count = min(count, max_results)
    elif count > max_results:
        # RFC 9865 §2.1: with a cursor, a count above maxPageSize is invalidCount.
        raise errors.InvalidCount(
            f"'count' must be between 0 and {max_results} (maxPageSize) in cursor paging"
        )
    return ListQuery(
        filter=_text(params, "filter"),
        sort_by=_text(params, "sortBy"),
        descending=order.lower() == "descending",
        start_index=max(1, _integer(params.get("startIndex"), "startIndex", 1)),
        count=count,
        attributes=_attribute_names(params, "attributes"),
        excluded=_attribute_names(params, "excludedAttributes"),
        cursor=cursor,
        count_given=given,
    )


def search_query(body: dict) -> ListQuery:
    """A SearchRequest body (RFC 7644 §3.4.3) read like list query parameters."""
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas)
    ):
        raise errors.InvalidValue("'schemas' must be an array of schema URIs")
    if schemas is not None and SEARCH_REQUEST not in schemas:
        raise errors.InvalidValue(f"A search request must use the schema {SEARCH_REQUEST}")
    return list_query(body)


def _projection(
    schema: ResourceSchema, query: ListQuery, *, ignore_unknown: bool = False
) -> tuple[list, list]:
    if query.attributes and query.excluded:
        raise errors.InvalidValue("Use either 'attributes' or 'excludedAttributes', not both")
    try:
        return (
            resources.parse_attribute_list(schema, query.attributes, ignore_unknown=ignore_unknown),
            resources.parse_attribute_list(schema, query.excluded, ignore_unknown=ignore_unknown),
        )
    except errors.InvalidPath as exc:
        raise errors.InvalidValue(exc.detail) from None


def _order(resource_type: ResourceType, query: ListQuery | None) -> list:
    if query is None or not query.sort_by:
        return ["created"]
    return [sort_expression(query.sort_by, resource_type.name, query.descending)]


# Attributes whose ``eq`` of a string an index answers in one probe and whose SQL is the
# same for every non-empty string (the case-insensitive unique indexes on userName and a
# group's displayName, the externalId indexes), with the column each compares with.
_COMPILED_EQ = {
    "User": {"username": "user_name", "externalid": "external_id"},
    "Group": {"displayname": "display_name", "externalid": "external_id"},
}
# Those and the primary key, whose SQL depends on the value (one that is no UUID
# matches nothing).
_INDEXED_EQ = {name: frozenset(columns) | {"id"} for name, columns in _COMPILED_EQ.items()}


def _eq_name(resource_type: ResourceType, node: filters.Node | None) -> str | None:
    """The lower-case core attribute of a filter that is one ``eq`` of a string, or None."""
    if not isinstance(node, filters.Compare) or node.op != "eq" or not isinstance(node.value, str):
        return None
    path = node.path
    core = resource_type.schema.core
    if path.lower().startswith(core.lower() + ":"):
        path = path[len(core) + 1 :]
    return path.lower()


def index_served(resource_type: ResourceType, node: filters.Node | None) -> bool:
    """Whether a list's filter is one ``eq`` of a string an index answers (the IdPs'
    lookup before a create: ``userName eq "..."``, ``externalId eq "..."``)."""
    return _eq_name(resource_type, node) in _INDEXED_EQ.get(resource_type.name, frozenset())


def _every_resource(query: ListQuery, client: ScimClient, node: filters.Node | None) -> bool:
    """Whether a list asks for every resource in the default order by index (no filter,
    no sortBy, no cursor), and the client may read every resource (not only its own)."""
    return (
        node is None
        and not query.sort_by
        and query.cursor is None
        and not authorization.own_resources_only(client)
    )


def _filter_q(
    resource_type: ResourceType,
    query: ListQuery,
    client: ScimClient | None,
    node: filters.Node | None = None,
) -> Q | None:
    """The filter as a condition (``node``: the filter already parsed)."""
    if not query.filter:
        return None
    # Conditions on members (and a user's groups) see only the members (groups) the
    # client may read, as rendered.
    scope = authorization.read_scope(client)
    return filter_to_q(
        node if node is not None else filters.parse_filter(query.filter),
        resource_type.name,
        visible_members=selectors.visible_members(scope),
        visible_groups=selectors.visible_groups(scope),
    )


def list_response(
    resources_: list[dict],
    total: int,
    query: ListQuery,
    *,
    next_cursor: str | None = None,
    previous_cursor: str | None = None,
) -> dict:
    """A ListResponse; in cursor mode (RFC 9865 §2) without ``startIndex``, with the cursors
    of the neighbouring pages that exist."""
    body: dict = {"schemas": [LIST_RESPONSE], "totalResults": total}
    if query.cursor is None:
        body["startIndex"] = query.start_index
    body["itemsPerPage"] = len(resources_)
    if previous_cursor:
        body["previousCursor"] = previous_cursor
    if next_cursor:
        body["nextCursor"] = next_cursor
    body["Resources"] = resources_
    return body


def cursor_list(
    client: ScimClient,
    query: ListQuery,
    endpoint: str,
    plans: list[tuple[ResourceType, QuerySet]],
    render: Callable[[ResourceType, list], list[dict]],
) -> dict:
    """A page in cursor mode (RFC 9865) over ``plans`` (readable, filtered querysets, walked
    in ``cursors.KINDS`` order): the cursor is checked against this client and query, the
    rows are read by keyset, and each type's rows are rendered by ``render``."""
    sort_by = query.sort_by.strip() if query.sort_by else None
    binding = cursors.Binding(
        endpoint, str(client.pk), query.filter, sort_by, bool(sort_by) and query.descending
    )
    count, position = cursors.resolve(
        query.cursor or "", binding, count=query.count, count_given=query.count_given
    )
    key, descending = F("created"), False
    if sort_by:
        [(resource_type, _queryset)] = plans
        order = sort_expression(sort_by, resource_type.name, query.descending)
        key, descending = order.expression, order.descending
    by_kind = {cursors.KINDS.index(rt.name): rt for rt, _queryset in plans}
    found = cursors.page(
        [cursors.Segment(cursors.KINDS.index(rt.name), queryset) for rt, queryset in plans],
        binding=binding,
        key=key,
        descending=descending,
        count=count,
        position=position,
    )
    documents: list[dict] = []
    for kind, run in groupby(found.rows, key=lambda row: row[0]):
        documents += render(by_kind[kind], [resource for _kind, resource in run])
    return list_response(
        documents,
        found.total,
        query,
        next_cursor=found.next_cursor,
        previous_cursor=found.previous_cursor,
    )


# --- Views ----------------------------------------------------------------------


def readable(client: ScimClient, resource_type: ResourceType, q: Q | None = None) -> QuerySet:
    """The resources of this type ``client`` may read: 403 without the read permission,
    only its own for an ownership-limited role (others do not exist for it)."""
    authorization.require(client, resource_type.name, "read")
    return authorization.scope_queryset(client, resource_type.name, resource_type.queryset(q))


def readable_rows(
    client: ScimClient,
    resource_type: ResourceType,
    key: tuple,
    where: Callable[[Any], Q],
    value: Any,
    field: Field,
    *,
    start: int = 0,
    stop: int = 1,
    projection: tuple[list, list] | None = None,
) -> list:
    """``readable(client, resource_type, where(value))[start:stop]`` in the list order,
    its SQL compiled once per process for ``key`` (``selectors.scoped_rows``): the reads
    most SCIM requests make. Users rendered with ``projection`` (attributes, excluded)
    that shows their ``groups`` are read with them where one statement can."""
    authorization.require(client, resource_type.name, "read")
    groups = None
    if (
        resource_type is USERS
        and projection is not None
        and resources.requests_attribute(USER_SCHEMA, "groups", *projection)
    ):
        groups = authorization.read_scope(client)
    return selectors.scoped_rows(
        client,
        resource_type.model,
        (resource_type.name, *key),
        where,
        value,
        field,
        order=(*_order(resource_type, None), "pk"),
        start=start,
        stop=stop,
        groups=groups,
    )


class ResourceView(ScimView):
    resource_type: ResourceType

    def handle_exception(self, exc):
        # A write that policy held is not an error: 202 Accepted with the pending
        # operation's status resource as Location; without a body and with Set-Txn when
        # the client asked for asynchronous completion (RFC 9967 §2.5.1.1).
        if isinstance(exc, OperationHeld):
            base_url = self.base_url(self.request)
            return async_held_response(self.request, exc.pending, base_url) or held_response(
                exc.pending, base_url
            )
        return super().handle_exception(exc)

    def write(self, request, action: str, resource_id=None, payload: dict | None = None):
        """Run one write through the directory's table of write services."""
        return services.perform(
            self.resource_type.name,
            action,
            resource_id=resource_id,
            request=payload or {},
            client=request.user,
            if_match=request.headers.get("If-Match"),
            via=write_via(request),
        )

    def lookup(self, request, resource_id, projection: tuple[list, list] | None = None) -> User | Group:
        """The resource ``resource_id`` names, if the client may read it (else 404); a user
        to be rendered with ``projection`` carries its groups where one statement read
        them (``readable_rows``)."""
        try:
            pk = uuid.UUID(str(resource_id))
        except ValueError:
            pk = None
        if pk is None:
            authorization.require(request.user, self.resource_type.name, "read")
            found = None
        else:
            pk_field = self.resource_type.model._meta.pk
            rows = readable_rows(
                request.user,
                self.resource_type,
                ("pk",),
                lambda v: Q(pk=v),
                pk,
                pk_field,
                projection=projection,
            )
            found = rows[0] if rows else None
        if found is None:
            raise errors.NotFound(f"{self.resource_type.name} {resource_id} not found")
        return found

    def projection(self, request) -> tuple[list, list]:
        """``attributes``/``excludedAttributes`` of the query string, checked before any
        write so that a bad name is a 400 with nothing written."""
        params = request.query_params
        query = ListQuery(
            attributes=_attribute_names(params, "attributes"),
            excluded=_attribute_names(params, "excludedAttributes"),
        )
        return _projection(self.resource_type.schema, query)

    def location(self, request, resource) -> str:
        return f"{self.base_url(request)}{self.resource_type.schema.endpoint}/{resource.pk}"

    def respond(self, request, resource, status: int = 200, *, projection=None):
        attributes, excluded = projection if projection is not None else self.projection(request)
        [document] = self.resource_type.render(
            [resource],
            self.base_url(request),
            attributes,
            excluded,
            authorization.read_scope(request.user),
            created=status == 201,
        )
        headers = {"ETag": resource.etag}
        if status == 201:
            # Built from the id, not the document: a projection may leave ``meta`` out.
            headers["Location"] = self.location(request, resource)
        return Response(document, status=status, headers=headers)

    def written(self, request, resource, status: int, projection) -> Response:
        """The answer to a committed write.

        The write is done whatever happens next; if rendering the resource fails, the
        client still learns that it succeeded (status, ``Location``, ``ETag`` and the
        attributes that are always returned) instead of a 500 that invites a retry into a
        409 (RFC 7644 §3.3: the response to a create names the new resource).
        """
        try:
            return self.respond(request, resource, status, projection=projection)
        except Exception:  # noqa: BLE001 - the write has committed; say so, log the rest
            logger.exception(
                "Rendering %s %s after a committed write failed", self.resource_type.name, resource.pk
            )
        location = self.location(request, resource)
        document = {
            "schemas": [self.resource_type.schema.core],
            "id": str(resource.pk),
            "meta": resources.meta(resource, self.resource_type.name, location),
        }
        headers = {"ETag": resource.etag}
        if status == 201:
            headers["Location"] = location
        return Response(document, status=status, headers=headers)

    def search(self, request, query: ListQuery) -> Response:
        # The permission first: a client without it learns nothing of its query's faults.
        authorization.require(request.user, self.resource_type.name, "read")
        attributes, excluded = _projection(self.resource_type.schema, query)
        node = filters.parse_filter(query.filter) if query.filter else None
        offset, limit = query.start_index - 1, query.count
        column = _COMPILED_EQ[self.resource_type.name].get(_eq_name(self.resource_type, node))
        compiled = column and node.value and query.cursor is None and not query.sort_by
        if compiled and limit > 0 and offset < selectors.DEEP_OFFSET:
            # The IdPs' lookup before a create: its SQL compiled once (readable_rows).
            client = request.user
            items = readable_rows(
                client,
                self.resource_type,
                ("eq", column),
                lambda value: _filter_q(
                    self.resource_type, query, client, replace(node, value=value)
                ),
                node.value,
                self.resource_type.model._meta.get_field(column),
                start=offset,
                stop=offset + limit,
                projection=(attributes, excluded),
            )
            total = selectors.page_total(
                offset,
                limit,
                items,
                lambda: selectors.count(
                    readable(
                        client,
                        self.resource_type,
                        _filter_q(self.resource_type, query, client, node),
                    )
                ),
            )
            return self._list_page(request, query, items, total, attributes, excluded)
        if _every_resource(query, request.user, node):
            # Every resource in the default order, as an IdP pages through the directory:
            # its statements compiled once, whatever the page.
            total, items = selectors.directory_page(
                request.user, self.resource_type.model, offset=offset, limit=limit
            )
            return self._list_page(request, query, items, total, attributes, excluded)
        queryset = readable(request.user, self.resource_type)
        q = _filter_q(self.resource_type, query, request.user, node)
        if query.cursor is not None:
            scope = authorization.read_scope(request.user)
            body = cursor_list(
                request.user,
                query,
                self.resource_type.name,
                [(self.resource_type, queryset if q is None else queryset.filter(q))],
                lambda resource_type, items: resource_type.render(
                    items, self.base_url(request), attributes, excluded, scope
                ),
            )
            return Response(body)
        total, items = selectors.page(
            queryset if q is None else queryset.filter(q),
            order=_order(self.resource_type, query),
            offset=offset,
            limit=limit,
            time_limit=not index_served(self.resource_type, node),
        )
        return self._list_page(request, query, items, total, attributes, excluded)

    def _list_page(self, request, query: ListQuery, items: list, total: int, attributes, excluded):
        documents = self.resource_type.render(
            items,
            self.base_url(request),
            attributes,
            excluded,
            authorization.read_scope(request.user),
        )
        return Response(list_response(documents, total, query))


class CollectionView(ResourceView):
    def get(self, request):
        return self.search(request, list_query(request.query_params))

    def post(self, request):
        projection = self.projection(request)
        resource = self.write(request, "create", payload={"document": self.body(request)})
        return self.written(request, resource, 201, projection)


class ItemView(ResourceView):
    def get(self, request, resource_id):
        params = request.query_params
        whole_group = self.resource_type is GROUPS and not (
            params.get("attributes") or params.get("excludedAttributes")
        )
        projection = None
        if not (whole_group or request.headers.get("If-None-Match")):
            # A bad one is answered as before: after the lookup, whose 404 comes first.
            with contextlib.suppress(errors.ScimError):
                projection = self.projection(request)
        resource = self.lookup(request, resource_id, projection)
        if _not_modified(request.headers.get("If-None-Match"), resource.etag):
            return Response(status=304, headers={"ETag": resource.etag})
        if whole_group:
            # The whole group: members streamed from a cursor, never one list in memory.
            return streaming.streamed_group_response(
                resource,
                self.base_url(request),
                ScimRenderer.media_type,
                authorization.read_scope(request.user),
            )
        return self.respond(request, resource, projection=projection)

    def put(self, request, resource_id):
        projection = self.projection(request)
        resource = self.write(request, "replace", resource_id, {"document": self.body(request)})
        return self.written(request, resource, 200, projection)

    def patch(self, request, resource_id):
        projection = self.projection(request)
        operations = parse_patch_request(self.body(request))
        resource = self.write(request, "patch", resource_id, {"operations": operations})
        # Returning a group means reading all its members; RFC 7644 §3.5.2 allows 204
        # unless the client asked for attributes.
        params = request.query_params
        if self.resource_type is GROUPS and not (
            params.get("attributes") or params.get("excludedAttributes")
        ):
            return Response(status=204, headers={"ETag": resource.etag})
        return self.written(request, resource, 200, projection)

    def delete(self, request, resource_id):
        self.write(request, "delete", resource_id)
        return Response(status=204)


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` matches the current version: one of its entity tags (weak
    comparison, RFC 9110 §13.1.2), or ``*``, which any existing resource matches."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or _weak(etag) in {_weak(tag) for tag in tags}


def _weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


class SearchView(ResourceView):
    """``POST /Users/.search``, ``POST /Groups/.search`` (RFC 7644 §3.4.3)."""

    def post(self, request):
        return self.search(request, search_query(self.body(request)))


class UserCollection(CollectionView):
    resource_type = USERS


class UserItem(ItemView):
    resource_type = USERS


class UserSearch(SearchView):
    resource_type = USERS


class GroupCollection(CollectionView):
    resource_type = GROUPS


class GroupItem(ItemView):
    resource_type = GROUPS


class GroupSearch(SearchView):
    resource_type = GROUPS


class RootSearch(ScimView):
    """``POST /.search`` over Users then Groups; a filter may fit only one of them.

    Covers the resource types the client may read; 403 when it may read none.
    """

    def post(self, request):
        client = request.user
        types = [RESOURCE_TYPES[name] for name in authorization.readable_types(client)]
        if not types:
            raise errors.Forbidden(f"Role '{client.role.name}' lacks User:read and Group:read")
        query = search_query(self.body(request))
        if query.sort_by:
            raise errors.InvalidValue("sortBy is not supported across resource types")
        plans, failures = [], []
        for resource_type in types:
            try:
                plans.append((resource_type, _filter_q(resource_type, query, client)))
            except errors.InvalidFilter as exc:
                failures.append(exc)
        if not plans:
            raise failures[0]
        base_url = self.base_url(request)
        scope = authorization.read_scope(client)

        def projection(resource_type: ResourceType) -> tuple[list, list]:
            attributes, excluded = _projection(resource_type.schema, query, ignore_unknown=True)
            if query.attributes and not attributes:
                attributes = [(resource_type.schema.core, resource_type.schema.core_attribute("id"), None)]
            return attributes, excluded

        if query.cursor is not None:
            # Cursor paging walks Users then Groups; the cursor records where it stands.
            def render(resource_type: ResourceType, items: list) -> list[dict]:
                return resource_type.render(items, base_url, *projection(resource_type), scope)

            readable_plans = [(rt, readable(client, rt, q)) for rt, q in plans]
            return Response(cursor_list(client, query, "root", readable_plans, render))
        offset, remaining, total, documents = query.start_index - 1, query.count, 0, []
        for resource_type, q in plans:
            attributes, excluded = projection(resource_type)
            type_total, items = selectors.page(
                readable(client, resource_type, q),
                order=["created"],
                offset=offset,
                limit=remaining,
            )
            total += type_total
            offset = max(0, offset - type_total)
            remaining -= len(items)
            documents += resource_type.render(items, base_url, attributes, excluded, scope)
        return Response(list_response(documents, total, query))
