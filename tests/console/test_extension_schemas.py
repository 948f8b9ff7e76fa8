"""Console pages for registered extension schemas: who may see and change them, the
JSON form and its errors, removal, the audit trail; extension values on the user page
and in the change set diff, escaped."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet
from provisioning.directory import extensions, services
from provisioning.directory.models import ExtensionSchema
from provisioning.scim import schema as scim_schema
from provisioning.scim.patch import PATCH_OP, parse_patch_request
from tests.factories import ProvisionedUserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("console:schema_list")
NEW = reverse("console:schema_create")
URN = "urn:ietf:params:scim:schemas:extension:CustomExtension:2.0:User"
DOCUMENT = {
    "id": URN,
    "name": "CustomExtension",
    "description": "Cost centers.",
    "attributes": [
        {"name": "costCenterCode", "type": "string"},
        {"name": "pin", "type": "string", "mutability": "writeOnly", "returned": "never"},
    ],
}
SCRIPT = "<script>alert('cc')</script>"


@pytest.fixture(autouse=True)
def _forget_registered_extensions():
    yield
    scim_schema.install_extensions(())
    scim_schema.forget_extensions()


@pytest.fixture
def registered(db):
    row, _ = extensions.extension_schema_save(document=json.loads(json.dumps(DOCUMENT)))
    return row


def csrf(client: Client) -> dict:
    assert client.get(LIST).status_code == 200
    return {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}


def test_anonymous_visitors_are_sent_to_the_login_page(client, registered):
    for url in (LIST, NEW, reverse("console:schema_detail", args=[registered.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]
    assert client.post(NEW, {"document": json.dumps(DOCUMENT)}).status_code == 302


def test_viewers_read_schemas_but_cannot_change_them(viewer_client, approver_client, registered):
    detail = reverse("console:schema_detail", args=[registered.pk])
    for http in (viewer_client, approver_client):
        assert http.get(LIST).status_code == 200
        html = http.get(detail).content.decode()
        assert URN in html and "costCenterCode" in html and "Edit" not in html
        assert http.get(NEW).status_code == 403
        other = dict(DOCUMENT, id="urn:example:other:2.0:User")
        assert http.post(NEW, {"document": json.dumps(other)}).status_code == 403
        assert http.get(reverse("console:schema_edit", args=[registered.pk])).status_code == 403
        assert http.post(reverse("console:schema_edit", args=[registered.pk])).status_code == 403
        assert http.post(reverse("console:schema_delete", args=[registered.pk])).status_code == 403
    assert list(ExtensionSchema.objects.values_list("urn", flat=True)) == [URN]
    assert "Register schema" not in viewer_client.get(LIST).content.decode()


def test_an_administrator_registers_a_schema_and_it_is_audited(admin_client, administrator):
    assert admin_client.get(NEW).status_code == 200
    response = admin_client.post(
        NEW, {"document": json.dumps(DOCUMENT), "resource_type": "", **csrf(admin_client)}
    )
    row = ExtensionSchema.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("console:schema_detail", args=[row.pk])
    assert row.urn == URN and row.resource_type == "User"
    change_set = ChangeSet.objects.get(operator=administrator)
    entry = AuditEntry.objects.get(
        content_type__model="extensionschema", object_pk=str(row.pk)
    )
    assert entry.actor == administrator
    assert entry.action == AuditEntry.Action.CREATE
    assert entry.change_set_id == change_set.pk
    # The next request in this process (here: its refresh) serves the schema.
    scim_schema.refresh_extensions()
    assert URN in scim_schema.schema_documents()


def test_every_problem_of_a_document_is_shown_escaped(admin_client):
    bad = {
        "id": "not a urn",
        "attributes": [
            {"name": "<b>x</b>"},
            {"name": "ok", "type": "complex"},
            {"name": "dup"},
            {"name": "DUP"},
            {"name": "u", "uniqueness": "global"},
        ],
    }
    response = admin_client.post(NEW, {"document": json.dumps(bad), **csrf(admin_client)})
    assert response.status_code == 400
    errors = response.context["form"].errors["document"]
    assert any("not a URN" in e for e in errors)
    assert any("<b>x</b>" in e for e in errors)
    assert any("subAttributes" in e for e in errors)
    assert any("used twice" in e for e in errors)
    assert any("uniqueness" in e for e in errors)
    html = response.content.decode()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert not ExtensionSchema.objects.exists()


def test_invalid_json_and_an_existing_urn_are_form_errors(admin_client, registered):
    response = admin_client.post(NEW, {"document": "{nope", **csrf(admin_client)})
    assert response.status_code == 400
    assert "not valid JSON" in response.content.decode()
    response = admin_client.post(NEW, {"document": json.dumps(DOCUMENT), **csrf(admin_client)})
    assert response.status_code == 400
    assert "already exists" in " ".join(response.context["form"].errors["document"])


def test_an_administrator_edits_a_schema(admin_client, registered):
    url = reverse("console:schema_edit", args=[registered.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and "costCenterCode" in page.content.decode()
    changed = json.loads(json.dumps(DOCUMENT))
    changed["attributes"].append({"name": "level", "type": "integer"})
    response = admin_client.post(url, {"document": json.dumps(changed), **csrf(admin_client)})
    assert response.status_code == 302
    registered.refresh_from_db()
    assert [a["name"] for a in registered.attributes] == ["costCenterCode", "pin", "level"]


def test_removal_is_refused_while_users_hold_values_then_done(admin_client, registered):
    user = ProvisionedUserFactory(userName="ana@example.com", **{URN: {"costCenterCode": "1"}})
    confirm = admin_client.get(reverse("console:schema_delete_confirm", args=[registered.pk]))
    assert "hold" in confirm.content.decode() and "Remove schema" not in confirm.content.decode()
    delete = reverse("console:schema_delete", args=[registered.pk])
    response = admin_client.post(delete, csrf(admin_client), follow=True)
    assert ExtensionSchema.objects.filter(pk=registered.pk).exists()
    assert "hold values" in response.content.decode()
    operations = parse_patch_request(
        {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": URN}]}
    )
    services.user_patch(user_id=user.pk, operations=operations, client=None)
    response = admin_client.post(delete, csrf(admin_client))
    assert response.status_code == 302 and response["Location"] == LIST
    assert not ExtensionSchema.objects.exists()


def test_user_page_shows_extension_values_escaped_and_hides_write_only(admin_client, registered):
    user = ProvisionedUserFactory(
        userName="ana@example.com", **{URN: {"costCenterCode": SCRIPT, "pin": "9876"}}
    )
    html = admin_client.get(reverse("console:user_detail", args=[user.pk])).content.decode()
    assert URN in html and "costCenterCode" in html
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(&#x27;cc&#x27;)&lt;/script&gt;" in html
    assert "9876" not in html


def test_the_change_set_diff_shows_extension_attributes(viewer_client, registered):
    user = ProvisionedUserFactory(userName="ana@example.com", **{URN: {"costCenterCode": "1"}})
    operations = parse_patch_request(
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": f"{URN}:costCenterCode", "value": SCRIPT}],
        }
    )
    services.user_patch(user_id=user.pk, operations=operations, client=None)
    record = ChangeRecord.objects.get(resource_id=user.pk, action="patch")
    assert record.changed_attributes == [f"{URN}:costCenterCode"]
    response = viewer_client.get(reverse("console:change_set_detail", args=[record.change_set_id]))
    [item] = response.context["records"]
    rows = {row.name: (row.kind, row.before, row.after) for row in item["diff"]}
    [name] = [name for name in rows if "costCenterCode" in name]
    assert rows[name] == ("changed", "1", SCRIPT)
    html = response.content.decode()
    assert SCRIPT not in html and "&lt;script&gt;" in html


def test_values_never_returned_are_masked_in_the_audit_trail(viewer_client, registered):
    """A ``returned: never`` value is kept in the change record (a rollback or restore needs
    it) but the console diff shows only that it changed, and audit search cannot find it."""
    user = ProvisionedUserFactory(userName="ana@example.com", **{URN: {"pin": "4821-old"}})
    operations = parse_patch_request(
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": f"{URN}:pin", "value": "4821-new"}],
        }
    )
    services.user_patch(user_id=user.pk, operations=operations, client=None)
    records = ChangeRecord.objects.filter(resource_id=user.pk)
    assert records.count() == 2
    for record in records:
        assert "4821" not in record.search_text
    record = records.get(action="patch")
    assert record.after["document"][URN]["pin"] == "4821-new"  # kept for rollback
    response = viewer_client.get(reverse("console:change_set_detail", args=[record.change_set_id]))
    [item] = response.context["records"]
    rows = {row.name: (row.kind, row.before, row.after) for row in item["diff"]}
    [name] = [name for name in rows if "pin" in name]
    assert rows[name][0] == "changed" and "4821" not in f"{rows[name]}"
    assert "4821" not in response.content.decode()
    created = records.get(action="create")
    page = viewer_client.get(reverse("console:change_set_detail", args=[created.change_set_id]))
    assert "4821" not in page.content.decode()
    found = viewer_client.get(reverse("console:audit_list"), {"q": "4821-new"})
    assert found.status_code == 200 and user.user_name not in found.content.decode()
