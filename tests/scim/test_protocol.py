"""RFC 7643/7644 behaviour that servers most often get wrong.

ETags and conditional requests, attribute projection, sorting, filter grammar,
``.search``, discovery documents, ``/Me`` and Bulk.
"""

import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.directory.models import Group, Membership, User
from tests.scim.conftest import (
    ENTERPRISE_SCHEMA,
    ERROR_SCHEMA,
    GROUP_SCHEMA,
    LIST_SCHEMA,
    USER_SCHEMA,
    ScimApi,
)

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def user_body(user_name: str, **attrs) -> dict:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attrs}


def group_body(display_name: str, **attrs) -> dict:
    return {"schemas": [GROUP_SCHEMA], "displayName": display_name, **attrs}


# -- media types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/scim+json", "application/json"])
def test_both_json_media_types_are_accepted_and_answer_is_scim_json(scim, content_type):
    resp = scim.post("/Users", user_body("media@x.com"), content_type=content_type)

    assert scim.ok(resp, 201)["userName"] == "media@x.com"
    assert resp["Content-Type"].startswith("application/scim+json")


def test_media_type_with_charset_parameter_is_accepted(scim):
    resp = scim.post(
        "/Users", user_body("charset@x.com"), content_type="application/scim+json; charset=utf-8"
    )

    scim.ok(resp, 201)


# -- ETags ------------------------------------------------------------------------------------------


@pytest.fixture(params=["Users", "Groups"])
def resource(request, scim) -> tuple[str, dict]:
    """A freshly created user or group: (collection, POST response)."""
    if request.param == "Users":
        resp = scim.post("/Users", user_body("etag@x.com", displayName="Before"))
    else:
        resp = scim.post("/Groups", group_body("Before"))
    body = scim.ok(resp, 201)
    assert resp["ETag"] == body["meta"]["version"]
    return request.param, body


def replacement(collection: str, display_name: str) -> dict:
    if collection == "Users":
        return user_body("etag@x.com", displayName=display_name)
    return group_body(display_name)


def display_patch(display_name: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": display_name}],
    }


def test_etag_header_equals_meta_version_on_get(scim, resource):
    collection, created = resource

    resp = scim.get(f"/{collection}/{created['id']}")

    body = scim.ok(resp)
    assert resp["ETag"] == body["meta"]["version"] == created["meta"]["version"]
    assert body["meta"]["version"].startswith(('W/"', '"'))


def test_etag_changes_on_put_and_matches_body(scim, resource):
    collection, created = resource

    resp = scim.put(f"/{collection}/{created['id']}", replacement(collection, "After PUT"))

    body = scim.ok(resp)
    assert resp["ETag"] == body["meta"]["version"]
    assert body["meta"]["version"] != created["meta"]["version"]


def test_etag_changes_on_patch_and_matches_body(scim, resource):
    collection, created = resource
    path = f"/{collection}/{created['id']}"

    resp = scim.patch(path, display_patch("After PATCH"))

    assert resp.status_code in (200, 204)
    current = scim.read(path)
    assert current["meta"]["version"] != created["meta"]["version"]
    if resp.status_code == 200:
        assert resp["ETag"] == scim.json(resp)["meta"]["version"] == current["meta"]["version"]
    elif resp.has_header("ETag"):
        assert resp["ETag"] == current["meta"]["version"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_stale_version_is_412_and_changes_nothing(scim, resource, method):
    collection, created = resource
    path = f"/{collection}/{created['id']}"
    stale = created["meta"]["version"]
    assert scim.patch(path, display_patch("Moved on")).status_code in (200, 204)
    current = scim.read(path)
    body = {
        "PUT": replacement(collection, "Lost update"),
        "PATCH": display_patch("Lost update"),
    }.get(method)

    resp = scim.request(method, path, body, HTTP_IF_MATCH=stale)

    scim.assert_error(resp, 412)
    assert scim.read(path) == current


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_current_version_succeeds(scim, resource, method):
    collection, created = resource
    path = f"/{collection}/{created['id']}"
    body = {"PUT": replacement(collection, "Matched"), "PATCH": display_patch("Matched")}.get(
        method
    )

    resp = scim.request(method, path, body, HTTP_IF_MATCH=created["meta"]["version"])

    assert resp.status_code in ((204,) if method == "DELETE" else (200, 204)), resp.content
    if method != "DELETE":
        assert scim.read(path)["displayName"] == "Matched"


def test_if_match_star_matches_any_version(scim, resource):
    collection, created = resource
    path = f"/{collection}/{created['id']}"

    resp = scim.put(path, replacement(collection, "Starred"), HTTP_IF_MATCH="*")

    assert scim.ok(resp)["displayName"] == "Starred"


def test_if_none_match_with_current_version_is_304(scim, resource):
    collection, created = resource
    path = f"/{collection}/{created['id']}"

    resp = scim.get(path, HTTP_IF_NONE_MATCH=created["meta"]["version"])

    assert resp.status_code == 304
    assert resp.content == b""
    assert resp["ETag"] == created["meta"]["version"]


def test_if_none_match_with_stale_version_is_200(scim, resource):
    collection, created = resource
    path = f"/{collection}/{created['id']}"
    assert scim.patch(path, display_patch("Newer")).status_code in (200, 204)

    resp = scim.get(path, HTTP_IF_NONE_MATCH=created["meta"]["version"])

    assert scim.ok(resp)["displayName"] == "Newer"


# -- attributes / excludedAttributes ----------------------------------------------------------


@pytest.fixture
def alice(scim) -> dict:
    return scim.create_user(
        "alice@example.com",
        externalId="ext-A",
        displayName="Alice Smith",
        title="Engineer",
        name={"givenName": "Alice", "familyName": "Smith"},
        emails=[{"type": "work", "value": "alice@example.com", "primary": True}],
        **{ENTERPRISE_SCHEMA: {"employeeNumber": "701", "department": "R&D"}},
    )


def listed(scim: ScimApi, path: str, **params) -> list[dict]:
    return scim.search(path, **params).get("Resources", [])


def test_attributes_returns_only_requested_plus_always(scim, alice):
    single = scim.read(f"/Users/{alice['id']}", params={"attributes": "userName"})
    [in_list] = listed(scim, "/Users", attributes="userName")

    for body in (single, in_list):
        assert {"id", "userName"} <= body.keys() <= {"id", "userName", "schemas"}
        assert body["userName"] == "alice@example.com"


def test_attributes_with_sub_attribute_and_extension_urn(scim, alice):
    body = scim.read(
        f"/Users/{alice['id']}",
        params={"attributes": f"name.familyName,{ENTERPRISE_SCHEMA}:employeeNumber"},
    )

    assert body["name"] == {"familyName": "Smith"}
    assert body[ENTERPRISE_SCHEMA] == {"employeeNumber": "701"}
    assert "userName" not in body and "emails" not in body


def test_excluded_attributes_omits_them(scim, alice):
    single = scim.read(f"/Users/{alice['id']}", params={"excludedAttributes": "emails,title"})
    [in_list] = listed(scim, "/Users", excludedAttributes="emails,title")

    for body in (single, in_list):
        assert "emails" not in body and "title" not in body
        assert body["userName"] == "alice@example.com"
        assert body["displayName"] == "Alice Smith"


def test_excluded_attributes_cannot_remove_id(scim, alice):
    body = scim.read(f"/Users/{alice['id']}", params={"excludedAttributes": "id,userName"})

    assert body["id"] == alice["id"]
    assert "userName" not in body


def test_attribute_names_in_projection_are_case_insensitive(scim, alice):
    body = scim.read(f"/Users/{alice['id']}", params={"attributes": "USERNAME"})

    assert body["userName"] == "alice@example.com"
    assert "emails" not in body


def test_excluded_members_on_groups(scim, alice):
    group = scim.create_group("Projected", members=[{"value": alice["id"]}])

    single = scim.read(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    [in_list] = listed(scim, "/Groups", excludedAttributes="members")
    full = scim.read(f"/Groups/{group['id']}")

    for body in (single, in_list):
        assert "members" not in body
        assert body["displayName"] == "Projected"
    assert [m["value"] for m in full["members"]] == [alice["id"]]


def test_excluded_members_does_not_load_members(scim, alice):
    scim.create_group("Big", members=[{"value": alice["id"]}])
    table = Membership._meta.db_table

    with CaptureQueriesContext(connection) as with_members:
        scim.search("/Groups")
    with CaptureQueriesContext(connection) as without_members:
        scim.search("/Groups", excludedAttributes="members")

    assert [q["sql"] for q in with_members if table in q["sql"]]  # the control: members are read
    assert not [q["sql"] for q in without_members if table in q["sql"]]


def test_attributes_on_search_request(scim, alice):
    body = scim.ok(
        scim.post("/Users/.search", {"schemas": [SEARCH_REQUEST], "attributes": ["displayName"]})
    )

    [found] = body["Resources"]
    assert {"id", "displayName"} <= found.keys() <= {"id", "displayName", "schemas"}


# -- sorting and count=0 -----------------------------------------------------------------------


@pytest.fixture
def trio(scim) -> list[dict]:
    # Created out of order so that creation order != name order.
    return [
        scim.create_user(name, name={"familyName": family})
        for name, family in (
            ("mike@x.com", "Bravo"),
            ("adam@x.com", "Charlie"),
            ("zoe@x.com", "Alpha"),
        )
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sortBy": "userName"}, ["adam@x.com", "mike@x.com", "zoe@x.com"]),
        (
            {"sortBy": "userName", "sortOrder": "ascending"},
            ["adam@x.com", "mike@x.com", "zoe@x.com"],
        ),
        (
            {"sortBy": "userName", "sortOrder": "descending"},
            ["zoe@x.com", "mike@x.com", "adam@x.com"],
        ),
        ({"sortBy": "name.familyName"}, ["zoe@x.com", "mike@x.com", "adam@x.com"]),
        (
            {"sortBy": "userName", "sortOrder": "descending", "count": 2},
            ["zoe@x.com", "mike@x.com"],
        ),
        (
            {"sortBy": "userName", "sortOrder": "descending", "startIndex": 2, "count": 2},
            ["mike@x.com", "adam@x.com"],
        ),
    ],
)
def test_sort(scim, trio, params, expected):
    assert [u["userName"] for u in listed(scim, "/Users", **params)] == expected


def test_count_zero_returns_only_the_total(scim, trio):
    body = scim.search("/Users", count=0)

    assert body["totalResults"] == 3
    assert body.get("Resources", []) == []
    assert body["itemsPerPage"] == 0


def test_member_entries_come_back_as_sent_including_nested_groups(scim, alice):
    child = scim.create_group("Child")

    group = scim.create_group(
        "Parent",
        members=[
            {"value": alice["id"], "type": "User", "display": "Alice S."},
            {"value": child["id"], "type": "Group", "display": "Child team"},
        ],
    )

    stored = scim.read(f"/Groups/{group['id']}")
    for body in (group, stored):
        members = {m["value"]: (m.get("type"), m.get("display")) for m in body["members"]}
        assert members == {alice["id"]: ("User", "Alice S."), child["id"]: ("Group", "Child team")}
        refs = {m["value"]: m["$ref"] for m in body["members"]}
        assert refs[alice["id"]].endswith(f"/Users/{alice['id']}")
        assert refs[child["id"]].endswith(f"/Groups/{child['id']}")
    nested = Membership.objects.get(group_id=group["id"], member_group__isnull=False)
    assert str(nested.member_group_id) == child["id"]


# -- filters ---------------------------------------------------------------------------------------


@pytest.fixture
def people(scim) -> dict[str, dict]:
    return {
        "alice": scim.create_user(
            "alice@example.com",
            externalId="ext-A",
            displayName="Alice Smith",
            title="Engineer",
            active=True,
            name={"givenName": "Alice", "familyName": "Smith"},
            emails=[{"type": "work", "value": "alice@example.com"}],
            **{ENTERPRISE_SCHEMA: {"employeeNumber": "701"}},
        ),
        "bob": scim.create_user(
            "bob@example.org",
            displayName="Bob Jones",
            active=False,
            name={"familyName": "Jones"},
            emails=[{"type": "home", "value": "bob@home.org"}],
        ),
        "carol": scim.create_user(
            "carol_100%@example.com",
            displayName="Carol",
            active=True,
            emails=[{"type": "work", "value": "carol@example.org"}],
        ),
    }


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName eq "alice@example.com"', {"alice"}),
        ('USERNAME EQ "Alice@Example.COM"', {"alice"}),
        ('userName ne "alice@example.com"', {"bob", "carol"}),
        ('userName co "example"', {"alice", "bob", "carol"}),
        ('userName sw "BO"', {"bob"}),
        ('userName ew ".org"', {"bob"}),
        ('userName co "%"', {"carol"}),
        ('userName co "_"', {"carol"}),
        ('userName sw "c_r"', set()),
        ("externalId pr", {"alice"}),
        ("active eq true", {"alice", "carol"}),
        ("active eq false", {"bob"}),
        ('externalId eq "ext-A"', {"alice"}),
        ('externalId eq "EXT-A"', set()),
        ('name.familyName eq "smith"', {"alice"}),
        ('displayName gt "B"', {"bob", "carol"}),
        ('displayName lt "B"', {"alice"}),
        ('displayName ge "Carol"', {"carol"}),
        ('displayName le "Bob Jones"', {"alice", "bob"}),
        ('emails[type eq "work"]', {"alice", "carol"}),
        ('emails[type eq "work" and value co "@example.com"]', {"alice"}),
        ('emails.value ew "example.org"', {"carol"}),
        ('emails co "home.org"', {"bob"}),
        ('userName eq "bob@example.org" or displayName eq "Carol"', {"bob", "carol"}),
        ("not (active eq true)", {"bob"}),
        ('(userName sw "a" or userName sw "b") and active eq true', {"alice"}),
        ('meta.lastModified gt "2000-01-01T00:00:00Z"', {"alice", "bob", "carol"}),
        ('meta.created lt "2000-01-01T00:00:00Z"', set()),
        (f'{ENTERPRISE_SCHEMA}:employeeNumber eq "701"', {"alice"}),
        ('id eq "{alice}"', {"alice"}),
        ('userName eq "carol_100%@example.com"', {"carol"}),
        ('userName eq "carol_100_@example.com"', set()),
        ('userName eq "alice@example.com" OR displayName Eq "Carol"', {"alice", "carol"}),
        # "and" binds tighter than "or": alice, or (bob and active) -- bob is inactive.
        (
            'userName eq "alice@example.com" or userName eq "bob@example.org" and active eq true',
            {"alice"},
        ),
        (
            '(userName eq "alice@example.com" or userName eq "bob@example.org") and active eq true',
            {"alice"},
        ),
        ("emails pr", {"alice", "bob", "carol"}),
    ],
)
def test_filter_grammar(scim, people, expression, expected):
    ids = {name: user["id"] for name, user in people.items()}
    expression = expression.replace("{alice}", ids["alice"])

    found = {r["id"] for r in listed(scim, "/Users", filter=expression)}

    assert found == {ids[name] for name in expected}


def test_filter_value_with_escaped_quote(scim):
    user = scim.create_user('quote"d@x.com')
    scim.create_user("quoted@x.com")

    found = listed(scim, "/Users", filter=r'userName eq "quote\"d@x.com"')

    assert [u["id"] for u in found] == [user["id"]]


def test_group_filter_on_members(scim, people):
    engineers = scim.create_group("Engineers", members=[{"value": people["alice"]["id"]}])
    scim.create_group("Others", members=[{"value": people["bob"]["id"]}])

    by_value_path = listed(scim, "/Groups", filter=f'members[value eq "{people["alice"]["id"]}"]')
    by_dotted = listed(scim, "/Groups", filter=f'members.value eq "{people["alice"]["id"]}"')

    assert [g["id"] for g in by_value_path] == [engineers["id"]]
    assert [g["id"] for g in by_dotted] == [engineers["id"]]


# -- .search ------------------------------------------------------------------------------------


def test_search_on_users_with_a_search_request(scim, people):
    body = scim.ok(
        scim.post(
            "/Users/.search",
            {
                "schemas": [SEARCH_REQUEST],
                "attributes": ["userName", "displayName"],
                "filter": 'userName co "example"',
                "sortBy": "userName",
                "sortOrder": "descending",
                "startIndex": 1,
                "count": 2,
            },
        )
    )

    assert body["schemas"] == [LIST_SCHEMA]
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (3, 1, 2)
    assert [r["userName"] for r in body["Resources"]] == [
        "carol_100%@example.com",
        "bob@example.org",
    ]
    assert all("emails" not in r for r in body["Resources"])


def test_search_on_groups(scim, people):
    scim.create_group("Alpha Team")
    scim.create_group("Beta Team")

    body = scim.ok(
        scim.post(
            "/Groups/.search", {"schemas": [SEARCH_REQUEST], "filter": 'displayName sw "alpha"'}
        )
    )

    assert [g["displayName"] for g in body["Resources"]] == ["Alpha Team"]


def test_search_at_the_root_spans_resource_types(scim):
    user = scim.create_user("shared@x.com", externalId="shared-ext")
    group = scim.create_group("Shared", externalId="shared-ext")
    scim.create_user("other@x.com", externalId="other-ext")

    body = scim.ok(
        scim.post("/.search", {"schemas": [SEARCH_REQUEST], "filter": 'externalId eq "shared-ext"'})
    )

    assert body["totalResults"] == 2
    found = {(r["meta"]["resourceType"], r["id"]) for r in body["Resources"]}
    assert found == {("User", user["id"]), ("Group", group["id"])}


def test_search_request_with_a_bad_filter_is_invalid_filter(scim):
    scim.assert_error(
        scim.post("/.search", {"schemas": [SEARCH_REQUEST], "filter": "shoeSize gt 40"}),
        400,
        "invalidFilter",
    )


# -- /Me -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_me_is_not_implemented(scim, method):
    scim.assert_error(scim.request(method, "/Me", {}), 501)


# -- discovery ------------------------------------------------------------------------------------


def test_service_provider_config_tells_the_truth(scim):
    spc = scim.read("/ServiceProviderConfig")

    assert spc["schemas"] == [SPC_SCHEMA]
    assert spc["patch"]["supported"] is True
    assert spc["bulk"]["supported"] is True
    assert spc["bulk"]["maxOperations"] == settings.SCIM["BULK_MAX_OPERATIONS"]
    assert spc["bulk"]["maxPayloadSize"] == settings.SCIM["BULK_MAX_PAYLOAD_SIZE"]
    assert spc["filter"]["supported"] is True
    assert spc["filter"]["maxResults"] == settings.SCIM["MAX_RESULTS"]
    assert spc["sort"]["supported"] is True
    assert spc["etag"]["supported"] is True
    assert spc["changePassword"]["supported"] is False  # passwords are ignored
    assert [s["type"] for s in spc["authenticationSchemes"]] == ["oauthbearertoken"]


def test_resource_types(scim):
    body = scim.read("/ResourceTypes")

    by_id = {rt["id"]: rt for rt in body["Resources"]}
    assert set(by_id) == {"User", "Group"}
    assert body["totalResults"] == 2
    user, group = by_id["User"], by_id["Group"]
    assert user["schemas"] == [RESOURCE_TYPE_SCHEMA]
    assert (user["name"], user["endpoint"], user["schema"]) == ("User", "/Users", USER_SCHEMA)
    assert user["schemaExtensions"] == [{"schema": ENTERPRISE_SCHEMA, "required": False}]
    assert (group["name"], group["endpoint"], group["schema"]) == ("Group", "/Groups", GROUP_SCHEMA)
    assert scim.read("/ResourceTypes/User") == user


def test_schemas(scim):
    body = scim.read("/Schemas")

    ids = {s["id"] for s in body["Resources"]}
    assert ids == {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA}
    assert all(s["schemas"] == [SCHEMA_SCHEMA] for s in body["Resources"])


def test_user_schema_document(scim):
    doc = scim.read(f"/Schemas/{USER_SCHEMA}")

    assert doc["id"] == USER_SCHEMA
    assert doc["schemas"] == [SCHEMA_SCHEMA]
    attrs = {a["name"]: a for a in doc["attributes"]}
    assert attrs["userName"]["required"] is True
    assert attrs["userName"]["uniqueness"] == "server"
    assert attrs["userName"]["caseExact"] is False
    assert attrs["password"]["returned"] == "never"


def test_group_schema_declares_member_display(scim):
    doc = scim.read(f"/Schemas/{GROUP_SCHEMA}")

    members = next(a for a in doc["attributes"] if a["name"] == "members")
    assert "display" in {s["name"] for s in members["subAttributes"]}


@pytest.mark.parametrize("path", ["/ResourceTypes/Printer", "/Schemas/urn:example:unknown"])
def test_unknown_discovery_documents_are_404(scim, path):
    scim.assert_error(scim.get(path), 404)


# -- Bulk ------------------------------------------------------------------------------------------


def bulk(scim: ScimApi, *operations: dict, **request) -> dict:
    resp = scim.post(
        "/Bulk", {"schemas": [BULK_REQUEST], "Operations": list(operations), **request}
    )
    body = scim.ok(resp)
    assert body["schemas"] == [BULK_RESPONSE]
    return body


def post_user(user_name: str, bulk_id: str | None = None) -> dict:
    op = {"method": "POST", "path": "/Users", "data": user_body(user_name)}
    if bulk_id:
        op["bulkId"] = bulk_id
    return op


def bad_user(bulk_id: str) -> dict:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": {"schemas": [USER_SCHEMA]},
    }


def test_bulk_resolves_bulk_id_references(scim):
    body = bulk(
        scim,
        post_user("bulk.user@x.com", "u1"),
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": group_body("Bulk Group", members=[{"type": "User", "value": "bulkId:u1"}]),
        },
    )

    results = {op["bulkId"]: op for op in body["Operations"]}
    assert [results[k]["status"] for k in ("u1", "g1")] == ["201", "201"]
    assert [results[k]["method"] for k in ("u1", "g1")] == ["POST", "POST"]
    user = User.objects.get(user_name="bulk.user@x.com")
    group = Group.objects.get(display_name="Bulk Group")
    assert results["u1"]["location"].endswith(f"/Users/{user.pk}")
    assert results["g1"]["location"].endswith(f"/Groups/{group.pk}")
    assert [m.user_id for m in Membership.objects.filter(group=group)] == [user.pk]
    stored = scim.read(results["g1"]["location"])
    assert [m["value"] for m in stored["members"]] == [str(user.pk)]


def test_bulk_with_every_method(scim):
    victim = scim.create_user("victim@x.com")
    target = scim.create_user("target@x.com")

    body = bulk(
        scim,
        post_user("fresh@x.com", "n1"),
        {
            "method": "PUT",
            "path": f"/Users/{target['id']}",
            "data": user_body("target@x.com", displayName="Put"),
        },
        {
            "method": "PATCH",
            "path": f"/Users/{target['id']}",
            "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Patched"}],
            },
        },
        {"method": "DELETE", "path": f"/Users/{victim['id']}"},
    )

    statuses = [op["status"] for op in body["Operations"]]
    assert statuses[0] == "201"
    assert statuses[1] == "200"
    assert statuses[2] in ("200", "204")
    assert statuses[3] == "204"
    stored = scim.read(f"/Users/{target['id']}")
    assert (stored["displayName"], stored["title"]) == ("Put", "Patched")
    assert not User.objects.filter(pk=victim["id"]).exists()
    assert User.objects.filter(user_name="fresh@x.com").exists()


def test_bulk_per_operation_error_carries_a_scim_error(scim):
    scim.create_user("taken@x.com")

    body = bulk(
        scim,
        post_user("TAKEN@x.com", "dup"),
        {"method": "DELETE", "path": f"/Users/{uuid.uuid4()}"},
        post_user("fine@x.com", "ok"),
    )

    dup, missing, ok = body["Operations"]
    assert dup["status"] == "409"
    assert dup["response"]["schemas"] == [ERROR_SCHEMA]
    assert dup["response"]["status"] == "409"
    assert dup["response"]["scimType"] == "uniqueness"
    assert missing["status"] == "404"
    assert missing["response"]["schemas"] == [ERROR_SCHEMA]
    assert ok["status"] == "201"
    assert User.objects.filter(user_name="fine@x.com").exists()


@pytest.mark.parametrize("fail_on_errors", [1, 2])
def test_bulk_fail_on_errors_stops_after_that_many_errors(scim, fail_on_errors):
    operations = [
        bad_user("b1"),
        post_user("first@x.com", "g1"),
        bad_user("b2"),
        post_user("second@x.com", "g2"),
    ]

    body = bulk(scim, *operations, failOnErrors=fail_on_errors)

    results = body["Operations"]
    if fail_on_errors == 1:
        assert [r["status"] for r in results] == ["400"]
        assert not User.objects.exists()
    else:
        assert [r["status"] for r in results] == ["400", "201", "400"]
        assert list(User.objects.values_list("user_name", flat=True)) == ["first@x.com"]
    assert all(r["response"]["schemas"] == [ERROR_SCHEMA] for r in results if r["status"] == "400")


def test_bulk_over_max_operations_is_413(scim):
    max_operations = scim.read("/ServiceProviderConfig")["bulk"]["maxOperations"]
    operations = [post_user(f"many{i}@x.com", f"m{i}") for i in range(max_operations + 1)]

    resp = scim.post("/Bulk", {"schemas": [BULK_REQUEST], "Operations": operations})

    scim.assert_error(resp, 413)
    assert not User.objects.exists()


def test_bulk_over_max_payload_size_is_413(scim):
    max_payload = scim.read("/ServiceProviderConfig")["bulk"]["maxPayloadSize"]
    padding = "x" * (max_payload + 1)
    operation = {
        "method": "POST",
        "path": "/Users",
        "bulkId": "big",
        "data": user_body("big@x.com", title=padding),
    }

    resp = scim.post("/Bulk", {"schemas": [BULK_REQUEST], "Operations": [operation]})

    scim.assert_error(resp, 413)
    assert not User.objects.exists()


def test_bulk_with_an_unresolvable_bulk_id_fails_that_operation(scim):
    body = bulk(
        scim,
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": group_body("Orphans", members=[{"type": "User", "value": "bulkId:nope"}]),
        },
    )

    [result] = body["Operations"]
    assert result["status"] in ("400", "409")
    assert result["response"]["schemas"] == [ERROR_SCHEMA]
    assert result["response"]["status"] == result["status"]
    assert not Group.objects.exists()


def test_bulk_by_read_only_client_changes_nothing(readonly_scim):
    resp = readonly_scim.post(
        "/Bulk", {"schemas": [BULK_REQUEST], "Operations": [post_user("ro@x.com", "r1")]}
    )

    if resp.status_code == 200:
        [result] = readonly_scim.json(resp)["Operations"]
        assert result["status"] == "403"
        assert result["response"]["schemas"] == [ERROR_SCHEMA]
    else:
        readonly_scim.assert_error(resp, 403)
    assert not User.objects.exists()


def test_bulk_without_operations_is_400(scim):
    scim.assert_error(scim.post("/Bulk", {"schemas": [BULK_REQUEST]}), 400)


def test_rendering_a_user_shares_but_never_changes_its_stored_attributes():
    import copy

    from provisioning.directory.models import User
    from provisioning.scim import resources
    from provisioning.scim.schema import USER_SCHEMA

    document = resources.clean_document(
        USER_SCHEMA,
        {
            "userName": "render@example.com",
            "name": {"givenName": "Ada", "familyName": "Silva", "formatted": "Ada Silva"},
            "emails": [{"value": "render@example.com", "primary": True}],
            "title": "Engineer",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
        },
    )
    user = User(**resources.user_fields(document))
    stored = copy.deepcopy(user.attributes)
    shared = resources.user_editable_document(user, shared=True)
    private = resources.user_editable_document(user)
    assert shared == private
    assert user.attributes == stored  # nothing written into the stored objects
    private["name"]["givenName"] = "Changed"
    assert shared["name"]["givenName"] == "Ada" and user.attributes == stored
