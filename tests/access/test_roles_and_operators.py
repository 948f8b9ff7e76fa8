"""Role, client-role and operator services, and the createoperator command."""

from __future__ import annotations

import os
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db.models import ProtectedError

from console.permissions import operator_role
from provisioning.access.clients import scim_client_create, scim_client_set_role
from provisioning.access.models import Role
from provisioning.access.operators import operator_create, operator_set_role
from provisioning.access.roles import role_get, scim_role_create, scim_role_delete, scim_role_update
from tests.scim.conftest import ENTERPRISE_SCHEMA

pytestmark = pytest.mark.django_db


def test_builtin_roles_exist_after_migrating():
    builtins = {r.name: r for r in Role.objects.filter(built_in=True)}
    assert set(builtins) == {"provisioner", "read-only", "no-delete", "users-only"}
    assert not any(p.endswith(":delete") for p in builtins["no-delete"].permissions)
    assert "User:patch" in builtins["no-delete"].permissions
    assert builtins["read-only"].permissions == ["User:read", "Group:read"]
    assert not any(p.startswith("Group:") for p in builtins["users-only"].permissions)


def test_role_fields_are_validated_and_canonical():
    role = scim_role_create(
        name=" auditors ",
        permissions=["Group:read", "User:read", "User:read"],
        forbidden_attributes=[
            "USERNAME",
            "emails",
            f"{ENTERPRISE_SCHEMA}:MANAGER",
            ENTERPRISE_SCHEMA.upper(),
        ],
        protected_group_names=[" Admins ", "fin-*"],
    )
    assert role.name == "auditors"
    assert role.permissions == ["User:read", "Group:read"]
    assert role.forbidden_attributes == [
        "userName",
        "emails",
        f"{ENTERPRISE_SCHEMA}:manager",
        ENTERPRISE_SCHEMA,
    ]
    assert role.protected_group_names == ["Admins", "fin-*"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("permissions", ["User:write"]),
        ("forbidden_attributes", ["nosuch"]),
        ("forbidden_attributes", ["name.givenName"]),
        ("forbidden_attributes", ["id"]),
        ("protected_group_names", [""]),
        ("name", "  "),
        ("name", "PROVISIONER"),
    ],
)
def test_bad_role_fields_are_refused(field, value):
    fields = {"name": "custom", "permissions": ["User:read"], field: value}
    with pytest.raises(ValidationError) as exc:
        scim_role_create(**fields)
    assert field in exc.value.message_dict
    assert not Role.objects.filter(name="custom").exists()


def test_builtin_roles_cannot_be_changed_or_deleted():
    provisioner = role_get("provisioner")
    with pytest.raises(ValidationError):
        scim_role_update(role=provisioner, permissions=["User:read"])
    with pytest.raises(ValidationError, match="built-in"):
        scim_role_delete(role=provisioner)
    scim_role_update(role=provisioner, description="Everything.")
    provisioner.refresh_from_db()
    assert provisioner.description == "Everything."
    assert "User:delete" in provisioner.permissions


def test_custom_role_update_and_delete():
    role = scim_role_create(name="custom", permissions=["User:read"])
    scim_role_update(role=role, permissions=["User:read", "User:patch"], own_resources_only=True)
    role.refresh_from_db()
    assert role.permissions == ["User:read", "User:patch"]
    assert role.own_resources_only is True
    client, _ = scim_client_create(name="okta", role=role)
    with pytest.raises(ValidationError, match="held by: okta"):
        scim_role_delete(role=role)
    scim_client_set_role(client=client, role="read-only")
    client.refresh_from_db()
    assert client.role.name == "read-only"
    scim_role_delete(role=role)
    assert not Role.objects.filter(name="custom").exists()
    with pytest.raises(ProtectedError):
        role_get("read-only").delete()


def test_builtin_roles_come_back_after_a_flush():
    Role.objects.filter(name="users-only").delete()
    client, _ = scim_client_create(name="okta", role="users-only")
    assert client.role.built_in and client.role.name == "users-only"


# --- operators ---------------------------------------------------------------------


def run(*args, env=None):
    out, err = StringIO(), StringIO()
    with mock.patch.dict(os.environ, env or {}, clear=False):
        if not env:
            os.environ.pop("OPERATOR_PASSWORD", None)
        call_command("createoperator", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("role", ["viewer", "approver", "administrator"])
def test_createoperator_with_password_from_environment(role):
    out, err = run("alice", "--role", role, env={"OPERATOR_PASSWORD": "correct horse battery"})
    assert out == ""
    user = get_user_model().objects.get(username="alice")
    assert user.check_password("correct horse battery")
    assert operator_role(user) == role
    assert [g.name for g in user.groups.all()] == [role]
    assert not user.is_staff and not user.is_superuser


def test_createoperator_generates_and_prints_a_password():
    out, err = run("bob", "--role", "viewer")
    password = out.splitlines()[-1]
    assert len(password) >= 20 and password not in err
    assert get_user_model().objects.get(username="bob").check_password(password)


def test_createoperator_refuses_weak_passwords_duplicates_and_unknown_roles():
    with pytest.raises(CommandError, match="too short|too common"):
        run("carol", "--role", "viewer", env={"OPERATOR_PASSWORD": "short"})
    run("carol", "--role", "viewer")
    with pytest.raises(CommandError, match="already exists"):
        run("CAROL", "--role", "viewer")
    with pytest.raises(CommandError, match="invalid choice"):
        run("dave", "--role", "root")


def test_operator_set_role_keeps_exactly_one_role():
    user, _ = operator_create(username="erin", role="viewer")
    operator_set_role(user=user, role="administrator")
    user = get_user_model().objects.get(pk=user.pk)  # permission cache
    assert [g.name for g in user.groups.all()] == ["administrator"]
    assert operator_role(user) == "administrator"


# --- auditing ----------------------------------------------------------------------


def test_role_assignment_is_audited_with_the_operator():
    from auditlog.models import LogEntry  # noqa: F401 - the swappable base is importable
    from auditlog.registry import auditlog
    from django.contrib.contenttypes.models import ContentType

    from provisioning.access.models import ScimClient

    if not auditlog.contains(ScimClient):
        pytest.skip("the audit app does not register access models")
    from provisioning.audit.models import AuditEntry

    admin, _ = operator_create(username="admin", role="administrator")
    client, _ = scim_client_create(name="okta", role="read-only", operator=admin)
    scim_client_set_role(client=client, role="no-delete", operator=admin)
    entries = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(ScimClient), object_pk=str(client.pk)
    ).order_by("id")
    assert [e.action for e in entries] == [AuditEntry.Action.CREATE, AuditEntry.Action.UPDATE]
    update = entries.last()
    assert update.actor == admin
    assert "role" in update.changes_dict
    assert update.change_set is not None and update.change_set.source == "console"
