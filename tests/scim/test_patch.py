"""The PATCH engine (RFC 7644 §3.5.2 and the Entra/Okta dialects), without a database.

Request bodies marked Entra or Okta are the shapes from SCIM-DIALECTS.md.
"""

from __future__ import annotations

import copy

import pytest

from provisioning.scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
)
from provisioning.scim.filters import Compare
from provisioning.scim.patch import (
    PATCH_OP,
    MemberOp,
    PatchOperation,
    apply_patch,
    parse_patch_request,
)
from provisioning.scim.schema import ENTERPRISE_USER, GROUP_SCHEMA, USER_SCHEMA

MEMBER = "2819c223-7f76-453a-919d-413861904646"
OTHER = "902c246b-6245-4190-8e05-00816be7344a"


def user() -> dict:
    return {
        "userName": "ana@example.com",
        "externalId": "ext-1",
        "active": True,
        "displayName": "Ana Lima",
        "name": {"givenName": "Ana", "familyName": "Lima"},
        "emails": [
            {"value": "ana@example.com", "type": "work", "primary": True},
            {"value": "ana@home.example", "type": "home"},
        ],
        "addresses": [{"type": "work", "postalCode": "1000", "locality": "Lisbon"}],
        ENTERPRISE_USER: {"employeeNumber": "701", "manager": {"value": "boss-1"}},
    }


def group() -> dict:
    return {"displayName": "Engineering", "externalId": "g-1"}


def body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def patch(document: dict, *operations: dict, schema=USER_SCHEMA):
    """Parse and apply, checking on the way that the input is never mutated."""
    before = copy.deepcopy(document)
    outcome = apply_patch(document, parse_patch_request(body(*operations)), schema)
    assert document == before
    return outcome


def patched(document: dict, *operations: dict, schema=USER_SCHEMA) -> dict:
    return patch(document, *operations, schema=schema).document


def member_ops(*operations: dict) -> list[MemberOp]:
    outcome = patch(group(), *operations, schema=GROUP_SCHEMA)
    assert "members" not in outcome.document
    return outcome.member_ops


# --- Request parsing ------------------------------------------------------------


def test_op_names_are_case_insensitive():
    operations = parse_patch_request(
        body(
            {"op": "Add", "path": "title", "value": "x"},
            {"op": "REPLACE", "path": "title", "value": "y"},
            {"op": "Remove", "path": "title"},
        )
    )
    assert [o.op for o in operations] == ["add", "replace", "remove"]


def test_parse_keeps_path_and_value():
    (operation,) = parse_patch_request(
        body({"op": "replace", "path": " name.familyName ", "value": "Silva"})
    )
    assert operation == PatchOperation("replace", "name.familyName", "Silva")


def test_extra_schema_uris_are_accepted():
    message = body({"op": "replace", "path": "displayName", "value": "x"})
    message["schemas"].append(
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
    )
    assert len(parse_patch_request(message)) == 1


@pytest.mark.parametrize(
    "message",
    [
        [],
        "{}",
        {"Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": []},
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": {"op": "add"}},
        body("add"),
        body({"path": "title", "value": "x"}),
        body({"op": "move", "path": "title", "value": "x"}),
        body({"op": 1, "path": "title", "value": "x"}),
    ],
)
def test_malformed_bodies_are_invalid_syntax(message):
    with pytest.raises(InvalidSyntax):
        parse_patch_request(message)


def test_path_must_be_a_string():
    with pytest.raises(InvalidPath):
        parse_patch_request(body({"op": "remove", "path": ["title"]}))


@pytest.mark.parametrize("op", ["add", "replace"])
def test_add_and_replace_need_a_value(op):
    with pytest.raises(InvalidValue, match="value"):
        parse_patch_request(body({"op": op, "path": "title"}))


def test_operation_count_is_capped(settings):
    settings.SCIM_MAX_PATCH_OPERATIONS = 5
    many = [{"op": "add", "path": "title", "value": "x"}] * 6
    # A limit of this server exceeded: 413, as for Bulk's maxOperations (RFC 7644 §3.7.4).
    with pytest.raises(ScimError, match="At most 5 PATCH operations") as refused:
        parse_patch_request(body(*many))
    assert refused.value.status == 413
    assert len(parse_patch_request(body(*many[:5]))) == 5


# --- Paths ----------------------------------------------------------------------


def test_simple_path_replace():
    assert (
        patched(user(), {"op": "replace", "path": "displayName", "value": "A. Lima"})["displayName"]
        == "A. Lima"
    )


def test_attribute_names_in_paths_are_case_insensitive():
    document = patched(user(), {"op": "replace", "path": "DISPLAYNAME", "value": "x"})
    assert document["displayName"] == "x"
    assert "DISPLAYNAME" not in document


def test_dotted_path_sets_one_sub_attribute():  # Entra
    document = patched(user(), {"op": "Replace", "path": "name.familyName", "value": "Silva"})
    assert document["name"] == {"givenName": "Ana", "familyName": "Silva"}


def test_dotted_path_creates_the_parent():
    document = patched({"userName": "u"}, {"op": "add", "path": "name.givenName", "value": "Ana"})
    assert document["name"] == {"givenName": "Ana"}


def test_extension_attribute_path():  # Entra
    document = patched(
        {"userName": "u"},
        {"op": "Add", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": "1234"},
    )
    assert document[ENTERPRISE_USER] == {"employeeNumber": "1234"}


def test_extension_urn_in_path_is_case_insensitive():
    document = patched(
        user(), {"op": "replace", "path": f"{ENTERPRISE_USER.upper()}:DEPARTMENT", "value": "R&D"}
    )
    assert document[ENTERPRISE_USER]["department"] == "R&D"


def test_manager_as_plain_id():  # Entra
    document = patched(
        user(), {"op": "Replace", "path": f"{ENTERPRISE_USER}:manager", "value": "boss-2"}
    )
    assert document[ENTERPRISE_USER]["manager"] == {"value": "boss-2"}


def test_manager_as_list_keeps_a_non_null_ref():  # Entra
    ref = "https://idp.example/Users/boss-2"
    document = patched(
        {"userName": "u"},
        {
            "op": "Add",
            "path": f"{ENTERPRISE_USER}:manager",
            "value": [{"$ref": ref, "value": "boss-2"}],
        },
    )
    assert document[ENTERPRISE_USER]["manager"] == {"$ref": ref, "value": "boss-2"}


def test_manager_as_list_with_null_ref():
    document = patched(
        user(),
        {
            "op": "replace",
            "path": f"{ENTERPRISE_USER}:manager",
            "value": [{"$ref": None, "value": "b"}],
        },
    )
    assert document[ENTERPRISE_USER]["manager"] == {"value": "b"}


def test_new_manager_drops_the_old_managers_ref():
    document = user()
    document[ENTERPRISE_USER]["manager"] = {"value": "boss-1", "$ref": "../Users/boss-1"}
    result = patched(
        document, {"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": "b2"}}
    )
    assert result[ENTERPRISE_USER]["manager"] == {"value": "b2"}


def test_manager_value_path():
    document = patched(
        user(), {"op": "replace", "path": f"{ENTERPRISE_USER}:manager.value", "value": "boss-3"}
    )
    assert document[ENTERPRISE_USER]["manager"] == {"value": "boss-3"}


@pytest.mark.parametrize("path", [f"{ENTERPRISE_USER}:manager", f"{ENTERPRISE_USER}:manager.value"])
def test_remove_manager(path):
    document = patched(user(), {"op": "remove", "path": path})
    assert document[ENTERPRISE_USER] == {"employeeNumber": "701"}


def test_bare_extension_urn_with_object_value():
    document = patched(
        user(),
        {"op": "replace", "path": ENTERPRISE_USER, "value": {"department": "Ops", "manager": "b9"}},
    )
    assert document[ENTERPRISE_USER] == {
        "employeeNumber": "701",
        "department": "Ops",
        "manager": {"value": "b9"},
    }


def test_bare_extension_urn_remove():
    document = patched(user(), {"op": "remove", "path": ENTERPRISE_USER})
    assert ENTERPRISE_USER not in document


def test_bare_extension_urn_needs_an_object():
    with pytest.raises(InvalidValue):
        patch(user(), {"op": "add", "path": ENTERPRISE_USER, "value": "x"})


def test_filtered_sub_attribute_replace():  # Entra
    document = patched(
        user(),
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ana@new.example"},
    )
    assert document["emails"][0] == {"value": "ana@new.example", "type": "work", "primary": True}
    assert document["emails"][1] == user()["emails"][1]


def test_filtered_path_for_addresses():  # Entra
    document = patched(
        user(), {"op": "Replace", "path": 'addresses[type eq "work"].postalCode', "value": "2000"}
    )
    assert document["addresses"] == [{"type": "work", "postalCode": "2000", "locality": "Lisbon"}]


def test_filter_operators_and_names_are_case_insensitive():
    document = patched(
        user(), {"op": "replace", "path": 'EMAILS[TYPE EQ "HOME"].Display', "value": "Home"}
    )
    assert document["emails"][1]["display"] == "Home"


@pytest.mark.parametrize("op", ["Add", "Replace"])
def test_filtered_path_matching_nothing_creates_the_element(op):  # Entra
    document = {"userName": "u", "emails": [{"value": "h@x", "type": "home"}]}
    result = patched(document, {"op": op, "path": 'emails[type eq "work"].value', "value": "w@x"})
    assert result["emails"] == [{"value": "h@x", "type": "home"}, {"type": "work", "value": "w@x"}]


def test_created_element_takes_every_equality_of_the_filter():
    result = patched(
        {"userName": "u"},
        {
            "op": "add",
            "path": 'phoneNumbers[type eq "mobile" and primary eq "true"].value',
            "value": "+351 900",
        },
    )
    assert result["phoneNumbers"] == [{"type": "mobile", "primary": True, "value": "+351 900"}]


@pytest.mark.parametrize(
    "path", ['emails[type ne "work"].value', 'emails[type eq "x" or type eq "y"].value']
)
def test_filter_that_cannot_describe_a_new_element_is_no_target(path):
    with pytest.raises(NoTarget):
        patch({"userName": "u"}, {"op": "replace", "path": path, "value": "w@x"})


def test_filter_errors_are_reported():
    with pytest.raises(InvalidFilter):
        patch(user(), {"op": "replace", "path": "emails[nope eq 1].value", "value": "x"})


# --- Path-less add / replace ---------------------------------------------------------


def test_pathless_replace_with_dotted_keys():  # Entra (newer jobs)
    document = patched(
        user(), {"op": "replace", "value": {"name.givenName": "Ana", "active": False}}
    )
    assert document["active"] is False
    assert document["name"] == {"givenName": "Ana", "familyName": "Lima"}


def test_pathless_deactivation():  # Okta
    document = patched(user(), {"op": "replace", "value": {"active": False}})
    assert document == {**user(), "active": False}


def test_pathless_keys_in_any_case():
    document = patched(
        user(), {"op": "replace", "value": {"DisplayName": "x", "NAME": {"GIVENNAME": "y"}}}
    )
    assert document["displayName"] == "x"
    assert document["name"] == {"givenName": "y", "familyName": "Lima"}


def test_pathless_extension_object_and_urn_prefixed_key():
    document = patched(
        {"userName": "u"},
        {
            "op": "add",
            "value": {
                ENTERPRISE_USER: {"department": "Ops"},
                f"{ENTERPRISE_USER}:costCenter": "cc-1",
            },
        },
    )
    assert document[ENTERPRISE_USER] == {"department": "Ops", "costCenter": "cc-1"}


def test_pathless_filtered_key():
    document = patched(
        user(), {"op": "replace", "value": {'emails[type eq "home"].value': "new@home"}}
    )
    assert document["emails"][1]["value"] == "new@home"


def test_pathless_ignores_id_meta_and_schemas():  # Okta group rename
    outcome = patch(
        group(),
        {
            "op": "replace",
            "value": {
                "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
                "displayName": "Platform",
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "meta": {"version": 'W/"1"'},
            },
        },
        schema=GROUP_SCHEMA,
    )
    assert outcome.document == {"displayName": "Platform", "externalId": "g-1"}


def test_pathless_members_become_a_member_op():
    ops = member_ops(
        {"op": "replace", "value": {"displayName": "x", "members": [{"value": MEMBER}]}}
    )
    assert ops == [MemberOp("replace", [{"value": MEMBER}])]


def test_pathless_value_must_be_an_object():
    with pytest.raises(InvalidValue):
        patch(user(), {"op": "replace", "value": [{"active": False}]})


def test_pathless_unknown_key_is_invalid_path():
    with pytest.raises(InvalidPath):
        patch(user(), {"op": "replace", "value": {"favouriteColour": "blue"}})


# --- Values ---------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "stored"), [("False", False), ("true", True), (False, False)])
def test_string_booleans_are_coerced(sent, stored):  # Entra
    assert patched(user(), {"op": "Replace", "path": "active", "value": sent})["active"] is stored


def test_string_booleans_inside_objects_are_coerced():
    document = patched(
        {"userName": "u"},
        {"op": "add", "path": "emails", "value": [{"value": "a@x", "primary": "True"}]},
    )
    assert document["emails"] == [{"value": "a@x", "primary": True}]


@pytest.mark.parametrize("empty", [None, ""])
def test_replace_with_null_or_empty_string_clears(empty):  # Entra
    document = patched(user(), {"op": "Replace", "path": "displayName", "value": empty})
    assert "displayName" not in document


def test_clearing_the_last_sub_attribute_removes_the_parent():
    document = {"userName": "u", "name": {"givenName": "Ana"}}
    assert "name" not in patched(document, {"op": "replace", "path": "name.givenName", "value": ""})


def test_clearing_the_last_extension_attribute_removes_the_extension():
    document = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
        "userName": "u",
        ENTERPRISE_USER: {"employeeNumber": "1"},
    }
    result = patched(
        document, {"op": "replace", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": None}
    )
    assert result == {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u"}


def test_adding_an_extension_lists_it_in_schemas():
    document = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u"}
    result = patched(document, {"op": "add", "path": f"{ENTERPRISE_USER}:division", "value": "EU"})
    assert result["schemas"][-1] == ENTERPRISE_USER


def test_null_sub_attribute_in_an_object_clears_it():
    document = patched(
        user(), {"op": "replace", "path": "name", "value": {"givenName": None, "familyName": "S"}}
    )
    assert document["name"] == {"familyName": "S"}


def test_empty_arrays_are_tolerated():
    assert patch(user(), {"op": "add", "path": "emails", "value": []}).changed is False
    assert "emails" not in patched(user(), {"op": "replace", "path": "emails", "value": []})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "Ana Lima"),  # string for a complex attribute
        ("displayName", {"value": "x"}),  # object for a string
        ("active", "maybe"),
        ("active", 1),
        ("displayName", ["a", "b"]),  # several values for a single-valued attribute
        (f"{ENTERPRISE_USER}:manager", [{"value": "a"}, {"value": "b"}]),
        ("emails", "ana@example.com"),  # a string where an array of objects belongs
        ("userName", 42),
    ],
)
def test_wrong_shapes_are_invalid_value(path, value):
    with pytest.raises(InvalidValue):
        patch(user(), {"op": "replace", "path": path, "value": value})


@pytest.mark.parametrize("path", ["favouriteColour", "name.nickname", f"{ENTERPRISE_USER}:badge"])
def test_unknown_attribute_is_invalid_path(path):
    with pytest.raises(InvalidPath):
        patch(user(), {"op": "replace", "path": path, "value": "x"})


def test_unknown_sub_attribute_in_a_value_is_rejected():
    with pytest.raises(ScimError):
        patch(user(), {"op": "replace", "path": "name", "value": {"nickname": "x"}})


@pytest.mark.parametrize(
    ("op", "path"),
    [
        ("replace", "id"),
        ("add", "meta"),
        ("replace", "meta.version"),
        ("add", "groups"),
        ("remove", "id"),
        ("replace", f"{ENTERPRISE_USER}:manager.displayName"),
    ],
)
def test_read_only_attribute_in_a_path_is_a_mutability_error(op, path):
    with pytest.raises(Mutability) as caught:
        patch(user(), {"op": op, "path": path, "value": "x"})
    assert caught.value.to_dict()["scimType"] == "mutability"
    assert caught.value.to_dict()["status"] == "400"


def test_read_only_sub_attribute_in_a_value_is_ignored():
    document = patched(
        user(),
        {
            "op": "replace",
            "path": f"{ENTERPRISE_USER}:manager",
            "value": {"value": "b", "displayName": "Boss"},
        },
    )
    assert document[ENTERPRISE_USER]["manager"] == {"value": "b"}


def test_removing_a_required_attribute_is_a_mutability_error():
    with pytest.raises(Mutability, match="userName"):
        patch(user(), {"op": "replace", "path": "userName", "value": ""})


def test_password_is_accepted_and_not_stored():
    outcome = patch(user(), {"op": "replace", "path": "password", "value": "s3cret!"})
    assert outcome.changed is False
    assert "password" not in outcome.document


# --- Multi-valued attributes -------------------------------------------------------


def test_add_appends_and_skips_equal_values():
    document = patched(
        user(),
        {
            "op": "add",
            "path": "emails",
            "value": [
                {"value": "ANA@EXAMPLE.COM", "type": "work", "primary": True},  # caseExact=false
                {"value": "ana@other.example", "type": "other"},
            ],
        },
    )
    assert document["emails"] == [
        *user()["emails"],
        {"value": "ana@other.example", "type": "other"},
    ]


def test_add_tolerates_a_single_object():
    document = patched(
        {"userName": "u"}, {"op": "add", "path": "emails", "value": {"value": "a@x"}}
    )
    assert document["emails"] == [{"value": "a@x"}]


def test_replace_without_filter_replaces_every_value():
    new = [{"value": "only@example.com", "type": "work"}]
    assert patched(user(), {"op": "replace", "path": "emails", "value": new})["emails"] == new


def test_replace_with_filter_merges_into_matching_elements():
    document = patched(
        user(), {"op": "replace", "path": 'emails[type eq "home"]', "value": {"display": "Home"}}
    )
    assert document["emails"][1] == {"value": "ana@home.example", "type": "home", "display": "Home"}
    assert document["emails"][0] == user()["emails"][0]


def test_filtered_replace_accepts_the_object_wrapped_in_an_array():
    document = patched(
        user(),
        {"op": "replace", "path": 'addresses[type eq "work"]', "value": [{"postalCode": "3"}]},
    )
    assert document["addresses"] == [{"type": "work", "postalCode": "3", "locality": "Lisbon"}]


def test_primary_on_one_element_clears_the_others():
    document = patched(
        user(), {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}
    )
    assert [e.get("primary") for e in document["emails"]] == [False, True]


def test_added_primary_value_clears_the_others():
    document = patched(
        user(), {"op": "add", "path": "emails", "value": [{"value": "n@x", "primary": True}]}
    )
    assert [e.get("primary") for e in document["emails"]] == [False, None, True]


def test_two_primary_values_are_invalid():
    with pytest.raises(InvalidValue, match="primary"):
        patch(
            user(),
            {
                "op": "replace",
                "path": "emails",
                "value": [{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}],
            },
        )


# --- remove ---------------------------------------------------------------------


def test_remove_without_path_is_no_target():
    with pytest.raises(NoTarget) as caught:
        patch(user(), {"op": "remove", "value": {"displayName": "x"}})
    assert caught.value.to_dict()["scimType"] == "noTarget"


def test_remove_attribute():
    assert "displayName" not in patched(user(), {"op": "remove", "path": "displayName"})


def test_remove_sub_attribute():
    document = patched(user(), {"op": "remove", "path": "name.givenName"})
    assert document["name"] == {"familyName": "Lima"}


def test_remove_filtered_elements():
    document = patched(user(), {"op": "remove", "path": 'emails[type eq "work"]'})
    assert document["emails"] == [user()["emails"][1]]


def test_remove_sub_attribute_of_filtered_elements():
    document = patched(user(), {"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert document["emails"][0] == {"value": "ana@example.com", "type": "work"}


def test_removing_the_last_element_removes_the_attribute():
    assert "addresses" not in patched(user(), {"op": "remove", "path": 'addresses[type eq "work"]'})


@pytest.mark.parametrize(
    "path",
    ["nickName", "name.middleName", 'emails[type eq "other"]', f"{ENTERPRISE_USER}:division"],
)
def test_removing_something_absent_is_a_no_op(path):
    outcome = patch(user(), {"op": "remove", "path": path})
    assert outcome.changed is False
    assert outcome.document == user()


def test_remove_from_an_absent_extension_is_a_no_op():
    outcome = patch({"userName": "u"}, {"op": "remove", "path": f"{ENTERPRISE_USER}:manager"})
    assert outcome.document == {"userName": "u"}


def test_remove_multi_valued_elements_by_value():
    document = patched(
        user(), {"op": "remove", "path": "emails", "value": [{"value": "ANA@home.example"}]}
    )
    assert document["emails"] == [user()["emails"][0]]


def test_remove_multi_valued_attribute_without_value_removes_all():
    assert "emails" not in patched(user(), {"op": "remove", "path": "emails"})


# --- Group members ------------------------------------------------------------------


def test_entra_add_members():  # Entra
    ops = member_ops(
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": MEMBER}, {"$ref": None, "value": OTHER}],
        }
    )
    assert ops == [MemberOp("add", [{"value": MEMBER}, {"value": OTHER}])]


def test_add_members_keeps_display_and_type():
    ops = member_ops(
        {
            "op": "add",
            "path": "members",
            "value": [{"value": MEMBER, "display": "Ana", "type": "User"}],
        }
    )
    assert ops[0].members == [{"value": MEMBER, "display": "Ana", "type": "User"}]


def test_add_a_single_member_object():
    assert member_ops({"op": "add", "path": "members", "value": {"value": MEMBER}}) == [
        MemberOp("add", [{"value": MEMBER}])
    ]


@pytest.mark.parametrize("bad", [[{"display": "no value"}], [{"value": 7}], ["just-an-id"], "id"])
def test_members_need_a_string_value(bad):
    with pytest.raises(InvalidValue):
        member_ops({"op": "add", "path": "members", "value": bad})


def test_entra_remove_members_by_value():  # Entra
    ops = member_ops({"op": "Remove", "path": "members", "value": [{"value": MEMBER}]})
    assert ops == [MemberOp("remove", [{"value": MEMBER}])]


def test_remove_members_by_filter():  # Entra and Okta
    (op,) = member_ops({"op": "remove", "path": f'members[value eq "{MEMBER}"]'})
    assert op.kind == "remove"
    assert op.members == []
    assert op.filter == Compare("value", "eq", MEMBER)


def test_remove_members_without_value_removes_everyone():
    assert member_ops({"op": "remove", "path": "members"}) == [MemberOp("replace", [])]


def test_replace_members():  # Okta
    ops = member_ops(
        {"op": "replace", "path": "members", "value": [{"value": MEMBER, "display": "Ana"}]}
    )
    assert ops == [MemberOp("replace", [{"value": MEMBER, "display": "Ana"}])]


def test_okta_remove_and_add_keep_request_order():  # Okta
    ops = member_ops(
        {"op": "remove", "path": f'members[value eq "{OTHER}"]'},
        {"op": "add", "path": "members", "value": [{"value": MEMBER, "display": "Ana"}]},
    )
    assert [op.kind for op in ops] == ["remove", "add"]
    assert ops[0].filter == Compare("value", "eq", OTHER)


def test_member_ops_come_with_a_rename():
    outcome = patch(
        group(),
        {"op": "replace", "path": "displayName", "value": "Platform"},
        {"op": "add", "path": "members", "value": [{"value": MEMBER}]},
        schema=GROUP_SCHEMA,
    )
    assert outcome.document["displayName"] == "Platform"
    assert outcome.member_ops == [MemberOp("add", [{"value": MEMBER}])]


@pytest.mark.parametrize(
    ("op", "path"),
    [
        ("add", f'members[value eq "{MEMBER}"]'),
        ("replace", f'members[value eq "{MEMBER}"].display'),
    ],
)
def test_members_paths_that_are_not_deltas_are_rejected(op, path):
    with pytest.raises(ScimError):
        member_ops({"op": op, "path": path, "value": {"value": OTHER}})


def test_removing_the_group_display_name_is_refused():
    with pytest.raises(Mutability):
        patch(group(), {"op": "remove", "path": "displayName"}, schema=GROUP_SCHEMA)


# --- add on single-valued attributes ---------------------------------------------------


def test_add_to_simple_attribute_sets_it():
    assert patched(user(), {"op": "add", "path": "title", "value": "CTO"})["title"] == "CTO"
    assert patched(user(), {"op": "add", "path": "displayName", "value": "B"})["displayName"] == "B"


def test_add_object_to_complex_attribute_merges():
    document = patched(user(), {"op": "add", "path": "name", "value": {"middleName": "M"}})
    assert document["name"] == {"givenName": "Ana", "familyName": "Lima", "middleName": "M"}


# --- Atomicity and change detection -------------------------------------------------------


def test_a_failing_operation_changes_nothing():
    document = user()
    before = copy.deepcopy(document)
    operations = parse_patch_request(
        body(
            {"op": "replace", "path": "displayName", "value": "changed"},
            {"op": "replace", "path": "active", "value": "perhaps"},
        )
    )
    with pytest.raises(InvalidValue) as caught:
        apply_patch(document, operations, USER_SCHEMA)
    assert document == before
    assert caught.value.detail.startswith("Operations[1]:")


def test_replacing_with_the_same_value_is_not_a_change():
    outcome = patch(
        user(),
        {"op": "Replace", "path": "displayName", "value": "Ana Lima"},
        {"op": "replace", "value": {"active": "True", "name.givenName": "Ana"}},
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "ana@example.com", "type": "work", "primary": True}],
        },
    )
    assert outcome.changed is False
    assert outcome.document == user()


def test_a_real_change_is_reported():
    assert patch(user(), {"op": "replace", "path": "title", "value": "CTO"}).changed is True


def test_adding_no_members_is_not_a_change():
    outcome = patch(group(), {"op": "add", "path": "members", "value": []}, schema=GROUP_SCHEMA)
    assert outcome.member_ops == []
    assert outcome.changed is False


def test_member_ops_are_a_change():
    outcome = patch(
        group(),
        {"op": "remove", "path": "members", "value": [{"value": MEMBER}]},
        schema=GROUP_SCHEMA,
    )
    assert outcome.changed is True
