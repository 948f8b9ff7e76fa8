"""Costs that must not grow with the data: query counts, members never loaded, no lost updates."""

import json
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisioning.directory import services
from provisioning.directory.models import Membership, User
from provisioning.scim.patch import parse_patch_request
from tests.factories import GroupFactory, UserFactory

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def scim(scim):
    # The first request records the token's last use; measure steady-state requests.
    scim.get("/ServiceProviderConfig")
    scim.get("/Users", params={"count": 0})
    return scim


def queries_for(scim, method, path, body=None, **kw):
    with CaptureQueriesContext(connection) as ctx:
        response = scim.request(method, path, body, **kw)
    assert response.status_code < 300, response.content[:500]
    return ctx.captured_queries


@pytest.mark.django_db
def test_membership_patch_costs_the_same_for_10_and_1000_members(scim):
    small = GroupFactory(members=UserFactory.create_bulk(10))
    large = GroupFactory(members=UserFactory.create_bulk(1000))
    newcomers = UserFactory.create_bulk(2)

    def add_and_remove(group, user):
        body = {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": str(user.pk)}]},
                {"op": "remove", "path": f'members[value eq "{user.pk}"]'},
                {"op": "Add", "path": "members", "value": [{"value": str(user.pk)}]},
            ],
        }
        return queries_for(scim, "PATCH", f"/Groups/{group.pk}", body)

    # A first write loads the settings this process caches (roles, rules, breakers): its
    # extra queries are not the group's size.
    add_and_remove(GroupFactory(members=[]), UserFactory())
    small_queries = add_and_remove(small, newcomers[0])
    large_queries = add_and_remove(large, newcomers[1])

    assert len(small_queries) == len(large_queries)
    assert Membership.objects.filter(group=large).count() == 1001
    # No query reads the member list: every membership query is keyed by the changed member.
    for query in large_queries:
        sql = query["sql"].lower()
        if "directory_membership" in sql and sql.startswith("select"):
            assert str(newcomers[1].pk).replace("-", "") in sql.replace("-", ""), sql


@pytest.mark.django_db
def test_excluded_members_does_not_query_memberships(scim):
    group = GroupFactory(members=UserFactory.create_bulk(5))
    queries = queries_for(
        scim, "GET", f"/Groups/{group.pk}", params={"excludedAttributes": "members"}
    )
    assert not [q for q in queries if "directory_membership" in q["sql"]]
    listing = queries_for(
        scim,
        "GET",
        "/Groups",
        params={
            "filter": f'displayName eq "{group.display_name}"',
            "excludedAttributes": "members",
        },
    )
    assert not [q for q in listing if "directory_membership" in q["sql"]]


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_list_pages_cost_a_constant_number_of_queries(scim, resource):
    users = UserFactory.create_bulk(60)
    for i in range(0, 60, 6):
        GroupFactory(members=users[i : i + 6])

    # Full pages (10 groups, 60 users): the total from the counter row (no COUNT over
    # the table; for users, only of those awaiting deletion, in the counter's statement,
    # over a partial index), then the page.
    small = queries_for(scim, "GET", f"/{resource}", params={"count": 2})
    large = queries_for(scim, "GET", f"/{resource}", params={"count": 9})
    assert len(small) == len(large)
    assert any("directory_resourcecount" in q["sql"] for q in large)
    counts = [q["sql"] for q in large if "count(" in q["sql"].lower()]
    assert all("directory_resourcecount" in sql and "deletion_due" in sql for sql in counts)
    assert len(counts) == (1 if resource == "Users" else 0)
    assert any("limit" in q["sql"].lower() for q in large)
    # A filtered full page counts what the filter matches.
    filtered = queries_for(scim, "GET", "/Users", params={"count": 2, "filter": 'userName sw "u"'})
    assert any("count(" in q["sql"].lower() for q in filtered)


@pytest.mark.django_db
def test_a_page_that_is_not_full_needs_no_count(scim):
    users = UserFactory.create_bulk(7)
    # A filter by userName: one row, the whole result; its length is the total.
    queries = queries_for(scim, "GET", "/Users", params={"filter": f'userName eq "{users[3].user_name}"'})
    assert not [q for q in queries if "count(" in q["sql"].lower()]
    body = scim.get("/Users", params={"filter": f'userName eq "{users[3].user_name}"'}).json()
    assert (body["totalResults"], body["itemsPerPage"]) == (1, 1)
    assert scim.get("/Users", params={"filter": 'userName eq "nobody@example.com"'}).json()["totalResults"] == 0
    # The last, partial page: offset plus its length. Beyond the end: a COUNT tells the total.
    last = scim.get("/Users", params={"startIndex": 6, "count": 5}).json()
    assert (last["totalResults"], last["itemsPerPage"], last["startIndex"]) == (7, 2, 6)
    beyond = scim.get("/Users", params={"startIndex": 20, "count": 5}).json()
    assert (beyond["totalResults"], beyond["itemsPerPage"]) == (7, 0)
    full = scim.get("/Users", params={"count": 3}).json()
    assert (full["totalResults"], full["itemsPerPage"]) == (7, 3)
    exact = scim.get("/Users", params={"count": 7}).json()
    assert (exact["totalResults"], exact["itemsPerPage"]) == (7, 7)


@pytest.mark.django_db
def test_a_deep_page_steps_over_users_in_the_index_alone(scim, on_postgres, monkeypatch):
    """The keys of a deep page come from an index-only scan of the users in the directory
    (``user_created_id_live_idx``, whose condition is the default manager's): no visit to
    the row of each user stepped over to test ``deletion_due``. The planner is kept off
    sequential scans, which it prefers on a table this small."""
    from provisioning.directory import selectors

    monkeypatch.setattr(selectors, "DEEP_OFFSET", 5)
    users = UserFactory.create_bulk(30)
    # Awaiting its deletion (an IdP deleted it, deletion deferred): in no list.
    User.with_retired.filter(pk=users[0].pk).update(deletion_due=timezone.now() + timedelta(days=7))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    queries = queries_for(scim, "GET", "/Users", params={"startIndex": 11, "count": 5})
    [keys] = [q["sql"] for q in queries if "OFFSET" in q["sql"] and '"pk" FROM' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + keys.replace("%s", "NULL"))
        plan = json.dumps(cursor.fetchone()[0])
    assert '"Index Only Scan"' in plan and "user_created_id_live_idx" in plan
    assert '"Filter"' not in plan
    page = scim.get("/Users", params={"startIndex": 11, "count": 5}).json()
    assert (page["totalResults"], page["itemsPerPage"]) == (29, 5)
    assert [r["id"] for r in page["Resources"]] == [str(u.pk) for u in users[1:][10:15]]


@pytest.mark.django_db
def test_a_pages_groups_walk_is_one_statement_whatever_its_size(scim, on_postgres):
    """The users of a page are one array parameter of the groups walk: pages of 3 and of
    7 users send the same statement, which the server prepares once (a list of
    placeholders made one statement per page size, and psycopg parses such a statement
    again at every run)."""
    users = UserFactory.create_bulk(7)
    outer = GroupFactory(members=[])
    inner = GroupFactory(members=users)
    outer_add = {"op": "Add", "path": "members", "value": [{"value": str(inner.pk)}]}
    scim.request("PATCH", f"/Groups/{outer.pk}", {"schemas": [PATCH], "Operations": [outer_add]})

    def walk(count):
        queries = queries_for(scim, "GET", "/Users", params={"count": count})
        [sql] = [q["sql"] for q in queries if "WITH RECURSIVE reach" in q["sql"]]
        return sql

    small, large = walk(3), walk(7)
    assert "= ANY(" in small and " IN (" not in small.split("UNION")[0]
    # The SQL as captured, each parameter quoted in: only the array of ids differs.
    ids = re.compile(r"'\{[^}]*\}'::uuid\[\]")
    assert len(ids.findall(small)) == 1 and ids.sub("?", small) == ids.sub("?", large)
    page = scim.get("/Users", params={"count": 7}).json()["Resources"]
    for user in page:
        kinds = {(g["value"], g["type"]) for g in user["groups"]}
        assert kinds == {(str(inner.pk), "direct"), (str(outer.pk), "indirect")}


@pytest.mark.django_db
def test_reads_by_id_and_the_idps_lookups_are_compiled_once(scim):
    """A user or group by id and ``userName``/``externalId``/``displayName eq`` run a
    statement compiled once per shape (``directory.statements``); an empty value, which
    the filter turns into another condition, and the id filter run through the ORM."""
    from provisioning.directory import statements

    statements.forget()
    user = UserFactory(user_name="Ada@Example.com", external_id="E-1")
    group = GroupFactory(display_name="Engineers", members=[user])
    scim.get(f"/Users/{user.pk}")
    scim.get(f"/Groups/{group.pk}", params={"excludedAttributes": "members"})
    found = {
        'userName eq "ada@EXAMPLE.com"': 1,
        'externalId eq "E-1"': 1,
        'externalId eq "e-1"': 0,  # externalId is case-exact (RFC 7643 §3.1)
        'userName eq ""': 0,
        f'id eq "{user.pk}"': 1,
    }
    for text, total in found.items():
        assert scim.get("/Users", params={"filter": text}).json()["totalResults"] == total
    body = scim.get("/Groups", params={"filter": 'displayName eq "engineers"'}).json()
    assert [g["id"] for g in body["Resources"]] == [str(group.pk)]
    # (own resources only, locked, order, type, what) after the database: the page's
    # bounds are parameters, not part of the shape.
    kept = {
        key[2:]: entry
        for key, entry in statements._compiled.items()
        if key[:2] == ("default", connection.vendor)
    }
    order = ("created", "pk")
    # On PostgreSQL a user shape also reads the user's groups (``groups_column``).
    users = (order, "groups") if connection.vendor == "postgresql" else (order,)
    assert set(kept) == {
        (False, False, *users, "User", "pk"),
        (False, False, order, "Group", "pk"),
        (False, False, *users, "User", "eq", "user_name"),
        (False, False, *users, "User", "eq", "external_id"),
        (False, False, order, "Group", "eq", "display_name"),
    }
    assert all(entry is not statements._UNCACHEABLE for entry in kept.values())
    # The next read by id compiles nothing: one statement for the user, none built.
    with CaptureQueriesContext(connection) as queries:
        assert scim.get(f"/Users/{user.pk}").json()["userName"] == "Ada@Example.com"
    assert sum('FROM "directory_user"' in q["sql"] for q in queries) == 1


@pytest.mark.django_db
def test_every_page_of_the_whole_directory_is_one_compiled_statement(scim, monkeypatch):
    """``GET /Users`` without a filter, page after page: one statement text, compiled
    once with its bounds as parameters (``LIMIT %s OFFSET %s``), far pages included
    (their keys from a subquery, the rows by primary key); the pages are the ORM's."""
    from provisioning.directory import selectors, statements

    statements.forget()
    monkeypatch.setattr(selectors, "DEEP_OFFSET", 4)
    users = UserFactory.create_bulk(7)
    expected = [str(u.pk) for u in User.objects.order_by("created", "pk")]
    seen, texts = [], set()

    def statement_texts(execute, sql, params, many, context):
        if sql.startswith('SELECT "directory_user"."id"'):
            texts.add(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(statement_texts):
        for start in (1, 3, 5, 7, 9):
            body = scim.get("/Users", params={"startIndex": start, "count": 2}).json()
            assert body["totalResults"] == len(users)
            assert body["startIndex"] == start
            seen += [r["id"] for r in body["Resources"]]
    assert seen == expected
    # One shallow and one deep statement, whatever the bounds: they are parameters.
    assert len(texts) == 2
    assert all("LIMIT %s OFFSET %s" in text for text in texts)
    kept = [key[2:] for key in statements._compiled if key[:2] == ("default", connection.vendor)]
    assert sorted(map(str, kept)) == sorted(
        map(str, [(False, False, ("created", "pk"), "User", "all"), ("deep", "User", ("created", "pk"))])
    )


@pytest.mark.django_db
def test_a_compiled_lookup_pages_and_counts_as_the_orm_does(scim):
    """A full page of a compiled ``externalId eq`` is counted; a page past the end is
    empty with the total."""
    users = [UserFactory(external_id="shared") for _ in range(3)]
    first = scim.get("/Users", params={"filter": 'externalId eq "shared"', "count": 2}).json()
    assert (first["totalResults"], first["itemsPerPage"]) == (3, 2)
    assert [r["id"] for r in first["Resources"]] == [str(u.pk) for u in users[:2]]
    last = scim.get(
        "/Users", params={"filter": 'externalId eq "shared"', "count": 2, "startIndex": 3}
    ).json()
    assert [r["id"] for r in last["Resources"]] == [str(users[2].pk)]
    beyond = scim.get(
        "/Users", params={"filter": 'externalId eq "shared"', "count": 2, "startIndex": 9}
    ).json()
    assert (beyond["totalResults"], beyond["Resources"]) == (3, [])


@pytest.mark.django_db(transaction=True)
def test_concurrent_member_patches_lose_nothing_on_postgres(on_postgres):
    group = GroupFactory()
    per_thread = 15
    batches = [UserFactory.create_bulk(per_thread), UserFactory.create_bulk(per_thread)]
    failures = []
    start = threading.Barrier(2)

    def worker(users):
        try:
            start.wait()
            for user in users:
                operations = parse_patch_request(
                    {
                        "schemas": [PATCH],
                        "Operations": [
                            {"op": "add", "path": "members", "value": [{"value": str(user.pk)}]}
                        ],
                    }
                )
                services.group_patch(group_id=group.pk, operations=operations, client=None)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    assert Membership.objects.filter(group=group).count() == 2 * per_thread
    group.refresh_from_db()
    assert group.version == 1 + 2 * per_thread


@pytest.mark.django_db
def test_full_group_get_is_streamed_with_constant_queries(scim):
    """The whole group is streamed from a cursor: same queries for 5 and 300 members, and
    the same document the in-memory renderer produces."""
    small = GroupFactory(members=UserFactory.create_bulk(5))
    large = GroupFactory(members=UserFactory.create_bulk(300))
    nested = GroupFactory()
    Membership.objects.create(group=large, member_group=nested, display="Nested")

    def streamed(group):
        with CaptureQueriesContext(connection) as ctx:
            response = scim.get(f"/Groups/{group.pk}")  # read to the end by the fixture
            body = response.content
        assert response.status_code == 200
        assert getattr(response, "streamed", False)
        assert response["Content-Type"].startswith("application/scim+json")
        assert response["ETag"] == group.etag
        return json.loads(body), ctx.captured_queries

    small_doc, small_queries = streamed(small)
    large_doc, large_queries = streamed(large)
    assert len(small_queries) == len(large_queries)
    assert len(large_doc["members"]) == 301
    assert large_doc["members"][-1] == {
        "value": str(nested.pk),
        "$ref": f"http://testserver/scim/v2/Groups/{nested.pk}",
        "type": "Group",
        "display": "Nested",
    }
    # Identical to the projection path, which renders in memory.
    projected = scim.read(f"/Groups/{large.pk}", params={"attributes": "members,displayName,externalId,meta"})
    assert projected["members"] == large_doc["members"]
    assert large_doc["displayName"] == large.display_name
    assert small_doc["meta"]["version"] == small.etag


@pytest.mark.django_db
def test_a_user_patch_reads_its_row_once_and_audits_the_exact_diff(scim):
    from provisioning.audit.models import AuditEntry, ChangeRecord
    from provisioning.audit.selectors import record_changes

    user = scim.create_user("reads-once", title="Engineer")
    queries = queries_for(
        scim, "PATCH", f"/Users/{user['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Director"}]},
    )
    reads = [q for q in queries if q["sql"].startswith("SELECT") and 'FROM "directory_user"' in q["sql"]]
    assert len(reads) == 1  # the locked read; the change record is built from what it holds
    # The change is recorded once: its change record, which the audit log shows.
    record = ChangeRecord.objects.filter(resource_id=user["id"]).order_by("-id").first()
    assert record.action == "patch" and record_changes(record) == {"title": ["Engineer", "Director"]}
    assert (record.before["version"], record.after["version"]) == (1, 2)
    assert not AuditEntry.objects.filter(object_pk=user["id"]).exists()
