"""SCIM roles: list, detail, the matrix editor, built-in roles, deletion; permissions, escaping."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.access.clients import scim_client_create
from provisioning.access.models import Role
from provisioning.audit.models import ChangeSet
from tests.factories import ScimRoleFactory

pytestmark = pytest.mark.django_db

LIST = reverse("console:role_list")
NEW = reverse("console:role_create")
MANAGER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"


def csrf(client: Client) -> dict:
    assert client.get(LIST).status_code == 200
    return {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}


def test_viewer_reads_roles_but_cannot_change_them(viewer_client, approver_client):
    role = ScimRoleFactory(name="helpdesk")
    for http in (viewer_client, approver_client):
        assert http.get(LIST).status_code == 200
        assert http.get(reverse("console:role_detail", args=[role.pk])).status_code == 200
        assert http.get(NEW).status_code == 403
        assert http.get(reverse("console:role_edit", args=[role.pk])).status_code == 403
        assert http.get(reverse("console:role_delete_confirm", args=[role.pk])).status_code == 403
        assert http.post(reverse("console:role_delete", args=[role.pk])).status_code == 403
        assert http.post(NEW, {"name": "x", "permissions": ["User:read"]}).status_code == 403
    assert Role.objects.filter(pk=role.pk).exists() and not Role.objects.filter(name="x").exists()
    html = viewer_client.get(LIST).content.decode()
    assert "New role" not in html
    assert (
        "Edit"
        not in viewer_client.get(reverse("console:role_detail", args=[role.pk])).content.decode()
    )


def test_list_shows_builtin_and_custom_roles_with_usage(viewer_client):
    role = ScimRoleFactory(
        name="helpdesk", own_resources_only=True, forbidden_attributes=["active"]
    )
    scim_client_create(name="helpdesk-idp", role=role)
    response = viewer_client.get(LIST)
    names = [item["role"].name for item in response.context["roles"]]
    assert {"provisioner", "read-only", "no-delete", "users-only", "helpdesk"} <= set(names)
    helpdesk = next(i for i in response.context["roles"] if i["role"].name == "helpdesk")
    assert helpdesk["role"].client_count == 1
    html = response.content.decode()
    assert "own resources only" in html and "1 forbidden attribute" in html


def test_create_from_the_matrix(admin_client, administrator):
    data = {
        **csrf(admin_client),
        "name": "joiner-only",
        "description": "Creates users",
        "permissions": ["User:read", "User:create", "Group:read"],
        "own_resources_only": "on",
        "forbidden_attributes": "Active\nurn:ietf:params:scim:schemas:extension:enterprise:2.0:user:Manager",
        "protected_group_names": "Domain Admins\nadmin-*",
    }
    response = admin_client.post(NEW, data)
    role = Role.objects.get(name="joiner-only")
    assert response.status_code == 302
    assert response["Location"] == reverse("console:role_detail", args=[role.pk])
    assert role.permissions == ["User:read", "User:create", "Group:read"]
    assert role.forbidden_attributes == ["active", MANAGER]  # canonical, as the service stores them
    assert role.protected_group_names == ["Domain Admins", "admin-*"]
    assert role.own_resources_only and not role.built_in
    assert ChangeSet.objects.filter(operator=administrator, source="console").exists()
    page = admin_client.get(response["Location"]).content.decode()
    assert "joiner-only" in page and MANAGER in page


def test_matrix_checkboxes_render_the_roles_permissions(admin_client):
    role = ScimRoleFactory(name="helpdesk", permissions=["User:read", "Group:delete"])
    html = admin_client.get(reverse("console:role_edit", args=[role.pk])).content.decode()
    assert 'value="User:read" id="id_permissions_User_read" checked' in html
    assert 'value="Group:delete" id="id_permissions_Group_delete" checked' in html
    assert 'value="User:create" id="id_permissions_User_create">' in html


def test_service_validation_errors_come_back_on_the_form(admin_client):
    token = csrf(admin_client)
    bad_attribute = admin_client.post(
        NEW,
        {**token, "name": "r1", "permissions": ["User:read"], "forbidden_attributes": "nosuchattr"},
    )
    assert bad_attribute.status_code == 400
    assert "Unknown attribute" in bad_attribute.content.decode()
    read_only_attr = admin_client.post(
        NEW, {**token, "name": "r2", "permissions": ["User:read"], "forbidden_attributes": "id"}
    )
    assert read_only_attr.status_code == 400
    taken = admin_client.post(NEW, {**token, "name": "PROVISIONER", "permissions": ["User:read"]})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    forged = admin_client.post(NEW, {**token, "name": "r3", "permissions": ["User:fly"]})
    assert forged.status_code == 400
    # The matrix keeps what was ticked.
    assert (
        'value="User:read" id="id_permissions_User_read" checked' in bad_attribute.content.decode()
    )
    assert not Role.objects.filter(name__in=["r1", "r2", "r3"]).exists()


def test_edit_a_custom_role(admin_client):
    role = ScimRoleFactory(name="helpdesk")
    url = reverse("console:role_edit", args=[role.pk])
    data = {
        **csrf(admin_client),
        "name": "helpdesk-2",
        "description": "",
        "permissions": ["User:read", "User:patch"],
        "forbidden_attributes": "userName",
        "protected_group_names": "",
    }
    assert admin_client.post(url, data).status_code == 302
    role.refresh_from_db()
    assert role.name == "helpdesk-2" and role.permissions == ["User:read", "User:patch"]
    assert role.forbidden_attributes == ["userName"] and not role.own_resources_only


def test_a_builtin_role_changes_only_its_description(admin_client):
    role = Role.objects.get(name="read-only")
    before = list(role.permissions)
    url = reverse("console:role_edit", args=[role.pk])
    page = admin_client.get(url).content.decode()
    assert "built-in role" in page and '<fieldset class="matrix-fieldset" disabled>' in page
    data = {
        **csrf(admin_client),
        "name": "hijacked",
        "description": "Auditors & reporting",
        "permissions": ["User:delete"],
    }
    assert admin_client.post(url, data).status_code == 302
    role.refresh_from_db()
    assert role.name == "read-only" and role.permissions == before
    assert role.description == "Auditors & reporting"
    assert (
        admin_client.get(reverse("console:role_delete_confirm", args=[role.pk])).status_code == 200
    )
    response = admin_client.post(reverse("console:role_delete", args=[role.pk]), csrf(admin_client))
    assert response.status_code == 302 and Role.objects.filter(pk=role.pk).exists()


def test_delete_confirms_then_deletes_an_unused_role(admin_client):
    role = ScimRoleFactory(name="helpdesk")
    confirm = admin_client.get(reverse("console:role_delete_confirm", args=[role.pk]))
    assert confirm.status_code == 200 and b"Delete role" in confirm.content
    assert Role.objects.filter(pk=role.pk).exists()
    assert admin_client.get(reverse("console:role_delete", args=[role.pk])).status_code == 405
    response = admin_client.post(reverse("console:role_delete", args=[role.pk]), csrf(admin_client))
    assert response.status_code == 302 and response["Location"] == LIST
    assert not Role.objects.filter(pk=role.pk).exists()


def test_a_role_in_use_is_not_deleted(admin_client):
    role = ScimRoleFactory(name="helpdesk")
    scim_client_create(name="holder", role=role)
    confirm = admin_client.get(
        reverse("console:role_delete_confirm", args=[role.pk])
    ).content.decode()
    assert "holder" in confirm and 'action="/roles/' not in confirm
    response = admin_client.post(reverse("console:role_delete", args=[role.pk]), csrf(admin_client))
    assert response.status_code == 302
    assert Role.objects.filter(pk=role.pk).exists()
    assert "change their role first" in admin_client.get(response["Location"]).content.decode()


def test_unknown_role_is_404(viewer_client):
    assert viewer_client.get(reverse("console:role_detail", args=[999999])).status_code == 404


def test_role_names_are_escaped(viewer_client):
    role = ScimRoleFactory(name="<img src=x onerror=alert(1)>", description="<b>x</b>")
    for url in (LIST, reverse("console:role_detail", args=[role.pk])):
        html = viewer_client.get(url).content.decode()
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<b>x</b>" not in html
