"""Errors and hostile or broken input: every failure is a SCIM Error, never a 500 or HTML.

Every check goes through ``ScimApi.assert_error``: the HTTP status, ``schemas ==
[Error]``, ``status`` as the same string, ``application/scim+json`` and no stack
trace or SQL text in ``detail``.
"""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from provisioning.access.models import ScimToken
from provisioning.directory.models import Group, Membership, User
from tests.factories import UserFactory
from tests.scim.conftest import GROUP_SCHEMA, USER_SCHEMA, ScimApi

WRONG_TYPE = ("invalidValue", "invalidSyntax")


@pytest.fixture
def alice(scim) -> dict:
    return scim.create_user("alice@x.com", displayName="Alice", name={"givenName": "Alice"})


def unchanged(scim: ScimApi, resource: dict) -> bool:
    """The stored resource is exactly what it was (same version, same attributes)."""
    return scim.read(resource["meta"]["location"]) == resource


# -- malformed bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ['{"userName": ', "{'userName': 'single-quotes'}", "not json at all", '{"userName": "a",}'],
)
def test_malformed_json_on_create(scim, raw):
    scim.assert_error(scim.post("/Users", raw=raw), 400, "invalidSyntax")
    assert not User.objects.exists()


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_malformed_json_on_update(scim, alice, method):
    resp = scim.request(method, f"/Users/{alice['id']}", raw='{"Operations": [')

    scim.assert_error(resp, 400, "invalidSyntax")
    assert unchanged(scim, alice)


@pytest.mark.parametrize("raw", ["[]", '"alice"', "42", "null"])
def test_json_that_is_not_an_object(scim, raw):
    scim.assert_error(scim.post("/Users", raw=raw), 400, WRONG_TYPE)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "attrs",
    [
        {"userName": 42},
        {"userName": ["alice@x.com"]},
        {"userName": {"value": "alice@x.com"}},
        {"userName": True},
        {"userName": "alice@x.com", "active": "maybe"},
        {"userName": "alice@x.com", "name": "Alice Smith"},
        {"userName": "alice@x.com", "emails": "alice@x.com"},
        {"userName": "alice@x.com", "emails": [{"value": 7}]},
    ],
    ids=lambda a: "-".join(f"{k}={type(v).__name__}" for k, v in a.items()),
)
def test_wrong_attribute_types_are_400(scim, attrs):
    resp = scim.post("/Users", {"schemas": [USER_SCHEMA], **attrs})

    scim.assert_error(resp, 400, WRONG_TYPE)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [USER_SCHEMA], "displayName": "No Name"},
        {"schemas": [USER_SCHEMA], "userName": None},
        {"schemas": [USER_SCHEMA], "userName": ""},
    ],
    ids=["absent", "null", "empty"],
)
def test_missing_user_name_is_400(scim, body):
    scim.assert_error(scim.post("/Users", body), 400, WRONG_TYPE)
    assert not User.objects.exists()


def test_put_without_user_name_is_400_and_changes_nothing(scim, alice):
    resp = scim.put(f"/Users/{alice['id']}", {"schemas": [USER_SCHEMA], "displayName": "Nameless"})

    scim.assert_error(resp, 400, WRONG_TYPE)
    assert unchanged(scim, alice)


def test_group_without_display_name_is_400(scim):
    scim.assert_error(
        scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "members": []}), 400, WRONG_TYPE
    )
    assert not Group.objects.exists()


def test_group_member_that_does_not_exist_is_400(scim):
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "G",
        "members": [{"value": str(uuid.uuid4())}],
    }

    scim.assert_error(scim.post("/Groups", body), 400)
    assert not Group.objects.exists()


def test_oversize_body_is_413(scim):
    limit = max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.SCIM["BULK_MAX_PAYLOAD_SIZE"])
    body = {"schemas": [USER_SCHEMA], "userName": "big@x.com", "displayName": "x" * (limit + 1)}

    scim.assert_error(scim.post("/Users", body), 413)
    assert not User.objects.exists()


# -- filters and paging ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "expression"),
    [
        ("/Users", 'nickNameX eq "a"'),
        ("/Users", "favouriteColour pr"),
        ("/Users", 'name.middle eq "a"'),
        ("/Users", 'emails[kind eq "work"]'),
        ("/Users", 'urn:example:unknown:2.0:User:employeeNumber eq "1"'),
        ("/Users", 'userName eq "a" or bogus eq "b"'),
        ("/Groups", 'userName eq "alice@x.com"'),
        ("/Groups", 'members.bogus eq "x"'),
    ],
)
def test_unknown_attribute_in_filter_is_invalid_filter(scim, alice, endpoint, expression):
    # An ignored clause would widen the filter and return alice; it must fail instead.
    scim.assert_error(scim.get(endpoint, params={"filter": expression}), 400, "invalidFilter")


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq",
        'userName eq "unterminated',
        'userName xx "a"',
        "userName eq alice@x.com",
        '(userName eq "a"',
        'userName eq "a")',
        'userName eq "a" and',
        'emails[type eq "work"',
        "and",
    ],
)
def test_malformed_filter_is_invalid_filter(scim, alice, expression):
    scim.assert_error(scim.get("/Users", params={"filter": expression}), 400, "invalidFilter")


def test_malformed_filter_in_search_request_is_invalid_filter(scim, alice):
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName eq",
    }

    scim.assert_error(scim.post("/Users/.search", body), 400, "invalidFilter")


def test_huge_count_is_capped_at_advertised_max_results(scim):
    max_results = scim.read("/ServiceProviderConfig")["filter"]["maxResults"]
    assert isinstance(max_results, int) and max_results > 0
    UserFactory.create_bulk(max_results + 1)

    body = scim.search("/Users", count=100000)

    assert body["totalResults"] == max_results + 1
    assert body["itemsPerPage"] == max_results
    assert len(body["Resources"]) == max_results


@pytest.mark.parametrize(
    ("params", "start_index", "items"),
    [
        ({"startIndex": 0}, 1, 3),
        ({"startIndex": -5}, 1, 3),
        ({"startIndex": -5, "count": 2}, 1, 2),
        ({"count": -1}, 1, 0),
        ({"count": 0}, 1, 0),
    ],
)
def test_out_of_range_paging_is_tolerated(scim, params, start_index, items):
    now = timezone.now()
    for i in range(3):
        UserFactory(user_name=f"bulk{i:05d}@x.com", created=now + timedelta(microseconds=i))

    body = scim.search("/Users", **params)

    assert body["totalResults"] == 3
    assert body["startIndex"] == start_index
    assert body["itemsPerPage"] == items
    assert len(body.get("Resources", [])) == items
    if items:
        assert body["Resources"][0]["userName"] == "bulk00000@x.com"


# -- PATCH ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "nickNameX",
        "name.middle",
        "urn:example:unknown:2.0:User:employeeNumber",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize",
        'emails[kind eq "work"].value',
    ],
)
def test_patch_with_invalid_path_is_invalid_path(scim, alice, path):
    resp = scim.patch_ops(f"/Users/{alice['id']}", {"op": "replace", "path": path, "value": "x"})

    scim.assert_error(resp, 400, ("invalidPath", "invalidFilter") if "[" in path else "invalidPath")
    assert unchanged(scim, alice)


@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_patch_remove_without_path_is_no_target(scim, alice, resource):
    target = alice if resource == "Users" else scim.create_group("G")

    resp = scim.patch_ops(f"/{resource}/{target['id']}", {"op": "remove"})

    scim.assert_error(resp, 400, "noTarget")
    assert unchanged(scim, target)


@pytest.mark.parametrize(
    "bad_op",
    [
        {"op": "replace", "path": "nickNameX", "value": "x"},
        {"op": "remove"},
        {"op": "replace", "path": "active", "value": "maybe"},
        {"op": "replace", "path": "userName", "value": None},
        {"op": "explode", "path": "displayName", "value": "x"},
    ],
    ids=["invalid-path", "remove-no-path", "bad-boolean", "null-required", "unknown-op"],
)
def test_patch_is_atomic(scim, alice, bad_op):
    resp = scim.patch_ops(
        f"/Users/{alice['id']}",
        {"op": "replace", "path": "displayName", "value": "Changed by the first op"},
        bad_op,
    )

    scim.assert_error(resp, 400)
    assert unchanged(scim, alice)
    assert User.objects.get(pk=alice["id"]).display_name == "Alice"


def test_group_patch_is_atomic(scim):
    group = scim.create_group("Atomic")
    member = scim.create_user("m@x.com")

    resp = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": member["id"]}]},
        {"op": "replace", "path": "displayName", "value": 12},
    )

    scim.assert_error(resp, 400)
    assert not Membership.objects.filter(group_id=group["id"]).exists()
    assert unchanged(scim, group)


def test_group_patch_adding_an_unknown_member_is_400_and_atomic(scim):
    group = scim.create_group("Careful")
    member = scim.create_user("real@x.com")

    resp = scim.patch_ops(
        f"/Groups/{group['id']}",
        {
            "op": "add",
            "path": "members",
            "value": [{"value": member["id"]}, {"value": str(uuid.uuid4())}],
        },
    )

    scim.assert_error(resp, 400)
    assert not Membership.objects.filter(group_id=group["id"]).exists()
    assert unchanged(scim, group)


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": {"op": "add"}},
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ["replace"]},
    ],
    ids=["no-operations", "operations-not-a-list", "operation-not-an-object"],
)
def test_malformed_patch_request_is_400(scim, alice, body):
    scim.assert_error(scim.patch(f"/Users/{alice['id']}", body), 400)
    assert unchanged(scim, alice)


# -- uniqueness ----------------------------------------------------------------------------------


def test_duplicate_user_name_in_another_case_is_409(scim, alice):
    resp = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ALICE@X.COM"})

    scim.assert_error(resp, 409, "uniqueness")
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("existing", "duplicate"),
    [("josé@x.com", "JOSÉ@x.com"), ("JOSÉ@x.com", "josé@x.com"), ("ÅSA@x.com", "åsa@X.com")],
)
def test_duplicate_non_ascii_user_name_in_another_case_is_409(scim, existing, duplicate):
    scim.create_user(existing)

    resp = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": duplicate})

    scim.assert_error(resp, 409, "uniqueness")
    assert User.objects.count() == 1


def test_put_renaming_to_a_taken_user_name_is_409(scim, alice):
    bob = scim.create_user("bob@x.com")

    resp = scim.put(f"/Users/{bob['id']}", {"schemas": [USER_SCHEMA], "userName": "Alice@X.com"})

    scim.assert_error(resp, 409, "uniqueness")
    assert unchanged(scim, bob)


def test_patch_renaming_to_a_taken_user_name_is_409(scim, alice):
    bob = scim.create_user("bob@x.com")

    resp = scim.patch_ops(
        f"/Users/{bob['id']}", {"op": "replace", "path": "userName", "value": "aLiCe@x.com"}
    )

    scim.assert_error(resp, 409, "uniqueness")
    assert unchanged(scim, bob)


def test_duplicate_group_display_name_is_409(scim):
    scim.create_group("Engineering")

    resp = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "engineering"})

    scim.assert_error(resp, 409, "uniqueness")
    assert Group.objects.count() == 1


# -- access control --------------------------------------------------------------------------------


@pytest.fixture
def directory(scim) -> dict:
    user = scim.create_user("kept@x.com", displayName="Kept")
    group = scim.create_group("Kept Group", members=[{"value": user["id"]}])
    # Re-read: the user now lists the group.
    return {"user": scim.read(f"/Users/{user['id']}"), "group": scim.read(f"/Groups/{group['id']}")}


PATCH_OP = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "intruder@x.com"}),
        (
            "PUT",
            "/Users/{uid}",
            {"schemas": [USER_SCHEMA], "userName": "kept@x.com", "active": False},
        ),
        (
            "PATCH",
            "/Users/{uid}",
            {**PATCH_OP, "Operations": [{"op": "replace", "path": "active", "value": False}]},
        ),
        ("DELETE", "/Users/{uid}", None),
        ("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Intruders"}),
        ("PUT", "/Groups/{gid}", {"schemas": [GROUP_SCHEMA], "displayName": "Renamed"}),
        (
            "PATCH",
            "/Groups/{gid}",
            {**PATCH_OP, "Operations": [{"op": "remove", "path": "members"}]},
        ),
        ("DELETE", "/Groups/{gid}", None),
    ],
    ids=[
        "POST-user",
        "PUT-user",
        "PATCH-user",
        "DELETE-user",
        "POST-group",
        "PUT-group",
        "PATCH-group",
        "DELETE-group",
    ],
)
def test_read_only_client_cannot_write(scim, readonly_scim, directory, method, path, body):
    path = path.format(uid=directory["user"]["id"], gid=directory["group"]["id"])

    resp = readonly_scim.request(method, path, body)

    readonly_scim.assert_error(resp, 403)
    assert (User.objects.count(), Group.objects.count(), Membership.objects.count()) == (1, 1, 1)
    assert unchanged(scim, directory["user"])
    assert unchanged(scim, directory["group"])


def test_read_only_client_can_read_and_search(readonly_scim, directory):
    uid = directory["user"]["id"]

    assert readonly_scim.read(f"/Users/{uid}")["userName"] == "kept@x.com"
    assert readonly_scim.search("/Groups")["totalResults"] == 1
    body = readonly_scim.ok(
        readonly_scim.post(
            "/Users/.search",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": 'userName eq "kept@x.com"',
            },
        )
    )
    assert body["totalResults"] == 1


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer not-a-real-token",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "Token {token}",
        "{token}",
        "Bearer {token}x",
        "Bearer {token} {token}",
    ],
)
def test_missing_or_garbled_authorization_is_401(scim, anonymous_scim, alice, authorization):
    headers = {}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization.format(token=scim.token)

    for resp in (
        anonymous_scim.get("/Users", **headers),
        anonymous_scim.get(f"/Users/{alice['id']}", **headers),
        anonymous_scim.post(
            "/Users", {"schemas": [USER_SCHEMA], "userName": "new@x.com"}, **headers
        ),
        anonymous_scim.delete(f"/Users/{alice['id']}", **headers),
    ):
        anonymous_scim.assert_error(resp, 401)
        assert resp.has_header("WWW-Authenticate")
        assert resp["WWW-Authenticate"].lower().startswith("bearer")
    assert list(User.objects.values_list("user_name", flat=True)) == ["alice@x.com"]


def test_revoked_token_is_401(scim):
    ScimToken.objects.update(revoked_at=timezone.now())

    resp = scim.get("/Users")

    scim.assert_error(resp, 401)
    assert resp.has_header("WWW-Authenticate")


def test_bearer_scheme_is_case_insensitive(scim):
    assert scim.get("/Users", HTTP_AUTHORIZATION=f"bearer {scim.token}").status_code == 200


# -- not found and not allowed ----------------------------------------------------------------


@pytest.mark.parametrize("resource", ["Users", "Groups"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("rid", [str(uuid.UUID(int=1)), "not-a-uuid", "123", "%20"])
def test_unknown_or_malformed_id_is_404(scim, alice, resource, method, rid):
    body = None
    if method == "PUT":
        body = {
            "schemas": [USER_SCHEMA if resource == "Users" else GROUP_SCHEMA],
            "userName": "x@x.com",
            "displayName": "x",
        }
    if method == "PATCH":
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "x"}],
        }

    scim.assert_error(scim.request(method, f"/{resource}/{rid}", body), 404)
    assert unchanged(scim, alice)


@pytest.mark.parametrize("path", ["/Nope", "/Users/a/b", "/Groups/x/members"])
def test_unknown_endpoint_is_a_scim_404(scim, path):
    scim.assert_error(scim.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/Users"),
        ("PATCH", "/Users"),
        ("DELETE", "/Users"),
        ("PUT", "/Groups"),
        ("DELETE", "/Groups"),
        ("POST", "/Users/{uid}"),
        ("POST", "/ServiceProviderConfig"),
        ("DELETE", "/Schemas"),
        ("GET", "/Bulk"),
    ],
)
def test_wrong_method_is_405(scim, alice, method, path):
    resp = scim.request(
        method, path.format(uid=alice["id"]), {"schemas": [USER_SCHEMA], "userName": "z@x.com"}
    )

    scim.assert_error(resp, 405)
    assert resp.has_header("Allow")
    assert unchanged(scim, alice)
    assert User.objects.count() == 1
