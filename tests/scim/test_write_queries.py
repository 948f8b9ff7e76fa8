"""The statements of a SCIM write, one by one: a regression that adds a round trip fails.

Each test sends one steady-state request (the token's last use and the process's
caches already recorded by earlier requests) through the test client and compares
every statement it sends, summarised as its verb and the tables it reads from or
writes to, with the expected list. Settings are the suite's own (audit on).

The test's transaction turns each ``transaction.atomic()`` into SAVEPOINT/RELEASE;
in production the outermost one is BEGIN/COMMIT instead.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.directory.models import Membership, User, UserEmail
from tests.scim.conftest import USER_SCHEMA

# The statements every authenticated SCIM request starts with.
AUTHENTICATE = [
    # The bearer token and its client, with the settings revision as a subquery: roles,
    # policy rules, breakers, event streams and registered extension schemas come from
    # the process's copy unless the revision changed (access.config_cache).
    "SELECT access_configrevision UNION access_scimtoken",
]
# The request log entry, written after the response is built, in its own transaction.
REQUEST_LOG = ["SAVEPOINT", "INSERT audit_requestlog", "RELEASE SAVEPOINT"]


def _tables(sql: str) -> list[str]:
    names = re.findall(r'\bFROM\s+"?(\w+)"?', sql)
    return list(dict.fromkeys(names))


def summary(sql: str) -> str:
    """A statement as its verb and tables: ``UPDATE directory_user``."""
    sql = re.sub(r"^SET LOCAL [^;]*;\s*", "", sql.strip())
    if sql.startswith("SAVEPOINT"):
        return "SAVEPOINT"
    if sql.startswith("RELEASE SAVEPOINT"):
        return "RELEASE SAVEPOINT"
    if sql.startswith("WITH cs AS (INSERT INTO"):
        # A change set and its first change record, in one statement (PostgreSQL).
        return "INSERT audit_changeset, audit_changerecord"
    if sql.startswith("WITH RECURSIVE"):
        return "WITH RECURSIVE " + re.match(r"WITH RECURSIVE (\w+)", sql).group(1)
    match = re.match(r'(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)"?', sql)
    if match:
        return f"{match.group(1).split()[0]} {match.group(2)}"
    return "SELECT " + " UNION ".join(_tables(sql))


def audit_record() -> list[str]:
    """The change set and the change record of a directory change: one statement on
    PostgreSQL (``audit.change_sets.insert_together``), two elsewhere."""
    if connection.vendor == "postgresql":
        return ["INSERT audit_changeset, audit_changerecord"]
    return ["INSERT audit_changeset", "INSERT audit_changerecord"]


def statements(ctx: CaptureQueriesContext) -> list[str]:
    return [summary(query["sql"]) for query in ctx.captured_queries]


def assert_locked(ctx: CaptureQueriesContext, table: str) -> None:
    """The resource's row is read with ``FOR UPDATE`` (SQLite has no such clause: its
    writes are serialised by the database lock)."""
    [lock] = [q["sql"] for q in ctx.captured_queries if summary(q["sql"]) == f"SELECT {table}"]
    if connection.vendor == "postgresql":
        assert "FOR UPDATE" in lock


@pytest.fixture
def world(scim):
    alice = scim.create_user(
        "alice@example.com",
        title="Engineer",
        emails=[{"value": "alice@example.com", "type": "work", "primary": True}],
    )
    bob = scim.create_user("bob@example.com")
    group = scim.create_group("Engineering", members=[{"value": alice["id"]}])
    # One request of each kind first: what a process does once is not measured.
    warm = scim.create_user("warm@example.com")
    scim.patch_ops(f"/Users/{warm['id']}", {"op": "replace", "path": "title", "value": "Warm"})
    scim.patch_ops(
        f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": warm["id"]}]}
    )
    return {"alice": alice, "bob": bob, "group": group}


def test_patch_user_replacing_one_attribute(scim, world):
    """PATCH /Users/<id> replacing ``title``: 12 statements on SQLite, 11 on
    PostgreSQL (16 before the settings were cached and a directory change recorded once).

    Authentication (1: the token, with the settings revision); the write's transaction: SAVEPOINT, the user's row locked
    (SELECT ... FOR UPDATE), the UPDATE of the user (one statement, version and
    lastModified included), the change set and the change record (the one record of the
    change: no django-auditlog entry; one statement on PostgreSQL), the event, RELEASE; the user's groups for the response
    (one recursive query); the request log (3). The email index rows are not touched:
    the emails did not change.
    """
    alice = world["alice"]
    with CaptureQueriesContext(connection) as ctx:
        response = scim.patch_ops(
            f"/Users/{alice['id']}", {"op": "replace", "path": "title", "value": "Manager"}
        )
    body = scim.ok(response)
    assert body["title"] == "Manager"
    assert [g["value"] for g in body["groups"]] == [world["group"]["id"]]
    assert response["ETag"] == 'W/"2"'

    assert statements(ctx) == [
        *AUTHENTICATE,
        "SAVEPOINT",
        "SELECT directory_user",  # the row lock
        "UPDATE directory_user",
        *audit_record(),
        "INSERT events_event",
        "RELEASE SAVEPOINT",
        "WITH RECURSIVE reach",  # the user's groups, for the response
        *REQUEST_LOG,
    ]
    assert len(ctx.captured_queries) == 12 - (connection.vendor == "postgresql")
    assert_locked(ctx, "directory_user")


def test_patch_group_adding_one_member(scim, world):
    """PATCH /Groups/<id> adding one member: 14 statements, 13 on PostgreSQL (19 before).

    Authentication (1: the token, with the settings revision); the write's transaction: SAVEPOINT, the group's row locked
    (SELECT ... FOR UPDATE), one query saying whether the new member exists (as a user
    or a group) and whether it is a member already, the groups enclosing this one
    (privileged-membership and protected-group checks), the UPDATE of the group
    (version, lastModified), the membership INSERT, the change set and the change
    record, the event, RELEASE; the
    request log (3). No member is read back: the answer is 204 (RFC 7644 §3.5.2).
    """
    group, bob = world["group"], world["bob"]
    with CaptureQueriesContext(connection) as ctx:
        response = scim.patch_ops(
            f"/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
        )
    assert response.status_code == 204, response.content
    assert response["ETag"] == 'W/"3"'
    assert Membership.objects.filter(group_id=group["id"], user_id=bob["id"]).exists()

    assert statements(ctx) == [
        *AUTHENTICATE,
        "SAVEPOINT",
        "SELECT directory_group",  # the row lock
        "SELECT directory_user UNION directory_group UNION directory_membership",
        "WITH RECURSIVE up",  # groups enclosing this one
        "UPDATE directory_group",
        "INSERT directory_membership",
        *audit_record(),
        "INSERT events_event",
        "RELEASE SAVEPOINT",
        *REQUEST_LOG,
    ]
    assert len(ctx.captured_queries) == 14 - (connection.vendor == "postgresql")
    assert_locked(ctx, "directory_group")


def test_post_user(scim, world):
    """POST /Users with an email: 11 statements, 10 on PostgreSQL (18 before).

    Authentication (1: the token, with the settings revision); the write's transaction: SAVEPOINT, the user's INSERT (its
    unique index is the userName check: no SELECT before it), the one email index row
    INSERT (nothing to delete for a new user), the change set and the change record, the
    event, RELEASE; the request log
    (3). A new user belongs to no group, so its groups are not read for the response.
    """
    with CaptureQueriesContext(connection) as ctx:
        response = scim.post(
            "/Users",
            {
                "schemas": [USER_SCHEMA],
                "userName": "carol@example.com",
                "title": "CTO",
                "emails": [{"value": "carol@example.com", "type": "work", "primary": True}],
            },
        )
    body = scim.ok(response, 201)
    assert body["userName"] == "carol@example.com"
    assert body.get("groups", []) == []
    assert list(UserEmail.objects.filter(user_id=body["id"]).values_list("value", flat=True)) == [
        "carol@example.com"
    ]

    assert statements(ctx) == [
        *AUTHENTICATE,
        "SAVEPOINT",
        "INSERT directory_user",
        "INSERT directory_useremail",
        *audit_record(),
        "INSERT events_event",
        "RELEASE SAVEPOINT",
        *REQUEST_LOG,
    ]
    assert len(ctx.captured_queries) == 11 - (connection.vendor == "postgresql")


def test_a_taken_user_name_is_still_409_without_a_select_before_the_insert(scim, world):
    response = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ALICE@example.com"})

    detail = scim.assert_error(response, 409, "uniqueness")["detail"]
    assert "ALICE@example.com" in detail
    assert User.objects.filter(user_name__iexact="alice@example.com").count() == 1
    # The transaction is usable again: the next write succeeds.
    scim.create_user("dave@example.com")


# --- Email index rows: only what changed is written ------------------------------------


def email_rows(user_id) -> Counter:
    return Counter(
        UserEmail.objects.filter(user_id=user_id).values_list("value", "type", "primary")
    )


def patch_emails(scim, user_id, emails) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = scim.patch_ops(
            f"/Users/{user_id}", {"op": "replace", "path": "emails", "value": emails}
        )
    scim.ok(response)
    return [s for s in statements(ctx) if s.endswith("directory_useremail")]


def test_adding_an_email_inserts_one_row_and_deletes_none(scim, world):
    alice = world["alice"]
    emails = [
        {"value": "alice@example.com", "type": "work", "primary": True},
        {"value": "alice@home.example", "type": "home"},
    ]

    assert patch_emails(scim, alice["id"], emails) == ["INSERT directory_useremail"]
    assert email_rows(alice["id"]) == Counter(
        [("alice@example.com", "work", True), ("alice@home.example", "home", False)]
    )


def test_changing_one_email_rewrites_only_that_row(scim, world):
    alice = world["alice"]
    scim.patch_ops(
        f"/Users/{alice['id']}",
        {"op": "add", "path": "emails", "value": [{"value": "a@home.example", "type": "home"}]},
    )
    kept = UserEmail.objects.get(user_id=alice["id"], value="alice@example.com").pk
    emails = [
        {"value": "alice@example.com", "type": "work", "primary": True},
        {"value": "a@elsewhere.example", "type": "home"},
    ]

    assert patch_emails(scim, alice["id"], emails) == [
        "DELETE directory_useremail",
        "INSERT directory_useremail",
    ]
    assert email_rows(alice["id"]) == Counter(
        [("alice@example.com", "work", True), ("a@elsewhere.example", "home", False)]
    )
    assert UserEmail.objects.filter(pk=kept).exists()
    assert scim.search("/Users", filter='emails.value eq "a@home.example"')["totalResults"] == 0
    found = scim.search("/Users", filter='emails.value eq "a@elsewhere.example"')
    assert [r["id"] for r in found["Resources"]] == [alice["id"]]


def test_an_email_change_outside_the_indexed_values_writes_no_row(scim, world):
    alice = world["alice"]
    emails = [{"value": "alice@example.com", "type": "work", "primary": True, "display": "A"}]

    assert patch_emails(scim, alice["id"], emails) == []
    assert email_rows(alice["id"]) == Counter([("alice@example.com", "work", True)])


def test_repeated_emails_keep_one_row_each(scim, world):
    alice = world["alice"]
    twice = {"value": "alice@example.com", "type": "work"}

    def put(emails):
        document = {"schemas": [USER_SCHEMA], "userName": alice["userName"], "emails": emails}
        scim.ok(scim.put(f"/Users/{alice['id']}", document))

    put([twice] * 3)
    assert email_rows(alice["id"]) == Counter({("alice@example.com", "work", False): 3})

    put([twice, {"value": "x@example.com"}])
    assert email_rows(alice["id"]) == Counter(
        {("alice@example.com", "work", False): 1, ("x@example.com", "", False): 1}
    )

    put([twice, twice, {"value": "x@example.com"}])
    assert email_rows(alice["id"]) == Counter(
        {("alice@example.com", "work", False): 2, ("x@example.com", "", False): 1}
    )


def test_removing_every_email_deletes_the_rows(scim, world):
    alice = world["alice"]
    with CaptureQueriesContext(connection) as ctx:
        response = scim.patch_ops(f"/Users/{alice['id']}", {"op": "remove", "path": "emails"})
    scim.ok(response)

    assert [s for s in statements(ctx) if s.endswith("directory_useremail")] == [
        "DELETE directory_useremail"
    ]
    assert email_rows(alice["id"]) == Counter()


def test_nesting_a_group_reads_the_enclosing_groups_once(scim, world):
    """The cycle check, the access gate and policy share one read of the groups that
    enclose the group being changed (read after the nesting lock on PostgreSQL)."""
    outer, inner = scim.create_group("Outer"), scim.create_group("Inner")
    scim.patch_ops(
        f"/Groups/{outer['id']}",
        {"op": "add", "path": "members", "value": [{"value": world["group"]["id"]}]},
    )
    with CaptureQueriesContext(connection) as ctx:
        response = scim.patch_ops(
            f"/Groups/{world['group']['id']}",
            {"op": "add", "path": "members", "value": [{"value": inner["id"]}]},
        )
    assert response.status_code == 204, response.content

    assert statements(ctx).count("WITH RECURSIVE up") == 1
    looping = scim.patch_ops(
        f"/Groups/{inner['id']}",
        {"op": "add", "path": "members", "value": [{"value": outer["id"]}]},
    )
    scim.assert_error(looping, 400, "invalidValue")
