"""Registered (custom) extension schemas, end to end over SCIM.

RFC 7643 §3.3: a resource may carry extension schemas; their attributes are sent
under the schema's URN, as a nested object (``{"urn:...:User": {"attr": ...}}``) or,
as Entra sends custom attributes, as top-level keys holding the full attribute path
(``"urn:...:User:attr": value``). An administrator registers a schema; until then a
request naming its URN is refused with a detail saying how to register it.
"""

from __future__ import annotations

import copy
import json
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.access import roles
from provisioning.access.clients import scim_client_create
from provisioning.directory import extensions
from provisioning.directory.models import ExtensionSchema, User
from provisioning.oversight.models import PendingOperation, PolicyRule, RuleAction
from provisioning.oversight.rules import policy_rule_create
from provisioning.scim import schema as scim_schema

from .conftest import ENTERPRISE_SCHEMA, USER_SCHEMA, ScimApi

pytestmark = pytest.mark.django_db

CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtension:2.0:User"
GROUP_EXT = "urn:example:params:scim:schemas:extension:acme:2.0:Group"

CUSTOM_SCHEMA = {
    "id": CUSTOM,
    "name": "CustomExtension",
    "description": "Attributes the IdP sends for every user.",
    "attributes": [
        {"name": "costCenterCode", "type": "string", "description": "Cost center."},
        {"name": "level", "type": "integer"},
        {"name": "remote", "type": "boolean"},
        {"name": "startDate", "type": "dateTime"},
        {"name": "tags", "type": "string", "multiValued": True},
        {
            "name": "badge",
            "type": "complex",
            "subAttributes": [
                {"name": "number", "type": "string"},
                {"name": "issued", "type": "dateTime"},
            ],
        },
        {"name": "pin", "type": "string", "mutability": "writeOnly", "returned": "never"},
        {"name": "auditNote", "type": "string", "returned": "never"},
        {"name": "hireId", "type": "string", "mutability": "immutable"},
        {"name": "score", "type": "integer", "mutability": "readOnly"},
        {"name": "nickname", "type": "string", "returned": "request"},
        {"name": "region", "type": "string", "returned": "always"},
    ],
}


@pytest.fixture(autouse=True)
def _forget_registered_extensions():
    """The registered set lives in the process; no test leaves its own to the next."""
    yield
    scim_schema.install_extensions(())
    scim_schema.forget_extensions()


@pytest.fixture
def custom(db):
    row, outcome = extensions.extension_schema_save(document=copy.deepcopy(CUSTOM_SCHEMA))
    assert outcome == "created"
    return row


def _user_with(scim: ScimApi, **extension) -> dict:
    return scim.create_user(schemas=[USER_SCHEMA, CUSTOM], **{CUSTOM: extension})


# --- Unknown extensions -----------------------------------------------------------------


@pytest.mark.parametrize("shape", ["nested", "top-level"])
def test_an_unregistered_extension_is_refused_with_how_to_register_it(scim, shape):
    body = {"schemas": [USER_SCHEMA, CUSTOM], "userName": "ana"}
    if shape == "nested":
        body[CUSTOM] = {"costCenterCode": "CC-1"}
    else:
        body[f"{CUSTOM}:costCenterCode"] = "CC-1"
    error = scim.assert_error(scim.post("/Users", body), 400, "invalidValue")
    assert "Unknown schema extension" in error["detail"]
    assert "Extension schemas" in error["detail"] and "loadschema" in error["detail"]


def test_patching_an_unregistered_extension_path_is_invalid_path(scim):
    user = scim.create_user()
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "add", "path": f"{CUSTOM}:costCenterCode", "value": "CC-1"},
    )
    error = scim.assert_error(response, 400, "invalidPath")
    assert "loadschema" in error["detail"]


def test_an_unknown_attribute_of_a_registered_extension_is_named(scim, custom):
    response = scim.post(
        "/Users", {"userName": "ana", f"{CUSTOM}:nope": "x"}
    )
    error = scim.assert_error(response, 400, "invalidValue")
    assert "nope" in error["detail"] and "Unknown schema extension" not in error["detail"]


# --- Both request shapes, reading back, PATCH, PUT ----------------------------------------


def test_nested_shape_is_stored_under_the_urn_and_returned_with_it_in_schemas(scim, custom):
    created = _user_with(
        scim,
        costCenterCode="CC-1",
        level=3,
        remote=True,
        startDate="2026-01-05T09:00:00Z",
        tags=["a", "b"],
        badge={"number": "B-7", "issued": "2025-12-01T00:00:00Z"},
    )
    assert created["schemas"] == [USER_SCHEMA, CUSTOM]
    assert created[CUSTOM] == {
        "costCenterCode": "CC-1",
        "level": 3,
        "remote": True,
        "startDate": "2026-01-05T09:00:00Z",
        "tags": ["a", "b"],
        "badge": {"number": "B-7", "issued": "2025-12-01T00:00:00Z"},
    }
    read = scim.read(f"/Users/{created['id']}")
    assert read["schemas"] == [USER_SCHEMA, CUSTOM]
    assert read[CUSTOM] == created[CUSTOM]
    assert User.objects.get(pk=created["id"]).attributes[CUSTOM]["costCenterCode"] == "CC-1"


def test_top_level_urn_path_keys_are_accepted_case_insensitively(scim, custom):
    created = scim.create_user(
        **{
            f"{CUSTOM}:costCenterCode": "CC-2",
            f"{CUSTOM.upper()}:LEVEL": 4,
        }
    )
    assert created[CUSTOM] == {"costCenterCode": "CC-2", "level": 4}
    assert CUSTOM in created["schemas"]


def test_entra_custom_attribute_shape(scim, custom):
    """Entra (SCIM-DIALECTS.md) lists every schema in ``schemas``, sends the enterprise
    extension nested, custom attributes as top-level full paths, booleans as strings, and
    later PATCHes with capitalised ``op`` and full URN paths."""
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA, CUSTOM],
        "externalId": "e-1",
        "userName": "lee@contoso.example",
        "active": True,
        "displayName": "Lee",
        ENTERPRISE_SCHEMA: {"employeeNumber": "701"},
        f"{CUSTOM}:costCenterCode": "CC-9",
        f"{CUSTOM}:remote": "False",
    }
    created = scim.ok(scim.post("/Users", body), 201)
    assert created["schemas"] == [USER_SCHEMA, ENTERPRISE_SCHEMA, CUSTOM]
    assert created[CUSTOM] == {"costCenterCode": "CC-9", "remote": False}
    path = f"/Users/{created['id']}"
    response = scim.patch_ops(
        path,
        {"op": "Replace", "path": f"{CUSTOM}:costCenterCode", "value": "CC-10"},
        {"op": "Add", "path": f"{CUSTOM}:remote", "value": "True"},
    )
    assert scim.ok(response)[CUSTOM] == {"costCenterCode": "CC-10", "remote": True}
    # Path-less replace whose keys are paths (newer Entra jobs).
    response = scim.patch_ops(path, {"op": "replace", "value": {f"{CUSTOM}:level": 2}})
    assert scim.ok(response)[CUSTOM]["level"] == 2


def test_patch_by_urn_path_add_replace_remove(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1", tags=["a"])
    path = f"/Users/{user['id']}"
    body = scim.ok(
        scim.patch_ops(
            path,
            {"op": "replace", "path": f"{CUSTOM}:costCenterCode", "value": "CC-2"},
            {"op": "add", "path": f"{CUSTOM}:tags", "value": ["b"]},
            {"op": "add", "path": f"{CUSTOM}:badge.number", "value": "B-1"},
        )
    )
    assert body[CUSTOM] == {"costCenterCode": "CC-2", "tags": ["a", "b"], "badge": {"number": "B-1"}}
    body = scim.ok(
        scim.patch_ops(
            path,
            {"op": "remove", "path": f"{CUSTOM}:tags"},
            {"op": "remove", "path": f"{CUSTOM}:badge"},
        )
    )
    assert body[CUSTOM] == {"costCenterCode": "CC-2"}
    body = scim.ok(scim.patch_ops(path, {"op": "remove", "path": CUSTOM}))
    assert CUSTOM not in body and body["schemas"] == [USER_SCHEMA]


def test_path_less_replace_with_the_extension_object(scim, custom):
    user = scim.create_user()
    body = scim.ok(
        scim.patch_ops(
            f"/Users/{user['id']}",
            {"op": "replace", "value": {CUSTOM: {"costCenterCode": "CC-5", "level": 1}}},
        )
    )
    assert body[CUSTOM] == {"costCenterCode": "CC-5", "level": 1}
    assert CUSTOM in body["schemas"]


def test_put_replaces_the_extension_values(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1", level=1)
    body = scim.ok(
        scim.put(
            f"/Users/{user['id']}",
            {"schemas": [USER_SCHEMA, CUSTOM], "userName": user["userName"], CUSTOM: {"level": 2}},
        )
    )
    assert body[CUSTOM] == {"level": 2}
    body = scim.ok(scim.put(f"/Users/{user['id']}", {"userName": user["userName"]}))
    assert CUSTOM not in body and body["schemas"] == [USER_SCHEMA]


@pytest.mark.parametrize(
    "attribute, value",
    [
        ("level", "three"),
        ("level", 1.5),
        ("remote", "maybe"),
        ("startDate", "yesterday"),
        ("tags", "not-a-list"),
        ("badge", "not-an-object"),
        ("costCenterCode", 12),
    ],
)
def test_values_of_the_wrong_type_are_refused(scim, custom, attribute, value):
    response = scim.post("/Users", {"userName": "ana", CUSTOM: {attribute: value}})
    error = scim.assert_error(response, 400, "invalidValue")
    assert attribute in error["detail"]
    user = scim.create_user()
    response = scim.patch_ops(
        f"/Users/{user['id']}", {"op": "add", "path": f"{CUSTOM}:{attribute}", "value": value}
    )
    scim.assert_error(response, 400, "invalidValue")


# --- Characteristics: returned, mutability, required ---------------------------------------


def test_returned_never_and_write_only_values_are_stored_but_never_returned(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1", pin="1234", auditNote="vip")
    assert user[CUSTOM] == {"costCenterCode": "CC-1"}
    stored = User.objects.get(pk=user["id"]).attributes[CUSTOM]
    assert stored["pin"] == "1234" and stored["auditNote"] == "vip"
    for params in ({}, {"attributes": f"{CUSTOM}:pin,{CUSTOM}:auditNote"}, {"attributes": CUSTOM}):
        read = scim.read(f"/Users/{user['id']}", params=params)
        assert "pin" not in json.dumps(read) and "vip" not in json.dumps(read)
    listed = scim.search("/Users", filter=f'userName eq "{user["userName"]}"')
    assert "1234" not in json.dumps(listed)


def test_only_write_only_values_leave_no_extension_in_schemas(scim, custom):
    user = _user_with(scim, pin="1234")
    assert CUSTOM not in user and user["schemas"] == [USER_SCHEMA]


def test_read_only_values_from_clients_are_ignored(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1", score=99)
    assert "score" not in user[CUSTOM]
    assert "score" not in User.objects.get(pk=user["id"]).attributes[CUSTOM]
    # Named in a PATCH path, a read-only attribute is a client error (RFC 7644 §3.5.2).
    response = scim.patch_ops(
        f"/Users/{user['id']}", {"op": "replace", "path": f"{CUSTOM}:score", "value": 1}
    )
    scim.assert_error(response, 400, "mutability")


def test_immutable_values_are_set_once(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1")
    path = f"/Users/{user['id']}"
    body = scim.ok(scim.patch_ops(path, {"op": "add", "path": f"{CUSTOM}:hireId", "value": "H1"}))
    assert body[CUSTOM]["hireId"] == "H1"
    response = scim.patch_ops(path, {"op": "replace", "path": f"{CUSTOM}:hireId", "value": "H2"})
    scim.assert_error(response, 400, "mutability")
    # Sending the same value again (Okta's full PUT of what it read) is fine.
    same = {"userName": user["userName"], CUSTOM: {"hireId": "H1"}}
    assert scim.put(path, same).status_code == 200
    other = {"userName": user["userName"], CUSTOM: {"hireId": "H3"}}
    scim.assert_error(scim.put(path, other), 400, "mutability")
    assert User.objects.get(pk=user["id"]).attributes[CUSTOM]["hireId"] == "H1"


def test_returned_request_only_when_asked_and_returned_always_even_when_not(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1", nickname="Al", region="EU")
    assert "nickname" not in user[CUSTOM] and user[CUSTOM]["region"] == "EU"
    read = scim.read(f"/Users/{user['id']}", params={"attributes": f"{CUSTOM}:nickname"})
    assert read[CUSTOM] == {"nickname": "Al", "region": "EU"}
    read = scim.read(f"/Users/{user['id']}", params={"attributes": "userName"})
    assert read[CUSTOM] == {"region": "EU"}
    read = scim.read(
        f"/Users/{user['id']}", params={"excludedAttributes": f"{CUSTOM}:region"}
    )
    assert read[CUSTOM]["region"] == "EU" and "nickname" not in read[CUSTOM]


def test_required_attributes_are_enforced_on_create_and_replace(scim):
    document = {
        "id": "urn:example:hr:2.0:User",
        "attributes": [{"name": "badgeNumber", "type": "string", "required": True}],
    }
    extensions.extension_schema_save(document=document)
    urn = document["id"]
    error = scim.assert_error(scim.post("/Users", {"userName": "ana"}), 400, "invalidValue")
    assert f"{urn}:badgeNumber" in error["detail"] and "required" in error["detail"]
    user = scim.create_user(**{urn: {"badgeNumber": "7"}})
    path = f"/Users/{user['id']}"
    scim.assert_error(scim.put(path, {"userName": user["userName"]}), 400, "invalidValue")
    # PATCH may not remove it (RFC 7644 §3.5.2.2) ...
    response = scim.patch_ops(path, {"op": "remove", "path": f"{urn}:badgeNumber"})
    scim.assert_error(response, 400, "mutability")
    # ... and a user stored before it became required can still be deactivated.
    legacy = User.objects.create(user_name="legacy", created=User.objects.get(pk=user["id"]).created,
                                 last_modified=User.objects.get(pk=user["id"]).last_modified)
    response = scim.patch_ops(f"/Users/{legacy.pk}", {"op": "replace", "path": "active", "value": False})
    assert response.status_code == 200
    resource_type = scim.read("/ResourceTypes/User")
    assert {"schema": urn, "required": True} in resource_type["schemaExtensions"]


def test_a_group_extension(scim):
    extensions.extension_schema_save(
        document={"id": GROUP_EXT, "attributes": [{"name": "costCenter", "type": "string"}]}
    )
    group = scim.create_group(**{f"{GROUP_EXT}:costCenter": "G-1"})
    assert group["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group", GROUP_EXT]
    assert group[GROUP_EXT] == {"costCenter": "G-1"}
    response = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "replace", "path": f"{GROUP_EXT}:costCenter", "value": "G-2"},
        params={"attributes": f"{GROUP_EXT}:costCenter"},
    )
    assert scim.ok(response)[GROUP_EXT] == {"costCenter": "G-2"}
    # Users do not have it.
    scim.assert_error(scim.post("/Users", {"userName": "x", GROUP_EXT: {"costCenter": "1"}}), 400)


def test_a_whole_group_streamed_leaves_out_attributes_returned_on_request(scim):
    extensions.extension_schema_save(
        document={
            "id": GROUP_EXT,
            "attributes": [
                {"name": "costCenter", "type": "string"},
                {"name": "owner", "type": "string", "returned": "request"},
            ],
        }
    )
    group = scim.create_group(**{GROUP_EXT: {"costCenter": "G-1", "owner": "ana"}})
    assert group[GROUP_EXT] == {"costCenter": "G-1"}
    whole = scim.get(f"/Groups/{group['id']}")
    assert whole.streamed and scim.json(whole)[GROUP_EXT] == {"costCenter": "G-1"}
    asked = scim.read(f"/Groups/{group['id']}", params={"attributes": f"{GROUP_EXT}:owner"})
    assert asked[GROUP_EXT] == {"owner": "ana"}


# --- Discovery -------------------------------------------------------------------------


def test_schemas_and_resource_types_list_the_registered_extension(scim, custom):
    listing = scim.read("/Schemas")
    ids = [document["id"] for document in listing["Resources"]]
    assert CUSTOM in ids and listing["totalResults"] == len(ids)
    document = scim.read(f"/Schemas/{CUSTOM}")
    assert document["id"] == CUSTOM and document["name"] == "CustomExtension"
    assert document["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
    assert document["meta"]["resourceType"] == "Schema"
    by_name = {a["name"]: a for a in document["attributes"]}
    # RFC 7643 §7: every characteristic is stated.
    for attribute in document["attributes"]:
        for key in ("name", "type", "multiValued", "description", "required", "caseExact",
                    "mutability", "returned", "uniqueness"):
            assert key in attribute, (attribute["name"], key)
    assert by_name["pin"]["mutability"] == "writeOnly" and by_name["pin"]["returned"] == "never"
    assert [s["name"] for s in by_name["badge"]["subAttributes"]] == ["number", "issued"]
    user_type = scim.read("/ResourceTypes/User")
    assert {"schema": CUSTOM, "required": False} in user_type["schemaExtensions"]
    group_type = scim.read("/ResourceTypes/Group")
    assert all(e["schema"] != CUSTOM for e in group_type["schemaExtensions"])


def test_discovery_forgets_a_removed_extension(scim, custom):
    extensions.extension_schema_delete(schema=custom)
    scim.assert_error(scim.get(f"/Schemas/{CUSTOM}"), 404)
    assert CUSTOM not in [e["schema"] for e in scim.read("/ResourceTypes/User")["schemaExtensions"]]


# --- Changing and removing a registered schema -----------------------------------------------


def test_removing_a_schema_is_refused_while_users_hold_values(scim, custom):
    user = _user_with(scim, costCenterCode="CC-1")
    with pytest.raises(Exception) as refused:
        extensions.extension_schema_delete(schema=custom)
    assert "hold values" in str(refused.value)
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": CUSTOM}))
    extensions.extension_schema_delete(schema=custom)
    assert not ExtensionSchema.objects.exists()
    scim.assert_error(scim.post("/Users", {"userName": "b", CUSTOM: {"level": 1}}), 400)


def test_an_attribute_with_values_cannot_be_removed_or_change_type(scim, custom):
    _user_with(scim, level=3)
    changed = copy.deepcopy(CUSTOM_SCHEMA)
    changed["attributes"] = [a for a in changed["attributes"] if a["name"] != "level"]
    with pytest.raises(Exception, match="level"):
        extensions.extension_schema_save(document=changed)
    retyped = copy.deepcopy(CUSTOM_SCHEMA)
    next(a for a in retyped["attributes"] if a["name"] == "level")["type"] = "string"
    with pytest.raises(Exception, match="level"):
        extensions.extension_schema_save(document=retyped)
    # An attribute nobody holds may go; descriptions may always change.
    loose = copy.deepcopy(CUSTOM_SCHEMA)
    loose["attributes"] = [a for a in loose["attributes"] if a["name"] != "tags"]
    loose["attributes"][0]["description"] = "Changed."
    _row, outcome = extensions.extension_schema_save(document=loose)
    assert outcome == "updated"
    scim.assert_error(scim.post("/Users", {"userName": "c", CUSTOM: {"tags": ["x"]}}), 400)


# --- Registration: the management command ------------------------------------------------------


def test_loadschema_command_registers_idempotently(scim, tmp_path, capsys):
    file = tmp_path / "custom.json"
    file.write_text(json.dumps(CUSTOM_SCHEMA))
    call_command("loadschema", str(file))
    assert "Created" in capsys.readouterr().out
    call_command("loadschema", str(file))
    assert "Unchanged" in capsys.readouterr().out
    assert ExtensionSchema.objects.get().resource_type == "User"
    scim.create_user(**{f"{CUSTOM}:costCenterCode": "CC-1"})


def test_loadschema_reports_every_problem_and_loads_nothing(tmp_path):
    file = tmp_path / "bad.json"
    file.write_text(
        json.dumps(
            [
                {"id": "urn:example:good:2.0:User", "attributes": [{"name": "a"}]},
                {
                    "id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    "attributes": [
                        {"name": "1bad"},
                        {"name": "x", "type": "blob"},
                        {"name": "y", "uniqueness": "server"},
                    ],
                },
            ]
        )
    )
    with pytest.raises(CommandError) as error:
        call_command("loadschema", str(file))
    message = str(error.value)
    assert "already exists" in message and "1bad" in message and "blob" in message
    assert "uniqueness" in message
    assert not ExtensionSchema.objects.exists()
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("loadschema", str(tmp_path / "broken.json"))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("loadschema", str(tmp_path / "missing.json"))


def test_loadschema_resource_type_option(tmp_path):
    file = tmp_path / "group.json"
    file.write_text(json.dumps({"id": "urn:example:acme:ext", "attributes": [{"name": "a"}]}))
    with pytest.raises(CommandError, match="resource type"):
        call_command("loadschema", str(file))
    call_command("loadschema", str(file), "--resource-type", "Group")
    assert ExtensionSchema.objects.get().resource_type == "Group"


# --- Freshness across processes ------------------------------------------------------------------


def test_a_registration_is_seen_by_the_next_request_in_this_process(scim):
    scim.create_user()  # loads the (empty) registered set
    extensions.extension_schema_save(document=copy.deepcopy(CUSTOM_SCHEMA))
    created = scim.create_user(**{f"{CUSTOM}:costCenterCode": "CC-1"})
    assert created[CUSTOM] == {"costCenterCode": "CC-1"}


def test_another_process_sees_a_change_through_the_revision(scim, custom):
    """What another process (gunicorn or Celery worker) holds: simulated by installing a
    stale set under an old revision; the next request compares revisions and reloads."""
    scim.create_user(**{f"{CUSTOM}:level": 1})
    scim_schema.install_extensions((), revision="a revision of another time")
    assert CUSTOM not in scim_schema.USER_SCHEMA.extensions
    created = scim.create_user(**{f"{CUSTOM}:level": 2})
    assert created[CUSTOM] == {"level": 2}
    assert CUSTOM in scim_schema.USER_SCHEMA.extensions
    # A process that never loaded anything.
    scim_schema.install_extensions(())
    scim_schema.forget_extensions()
    assert scim.read(f"/Schemas/{CUSTOM}")["id"] == CUSTOM


def test_an_unchanged_revision_costs_one_query_and_no_reload(scim, custom):
    assert scim_schema.refresh_extensions() is True
    with CaptureQueriesContext(connection) as queries:
        assert scim_schema.refresh_extensions() is False
    assert len(queries.captured_queries) == 1
    started = time.perf_counter()
    for _ in range(200):
        scim_schema.refresh_extensions()
    per_check = (time.perf_counter() - started) / 200
    assert per_check < 0.005, f"{per_check * 1e6:.0f} µs per revision check"


def test_writes_outside_a_scim_request_refresh_too(custom):
    """A Celery task or console action writes through the services without a SCIM request."""
    from provisioning.directory import services

    scim_schema.install_extensions((), revision="stale")
    user = services.user_create(
        document={"userName": "task", CUSTOM: {"costCenterCode": "CC-7"}}, client=None
    )
    assert user.attributes[CUSTOM] == {"costCenterCode": "CC-7"}


# --- Roles and policy rules naming extension attributes -------------------------------------------


def test_a_role_may_be_barred_from_an_extension_attribute(custom):
    role = roles.scim_role_create(
        name="no-cost-center",
        permissions=["User:read", "User:create", "User:patch", "User:replace"],
        forbidden_attributes=[f"{CUSTOM.lower()}:COSTCENTERCODE"],
    )
    assert role.forbidden_attributes == [f"{CUSTOM}:costCenterCode"]
    _client, token = scim_client_create(name="narrowed", role=role)
    narrowed = ScimApi(token)
    user = narrowed.create_user()
    path = f"/Users/{user['id']}"
    response = narrowed.patch_ops(
        path, {"op": "add", "path": f"{CUSTOM}:costCenterCode", "value": "CC-1"}
    )
    narrowed.assert_error(response, 403)
    ok = narrowed.patch_ops(path, {"op": "add", "path": f"{CUSTOM}:level", "value": 1})
    assert ok.status_code == 200


def test_role_and_rule_names_of_unregistered_extensions_are_refused(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        roles.scim_role_create(
            name="x", permissions=["User:read"], forbidden_attributes=[f"{CUSTOM}:costCenterCode"]
        )
    with pytest.raises(ValidationError):
        policy_rule_create(
            name="r",
            kind=PolicyRule.Kind.ATTRIBUTE_CHANGE,
            action=RuleAction.HOLD,
            attributes=[f"{CUSTOM}:costCenterCode"],
            operator=None,
        )


def test_a_policy_rule_holds_a_change_of_an_extension_attribute_until_approved(
    scim, custom, django_capture_on_commit_callbacks
):
    from provisioning.oversight.services import pending_approve
    from tests.factories import OperatorFactory

    policy_rule_create(
        name="cost center changes need approval",
        kind=PolicyRule.Kind.ATTRIBUTE_CHANGE,
        action=RuleAction.HOLD,
        attributes=[f"{CUSTOM}:costCenterCode"],
        operator=None,
    )
    user = _user_with(scim, costCenterCode="CC-1")
    path = f"/Users/{user['id']}"
    response = scim.patch_ops(
        path, {"op": "replace", "path": f"{CUSTOM}:costCenterCode", "value": "CC-2"}
    )
    assert response.status_code == 202
    assert response["Location"]
    assert scim.read(path)[CUSTOM]["costCenterCode"] == "CC-1"
    pending = PendingOperation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):  # the apply task
        pending_approve(pending_id=pending.pk, operator=OperatorFactory(role="approver"))
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    assert scim.read(path)[CUSTOM] == {"costCenterCode": "CC-2"}
    # Other attributes of the extension are not held.
    response = scim.patch_ops(path, {"op": "add", "path": f"{CUSTOM}:level", "value": 5})
    assert scim.ok(response)[CUSTOM] == {"costCenterCode": "CC-2", "level": 5}


# --- Validation of a schema document (RFC 7643 §7) --------------------------------------------


def _attribute(**characteristics) -> dict:
    return {"id": "urn:example:v:2.0:User", "attributes": [{"name": "a", **characteristics}]}


@pytest.mark.parametrize(
    "document, expected",
    [
        (_attribute(type="binary"), "binary"),
        (_attribute(type="complex"), "subAttributes"),
        (_attribute(subAttributes=[{"name": "x"}]), "only complex"),
        (
            _attribute(
                type="complex",
                subAttributes=[{"name": "x", "type": "complex", "subAttributes": [{"name": "y"}]}],
            ),
            "cannot be nested",
        ),
        (_attribute(type="complex", subAttributes=[{"name": "x", "required": True}]), "required"),
        (_attribute(mutability="writeOnly"), "returned to 'never'"),
        (_attribute(mutability="sometimes"), "mutability"),
        (_attribute(returned="maybe"), "returned"),
        (_attribute(uniqueness="server"), "not enforced"),
        (_attribute(multiValued="yes"), "multiValued"),
        (_attribute(canonicalValues=[1, 2]), "canonicalValues"),
        (_attribute(referenceTypes=["User"]), "referenceTypes"),
        (_attribute(colour="blue"), "unknown characteristic"),
        ({"id": "urn:example:v:2.0:User", "attributes": [{"name": "Schemas"}]}, "reserved"),
        ({"id": "urn:example:v:2.0:User", "attributes": [{"name": "a-b_c1"}, {"name": "A-B_C1"}]},
         "used twice"),
        ({"id": "urn:example:v:2.0:User", "attributes": []}, "non-empty"),
        ({"id": "urn:example:v:2.0:User", "attributes": [{"name": "_x"}]}, "RFC 7643 §2.1"),
        ({"id": "urn:example:v:2.0:User:", "attributes": [{"name": "a"}]}, "not a URN"),
        ({"id": "urn:x", "attributes": [{"name": "a"}]}, "not a URN"),
        ({"id": "URN:IETF:params:scim:schemas:core:2.0:User", "attributes": [{"name": "a"}]},
         "reserved"),
        ({"id": f"{ENTERPRISE_SCHEMA}:more", "attributes": [{"name": "a"}]}, "ambiguous"),
        ({"id": ENTERPRISE_SCHEMA.upper(), "attributes": [{"name": "a"}]}, "already exists"),
        ({"id": "urn:example:v:2.0:Device", "attributes": [{"name": "a"}]}, "resource type"),
        ({"id": "urn:example:v:2.0:User", "attributes": [{"name": "a"}], "extra": 1}, "Unknown"),
    ],
)
def test_schema_documents_are_validated(document, expected):
    with pytest.raises(scim_schema.InvalidSchemaDocument) as error:
        scim_schema.parse_extension_document(document)
    assert any(expected in problem for problem in error.value.problems), error.value.problems


def test_a_valid_document_is_normalised_with_every_characteristic():
    document = {
        "id": "urn:example:v:2.0:User",
        "attributes": [
            {"name": "link", "type": "reference"},
            {"name": "kind", "canonicalValues": ["a", "b"]},
            {"name": "card", "type": "complex", "multiValued": True,
             "subAttributes": [{"name": "value"}, {"name": "$ref", "type": "reference"}]},
        ],
    }
    extension = scim_schema.parse_extension_document(document)
    assert extension.resource_type == "User" and extension.document["name"] == "User"
    link, kind, card = extension.document["attributes"]
    assert link["referenceTypes"] == ["external"]
    assert kind == {
        "name": "kind", "type": "string", "multiValued": False, "description": "",
        "required": False, "caseExact": False, "mutability": "readWrite",
        "returned": "default", "uniqueness": "none", "canonicalValues": ["a", "b"],
    }
    # RFC 7643 §2.4: the default sub-attributes a multi-valued attribute does not define.
    assert [s["name"] for s in card["subAttributes"]] == [
        "value", "$ref", "type", "primary", "display"
    ]
    other = {"id": "urn:example:v:2.0:User:x", "attributes": [{"name": "a"}]}
    with pytest.raises(scim_schema.InvalidSchemaDocument, match="ambiguous"):
        scim_schema.parse_extension_document(other, taken=[document["id"]])


# --- Filtering and sorting on registered attributes (RFC 7644 §3.4.2.2, §3.4.2.3) -------------


def _ids(page: dict) -> list[str]:
    return [resource["id"] for resource in page["Resources"]]


def test_registered_attributes_are_filterable_and_sortable_end_to_end(scim, custom):
    ana = _user_with(
        scim, costCenterCode="CC-10", level=3, remote=True, startDate="2024-01-15T09:00:00Z",
        tags=["Oncall", "emea"], badge={"number": "B-7"}, pin="1234",
    )
    ben = _user_with(scim, costCenterCode="cc-9", level=12, remote=False, tags=["amer"])
    # The Entra shape: the attribute named by its full URN path, at the top level.
    cy = scim.create_user(
        schemas=[USER_SCHEMA, CUSTOM], **{f"{CUSTOM}:costCenterCode": "CC-2", f"{CUSTOM}:level": 7}
    )
    everyone = scim.create_user()

    def found(text: str) -> list[str]:
        return _ids(scim.search("/Users", filter=text, count=50))

    # Strings without caseExact compare case-insensitively; absent values only match ne.
    assert sorted(found(f'{CUSTOM}:costCenterCode sw "cc-"')) == sorted([ana["id"], ben["id"], cy["id"]])
    assert found(f'{CUSTOM}:costCenterCode eq "CC-9"') == [ben["id"]]
    assert everyone["id"] in found(f'{CUSTOM}:costCenterCode ne "CC-9"')
    assert found(f"{CUSTOM.lower()}:COSTCENTERCODE pr and not ({CUSTOM}:level gt 5)") == [ana["id"]]
    # Integers numerically (12 > 7 > 3, not "12" < "3"), booleans, instants, arrays, complex.
    assert found(f"{CUSTOM}:level ge 7") == [ben["id"], cy["id"]]
    assert found(f"{CUSTOM}:remote eq false") == [ben["id"]]
    assert found(f'{CUSTOM}:startDate gt "2024-01-15T08:59:59+00:00"') == [ana["id"]]
    assert found(f'{CUSTOM}:tags eq "ONCALL"') == [ana["id"]]
    assert found(f'{CUSTOM}:badge.number eq "b-7"') == [ana["id"]]
    # A value never returned cannot be probed by filter either.
    scim.assert_error(scim.get("/Users", params={"filter": f'{CUSTOM}:pin eq "1234"'}), 400, "invalidFilter")
    scim.assert_error(
        scim.get("/Users", params={"filter": f'{CUSTOM}:nope eq "x"'}), 400, "invalidFilter"
    )

    def order(sort_by: str, **params) -> list[str]:
        page = scim.search("/Users", sortBy=sort_by, count=50, **params)
        return [rid for rid in _ids(page) if rid in (ana["id"], ben["id"], cy["id"], everyone["id"])]

    assert order(f"{CUSTOM}:level") == [ana["id"], cy["id"], ben["id"], everyone["id"]]
    assert order(f"{CUSTOM}:level", sortOrder="descending") == [
        ben["id"], cy["id"], ana["id"], everyone["id"]
    ]
    # Case-insensitive text order: cc-10 < cc-2 < cc-9; absent last.
    assert order(f"{CUSTOM}:costCenterCode") == [ana["id"], cy["id"], ben["id"], everyone["id"]]
    # Cursor paging walks the same order.
    first = scim.search(
        "/Users", sortBy=f"{CUSTOM}:level", filter=f"{CUSTOM}:level pr", count=2, cursor=""
    )
    second = scim.search(
        "/Users", sortBy=f"{CUSTOM}:level", filter=f"{CUSTOM}:level pr", count=2,
        cursor=first["nextCursor"],
    )
    assert _ids(first) + _ids(second) == [ana["id"], cy["id"], ben["id"]]


@pytest.mark.parametrize("descending", [False, True])
def test_cursor_pages_by_a_registered_date_time_attribute(scim, custom, descending):
    """RFC 9865 §2: every resource once, with several sharing a date (ties broken by id)."""
    dates = ["2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z", "2024-03-02T08:30:00.250Z",
             "2024-03-01T10:00:00Z", "2024-03-02T08:30:00.250Z", "2023-12-31T23:59:59Z"]
    ids = [_user_with(scim, startDate=when)["id"] for when in dates]
    scim.create_user()  # no startDate: last either way
    params = {"sortBy": f"{CUSTOM}:startDate", "count": 2}
    if descending:
        params["sortOrder"] = "descending"
    page, walked = scim.search("/Users", cursor="", **params), []
    while True:
        walked += _ids(page)
        if "nextCursor" not in page:
            break
        page = scim.search("/Users", cursor=page["nextCursor"], **params)
        assert len(walked) < 20, "the walk does not end"
    assert len(walked) == len(set(walked)) == 7
    assert set(ids) <= set(walked) and walked[-1] not in ids
    ordered = sorted(range(6), key=lambda i: dates[i].replace("Z", ""), reverse=descending)
    assert [ids.index(i) for i in walked[:6] if i in ids] != [] and [
        dates[ids.index(i)] for i in walked[:6]
    ] == [dates[i] for i in ordered]


@pytest.mark.parametrize("urn", ["urn:example:acme/hr~x:2.0:User", "urn:example:a(b):2.0:User"])
def test_urns_attribute_paths_cannot_carry_are_refused(urn):
    with pytest.raises(scim_schema.InvalidSchemaDocument) as error:
        scim_schema.parse_extension_document({"id": urn, "attributes": [{"name": "dept"}]})
    assert any("attribute paths" in problem for problem in error.value.problems)
