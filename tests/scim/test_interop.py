"""Request shapes from a wider set of provisioning clients, and the RFC's own examples.

Each case failed before: writes with ``attributes`` (500 after the write), the default
sub-attributes of RFC 7643 §2.4, blank entries, ``If-None-Match: *``, trailing slashes,
Bulk paths naming a ``bulkId``, and the RFC 7643 §8 examples as round trips.
"""

from __future__ import annotations

import copy

import pytest

from provisioning.directory.models import Group, User

from .conftest import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

# RFC 7643 §8.2 (Full User Representation), less the members a client cannot set
# (id, meta, the read-only groups) and the write-only password, which is never returned.
FULL_USER = {
    "schemas": [USER_SCHEMA],
    "externalId": "701984",
    "userName": "bjensen@example.com",
    "name": {
        "formatted": "Ms. Barbara J Jensen, III",
        "familyName": "Jensen",
        "givenName": "Barbara",
        "middleName": "Jane",
        "honorificPrefix": "Ms.",
        "honorificSuffix": "III",
    },
    "displayName": "Babs Jensen",
    "nickName": "Babs",
    "profileUrl": "https://login.example.com/bjensen",
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "addresses": [
        {
            "type": "work",
            "streetAddress": "100 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "USA",
            "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
            "primary": True,
        },
        {
            "type": "home",
            "streetAddress": "456 Hollywood Blvd",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "USA",
            "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA",
        },
    ],
    "phoneNumbers": [
        {"value": "555-555-5555", "type": "work"},
        {"value": "555-555-4444", "type": "mobile"},
    ],
    "ims": [{"value": "someaimhandle", "type": "aim"}],
    "photos": [
        {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"},
        {"value": "https://photos.example.com/profilephoto/72930000000Ccne/T", "type": "thumbnail"},
    ],
    "userType": "Employee",
    "title": "Tour Guide",
    "preferredLanguage": "en-US",
    "locale": "en-US",
    "timezone": "America/Los_Angeles",
    "active": True,
    "x509Certificates": [
        {
            "value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"
            "EzARBgNVBAgMCkNhbGlmb3JuaWExFDASBgNVBAoMC2V4YW1wbGUuY29tMRQwEgYD"
        }
    ],
}

# RFC 7643 §8.3 (Enterprise User Extension Representation): the extension's members. The
# manager's displayName is read-only (§4.3), so a client's value is not kept.
ENTERPRISE = {
    "employeeNumber": "701984",
    "costCenter": "4130",
    "organization": "Universal Studios",
    "division": "Theme Park",
    "department": "Tour Operations",
}

SERVER_ASSIGNED = ("id", "meta", "groups")


def _client_part(document: dict) -> dict:
    return {key: value for key, value in document.items() if key not in SERVER_ASSIGNED}


# -- RFC 7643 §8: the examples round trip ------------------------------------------------


def test_rfc7643_full_user_round_trips(scim):
    """§8.2: everything the client sent comes back as sent; ``password`` is writeOnly and
    never returned (§4.1.1), so sending it changes nothing in the answer."""
    created = scim.ok(scim.post("/Users", {**FULL_USER, "password": "t1meMa$heen"}), 201)
    assert _client_part(created) == FULL_USER
    assert _client_part(scim.read(f"/Users/{created['id']}")) == FULL_USER


def test_rfc7643_enterprise_user_round_trips(scim):
    manager = scim.create_user("jsmith@example.com", displayName="John Smith")
    sent = copy.deepcopy(FULL_USER)
    sent["schemas"] = [USER_SCHEMA, ENTERPRISE_SCHEMA]
    sent[ENTERPRISE_SCHEMA] = {
        **ENTERPRISE,
        "manager": {
            "value": manager["id"],
            "$ref": f"../Users/{manager['id']}",
            "displayName": "John Smith",
        },
    }
    created = scim.ok(scim.post("/Users", sent), 201)
    expected = copy.deepcopy(sent)
    del expected[ENTERPRISE_SCHEMA]["manager"]["displayName"]
    assert _client_part(created) == expected
    assert _client_part(scim.read(f"/Users/{created['id']}")) == expected


def test_rfc7643_group_round_trips(scim):
    """§8.4: members come back with their value and display; ``$ref`` and ``type`` are the
    server's (it knows where and what each member is)."""
    babs = scim.create_user("bjensen@example.com")
    mandy = scim.create_user("mpepperidge@example.com")
    sent = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Tour Guides",
        "members": [
            {"value": babs["id"], "$ref": babs["meta"]["location"], "display": "Babs Jensen"},
            {"value": mandy["id"], "$ref": mandy["meta"]["location"], "display": "Mandy Pepperidge"},
        ],
    }
    created = scim.ok(scim.post("/Groups", sent), 201)
    read = scim.read(f"/Groups/{created['id']}")
    for document in (created, read):
        assert document["schemas"] == [GROUP_SCHEMA]
        assert document["displayName"] == "Tour Guides"
        members = sorted(document["members"], key=lambda m: m["display"])
        assert members == [{**m, "type": "User"} for m in sent["members"]]


# -- writes that ask for attributes ------------------------------------------------------


@pytest.mark.parametrize(
    "params, present, absent",
    [
        ({"attributes": "userName"}, {"userName", "id", "schemas"}, {"meta", "displayName"}),
        ({"excludedAttributes": "meta"}, {"userName", "displayName"}, {"meta"}),
        ({"attributes": "meta.version"}, {"id", "meta"}, {"userName"}),
    ],
)
def test_create_with_a_projection_answers_201_with_location(scim, params, present, absent):
    """RFC 7644 §3.3 and §3.9: the created resource, trimmed as asked, with its Location."""
    response = scim.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "trimmed", "displayName": "T"},
        params=params,
    )
    body = scim.ok(response, 201)
    assert present <= body.keys() and not absent & body.keys()
    user = User.objects.get(user_name="trimmed")
    assert response["Location"] == f"http://testserver/scim/v2/Users/{user.pk}"
    assert response["ETag"] == user.etag


def test_create_group_with_attributes(scim):
    response = scim.post(
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Trimmed"},
        params={"attributes": "displayName"},
    )
    body = scim.ok(response, 201)
    group = Group.objects.get(display_name="Trimmed")
    assert body == {"schemas": [GROUP_SCHEMA], "id": str(group.pk), "displayName": "Trimmed"}
    assert response["Location"].endswith(f"/Groups/{group.pk}")


def test_a_bad_projection_refuses_the_write_before_it_happens(scim):
    response = scim.post(
        "/Users", {"schemas": [USER_SCHEMA], "userName": "never"}, params={"attributes": "nope"}
    )
    scim.assert_error(response, 400, "invalidValue")
    assert not User.objects.filter(user_name="never").exists()
    user = scim.create_user("kept", title="Before")
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "After"},
        params={"excludedAttributes": "title", "attributes": "userName"},
    )
    scim.assert_error(response, 400, "invalidValue")
    assert scim.read(f"/Users/{user['id']}")["title"] == "Before"


def test_put_and_patch_answer_the_projection(scim):
    user = scim.create_user("projected")
    body = scim.ok(
        scim.put(
            f"/Users/{user['id']}",
            {"schemas": [USER_SCHEMA], "userName": "projected", "title": "Guide"},
            params={"attributes": "title"},
        )
    )
    assert body == {"schemas": [USER_SCHEMA], "id": user["id"], "title": "Guide"}
    body = scim.ok(
        scim.patch_ops(
            f"/Users/{user['id']}",
            {"op": "replace", "path": "title", "value": "Lead"},
            params={"attributes": "title"},
        )
    )
    assert body == {"schemas": [USER_SCHEMA], "id": user["id"], "title": "Lead"}


def test_a_rendering_failure_after_the_write_still_reports_the_write(scim, monkeypatch, caplog):
    """Once the write has committed, the client must learn it: an error while building the
    answer gives the status, Location, ETag and the always-returned attributes, not a 500
    that a retry would turn into a 409."""
    from provisioning.scim import resources

    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(resources, "user_document", broken)
    response = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "committed"})
    body = scim.ok(response, 201)
    user = User.objects.get(user_name="committed")
    assert body["id"] == str(user.pk)
    assert body["meta"]["location"] == response["Location"]
    assert body["meta"]["version"] == response["ETag"] == user.etag
    assert "renderer exploded" not in response.content.decode()
    assert "after a committed write failed" in caplog.text
    # The retry a client would make now meets the resource it created, as a 409.
    retry = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "committed"})
    scim.assert_error(retry, 409, "uniqueness")


# -- RFC 7643 §2.4: default sub-attributes, one primary, blank entries --------------------


def test_addresses_take_the_default_sub_attributes(scim):
    user = scim.create_user(
        addresses=[
            {"type": "work", "locality": "Hollywood", "primary": True, "display": "Office"},
            {"type": "home", "locality": "Burbank", "value": "home-1"},
        ]
    )
    stored = scim.read(f"/Users/{user['id']}")["addresses"]
    assert stored[0]["primary"] is True and stored[0]["display"] == "Office"
    assert stored[1]["value"] == "home-1"
    schema = scim.read(f"/Schemas/{USER_SCHEMA}")
    addresses = next(a for a in schema["attributes"] if a["name"] == "addresses")
    names = {sub["name"] for sub in addresses["subAttributes"]}
    assert {"type", "primary", "display", "value", "$ref"} <= names


def test_at_most_one_primary_per_attribute(scim):
    response = scim.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "two-primaries",
            "addresses": [{"locality": "A", "primary": True}, {"locality": "B", "primary": True}],
        },
    )
    scim.assert_error(response, 400, "invalidValue")
    user = scim.create_user(
        addresses=[{"locality": "A", "primary": True}, {"locality": "B", "type": "home"}]
    )
    # RFC 7644 §3.5.2: a PATCH making another value primary clears the previous one.
    scim.ok(
        scim.patch_ops(
            f"/Users/{user['id']}",
            {"op": "replace", "path": 'addresses[type eq "home"].primary', "value": True},
        )
    )
    addresses = scim.read(f"/Users/{user['id']}")["addresses"]
    assert [a.get("primary") for a in addresses] == [False, True]


@pytest.mark.parametrize("blank", ["", None])
def test_entries_with_a_blank_value_are_dropped(scim, blank):
    user = scim.create_user(
        phoneNumbers=[{"value": blank, "type": "work"}, {"value": "555-0100", "type": "mobile"}],
        emails=[{"value": blank, "type": "home", "primary": True}],
    )
    stored = scim.read(f"/Users/{user['id']}")
    assert stored["phoneNumbers"] == [{"value": "555-0100", "type": "mobile"}]
    assert "emails" not in stored
    # Clearing the value of an entry by PATCH removes the entry.
    scim.ok(
        scim.patch_ops(
            f"/Users/{user['id']}",
            {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": ""},
        )
    )
    assert "phoneNumbers" not in scim.read(f"/Users/{user['id']}")


# -- conditional reads, trailing slashes, Bulk references ---------------------------------


def test_if_none_match_star_is_304_for_an_existing_resource(scim):
    """RFC 9110 §13.1.2: ``*`` matches any current representation."""
    user = scim.create_user()
    response = scim.get(f"/Users/{user['id']}", HTTP_IF_NONE_MATCH="*")
    assert response.status_code == 304
    assert response["ETag"] == user["meta"]["version"]
    group = scim.create_group()
    assert scim.get(f"/Groups/{group['id']}", HTTP_IF_NONE_MATCH="*").status_code == 304
    stale = scim.get(f"/Users/{user['id']}", HTTP_IF_NONE_MATCH='W/"999"')
    assert stale.status_code == 200
    # The strong form of the current tag matches under the weak comparison GET uses.
    strong = user["meta"]["version"].removeprefix("W/")
    assert scim.get(f"/Users/{user['id']}", HTTP_IF_NONE_MATCH=strong).status_code == 304
    missing = scim.get("/Users/00000000-0000-4000-8000-000000000000", HTTP_IF_NONE_MATCH="*")
    scim.assert_error(missing, 404)


@pytest.mark.parametrize(
    "path",
    ["/Users/", "/Groups/", "/ServiceProviderConfig/", "/Schemas/", "/ResourceTypes/"],
)
def test_collections_accept_a_trailing_slash(scim, path):
    assert scim.get(path).status_code == 200


def test_resources_and_searches_accept_a_trailing_slash(scim):
    user = scim.create_user("slashed")
    assert scim.read(f"/Users/{user['id']}/")["userName"] == "slashed"
    created = scim.ok(scim.post("/Users/", {"schemas": [USER_SCHEMA], "userName": "s2"}), 201)
    assert scim.ok(
        scim.post(
            "/Users/.search/",
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]},
        )
    )["totalResults"] == 2
    assert scim.delete(f"/Users/{created['id']}/").status_code == 204
    assert scim.read(f"/Schemas/{USER_SCHEMA}/")["id"] == USER_SCHEMA
    scim.assert_error(scim.get("/Users/a/b"), 404)
    scim.assert_error(scim.get("/Users//"), 404)


def test_bulk_path_may_name_an_earlier_operations_bulk_id(scim):
    """RFC 7644 §3.7.2: ``bulkId:`` references stand for the new id, in paths as in data."""
    response = scim.ok(
        scim.post(
            "/Bulk",
            {
                "schemas": [BULK_REQUEST],
                "Operations": [
                    {
                        "method": "PATCH",
                        "path": "/Users/bulkId:u1",
                        "data": {
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": "Set"}],
                        },
                    },
                    {
                        "method": "POST",
                        "path": "/Users",
                        "bulkId": "u1",
                        "data": {"schemas": [USER_SCHEMA], "userName": "bulk-ref"},
                    },
                    {"method": "DELETE", "path": "/Groups/bulkId:g1"},
                    {
                        "method": "POST",
                        "path": "/Groups",
                        "bulkId": "g1",
                        "data": {"schemas": [GROUP_SCHEMA], "displayName": "Short-lived"},
                    },
                    {"method": "DELETE", "path": "/Users/bulkId:missing"},
                ],
            },
        )
    )
    results = response["Operations"]
    assert [r["status"] for r in results] == ["200", "201", "204", "201", "409"]
    user = User.objects.get(user_name="bulk-ref")
    assert user.attributes["title"] == "Set"
    assert results[0]["location"].endswith(f"/Users/{user.pk}")
    assert not Group.objects.filter(display_name="Short-lived").exists()
    assert "missing" in results[4]["response"]["detail"]


# -- discovery tells the truth ------------------------------------------------------------


def test_group_display_name_uniqueness_is_declared_as_enforced(scim):
    schema = scim.read(f"/Schemas/{GROUP_SCHEMA}")
    display_name = next(a for a in schema["attributes"] if a["name"] == "displayName")
    assert display_name["uniqueness"] == "server"
    scim.create_group("Finance")
    scim.assert_error(
        scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "FINANCE"}),
        409,
        "uniqueness",
    )


def test_default_sub_attributes_are_filterable(scim):
    """RFC 7644 §3.4.2.2: a complex attribute without a sub-attribute stands for its
    ``value``, which multi-valued attributes have by default (RFC 7643 §2.4)."""
    work = scim.create_user(addresses=[{"locality": "A", "primary": True, "value": "hq"}])
    scim.create_user(addresses=[{"locality": "B", "type": "home"}])
    assert [u["id"] for u in scim.search("/Users", filter='addresses eq "HQ"')["Resources"]] == [
        work["id"]
    ]
    found = scim.search("/Users", filter="addresses.primary eq true")["Resources"]
    assert [u["id"] for u in found] == [work["id"]]


def test_filtering_groups_on_indirect_type_is_refused(scim):
    """Filters on a user's groups see direct memberships; asking for indirect ones is a 400
    that says so, not an empty answer."""
    scim.assert_error(
        scim.get("/Users", params={"filter": 'groups[type eq "indirect"]'}), 400, "invalidFilter"
    )
    assert scim.search("/Users", filter='groups.type eq "direct"')["totalResults"] == 0
