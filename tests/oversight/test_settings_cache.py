"""The settings every write reads (SCIM roles, policy rules, circuit breakers) come from a
per-process copy: a write reads none of them from the database while nobody changes
them, and every change (console, service, plain save, bulk update, another connection)
is seen by the next request; a change that rolls back is never seen."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.access import config_cache
from provisioning.access.models import ConfigRevision, Role
from provisioning.access.roles import scim_role_update
from provisioning.directory.models import User
from provisioning.oversight.models import CircuitBreaker, PolicyRule
from provisioning.oversight.rules import (
    circuit_breaker_update,
    policy_rule_create,
    policy_rule_set_enabled,
)
from tests.factories import OperatorFactory, ScimClientFactory, ScimRoleFactory
from tests.scim.conftest import PATCH_SCHEMA, ScimApi

DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
REACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": True}],
}
RENAME = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}],
}

# The tables of the cached settings; a warm write names none of them.
SETTINGS_TABLES = (
    Role._meta.db_table,
    PolicyRule._meta.db_table,
    PolicyRule.clients.through._meta.db_table,
    CircuitBreaker._meta.db_table,
)


def settings_reads(captured) -> list[str]:
    return [
        query["sql"]
        for query in captured.captured_queries
        if any(table in query["sql"] for table in SETTINGS_TABLES)
    ]


@pytest.fixture
def idp(db):
    """A client holding a custom role that may read and patch users, with breaker defaults
    that never trip on their own, and a flagging rule (so the policy gate has rules)."""
    ConfigRevision.bump()  # the row a flushed test database lacks
    CircuitBreaker.objects.update_or_create(
        pk=1, defaults={"max_operations": 1000, "min_directory_size": 10**6}
    )
    PolicyRule.objects.create(
        name="Flag deactivations (test)", kind="deactivate_user", action="flag"
    )
    role = ScimRoleFactory(
        name="patchers", permissions=["User:read", "User:create", "User:patch", "User:delete"]
    )
    client = ScimClientFactory(name="cache-idp", role=role)
    return client, ScimApi(client.raw_token)


@pytest.fixture
def users(established):
    """Users created a day ago by nobody: deactivating them counts against the breaker."""
    return [str(user.pk) for user in established(6)]


def deactivate(api: ScimApi, user_id: str):
    return api.patch(f"/Users/{user_id}", DEACTIVATE)


# --- (1) a warm write reads no setting ---------------------------------------------------------


def test_a_second_write_reads_no_role_rule_or_breaker(idp, users):
    _client, api = idp
    assert deactivate(api, users[0]).status_code == 200  # loads the copies
    assert api.delete(f"/Users/{users[1]}").status_code == 204

    with CaptureQueriesContext(connection) as captured:
        assert deactivate(api, users[2]).status_code == 200
        assert api.delete(f"/Users/{users[3]}").status_code == 204
        assert api.patch(f"/Users/{users[4]}", RENAME).status_code == 200

    assert settings_reads(captured) == []
    # The revision is read by the token lookup's own statement, never on its own.
    revision_reads = [
        q["sql"] for q in captured.captured_queries if ConfigRevision._meta.db_table in q["sql"]
    ]
    assert len(revision_reads) == 3
    assert all("access_scimtoken" in sql for sql in revision_reads)


def test_the_token_lookup_stays_one_query_and_gives_a_private_role(idp, django_assert_num_queries):
    from provisioning.access.token_check import scim_token_authenticate

    client, _api = idp
    scim_token_authenticate(client.raw_token)  # records last use, loads the roles
    with django_assert_num_queries(1):
        first = scim_token_authenticate(client.raw_token)
    second = scim_token_authenticate(client.raw_token)
    assert first.client.role.permissions == second.client.role.permissions
    first.client.role.permissions.append("Group:delete")
    assert "Group:delete" not in second.client.role.permissions
    assert "Group:delete" not in scim_token_authenticate(client.raw_token).client.role.permissions


# --- (2) every kind of change is seen by the next write ---------------------------------------


def test_rule_changes_through_services_are_seen_by_the_next_write(idp, users, operators):
    _client, api = idp
    assert deactivate(api, users[0]).status_code == 200
    rule = policy_rule_create(
        name="Hold deactivations",
        kind="deactivate_user",
        action="hold",
        operator=operators["alice"],
    )
    assert deactivate(api, users[1]).status_code == 202
    policy_rule_set_enabled(rule=rule, enabled=False, operator=operators["alice"])
    assert deactivate(api, users[2]).status_code == 200


def test_rule_changes_through_the_console_are_seen_by_the_next_write(idp, users):
    _client, api = idp
    assert deactivate(api, users[0]).status_code == 200
    rule = PolicyRule.objects.create(
        name="Hold deactivations", kind="deactivate_user", action="hold", enabled=False
    )
    assert deactivate(api, users[1]).status_code == 200
    console = Client()
    console.force_login(OperatorFactory(role="administrator"))
    toggle = reverse("console:policy_toggle", args=[rule.pk])
    assert console.post(toggle, {"enabled": "yes"}).status_code == 302
    assert deactivate(api, users[2]).status_code == 202
    assert console.post(reverse("console:policy_delete", args=[rule.pk])).status_code == 302
    assert deactivate(api, users[3]).status_code == 200


def test_plain_saves_bulk_updates_and_client_lists_are_seen_by_the_next_write(idp, users):
    client, api = idp
    assert deactivate(api, users[0]).status_code == 200
    rule = PolicyRule.objects.get(name="Flag deactivations (test)")
    rule.action = "hold"
    rule.save()
    assert deactivate(api, users[1]).status_code == 202

    # Narrowed to another client (an m2m change), the rule no longer covers this one.
    rule.clients.add(ScimClientFactory(name="other-idp"))
    assert deactivate(api, users[1]).status_code == 200

    # A bulk update sends no signal; the queryset replaces the revision itself.
    rule.clients.clear()
    assert api.patch(f"/Users/{users[1]}", REACTIVATE).status_code == 200
    PolicyRule.objects.filter(pk=rule.pk).update(enabled=False)
    assert deactivate(api, users[2]).status_code == 200
    assert client.pk  # the client itself never changed


def test_breaker_changes_are_seen_by_the_next_write(idp, users, operators):
    client, api = idp
    assert deactivate(api, users[0]).status_code == 200
    circuit_breaker_update(operator=operators["alice"], max_operations=1)
    # One destructive operation applied within the window: the second trips the breaker.
    assert deactivate(api, users[1]).status_code == 202


def test_a_plain_save_of_a_client_breaker_is_seen_by_the_next_write(idp, users):
    client, api = idp
    assert api.delete(f"/Users/{users[0]}").status_code == 204
    CircuitBreaker.objects.create(client=client, max_operations=1000, deletion_delay_days=30)
    # Deactivate before delete: the user stays, inactive, until the hard delete is due.
    assert api.delete(f"/Users/{users[1]}").status_code == 204
    assert api.get(f"/Users/{users[1]}").status_code == 404
    assert User.with_retired.get(pk=users[1]).retired
    assert not User.with_retired.filter(pk=users[0]).exists()


def test_role_changes_are_seen_by_the_next_write(idp, users, operators):
    client, api = idp
    assert api.patch(f"/Users/{users[0]}", RENAME).status_code == 200
    scim_role_update(role=client.role, permissions=["User:read"], operator=operators["alice"])
    assert api.patch(f"/Users/{users[1]}", RENAME).status_code == 403

    role = Role.objects.get(pk=client.role_id)
    role.permissions = ["User:read", "User:patch"]
    role.forbidden_attributes = ["displayName"]
    role.save()
    response = api.patch(f"/Users/{users[1]}", RENAME)
    assert response.status_code == 403 and "displayName" in response.json()["detail"]


# --- (4) a change that rolls back ----------------------------------------------------------


class Undo(Exception):
    pass


def test_a_rolled_back_change_leaves_the_copies_valid(idp, users):
    _client, api = idp
    assert deactivate(api, users[0]).status_code == 200
    with pytest.raises(Undo), transaction.atomic():
        PolicyRule.objects.filter(name="Flag deactivations (test)").update(action="hold")
        raise Undo
    with CaptureQueriesContext(connection) as captured:
        assert deactivate(api, users[1]).status_code == 200
    assert settings_reads(captured) == []


def test_a_write_inside_a_rolled_back_change_does_not_leak_it(idp, users):
    """A write served inside the changing transaction loads (and keeps) what it sees; once
    that transaction rolls back, its revision never comes back, so nothing it loaded is used."""
    _client, api = idp
    assert deactivate(api, users[0]).status_code == 200
    with pytest.raises(Undo), transaction.atomic():
        rule = PolicyRule.objects.get(name="Flag deactivations (test)")
        rule.action = "hold"
        rule.save()
        assert deactivate(api, users[1]).status_code == 202
        raise Undo
    assert deactivate(api, users[1]).status_code == 200
    # Nor does a later change that commits bring back what the rolled-back one loaded.
    PolicyRule.objects.create(name="Flag group deletions", kind="delete_group", action="flag")
    assert deactivate(api, users[2]).status_code == 200


# --- (3) another connection ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_committed_on_another_connection_is_seen_by_a_warm_process():
    """Two connections, as two processes have: the change is committed by one, the writes
    are served on the other, whose copies were loaded before the change.

    SQLite serialises writers on one file and the test database is in memory per
    connection, so this runs on PostgreSQL only."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two connections to one database")
    ConfigRevision.bump()
    CircuitBreaker.objects.update_or_create(
        pk=1, defaults={"max_operations": 1000, "min_directory_size": 10**6}
    )
    role = ScimRoleFactory(name="patchers", permissions=["User:read", "User:create", "User:patch"])
    client = ScimClientFactory(name="warm-idp", role=role)
    api = ScimApi(client.raw_token)
    ids = [api.create_user(f"w{n}@x.example", active=True)["id"] for n in range(3)]
    assert api.patch(f"/Users/{ids[0]}", RENAME).status_code == 200  # warm copies
    with CaptureQueriesContext(connection) as warm:
        assert api.patch(f"/Users/{ids[0]}", RENAME).status_code == 200
    assert settings_reads(warm) == []

    def change_elsewhere():
        try:
            role_row = Role.objects.get(pk=role.pk)
            role_row.permissions = ["User:read", "User:create"]
            role_row.save()
            PolicyRule.objects.create(
                name="Hold renames",
                kind="attribute_change",
                action="hold",
                attributes=["displayName"],
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=change_elsewhere)
    thread.start()
    thread.join()

    # The role lost User:patch on the other connection: refused at once here.
    assert api.patch(f"/Users/{ids[1]}", RENAME).status_code == 403
    Role.objects.filter(pk=role.pk).update(permissions=["User:read", "User:patch"])
    # ... and the rule committed there holds the rename here.
    assert api.patch(f"/Users/{ids[1]}", RENAME).status_code == 202

    # The other way round: this connection changes, a write on another connection sees it.
    PolicyRule.objects.filter(name="Hold renames").update(enabled=False)
    statuses: list[int] = []

    def write_elsewhere():
        try:
            statuses.append(ScimApi(client.raw_token).patch(f"/Users/{ids[2]}", RENAME).status_code)
        finally:
            connections.close_all()

    thread = threading.Thread(target=write_elsewhere)
    thread.start()
    thread.join()
    assert statuses == [200]


def test_a_copy_is_kept_for_its_revision_only():
    config_cache.forget()
    assert config_cache.cached("kind", "r1", lambda: ("loaded",)) == ("loaded",)
    assert config_cache.cached("kind", "r1", lambda: ("again",)) == ("loaded",)
    assert config_cache.cached("kind", "r2", lambda: ("again",)) == ("again",)
