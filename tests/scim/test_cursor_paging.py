"""Cursor paging (RFC 9865) on /Users, /Groups, their .search and the root .search.

Walks follow ``nextCursor``/``previousCursor`` and compare with index paging of the same
query (same order: the sort key, then the id). Between pages rows are inserted and
deleted: keyset paging must neither skip nor repeat a resource that existed throughout.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone

from provisioning.access.roles import scim_role_update
from provisioning.directory.models import Group, User
from provisioning.scim import cursors
from tests.factories import GroupFactory, ScimClientFactory, ScimRoleFactory, UserFactory

from .conftest import LIST_SCHEMA, ScimApi

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def ids(body: dict) -> list[str]:
    return [resource["id"] for resource in body["Resources"]]


def index_ids(scim: ScimApi, path: str = "/Users", **params) -> list[str]:
    """The whole result by index paging (the order cursor paging must follow)."""
    body = scim.search(path, count=200, **params)
    assert body["totalResults"] <= 200
    return ids(body)


def page(scim: ScimApi, path: str, **params) -> dict:
    body = scim.search(path, **params)
    assert body["schemas"] == [LIST_SCHEMA]
    # RFC 9865 §2: cursors are URL-safe, unreserved characters only.
    for name in ("nextCursor", "previousCursor"):
        if name in body:
            assert body[name] and set(body[name]) <= UNRESERVED, body[name]
    return body


def walk_forward(scim: ScimApi, path: str = "/Users", between=None, **params) -> list[dict]:
    """Every page from an empty cursor to the page without ``nextCursor``."""
    pages = [page(scim, path, cursor="", **params)]
    while "nextCursor" in pages[-1]:
        assert len(pages) < 500
        if between is not None:
            between(len(pages))
        pages.append(page(scim, path, cursor=pages[-1]["nextCursor"], **params))
    return pages


def walk_backward(scim: ScimApi, last: dict, path: str = "/Users", **params) -> list[dict]:
    """Pages from ``last`` back to the first one, following ``previousCursor``."""
    pages = [last]
    while "previousCursor" in pages[-1]:
        assert len(pages) < 500
        pages.append(page(scim, path, cursor=pages[-1]["previousCursor"], **params))
    return pages


def flatten(pages: list[dict]) -> list[str]:
    return [i for body in pages for i in ids(body)]


@pytest.fixture
def users(db) -> list[User]:
    """23 users created a millisecond apart (the default order is creation time, then id)."""
    start = timezone.now() - dt.timedelta(hours=1)
    return [
        UserFactory(
            user_name=f"u{n:02d}-{uuid.uuid4().hex[:4]}@example.test",
            created=start + dt.timedelta(milliseconds=n),
            # Absent for a third: SCIM stores an absent string as "".
            display_name="" if n % 3 == 0 else f"Person {(n * 7) % 23:02d}",
            # NULL (never sent) for some, so the sort key has a NULL tail.
            external_id=None if n % 4 == 0 else f"ext-{(n * 5) % 23:02d}",
            active=None if n % 5 == 0 else n % 2 == 0,
        )
        for n in range(23)
    ]


# --- Walking ------------------------------------------------------------------------


def test_forward_walk_lists_every_user_once_in_index_order(scim, users):
    """RFC 9865 §2: nextCursor on every page but the last; previousCursor never on the
    first; totalResults kept; never more than count resources."""
    expected = index_ids(scim)
    assert len(expected) == 23
    pages = walk_forward(scim, count=7)
    assert flatten(pages) == expected
    assert [len(ids(body)) for body in pages] == [7, 7, 7, 2]
    assert "previousCursor" not in pages[0]
    assert all("previousCursor" in body for body in pages[1:])
    assert all("nextCursor" in body for body in pages[:-1])
    for body in pages:
        assert body["totalResults"] == 23
        assert body["itemsPerPage"] == len(body["Resources"])
        assert "startIndex" not in body  # cursor paging has no index


def test_backward_walk_with_previous_cursor_lists_the_same_pages(scim, users):
    forward = walk_forward(scim, count=7)
    backward = walk_backward(scim, forward[-1], count=7)
    assert [ids(body) for body in backward] == [ids(body) for body in reversed(forward)]
    # Going back to the first page: no previousCursor there (RFC 9865 §2), and its
    # nextCursor leads forward again.
    first = backward[-1]
    assert "previousCursor" not in first
    assert ids(page(scim, "/Users", cursor=first["nextCursor"], count=7)) == ids(forward[1])


def test_cursor_present_without_a_value_is_the_first_page(scim, users):
    """RFC 9865 §2: ``GET /Users?...&cursor&count=10`` starts cursor paging."""
    body = scim.ok(scim.get("/Users?cursor&count=5"))
    assert ids(body) == index_ids(scim)[:5]
    assert "nextCursor" in body and "startIndex" not in body


@pytest.mark.parametrize("order", ["ascending", "descending"])
@pytest.mark.parametrize(
    "sort_by",
    ["userName", "displayName", "externalId", "active", "meta.created", "meta.lastModified", "id"],
)
def test_sorted_walks_follow_the_index_order_both_ways(scim, users, sort_by, order):
    """RFC 9865 §2.2: cursor pages are sorted like index pages; keys may be text (some
    absent), NULL (externalId, active never sent: last either way), booleans, datetimes."""
    params = {"sortBy": sort_by, "sortOrder": order}
    expected = index_ids(scim, **params)
    forward = walk_forward(scim, count=4, **params)
    assert flatten(forward) == expected
    backward = walk_backward(scim, forward[-1], count=4, **params)
    assert [ids(body) for body in backward] == [ids(body) for body in reversed(forward)]


def test_nulls_sort_last_in_both_directions(scim, users):
    for order in ("ascending", "descending"):
        pages = walk_forward(scim, count=5, sortBy="externalId", sortOrder=order)
        values = [r.get("externalId") for body in pages for r in body["Resources"]]
        present = [v for v in values if v is not None]
        assert values[len(present) :] == [None] * (len(values) - len(present))
        assert present == sorted(present, reverse=order == "descending")


def test_filtered_sorted_walk(scim, users):
    params = {"filter": 'userName sw "u1" or active eq true', "sortBy": "userName",
              "sortOrder": "descending"}
    expected = index_ids(scim, **params)
    assert 5 < len(expected) < 23
    pages = walk_forward(scim, count=3, **params)
    assert flatten(pages) == expected
    assert all(body["totalResults"] == len(expected) for body in pages)


def test_groups_walk(scim, db):
    groups = [GroupFactory(display_name=f"team-{n:02d}") for n in range(9)]
    pages = walk_forward(scim, "/Groups", count=4, sortBy="displayName")
    assert flatten(pages) == [str(g.pk) for g in groups]
    backward = walk_backward(scim, pages[-1], "/Groups", count=4, sortBy="displayName")
    assert [ids(b) for b in backward] == [ids(b) for b in reversed(pages)]


def test_attributes_may_change_between_pages(scim, users):
    """Only the projection changes: the walk stays valid (the binding leaves it out)."""
    first = page(scim, "/Users", cursor="", count=5, attributes="userName")
    assert set(first["Resources"][0]) <= {"id", "userName", "schemas"}
    second = page(scim, "/Users", cursor=first["nextCursor"], count=5)
    assert ids(second) == index_ids(scim)[5:10]
    assert "meta" in second["Resources"][0]


# --- Concurrent changes -----------------------------------------------------------


@pytest.mark.parametrize(
    "params", [{}, {"sortBy": "userName"}, {"sortBy": "externalId", "sortOrder": "descending"}]
)
def test_inserts_and_deletes_between_pages_skip_and_repeat_nothing(scim, users, params):
    """Rows inserted before and after the position, and rows deleted behind and ahead of
    it: every user that existed throughout appears exactly once."""
    order = index_ids(scim, **params)
    deleted: set[str] = set()
    seen: list[str] = []

    def between(pages_read: int) -> None:
        now = timezone.now()
        earliest = User.objects.order_by("created").first().created
        # One sorts first (created before everything, userName "0...", no externalId),
        # one last.
        UserFactory(user_name=f"0-{uuid.uuid4().hex[:6]}", created=earliest - dt.timedelta(days=1),
                    external_id="~~~~")
        UserFactory(user_name=f"zz-{uuid.uuid4().hex[:6]}", created=now, external_id=None)
        remaining = [i for i in order if i not in deleted]
        unseen = [i for i in remaining if i not in seen]
        behind = [i for i in remaining if i in seen]
        for victim in (unseen[len(unseen) // 2 : len(unseen) // 2 + 1] + behind[:1]):
            User.objects.filter(pk=victim).delete()
            deleted.add(victim)

    pages = [page(scim, "/Users", cursor="", count=4, **params)]
    seen += ids(pages[0])
    while "nextCursor" in pages[-1]:
        assert len(pages) < 100
        between(len(pages))
        pages.append(page(scim, "/Users", cursor=pages[-1]["nextCursor"], count=4, **params))
        seen += ids(pages[-1])
    assert len(seen) == len(set(seen)), "a user was listed twice"
    throughout = [i for i in order if i not in deleted]
    assert deleted and throughout
    listed = [i for i in seen if i in set(throughout)]
    assert listed == throughout  # each once, in order


def test_deleted_boundary_row_does_not_stop_the_walk(scim, users):
    """The cursor carries the key itself, not a reference to a row that must still exist."""
    first = page(scim, "/Users", cursor="", count=5, sortBy="userName")
    User.objects.filter(pk=first["Resources"][-1]["id"]).delete()
    second = page(scim, "/Users", cursor=first["nextCursor"], count=5, sortBy="userName")
    assert ids(second) == index_ids(scim, sortBy="userName")[4:9]


def test_previous_page_after_every_earlier_row_is_deleted(scim, users):
    """Nothing before the position any more: an empty page, no previousCursor, and a
    nextCursor that walks again from the start."""
    first = page(scim, "/Users", cursor="", count=5)
    second = page(scim, "/Users", cursor=first["nextCursor"], count=5)
    User.objects.filter(pk__in=ids(first)).delete()
    back = page(scim, "/Users", cursor=second["previousCursor"], count=5)
    assert back["Resources"] == [] and "previousCursor" not in back
    again = page(scim, "/Users", cursor=back["nextCursor"], count=5)
    assert ids(again) == ids(second)
    assert "previousCursor" not in again  # now the first page


# --- Cursor errors (RFC 9865 §2.1) --------------------------------------------------


def _second_page_cursor(scim: ScimApi, **params) -> str:
    return page(scim, "/Users", cursor="", count=5, **params)["nextCursor"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # signature
        lambda c: ("B" if c[0] != "B" else "C") + c[1:],  # payload
        lambda c: c.split("~")[0],  # no signature
        lambda c: "garbage",
        lambda c: c + "~" + c,
        lambda c: "x" * 5000,
        lambda c: c.replace("~", ":"),  # a reserved character
    ],
)
def test_tampered_or_garbage_cursor_is_invalid_cursor(scim, users, tamper):
    cursor = _second_page_cursor(scim)
    scim.assert_error(scim.get("/Users", params={"cursor": tamper(cursor), "count": 5}), 400, "invalidCursor")


def test_cursor_of_another_client_is_invalid_cursor(scim, users):
    """RFC 9865 §5.2: possession of a cursor grants nothing; it is bound to its client."""
    cursor = _second_page_cursor(scim)
    other = ScimApi(ScimClientFactory(role="provisioner").raw_token)
    other.assert_error(other.get("/Users", params={"cursor": cursor, "count": 5}), 400, "invalidCursor")


@pytest.mark.parametrize(
    "changed",
    [
        {"sortBy": "displayName", "filter": 'userName sw "u"'},
        {"sortBy": "userName"},
        {"sortBy": "displayName", "sortOrder": "descending"},
        {},  # sortBy left out
    ],
)
def test_cursor_for_another_query_is_invalid_cursor(scim, users, changed):
    """RFC 9865 §2: every parameter but the cursor stays the same between pages."""
    cursor = _second_page_cursor(scim, sortBy="displayName")
    response = scim.get("/Users", params={"cursor": cursor, "count": 5, **changed})
    scim.assert_error(response, 400, "invalidCursor")
    # The same query goes on.
    assert page(scim, "/Users", cursor=cursor, count=5, sortBy="displayName")["Resources"]


def test_cursor_of_another_endpoint_is_invalid_cursor(scim, users):
    GroupFactory.create_batch(3)
    cursor = _second_page_cursor(scim)
    scim.assert_error(scim.get("/Groups", params={"cursor": cursor, "count": 5}), 400, "invalidCursor")
    root = scim.post("/.search", {"schemas": [SEARCH_REQUEST], "cursor": cursor, "count": 5})
    scim.assert_error(root, 400, "invalidCursor")


def test_expired_cursor(scim, users):
    cursor = _second_page_cursor(scim)
    now = time.time()

    def at(seconds: float):
        return mock.patch("django.core.signing.time", mock.Mock(time=lambda: now + seconds))

    with override_settings(SCIM={**_scim_settings(), "CURSOR_TIMEOUT": 60}):
        with at(50):
            assert ids(page(scim, "/Users", cursor=cursor, count=5)) == index_ids(scim)[5:10]
        with at(70):
            body = scim.assert_error(scim.get("/Users", params={"cursor": cursor, "count": 5}), 400, "expiredCursor")
            assert "60 seconds" in body["detail"]


def _scim_settings() -> dict:
    from django.conf import settings

    return dict(settings.SCIM)


def test_cursor_values_keep_their_types():
    """Sort keys go into the cursor type-tagged and come back the same type."""
    binding = cursors.Binding("User", "client", None, "x", False)
    values = [
        None, True, False, 0, -7, 2**62, 1.5, Decimal("12.50"), "", "Ünïcode ~:/?",
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC), dt.date(2024, 1, 2),
        uuid.uuid4(), {"a": [1, 2]},
    ]
    for value in values:
        token = cursors.issue(binding, 7, cursors.Position(1, value, uuid.UUID(int=5), True))
        count, position = cursors.read(token, binding)
        assert count == 7 and position == cursors.Position(1, value, uuid.UUID(int=5), True)
        assert type(position.value) is type(value)
        assert set(token) <= UNRESERVED and len(token) < 200


# --- Parameters ------------------------------------------------------------------


def test_start_index_with_cursor_is_invalid_value(scim, users):
    """RFC 9865 §2.4: startIndex asks for index paging, cursor for cursor paging."""
    scim.assert_error(scim.get("/Users", params={"cursor": "", "startIndex": 2}), 400, "invalidValue")
    body = {"schemas": [SEARCH_REQUEST], "cursor": "", "startIndex": 1}
    scim.assert_error(scim.post("/Users/.search", body), 400, "invalidValue")


@pytest.mark.parametrize("count", [0, -1, -100])
def test_count_zero_or_negative_returns_only_total_results(scim, users, count):
    """RFC 9865 §2: a negative count is 0; 0 returns totalResults and no resources."""
    body = page(scim, "/Users", cursor="", count=count)
    assert body["totalResults"] == 23
    assert body["Resources"] == [] and body["itemsPerPage"] == 0
    assert "nextCursor" not in body and "previousCursor" not in body


def test_count_above_max_page_size_is_invalid_count(scim, users):
    """RFC 9865 §2.1: invalidCount, count between 0 and maxPageSize (index paging lowers it
    instead, RFC 7644 §3.4.2.4)."""
    with override_settings(SCIM={**_scim_settings(), "MAX_RESULTS": 10}):
        scim.assert_error(scim.get("/Users", params={"cursor": "", "count": 11}), 400, "invalidCount")
        assert len(page(scim, "/Users", cursor="", count=10)["Resources"]) == 10
        assert scim.search("/Users", count=11)["itemsPerPage"] == 10
        # Without count: the default page size, at most maxPageSize.
        assert len(page(scim, "/Users", cursor="")["Resources"]) == 10


def test_count_must_stay_the_same_between_pages(scim, users):
    """RFC 9865 §2.1: invalidCount, count identical to the initial query's. Left out, the
    cursor's own count applies."""
    cursor = _second_page_cursor(scim)
    scim.assert_error(scim.get("/Users", params={"cursor": cursor, "count": 6}), 400, "invalidCount")
    assert ids(page(scim, "/Users", cursor=cursor)) == index_ids(scim)[5:10]


def test_no_cursor_keeps_index_paging(scim, users):
    body = scim.search("/Users", startIndex=3, count=4)
    assert body["startIndex"] == 3 and ids(body) == index_ids(scim)[2:6]
    assert "nextCursor" not in body and "previousCursor" not in body


def test_post_search_with_cursor_in_the_body(scim, users):
    """RFC 9865 §3: the same parameters in a SearchRequest."""
    request = {"schemas": [SEARCH_REQUEST], "sortBy": "userName", "count": 6, "cursor": ""}
    pages = [scim.ok(scim.post("/Users/.search", request))]
    while "nextCursor" in pages[-1]:
        pages.append(scim.ok(scim.post("/Users/.search", {**request, "cursor": pages[-1]["nextCursor"]})))
    assert flatten(pages) == index_ids(scim, sortBy="userName")
    # GET and POST .search are the same query: their cursors are interchangeable.
    assert ids(page(scim, "/Users", cursor=pages[0]["nextCursor"], count=6, sortBy="userName")) == ids(pages[1])
    bad = scim.post("/Users/.search", {**request, "cursor": 12})
    scim.assert_error(bad, 400, "invalidCursor")


def test_root_search_walks_users_then_groups(scim, users):
    groups = GroupFactory.create_batch(5)
    request = {"schemas": [SEARCH_REQUEST], "count": 4, "cursor": ""}
    pages = [scim.ok(scim.post("/.search", request))]
    while "nextCursor" in pages[-1]:
        pages.append(scim.ok(scim.post("/.search", {**request, "cursor": pages[-1]["nextCursor"]})))
    index = scim.ok(scim.post("/.search", {"schemas": [SEARCH_REQUEST], "count": 200}))
    assert flatten(pages) == ids(index) == index_ids(scim) + [str(g.pk) for g in groups]
    assert all(body["totalResults"] == 28 for body in pages)
    # A page spans both types (users 21-23, then a group).
    assert {r["meta"]["resourceType"] for r in pages[5]["Resources"]} == {"User", "Group"}
    backward = [pages[-1]]
    while "previousCursor" in backward[-1]:
        backward.append(
            scim.ok(scim.post("/.search", {**request, "cursor": backward[-1]["previousCursor"]}))
        )
    assert [ids(b) for b in backward] == [ids(b) for b in reversed(pages)]


def test_root_search_cursor_after_losing_group_read(db, users):
    """The walk continues over what the client may still read."""
    role = ScimRoleFactory(permissions=["User:read", "Group:read"])
    api = ScimApi(ScimClientFactory(role=role).raw_token)
    GroupFactory.create_batch(3)
    request = {"schemas": [SEARCH_REQUEST], "count": 20, "cursor": ""}
    first = api.ok(api.post("/.search", request))
    scim_role_update(role=role, permissions=["User:read"])
    second = api.ok(api.post("/.search", {**request, "cursor": first["nextCursor"]}))
    assert len(ids(second)) == 3 and second["totalResults"] == 23
    assert all(r["meta"]["resourceType"] == "User" for r in second["Resources"])
    assert "nextCursor" not in second


# --- Access ---------------------------------------------------------------------


def test_losing_read_between_pages_is_forbidden(db, users):
    """RFC 9865 §5.2: authorization is checked again on every page."""
    role = ScimRoleFactory(permissions=["User:read"])
    api = ScimApi(ScimClientFactory(role=role).raw_token)
    first = page(api, "/Users", cursor="", count=5)
    scim_role_update(role=role, permissions=["Group:read"])
    api.assert_error(api.get("/Users", params={"cursor": first["nextCursor"], "count": 5}), 403)


def test_own_resources_only_client_pages_through_its_own(db, users):
    role = ScimRoleFactory(permissions=["User:read"], own_resources_only=True)
    client = ScimClientFactory(role=role)
    mine = [UserFactory(source=client) for _ in range(6)]
    api = ScimApi(client.raw_token)
    pages = walk_forward(api, count=4)
    assert flatten(pages) == [str(u.pk) for u in mine]
    assert pages[0]["totalResults"] == 6


# --- Discovery ------------------------------------------------------------------


def test_service_provider_config_advertises_both_methods(scim):
    """RFC 9865 §4; index stays the default (§2.4: existing clients expect it)."""
    settings_ = {**_scim_settings(), "MAX_RESULTS": 150, "DEFAULT_COUNT": 50, "CURSOR_TIMEOUT": 900}
    with override_settings(SCIM=settings_):
        pagination = scim.read("/ServiceProviderConfig")["pagination"]
    assert pagination == {
        "cursor": True,
        "index": True,
        "defaultPaginationMethod": "index",
        "defaultPageSize": 50,
        "maxPageSize": 150,
        "cursorTimeout": 900,
    }


def test_responses_validate_with_scim2_models(scim, users):
    from scim2_models import ListResponse, ServiceProviderConfig
    from scim2_models import User as ScimUser

    config = ServiceProviderConfig.model_validate(scim.read("/ServiceProviderConfig"))
    assert config.pagination.cursor and config.pagination.index
    pages = walk_forward(scim, count=10)
    for body in pages:
        parsed = ListResponse[ScimUser].model_validate(body)
        assert parsed.next_cursor == body.get("nextCursor")


def test_default_order_of_groups_and_users_is_stable_across_types(scim, db):
    """Users and groups created in the same instant still page by id, without ties lost."""
    instant = timezone.now()
    users_ = [UserFactory(created=instant) for _ in range(5)]
    groups = [GroupFactory(created=instant) for _ in range(5)]
    assert flatten(walk_forward(scim, count=2)) == sorted(str(u.pk) for u in users_)
    assert flatten(walk_forward(scim, "/Groups", count=2)) == sorted(str(g.pk) for g in groups)
    assert Group.objects.count() == 5


def test_pages_are_read_by_key_not_offset(scim, users):
    """Keyset paging: no OFFSET, and a deep page costs the queries a shallow one does."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cursor, counts = "", []
    for _ in range(4):
        with CaptureQueriesContext(connection) as captured:
            body = page(scim, "/Users", cursor=cursor, count=5, sortBy="userName")
        assert not any("OFFSET" in q["sql"].upper() for q in captured.captured_queries)
        counts.append(len(captured.captured_queries))
        cursor = body["nextCursor"]
    assert counts[1] == counts[2] == counts[3]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("kind", ["number", "text"])
def test_json_attribute_keys_page_like_columns(db, kind, descending):
    """The keyset works on any annotated sort expression, such as a key of the JSON
    attributes (numbers or text, absent for some: NULL, last either way)."""
    from django.db.models.fields.json import KeyTextTransform, KeyTransform

    for n in range(17):
        value = None if n % 4 == 0 else ((n * 7) % 11 if kind == "number" else f"t{(n * 7) % 11:02d}")
        UserFactory(attributes={} if value is None else {"rank": value})
    key = KeyTransform("rank", "attributes") if kind == "number" else KeyTextTransform("rank", "attributes")
    rows = [(u.pk, u.attributes.get("rank")) for u in User.objects.all()]
    present = sorted(
        (r for r in rows if r[1] is not None),
        key=lambda r: r[0],
    )
    present.sort(key=lambda r: r[1], reverse=descending)  # stable: id order within a key
    absent = sorted((r for r in rows if r[1] is None), key=lambda r: r[0])
    expected = [pk for pk, _ in present + absent]

    binding = cursors.Binding("User", "c", None, "rank", descending)
    segments = [cursors.Segment(0, User.objects.all())]
    walked, position, pages = [], None, []
    while True:
        found = cursors.page(segments, binding=binding, key=key, descending=descending,
                             count=3, position=position)
        pages.append(found)
        walked += [row.pk for _kind, row in found.rows]
        if not found.next_cursor:
            break
        _count, position = cursors.read(found.next_cursor, binding)
    assert walked == expected
    back = []
    found = pages[-1]
    while found.previous_cursor:
        _count, position = cursors.read(found.previous_cursor, binding)
        found = cursors.page(segments, binding=binding, key=key, descending=descending,
                             count=3, position=position)
        back = [row.pk for _kind, row in found.rows] + back
    assert back + [row.pk for _kind, row in pages[-1].rows] == expected
