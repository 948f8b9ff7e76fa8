"""What each SCIM write puts in the outbox: RFC 9967 §2.1-2.4 event shapes, notice and full."""

from __future__ import annotations

import copy

import pytest

from provisioning.audit.models import ChangeSet
from provisioning.directory import extensions
from provisioning.events.claims import set_claims
from provisioning.events.models import Delivery, EventStream
from provisioning.scim import schema as scim_schema
from tests.scim.conftest import GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA

from .conftest import delivered_to, events, kinds

pytestmark = pytest.mark.django_db

PREFIX = "urn:ietf:params:scim:event:prov:"


def last_change_set() -> ChangeSet:
    return ChangeSet.objects.order_by("-id").first()


@pytest.fixture
def absolute_base(settings):
    """The SCIM base URL the test client's requests have, so ``data`` and the SCIM API's
    answers can be compared as they are."""
    settings.SCIM_BASE_URL = "http://testserver/scim/v2"


# --- Users ------------------------------------------------------------------------------


def test_create_user_notice(scim, notice_stream):
    response = scim.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "ada@x.example",
            "externalId": "ext-ada",
            "name": {"givenName": "Ada"},
            "active": True,
        },
    )
    body = scim.ok(response, 201)

    [event] = events()
    assert event.kind == "create"
    assert event.sub_id == {
        "format": "scim",
        "uri": f"/Users/{body['id']}",
        "id": body["id"],
        "externalId": "ext-ada",
    }
    assert event.payload == {
        "version": response["ETag"],
        "attributes": ["active", "externalId", "id", "name", "userName"],
    }
    assert event.txn == str(last_change_set().pk)
    assert event.client.name.startswith("test-provisioner")
    assert delivered_to(notice_stream) == [event]
    claims = set_claims(event, notice_stream)
    assert claims["sub_id"] == event.sub_id and claims["txn"] == event.txn
    assert claims["events"] == {
        PREFIX + "create:notice": {
            "version": response["ETag"],
            "attributes": event.payload["attributes"],
        }
    }


def test_create_user_full_is_the_resource_as_the_scim_api_returns_it(
    scim, full_stream, absolute_base
):
    response = scim.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "bo@x.example",
            "emails": [{"value": "bo@x.example", "type": "work", "primary": True}],
        },
    )
    body = scim.ok(response, 201)

    [event] = events()
    claims = set_claims(event, full_stream)
    assert claims["events"] == {PREFIX + "create:full": {"version": response["ETag"], "data": body}}


def test_patch_user_lists_what_changed_and_full_data_is_the_new_state(
    scim, notice_stream, full_stream, absolute_base
):
    user = scim.create_user("cy@x.example", title="Engineer", displayName="Cy")
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Manager"},
        {"op": "remove", "path": "displayName"},
    )
    body = scim.ok(response)

    create, patch = events()
    assert create.kind == "create" and patch.kind == "patch"
    assert patch.payload["attributes"] == ["displayName", "title"]
    assert patch.payload["version"] == response["ETag"] == 'W/"2"'
    notice = set_claims(patch, notice_stream)["events"]
    assert notice == {
        PREFIX + "patch:notice": {"version": 'W/"2"', "attributes": ["displayName", "title"]}
    }
    full = set_claims(patch, full_stream)["events"]
    assert full == {PREFIX + "patch:full": {"version": 'W/"2"', "data": body}}
    assert full[PREFIX + "patch:full"]["data"] == scim.read(f"/Users/{user['id']}")
    # Both streams hear both events, in order.
    assert delivered_to(notice_stream) == delivered_to(full_stream) == [create, patch]


def test_full_data_of_a_user_in_groups_lists_them_as_the_api_does(scim, full_stream, absolute_base):
    user = scim.create_user("dee@x.example")
    scim.create_group("Readers", members=[{"value": user["id"]}])
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "title", "value": "T"}))

    patch = events(kind="patch")[0]
    data = patch.payload["data"]
    assert data == scim.read(f"/Users/{user['id']}")
    assert [g["display"] for g in data["groups"]] == ["Readers"]


def test_put_user(scim, notice_stream):
    user = scim.create_user("eve@x.example", title="A", nickName="E")
    response = scim.put(
        f"/Users/{user['id']}",
        {"schemas": [USER_SCHEMA], "userName": "eve@x.example", "title": "B"},
    )
    scim.ok(response)

    put = events()[-1]
    assert put.kind == "put"
    assert put.payload == {"version": response["ETag"], "attributes": ["nickName", "title"]}
    assert set_claims(put, notice_stream)["events"].keys() == {PREFIX + "put:notice"}


def test_delete_user_has_no_payload_and_keeps_its_external_id(scim, notice_stream):
    user = scim.create_user("fay@x.example", externalId="ext-fay")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204

    delete = events()[-1]
    assert delete.kind == "delete" and delete.payload == {}
    assert delete.sub_id == {
        "format": "scim",
        "uri": f"/Users/{user['id']}",
        "id": user["id"],
        "externalId": "ext-fay",
    }
    assert set_claims(delete, notice_stream)["events"] == {PREFIX + "delete": {}}


def test_deactivating_and_reactivating_yield_their_own_events(scim, notice_stream):
    user = scim.create_user("gus@x.example", active=True)
    off = scim.patch_ops(
        f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    scim.ok(off)
    on = scim.put(
        f"/Users/{user['id']}",
        {"schemas": [USER_SCHEMA], "userName": "gus@x.example", "active": True},
    )
    scim.ok(on)

    create, patch, deactivate, put, activate = events()
    assert [e.kind for e in events()] == ["create", "patch", "deactivate", "put", "activate"]
    assert patch.txn == deactivate.txn != put.txn == activate.txn
    assert deactivate.id == patch.id + 1 and activate.id == put.id + 1
    assert deactivate.payload == {"version": off["ETag"]}
    assert activate.payload == {"version": on["ETag"]}
    assert set_claims(deactivate, notice_stream)["events"] == {
        PREFIX + "deactivate": {"version": off["ETag"]}
    }
    assert delivered_to(notice_stream) == [create, patch, deactivate, put, activate]


def test_a_user_created_inactive_gets_a_create_only(scim, notice_stream):
    scim.create_user("hal@x.example", active=False)
    assert [e.kind for e in events()] == ["create"]


def test_an_absent_active_counts_as_active(scim, notice_stream):
    """``active`` removed from an inactive user makes it active again: only false
    deactivates (RFC 7643 §4.1.1 leaves the meaning of an absent value to the server)."""
    user = scim.create_user("ida@x.example", active=False)
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": "active"}))
    assert [e.kind for e in events()] == ["create", "patch", "activate"]


def test_a_no_op_write_yields_no_event(scim, notice_stream):
    user = scim.create_user("jo@x.example", title="Same")
    scim.ok(
        scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Same"})
    )
    scim.ok(
        scim.put(
            f"/Users/{user['id']}",
            {"schemas": [USER_SCHEMA], "userName": "jo@x.example", "title": "Same"},
        )
    )
    assert [e.kind for e in events()] == ["create"]


def test_a_refused_write_yields_no_event(scim, readonly_scim, notice_stream):
    user = scim.create_user("kim@x.example")
    readonly_scim.assert_error(
        readonly_scim.patch_ops(
            f"/Users/{user['id']}", {"op": "add", "path": "title", "value": "x"}
        ),
        403,
    )
    scim.assert_error(
        scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "KIM@x.example"}), 409
    )
    assert [e.kind for e in events()] == ["create"]


# --- Groups ------------------------------------------------------------------------------


def test_create_group_with_members(scim, notice_stream, full_stream, absolute_base):
    users = [scim.create_user(f"m{i}@x.example") for i in range(2)]
    response = scim.post(
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Ops",
            "externalId": "ops",
            "members": [{"value": u["id"], "display": f"M{i}"} for i, u in enumerate(users)],
        },
    )
    body = scim.ok(response, 201)

    create = events(resource_type="Group")[0]
    assert create.sub_id == {
        "format": "scim",
        "uri": f"/Groups/{body['id']}",
        "id": body["id"],
        "externalId": "ops",
    }
    assert create.payload["attributes"] == ["displayName", "externalId", "id", "members"]
    assert create.payload["members"] == {"added": [u["id"] for u in users], "removed": []}
    assert create.payload["data"] == scim.read(f"/Groups/{body['id']}") == body
    notice = set_claims(create, notice_stream)["events"][PREFIX + "create:notice"]
    assert "data" not in notice and notice["members"]["added"] == [u["id"] for u in users]


def test_membership_patch_carries_the_delta(scim, notice_stream, full_stream, absolute_base):
    keep, leave, join = (scim.create_user(f"{n}@x.example") for n in ("keep", "leave", "join"))
    group = scim.create_group("Crm", members=[{"value": keep["id"]}, {"value": leave["id"]}])
    response = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": join["id"], "display": "Join"}]},
        {"op": "remove", "path": f'members[value eq "{leave["id"]}"]'},
    )
    assert response.status_code == 204

    patch = events(kind="patch")[0]
    assert patch.payload["attributes"] == ["members"]
    assert patch.payload["version"] == response["ETag"] == 'W/"2"'
    assert patch.payload["members"] == {"added": [join["id"]], "removed": [leave["id"]]}
    full = set_claims(patch, full_stream)["events"]
    assert full == {
        PREFIX + "patch:full": {
            "version": 'W/"2"',
            "members": {"added": [join["id"]], "removed": [leave["id"]]},
            "data": {
                "schemas": [PATCH_SCHEMA],
                "Operations": [
                    {
                        "op": "add",
                        "path": "members",
                        "value": [
                            {
                                "value": join["id"],
                                "$ref": f"http://testserver/scim/v2/Users/{join['id']}",
                                "type": "User",
                                "display": "Join",
                            }
                        ],
                    },
                    {"op": "remove", "path": f'members[value eq "{leave["id"]}"]'},
                ],
            },
        }
    }
    assert keep["id"] not in str(patch.payload)  # never the whole group
    notice = set_claims(patch, notice_stream)["events"]
    assert notice == {
        PREFIX + "patch:notice": {
            "version": 'W/"2"',
            "attributes": ["members"],
            "members": {"added": [join["id"]], "removed": [leave["id"]]},
        }
    }


def test_put_group_renames_and_replaces_members_as_a_patch_op(scim, full_stream, settings):
    settings.SCIM_BASE_URL = ""  # relative references, like sub_id.uri
    a, b = scim.create_user("a@x.example"), scim.create_user("b@x.example")
    group = scim.create_group("Old", externalId="g-1", members=[{"value": a["id"]}])
    response = scim.put(
        f"/Groups/{group['id']}",
        {"schemas": [GROUP_SCHEMA], "displayName": "New", "members": [{"value": b["id"]}]},
    )
    scim.ok(response)

    put = events(kind="put")[0]
    assert put.sub_id.get("externalId") is None
    assert put.payload["attributes"] == ["displayName", "externalId", "members"]
    assert put.payload["data"]["Operations"] == [
        {"op": "replace", "path": "displayName", "value": "New"},
        {"op": "remove", "path": "externalId"},
        {
            "op": "add",
            "path": "members",
            "value": [{"value": b["id"], "$ref": f"/Users/{b['id']}", "type": "User"}],
        },
        {"op": "remove", "path": f'members[value eq "{a["id"]}"]'},
    ]


def test_a_new_member_display_alone_is_announced(scim, notice_stream, full_stream, settings):
    settings.SCIM_BASE_URL = ""
    user = scim.create_user("dn@x.example")
    group = scim.create_group("Display", members=[{"value": user["id"], "display": "Old"}])
    response = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"], "display": "New"}]},
    )
    assert response.status_code == 204 and response["ETag"] == 'W/"2"'

    patch = events(kind="patch")[0]
    assert patch.payload["attributes"] == ["members"]
    assert "members" not in patch.payload  # nobody joined or left
    assert patch.payload["data"]["Operations"] == [
        {
            "op": "add",
            "path": "members",
            "value": [
                {
                    "value": user["id"],
                    "$ref": f"/Users/{user['id']}",
                    "type": "User",
                    "display": "New",
                }
            ],
        }
    ]


def test_delete_group(scim, notice_stream):
    group = scim.create_group("Gone")
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert kinds() == [("create", f"/Groups/{group['id']}"), ("delete", f"/Groups/{group['id']}")]


# --- Filters, values never returned ------------------------------------------------------


def test_streams_hear_only_what_their_filters_admit(scim, make_stream):
    groups_only = make_stream(resource_types=["Group"])
    deletes_only = make_stream(event_kinds=["delete", "deactivate"])
    user = scim.create_user("flt@x.example", active=True)
    scim.ok(
        scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False})
    )
    group = scim.create_group("Flt")

    assert [e.kind for e in delivered_to(groups_only)] == ["create"]
    assert delivered_to(groups_only)[0].resource_type == "Group"
    assert [e.kind for e in delivered_to(deletes_only)] == ["deactivate"]
    # Every event is stored, heard or not.
    assert len(events()) == 4
    assert Delivery.objects.count() == 2
    assert group["id"]


def test_data_is_rendered_only_when_a_full_stream_hears_the_event(scim, make_stream):
    make_stream(payload=EventStream.Payload.FULL, resource_types=["Group"])
    make_stream()
    user = scim.create_user("nd@x.example")
    group = scim.create_group("Nd", members=[{"value": user["id"]}])
    user_event, group_event = events()
    assert "data" not in user_event.payload
    assert group_event.payload["data"]["id"] == group["id"]


@pytest.fixture
def secret_extension(db):
    urn = "urn:example:params:scim:schemas:extension:secret:2.0:User"
    extensions.extension_schema_save(
        document=copy.deepcopy(
            {
                "id": urn,
                "name": "Secret",
                "attributes": [
                    {
                        "name": "pin",
                        "type": "string",
                        "mutability": "writeOnly",
                        "returned": "never",
                    },
                    {"name": "team", "type": "string"},
                ],
            }
        )
    )
    yield urn
    scim_schema.install_extensions(())
    scim_schema.forget_extensions()


def test_values_never_returned_are_named_but_never_shown(
    scim, notice_stream, full_stream, secret_extension
):
    urn = secret_extension
    # Values no id or time in a payload could spell by chance (digits could).
    old, new = "kq-old-pin-value", "kq-new-pin-value"
    user = scim.create_user(
        "pin@x.example", schemas=[USER_SCHEMA, urn], **{urn: {"pin": old, "team": "red"}}
    )
    scim.ok(
        scim.patch_ops(
            f"/Users/{user['id']}", {"op": "replace", "path": f"{urn}:pin", "value": new}
        )
    )

    create, patch = events()
    assert create.payload["attributes"] == ["id", f"{urn}:pin", f"{urn}:team", "userName"]
    assert patch.payload["attributes"] == [f"{urn}:pin"]
    assert patch.payload["data"][urn] == {"team": "red"}
    for event in (create, patch):
        assert old not in str(event.payload) and new not in str(event.payload)
