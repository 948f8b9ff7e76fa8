"""A user read by id or by the IdPs' ``eq`` lookups carries its ``groups`` (RFC 7643
§4.1.2: direct and indirect memberships, read-only) from the statement that reads the
user, on PostgreSQL (``selectors.groups_column``): one round trip instead of two.

The groups must be exactly what the separate walk (``selectors.groups_of_users``) gives,
which SQLite and the scopes the column does not serve still use: direct groups in
membership order, then indirect ones by id, each once, however deep the nesting.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.access.authorization import EVERYTHING, ReadScope
from provisioning.access.clients import scim_client_create
from provisioning.access.roles import scim_role_create
from provisioning.directory import selectors, statements
from provisioning.directory.models import Membership, User
from provisioning.scim.resources import group_entries
from tests.factories import GroupFactory, UserFactory
from tests.scim.conftest import ScimApi
from tests.scim.test_write_queries import statements as summaries

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="groups read with the user on PostgreSQL only"
)


@pytest.fixture
def directory():
    """Ada: direct member of Zeta then Alpha (in that order), both nested in Top, which
    is nested in Root; Zeta is also nested in Alpha, so Alpha is direct and indirect.
    Bo: no groups. Cy: member of Top only."""
    statements.forget()
    ada, bo, cy = (
        UserFactory(user_name="ada@example.com", external_id="ext-ada"),
        UserFactory(user_name="bo@example.com", external_id="ext-bo"),
        UserFactory(user_name="cy@example.com", external_id="ext-cy"),
    )
    root = GroupFactory(display_name="Root")
    top = GroupFactory(display_name="Top")
    zeta = GroupFactory(display_name="Zeta")
    alpha = GroupFactory(display_name="Alpha")
    for group, member in [(root, top), (top, zeta), (top, alpha), (alpha, zeta)]:
        Membership.objects.create(group=group, member_group=member)
    for group, user in [(zeta, ada), (alpha, ada), (top, cy)]:
        Membership.objects.create(group=group, user=user)
    yield {"ada": ada, "bo": bo, "cy": cy}
    statements.forget()


def expected(user: User, base_url: str) -> list[dict]:
    """What the separate walk gives for ``user``, rendered as the API renders it."""
    return group_entries(selectors.groups_of_users([user.pk]).get(user.pk, ()), base_url)


def base_url() -> str:
    return "http://testserver/scim/v2"


def statements_reading(ctx, table: str) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if f'FROM "{table}"' in q["sql"]]


def test_groups_read_by_id_and_by_lookup_are_the_walks(scim, directory):
    for name, user in directory.items():
        by_id = scim.read(f"/Users/{user.pk}")
        assert by_id.get("groups", []) == expected(user, base_url()), name
        for attribute, value in (("userName", user.user_name), ("externalId", user.external_id)):
            found = scim.search("/Users", filter=f'{attribute} eq "{value}"')["Resources"]
            assert [r["id"] for r in found] == [str(user.pk)]
            assert found[0].get("groups", []) == expected(user, base_url()), (name, attribute)
    ada = scim.read(f"/Users/{directory['ada'].pk}")
    # Direct ones in membership order, then the indirect ones (Alpha is both: direct).
    assert [(g["display"], g["type"]) for g in ada["groups"]][:2] == [
        ("Zeta", "direct"),
        ("Alpha", "direct"),
    ]
    assert {(g["display"], g["type"]) for g in ada["groups"][2:]} == {
        ("Top", "indirect"),
        ("Root", "indirect"),
    }


@on_postgresql
def test_a_user_and_its_groups_are_one_statement(scim, directory):
    ada = directory["ada"]
    scim.read(f"/Users/{ada.pk}")  # the shape compiled
    with CaptureQueriesContext(connection) as ctx:
        body = scim.read(f"/Users/{ada.pk}")
    assert len(body["groups"]) == 4
    [read] = statements_reading(ctx, "directory_user")
    assert "WITH RECURSIVE reach" in read
    assert "WITH RECURSIVE reach" not in "".join(
        q["sql"] for q in ctx.captured_queries if q["sql"] != read
    )
    assert summaries(ctx)[0].startswith("SELECT access_configrevision")
    with CaptureQueriesContext(connection) as ctx:
        found = scim.search("/Users", filter=f'userName eq "{ada.user_name}"')
    assert len(found["Resources"][0]["groups"]) == 4
    assert sum("WITH RECURSIVE reach" in q["sql"] for q in ctx.captured_queries) == 1


@on_postgresql
def test_groups_not_shown_are_not_read(scim, directory):
    ada = directory["ada"]
    for params in ({"excludedAttributes": "groups"}, {"attributes": "userName"}):
        with CaptureQueriesContext(connection) as ctx:
            body = scim.read(f"/Users/{ada.pk}", params=params)
        assert "groups" not in body
        assert not any("WITH RECURSIVE" in q["sql"] for q in ctx.captured_queries), params
    with CaptureQueriesContext(connection) as ctx:
        body = scim.read(f"/Users/{ada.pk}", params={"attributes": "groups"})
    assert [g["display"] for g in body["groups"]][:2] == ["Zeta", "Alpha"]
    assert sum("WITH RECURSIVE reach" in q["sql"] for q in ctx.captured_queries) == 1


def test_a_client_without_group_read_sees_no_groups_and_none_are_read(directory):
    role = scim_role_create(name=f"users-only-{uuid.uuid4().hex[:6]}", permissions=["User:read"])
    _client, token = scim_client_create(name=f"users-only-{uuid.uuid4().hex[:6]}", role=role)
    api = ScimApi(token)
    ada = directory["ada"]
    with CaptureQueriesContext(connection) as ctx:
        body = api.read(f"/Users/{ada.pk}")
        found = api.search("/Users", filter=f'userName eq "{ada.user_name}"')["Resources"]
    assert "groups" not in body
    assert "groups" not in found[0]
    assert not any("WITH RECURSIVE" in q["sql"] for q in ctx.captured_queries)


def test_a_bad_attribute_name_is_still_answered_after_the_lookup(scim, directory):
    """The order of answers is unchanged: an unknown id is 404 whatever else is wrong;
    a known one with an attribute name that is not one is 400 (RFC 7644 §3.9)."""
    missing = uuid.uuid4()
    scim.assert_error(
        scim.get(f"/Users/{missing}", params={"attributes": "userName", "excludedAttributes": "title"}),
        404,
    )
    scim.assert_error(
        scim.get(
            f"/Users/{directory['ada'].pk}",
            params={"attributes": "userName", "excludedAttributes": "title"},
        ),
        400,
        "invalidValue",
    )


def test_a_conditional_read_still_answers_304(scim, directory):
    ada = directory["ada"]
    first = scim.get(f"/Users/{ada.pk}")
    again = scim.get(f"/Users/{ada.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again["ETag"] == first["ETag"]


def test_groups_from_the_column_equal_the_walk_for_every_user(directory):
    """``groups_column`` against ``groups_of_users`` for every user, straight from the
    selectors (the ownership-limited and group-less scopes have no column)."""
    if connection.vendor != "postgresql":
        assert selectors.groups_column(EVERYTHING) is None
        return
    column = selectors.groups_column(EVERYTHING)
    with connection.cursor() as cursor:
        column = column.replace("{row}", '"directory_user"')
        cursor.execute(f'SELECT "directory_user"."id", {column} FROM "directory_user"')  # noqa: S608
        rows = cursor.fetchall()
    walked = selectors.groups_of_users([row[0] for row in rows])
    assert len(rows) == 3
    for user_id, value in rows:
        assert selectors.groups_from_column(user_id, value) == walked.get(user_id, [])
    limited = ReadScope(source_id=uuid.uuid4())
    assert selectors.groups_column(limited) is None
    assert selectors.groups_column(ReadScope(groups=False)) is None


def test_the_column_is_added_above_the_page_in_its_order():
    """The page is the subquery, so the column is computed for the rows it keeps, and
    the outer statement keeps its order; a shape whose order or bounds cannot be told,
    or a column with parameters, is not given one (the caller reads it another way)."""
    page = 'SELECT "t"."id", "t"."c" FROM "t" WHERE "t"."x" = %s ORDER BY "t"."c" DESC, "t"."id" ASC LIMIT %s OFFSET %s'
    assert statements._with_column(page, "(SELECT {row}.\"id\")", "t") == (
        'SELECT "page".*, (SELECT "page"."id") FROM (' + page + ') AS "page" '
        'ORDER BY "page"."c" DESC, "page"."id" ASC'
    )
    assert statements._with_column(page, "(SELECT %s)", "t") is None
    assert statements._with_column(page, "1", "other") is None
    assert statements._with_column(page.replace(" LIMIT %s OFFSET %s", ""), "1", "t") is None
    lowered = page.replace('"t"."c" DESC', 'LOWER("t"."c") DESC')
    assert statements._with_column(lowered, "1", "t") is None


def test_pages_of_a_lookup_keep_the_list_order_with_their_groups(scim, directory):
    """Several users share an externalId: every page of the lookup, one user each, is
    the next in the list order (created, id), with that user's own groups."""
    ada = directory["ada"]
    twins = [UserFactory(user_name=f"twin{i}@example.com", external_id="ext-shared") for i in range(3)]
    Membership.objects.create(group=ada.memberships.first().group, user=twins[1])
    ordered = list(User.objects.filter(external_id="ext-shared").order_by("created", "id"))
    assert {u.pk for u in ordered} == {t.pk for t in twins}
    seen = []
    for start in (1, 2, 3):
        body = scim.search(
            "/Users", filter='externalId eq "ext-shared"', startIndex=start, count=1
        )
        assert body["totalResults"] == 3
        [found] = body["Resources"]
        user = User.objects.get(pk=found["id"])
        assert found.get("groups", []) == expected(user, base_url())
        seen.append(user.pk)
    assert seen == [u.pk for u in ordered]
    whole = scim.search("/Users", filter='externalId eq "ext-shared"')["Resources"]
    assert [r["id"] for r in whole] == [str(u.pk) for u in ordered]
    assert [bool(r.get("groups")) for r in whole] == [u.pk == twins[1].pk for u in ordered]
