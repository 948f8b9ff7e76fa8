"""Microsoft Entra ID provisioning sequences, request bodies as Entra sends them.

See SCIM-DIALECTS.md, "Microsoft Entra ID": capitalised PATCH ops, value-path
filters, enterprise extension paths, string booleans, path-less replace with
dotted keys, group membership deltas, DELETE afterwards.
"""

import uuid

import pytest

from provisioning.directory.models import Group, Membership, User
from tests.scim.conftest import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
MANAGER = f"{ENTERPRISE_SCHEMA}:manager"
EMPLOYEE_NUMBER = f"{ENTERPRISE_SCHEMA}:employeeNumber"


def entra_user(user_name: str, external_id: str | None = None, **overrides) -> dict:
    """The body Entra POSTs to /Users (Microsoft's SCIM reference, with the enterprise extension)."""
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "externalId": external_id or str(uuid.uuid4()),
        "userName": user_name,
        "active": True,
        "displayName": "Ana Silva",
        "emails": [
            {"primary": True, "type": "work", "value": user_name},
            {"primary": False, "type": "home", "value": "ana@home.example"},
        ],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ana Silva", "familyName": "Silva", "givenName": "Ana"},
        "addresses": [
            {"type": "work", "postalCode": "1000-001", "locality": "Lisboa", "country": "PT"}
        ],
        "roles": [],
        ENTERPRISE_SCHEMA: {"employeeNumber": "E-1001", "department": "Finance"},
    }
    body.update(overrides)
    return body


def entra_group(display_name: str) -> dict:
    return {
        "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
    }


@pytest.fixture
def ana(scim) -> dict:
    return scim.ok(scim.post("/Users", entra_user("ana.silva@contoso.example")), 201)


def patch_user(scim, user: dict, *operations: dict) -> dict:
    """Send a PATCH; 200 (with the resource) or 204 are both fine. Returns the stored resource."""
    path = f"/Users/{user['id']}"
    resp = scim.patch_ops(path, *operations)
    assert resp.status_code in (200, 204), f"{resp.status_code}: {resp.content[:600]!r}"
    stored = scim.read(path)
    if resp.status_code == 200:
        assert scim.json(resp) == stored
    return stored


def patch_group(scim, group: dict, *operations: dict) -> None:
    resp = scim.patch_ops(f"/Groups/{group['id']}", *operations)
    assert resp.status_code in (200, 204), f"{resp.status_code}: {resp.content[:600]!r}"


def member_ids(group: dict) -> set[str]:
    return set(Membership.objects.filter(group_id=group["id"]).values_list("user_id", flat=True))


def as_uuids(*resources: dict) -> set[uuid.UUID]:
    return {uuid.UUID(r["id"]) for r in resources}


# -- matching ---------------------------------------------------------------------------------


def test_test_connection_filter_on_random_guid_is_an_empty_list(scim):
    scim.create_user("someone@contoso.example")

    body = scim.search("/Users", filter=f'userName eq "{uuid.uuid4()}"')

    assert body["totalResults"] == 0
    assert body.get("Resources", []) == []


@pytest.mark.parametrize(
    "asked", ["ana.silva@contoso.example", "ANA.SILVA@CONTOSO.EXAMPLE", "Ana.Silva@Contoso.Example"]
)
def test_match_by_user_name_ignores_case(scim, ana, asked):
    body = scim.search("/Users", filter=f'userName eq "{asked}"')

    assert body["totalResults"] == 1
    assert [r["id"] for r in body["Resources"]] == [ana["id"]]
    assert body["Resources"][0]["userName"] == "ana.silva@contoso.example"


def test_match_by_user_name_ignores_case_beyond_ascii(scim):
    user = scim.create_user("josé.müller@contoso.example")

    body = scim.search("/Users", filter='userName eq "JOSÉ.MÜLLER@CONTOSO.EXAMPLE"')

    # Uniqueness already treats these as equal (a POST is a 409), so matching must too, or
    # Entra never finds the user and retries the create forever.
    assert [r["id"] for r in body.get("Resources", [])] == [user["id"]]


def test_match_by_external_id_is_case_exact(scim):
    user = scim.ok(scim.post("/Users", entra_user("eve@contoso.example", "AbC-123")), 201)

    exact = scim.search("/Users", filter='externalId eq "AbC-123"')
    other_case = scim.search("/Users", filter='externalId eq "abc-123"')

    assert [r["id"] for r in exact["Resources"]] == [user["id"]]
    assert other_case["totalResults"] == 0


# -- create and update users --------------------------------------------------------------


def test_create_user_with_enterprise_extension(scim):
    sent = entra_user("new.hire@contoso.example", "ext-new-hire")

    resp = scim.post("/Users", sent)

    body = scim.ok(resp, 201)
    assert body["userName"] == "new.hire@contoso.example"
    assert body["externalId"] == "ext-new-hire"
    assert body["active"] is True
    assert body["name"]["givenName"] == "Ana" and body["name"]["familyName"] == "Silva"
    assert body["emails"] == sent["emails"]
    assert body["addresses"] == sent["addresses"]
    assert body[ENTERPRISE_SCHEMA]["employeeNumber"] == "E-1001"
    assert body[ENTERPRISE_SCHEMA]["department"] == "Finance"
    assert set(body["schemas"]) == {USER_SCHEMA, ENTERPRISE_SCHEMA}
    assert body["meta"]["resourceType"] == "User"
    assert resp["Location"] == body["meta"]["location"]

    row = User.objects.get(pk=body["id"])
    assert (row.user_name, row.external_id, row.active) == (
        "new.hire@contoso.example",
        "ext-new-hire",
        True,
    )
    assert (row.given_name, row.family_name) == ("Ana", "Silva")
    assert row.primary_email == "new.hire@contoso.example"
    assert row.employee_number == "E-1001"


def test_replace_work_email_and_family_name(scim, ana):
    stored = patch_user(
        scim,
        ana,
        {
            "op": "Replace",
            "path": 'emails[type eq "work"].value',
            "value": "ana.new@contoso.example",
        },
        {"op": "Replace", "path": "name.familyName", "value": "Costa"},
    )

    emails = {e["type"]: e for e in stored["emails"]}
    assert emails["work"]["value"] == "ana.new@contoso.example"
    assert emails["work"]["primary"] is True
    assert emails["home"]["value"] == "ana@home.example"  # the filter picked one entry only
    assert stored["name"]["familyName"] == "Costa"
    assert stored["name"]["givenName"] == "Ana"
    row = User.objects.get(pk=ana["id"])
    assert row.primary_email == "ana.new@contoso.example"
    assert row.family_name == "Costa"


def test_add_postal_code_of_work_address(scim, ana):
    stored = patch_user(
        scim,
        ana,
        {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "4000-123"},
    )

    assert stored["addresses"] == [
        {"type": "work", "postalCode": "4000-123", "locality": "Lisboa", "country": "PT"}
    ]


def test_remove_home_email_by_value_filter(scim, ana):
    stored = patch_user(scim, ana, {"op": "Remove", "path": 'emails[type eq "home"]'})

    assert [e["type"] for e in stored["emails"]] == ["work"]
    assert User.objects.get(pk=ana["id"]).primary_email == "ana.silva@contoso.example"


def test_adding_a_primary_email_demotes_the_old_primary(scim, ana):
    stored = patch_user(
        scim,
        ana,
        {
            "op": "Add",
            "path": "emails",
            "value": [{"type": "other", "value": "ana@other.example", "primary": True}],
        },
    )

    assert [e["value"] for e in stored["emails"] if e.get("primary")] == ["ana@other.example"]
    assert len(stored["emails"]) == 3
    assert User.objects.get(pk=ana["id"]).primary_email == "ana@other.example"


def test_replace_enterprise_employee_number(scim, ana):
    stored = patch_user(scim, ana, {"op": "Replace", "path": EMPLOYEE_NUMBER, "value": "E-2002"})

    assert stored[ENTERPRISE_SCHEMA]["employeeNumber"] == "E-2002"
    assert stored[ENTERPRISE_SCHEMA]["department"] == "Finance"
    assert User.objects.get(pk=ana["id"]).employee_number == "E-2002"


@pytest.mark.parametrize(
    "as_sent",
    [
        pytest.param(lambda mid: mid, id="plain-id-string"),
        pytest.param(lambda mid: [{"$ref": None, "value": mid}], id="list-with-null-ref"),
    ],
)
def test_add_manager(scim, ana, as_sent):
    boss = scim.create_user("boss@contoso.example")

    stored = patch_user(scim, ana, {"op": "Add", "path": MANAGER, "value": as_sent(boss["id"])})

    assert stored[ENTERPRISE_SCHEMA]["manager"]["value"] == boss["id"]
    assert User.objects.get(pk=ana["id"]).manager_id == boss["id"]


def test_remove_manager(scim, ana):
    boss = scim.create_user("boss@contoso.example")
    patch_user(scim, ana, {"op": "Add", "path": MANAGER, "value": boss["id"]})

    stored = patch_user(scim, ana, {"op": "Remove", "path": MANAGER})

    assert not stored.get(ENTERPRISE_SCHEMA, {}).get("manager")
    assert User.objects.get(pk=ana["id"]).manager_id == ""


def test_add_work_email_when_the_user_has_none(scim):
    """Entra sends Add on the value path even when no email of that type exists yet."""
    bare = scim.create_user("no.mail@contoso.example")

    stored = patch_user(
        scim,
        bare,
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "first@contoso.example"},
    )

    assert [(e["type"], e["value"]) for e in stored["emails"]] == [
        ("work", "first@contoso.example")
    ]


def test_replace_user_name(scim, ana):
    stored = patch_user(
        scim, ana, {"op": "Replace", "path": "userName", "value": "ana.costa@contoso.example"}
    )

    assert stored["userName"] == "ana.costa@contoso.example"
    assert (
        scim.search("/Users", filter='userName eq "ana.silva@contoso.example"')["totalResults"] == 0
    )
    assert (
        scim.search("/Users", filter='userName eq "ANA.COSTA@contoso.example"')["totalResults"] == 1
    )


@pytest.mark.parametrize(
    ("sent", "expected"), [("False", False), ("false", False), ("True", True), ("true", True)]
)
def test_string_booleans_for_active(scim, ana, sent, expected):
    User.objects.filter(pk=ana["id"]).update(active=not expected)

    stored = patch_user(scim, ana, {"op": "Replace", "path": "active", "value": sent})

    assert stored["active"] is expected
    assert User.objects.get(pk=ana["id"]).active is expected


def test_deactivate_on_unassignment_keeps_the_user(scim, ana):
    stored = patch_user(scim, ana, {"op": "Replace", "path": "active", "value": "False"})

    assert stored["active"] is False
    assert stored["userName"] == ana["userName"]
    assert scim.search("/Users", filter=f'userName eq "{ana["userName"]}"')["totalResults"] == 1


def test_pathless_replace_with_extension_urn_key_and_string_boolean(scim, ana):
    stored = patch_user(
        scim, ana, {"op": "Replace", "value": {EMPLOYEE_NUMBER: "E-3003", "active": "False"}}
    )

    assert stored[ENTERPRISE_SCHEMA]["employeeNumber"] == "E-3003"
    assert stored["active"] is False


def test_pathless_replace_with_dotted_keys(scim, ana):
    stored = patch_user(
        scim, ana, {"op": "replace", "value": {"name.givenName": "Anabela", "active": False}}
    )

    assert stored["name"]["givenName"] == "Anabela"
    assert stored["name"]["familyName"] == "Silva"
    assert stored["active"] is False
    row = User.objects.get(pk=ana["id"])
    assert (row.given_name, row.active) == ("Anabela", False)


@pytest.mark.parametrize("cleared", ["", None], ids=["empty-string", "null"])
@pytest.mark.parametrize(
    ("path", "read", "column"),
    [
        ("name.familyName", lambda u: u.get("name", {}).get("familyName"), "family_name"),
        ("displayName", lambda u: u.get("displayName"), "display_name"),
        (
            EMPLOYEE_NUMBER,
            lambda u: u.get(ENTERPRISE_SCHEMA, {}).get("employeeNumber"),
            "employee_number",
        ),
    ],
    ids=["familyName", "displayName", "employeeNumber"],
)
def test_replace_with_empty_value_clears(scim, ana, cleared, path, read, column):
    stored = patch_user(scim, ana, {"op": "Replace", "path": path, "value": cleared})

    assert read(stored) in (None, "")
    assert getattr(User.objects.get(pk=ana["id"]), column) == ""
    assert stored["userName"] == ana["userName"]


# -- groups -------------------------------------------------------------------------------------


def test_match_group_by_display_name_without_members(scim):
    member = scim.create_user("m@contoso.example")
    group = scim.create_group("Finance Team", members=[{"value": member["id"]}])
    scim.create_group("Finance Team Leads")

    body = scim.search(
        "/Groups", filter='displayName eq "Finance Team"', excludedAttributes="members"
    )

    assert body["totalResults"] == 1
    [found] = body["Resources"]
    assert found["id"] == group["id"]
    assert found["displayName"] == "Finance Team"
    assert "members" not in found


def test_group_match_by_display_name_ignores_case(scim):
    group = scim.create_group("Finance Team")

    body = scim.search(
        "/Groups", filter='displayName eq "FINANCE team"', excludedAttributes="members"
    )

    assert [g["id"] for g in body["Resources"]] == [group["id"]]


def test_group_match_for_unknown_name_is_an_empty_list(scim):
    body = scim.search(
        "/Groups", filter='displayName eq "No Such Group"', excludedAttributes="members"
    )

    assert body["totalResults"] == 0


def test_create_group_tolerates_extra_schema_uri(scim):
    resp = scim.post("/Groups", entra_group("Contoso Sales"))

    body = scim.ok(resp, 201)
    assert body["displayName"] == "Contoso Sales"
    assert GROUP_SCHEMA in body["schemas"]
    assert body.get("members", []) == []
    assert resp["Location"] == body["meta"]["location"]
    assert Group.objects.filter(pk=body["id"], display_name="Contoso Sales").exists()


@pytest.fixture
def sales(scim) -> dict:
    return scim.ok(scim.post("/Groups", entra_group("Sales")), 201)


@pytest.fixture
def three_users(scim) -> list[dict]:
    return [scim.create_user(f"u{i}@contoso.example") for i in range(3)]


def test_add_several_members_in_one_patch(scim, sales, three_users):
    u1, u2, _ = three_users

    patch_group(
        scim,
        sales,
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": u1["id"]}, {"$ref": None, "value": u2["id"]}],
        },
    )

    assert member_ids(sales) == as_uuids(u1, u2)
    stored = scim.read(f"/Groups/{sales['id']}")
    assert {m["value"] for m in stored["members"]} == {u1["id"], u2["id"]}


def test_adding_an_existing_member_again_is_harmless(scim, sales, three_users):
    u1, *_ = three_users
    add = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": u1["id"]}]}

    patch_group(scim, sales, add)
    patch_group(scim, sales, add)  # Entra retries on a later cycle

    assert Membership.objects.filter(group_id=sales["id"]).count() == 1


@pytest.mark.parametrize(
    "removal",
    [
        pytest.param(
            lambda uid: {"op": "Remove", "path": "members", "value": [{"value": uid}]},
            id="value-list",
        ),
        pytest.param(
            lambda uid: {"op": "remove", "path": f'members[value eq "{uid}"]'}, id="value-filter"
        ),
    ],
)
def test_remove_member(scim, sales, three_users, removal):
    u1, u2, u3 = three_users
    patch_group(
        scim,
        sales,
        {"op": "Add", "path": "members", "value": [{"value": u["id"]} for u in three_users]},
    )

    patch_group(scim, sales, removal(u2["id"]))

    assert member_ids(sales) == as_uuids(u1, u3)
    stored = scim.read(f"/Groups/{sales['id']}")
    assert {m["value"] for m in stored["members"]} == {u1["id"], u3["id"]}
    assert User.objects.filter(pk=u2["id"]).exists()  # removing a member never deletes the user


def test_removing_a_member_that_is_not_there_succeeds(scim, sales, three_users):
    u1, u2, _ = three_users
    patch_group(scim, sales, {"op": "Add", "path": "members", "value": [{"value": u1["id"]}]})

    patch_group(scim, sales, {"op": "Remove", "path": "members", "value": [{"value": u2["id"]}]})

    assert member_ids(sales) == as_uuids(u1)


def test_remove_several_members_by_value_list(scim, sales, three_users):
    u1, u2, u3 = three_users
    patch_group(
        scim,
        sales,
        {"op": "Add", "path": "members", "value": [{"value": u["id"]} for u in three_users]},
    )

    patch_group(
        scim,
        sales,
        {"op": "Remove", "path": "members", "value": [{"value": u1["id"]}, {"value": u3["id"]}]},
    )

    assert member_ids(sales) == as_uuids(u2)


# -- delete ---------------------------------------------------------------------------------------


def test_delete_user_then_get_and_delete_again_are_404(scim, ana):
    path = f"/Users/{ana['id']}"

    first = scim.delete(path)

    assert first.status_code == 204
    assert first.content == b""
    assert not User.objects.filter(pk=ana["id"]).exists()
    scim.assert_error(scim.get(path), 404)
    scim.assert_error(scim.delete(path), 404)
    found = scim.search("/Users", filter=f'userName eq "{ana["userName"]}"')
    assert found["totalResults"] == 0


def test_deleted_user_name_can_be_provisioned_again(scim, ana):
    assert scim.delete(f"/Users/{ana['id']}").status_code == 204

    again = scim.ok(scim.post("/Users", entra_user(ana["userName"])), 201)

    assert again["id"] != ana["id"]


def test_deleting_a_member_user_removes_it_from_groups(scim, sales, three_users):
    u1, u2, _ = three_users
    patch_group(
        scim,
        sales,
        {"op": "Add", "path": "members", "value": [{"value": u1["id"]}, {"value": u2["id"]}]},
    )

    assert scim.delete(f"/Users/{u1['id']}").status_code == 204

    stored = scim.read(f"/Groups/{sales['id']}")
    assert [m["value"] for m in stored["members"]] == [u2["id"]]


def test_delete_group_keeps_its_members(scim, sales, three_users):
    patch_group(
        scim,
        sales,
        {"op": "Add", "path": "members", "value": [{"value": u["id"]} for u in three_users]},
    )

    resp = scim.delete(f"/Groups/{sales['id']}")

    assert resp.status_code == 204
    scim.assert_error(scim.get(f"/Groups/{sales['id']}"), 404)
    assert not Membership.objects.filter(group_id=sales["id"]).exists()
    assert User.objects.filter(pk__in=[u["id"] for u in three_users]).count() == 3
    assert "groups" not in scim.read(f"/Users/{three_users[0]['id']}")
