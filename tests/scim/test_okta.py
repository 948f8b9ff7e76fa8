"""Okta provisioning sequences, request bodies as Okta's SCIM 2.0 spec test sends them.

See SCIM-DIALECTS.md, "Okta": pre-create filter with paging parameters, POST with
``password`` and ``groups: []``, full PUT of what it read, path-less PATCH,
paging with count=100, group rename and membership deltas, 401 for a bad token.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.directory.models import Group, Membership, User
from tests.scim.conftest import GROUP_SCHEMA, USER_SCHEMA, ScimApi

PASSWORD = "1mz050nq-Secret!"


def okta_user(user_name: str = "test.user@okta.local", **overrides) -> dict:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": PASSWORD,
        "active": True,
    }
    body.update(overrides)
    return body


def assert_no_password(resp) -> None:
    assert PASSWORD.encode() not in resp.content
    assert b'"password"' not in resp.content


@pytest.fixture
def created(scim) -> dict:
    resp = scim.post("/Users", okta_user())
    assert_no_password(resp)
    return scim.ok(resp, 201)


# -- users ----------------------------------------------------------------------------------------


def test_pre_create_lookup_with_paging_parameters(scim):
    query = {"filter": 'userName eq "test.user@okta.local"', "startIndex": 1, "count": 100}

    before = scim.search("/Users", **query)
    scim.ok(scim.post("/Users", okta_user()), 201)
    after = scim.search("/Users", **query)

    assert (before["totalResults"], before["startIndex"]) == (0, 1)
    assert before.get("Resources", []) == []
    assert (after["totalResults"], after["startIndex"], after["itemsPerPage"]) == (1, 1, 1)
    assert after["Resources"][0]["userName"] == "test.user@okta.local"


def test_create_ignores_password_and_empty_groups_and_answers_the_full_resource(scim):
    resp = scim.post("/Users", okta_user())

    body = scim.ok(resp, 201)
    assert_no_password(resp)
    assert body["id"]
    assert body["userName"] == "test.user@okta.local"
    assert body["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert body["name"] == {"givenName": "Test", "familyName": "User"}
    assert body["emails"] == [{"primary": True, "value": "test.user@okta.local", "type": "work"}]
    assert body["displayName"] == "Test User"
    assert body["locale"] == "en-US"
    assert body["active"] is True
    assert body.get("groups", []) == []
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert {"created", "lastModified", "version", "location"} <= meta.keys()
    assert resp["Location"] == meta["location"]
    assert meta["location"].endswith(f"/scim/v2/Users/{body['id']}")
    # Ignored means not stored either.
    row = User.objects.get(pk=body["id"])
    assert PASSWORD not in json.dumps(row.attributes)
    assert not Membership.objects.filter(user=row).exists()


def test_password_is_never_returned(scim, created):
    uid = created["id"]
    responses = [
        scim.get(f"/Users/{uid}"),
        scim.get("/Users", params={"filter": 'userName eq "test.user@okta.local"'}),
        scim.get(f"/Users/{uid}", params={"attributes": "password,userName"}),
        scim.put(f"/Users/{uid}", okta_user(id=uid)),
        scim.patch_ops(f"/Users/{uid}", {"op": "replace", "value": {"displayName": "T. User"}}),
        scim.post(
            "/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
        ),
    ]

    for resp in responses:
        assert resp.status_code in (200, 204), f"{resp.status_code}: {resp.content[:400]!r}"
        assert_no_password(resp)


def test_full_put_of_what_was_read_deactivates(scim, created):
    path = f"/Users/{created['id']}"
    read = scim.read(path)
    read["active"] = False
    read["name"] = {"givenName": "Another", "familyName": "User"}
    read["password"] = PASSWORD

    resp = scim.put(path, read)

    body = scim.ok(resp)
    assert_no_password(resp)
    assert body["active"] is False
    assert body["name"] == {"givenName": "Another", "familyName": "User"}
    assert body["id"] == created["id"]
    assert body["meta"]["created"] == created["meta"]["created"]
    assert body == scim.read(path)
    row = User.objects.get(pk=created["id"])
    assert (row.active, row.given_name) == (False, "Another")


def test_put_replaces_the_whole_resource(scim, created):
    path = f"/Users/{created['id']}"

    body = scim.ok(scim.put(path, {"schemas": [USER_SCHEMA], "userName": "test.user@okta.local"}))

    assert "emails" not in body and "name" not in body and "locale" not in body
    assert User.objects.get(pk=created["id"]).primary_email == ""


def test_put_ignores_read_only_id_and_meta_in_body(scim, created):
    path = f"/Users/{created['id']}"
    sent = okta_user(
        id="11111111-1111-1111-1111-111111111111",
        meta={"resourceType": "Group", "created": "2001-01-01T00:00:00Z"},
        displayName="Renamed",
    )

    body = scim.ok(scim.put(path, sent))

    assert body["id"] == created["id"]
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"] == created["meta"]["created"]
    assert body["displayName"] == "Renamed"


def test_pathless_patch_deactivates(scim, created):
    path = f"/Users/{created['id']}"

    resp = scim.patch_ops(path, {"op": "replace", "value": {"active": False}})

    assert resp.status_code in (200, 204)
    if resp.status_code == 200:
        assert scim.json(resp)["active"] is False
    assert scim.read(path)["active"] is False
    assert User.objects.get(pk=created["id"]).active is False


# -- paging -------------------------------------------------------------------------------------


def test_pages_of_100_over_more_than_200_users(scim):
    start = timezone.now() - timedelta(days=1)
    User.objects.bulk_create(
        User(
            user_name=f"paged{i:04d}@okta.local",
            created=start + timedelta(seconds=i % 7),  # ties too: order must still be stable
            last_modified=start,
        )
        for i in range(205)
    )

    pages = [scim.search("/Users", startIndex=s, count=100) for s in (1, 101, 201)]

    assert [p["totalResults"] for p in pages] == [205, 205, 205]
    assert [p["startIndex"] for p in pages] == [1, 101, 201]
    assert [p["itemsPerPage"] for p in pages] == [100, 100, 5]
    assert [len(p["Resources"]) for p in pages] == [100, 100, 5]
    ids = [r["id"] for p in pages for r in p["Resources"]]
    assert len(set(ids)) == 205  # no overlap, nothing skipped
    again = [
        r["id"]
        for s in (1, 101, 201)
        for r in scim.search("/Users", startIndex=s, count=100)["Resources"]
    ]
    assert again == ids  # stable across requests


def test_page_past_the_end_is_empty(scim):
    scim.create_user("only@okta.local")

    body = scim.search("/Users", startIndex=101, count=100)

    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (1, 101, 0)
    assert body.get("Resources", []) == []


# -- groups ---------------------------------------------------------------------------------------


@pytest.fixture
def group(scim) -> dict:
    resp = scim.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []}
    )
    return scim.ok(resp, 201)


@pytest.fixture
def people(scim) -> dict[str, dict]:
    return {name: scim.create_user(f"{name.lower()}@okta.local") for name in ("A", "B", "C")}


def stored_members(scim: ScimApi, group: dict) -> list[dict]:
    return scim.read(f"/Groups/{group['id']}").get("members", [])


def patch_group(scim: ScimApi, group: dict, *operations: dict) -> None:
    resp = scim.patch_ops(f"/Groups/{group['id']}", *operations)
    assert resp.status_code in (200, 204), f"{resp.status_code}: {resp.content[:600]!r}"


def test_create_group_with_empty_members(scim, group):
    assert group["displayName"] == "Test SCIMv2"
    assert group.get("members", []) == []
    assert group["meta"]["resourceType"] == "Group"
    assert Group.objects.filter(pk=group["id"]).exists()
    assert not Membership.objects.filter(group_id=group["id"]).exists()


def test_rename_with_pathless_replace_ignores_id(scim, group):
    patch_group(
        scim,
        group,
        {
            "op": "replace",
            "value": {
                "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
                "displayName": "Test SCIMv2 renamed",
            },
        },
    )

    stored = scim.read(f"/Groups/{group['id']}")
    assert stored["id"] == group["id"]
    assert stored["displayName"] == "Test SCIMv2 renamed"
    assert Group.objects.get(pk=group["id"]).display_name == "Test SCIMv2 renamed"
    scim.assert_error(scim.get("/Groups/abf4dd94-a4c0-4f67-89c9-76b03340cb9b"), 404)


def test_remove_one_and_add_another_in_one_request(scim, group, people):
    patch_group(
        scim,
        group,
        {"op": "add", "path": "members", "value": [{"value": people["A"]["id"], "display": "A"}]},
    )

    patch_group(
        scim,
        group,
        {"op": "remove", "path": f'members[value eq "{people["A"]["id"]}"]'},
        {"op": "add", "path": "members", "value": [{"value": people["B"]["id"], "display": "B"}]},
    )

    members = stored_members(scim, group)
    assert [(m["value"], m.get("display")) for m in members] == [(people["B"]["id"], "B")]
    rows = Membership.objects.filter(group_id=group["id"])
    assert [(str(r.user_id), r.display) for r in rows] == [(people["B"]["id"], "B")]


def test_full_replace_of_members(scim, group, people):
    a, b, c = people["A"], people["B"], people["C"]
    patch_group(
        scim,
        group,
        {"op": "add", "path": "members", "value": [{"value": a["id"]}, {"value": b["id"]}]},
    )

    patch_group(
        scim,
        group,
        {
            "op": "replace",
            "path": "members",
            "value": [{"value": b["id"], "display": "B"}, {"value": c["id"], "display": "C"}],
        },
    )

    members = {m["value"]: m.get("display") for m in stored_members(scim, group)}
    assert members == {b["id"]: "B", c["id"]: "C"}
    assert Membership.objects.filter(group_id=group["id"]).count() == 2


def test_put_group_replaces_name_and_members(scim, group, people):
    a, b, c = people["A"], people["B"], people["C"]
    patch_group(
        scim,
        group,
        {"op": "add", "path": "members", "value": [{"value": a["id"]}, {"value": b["id"]}]},
    )

    resp = scim.put(
        f"/Groups/{group['id']}",
        {
            "schemas": [GROUP_SCHEMA],
            "id": group["id"],
            "displayName": "Test SCIMv2 (PUT)",
            "members": [{"value": b["id"], "display": "B"}, {"value": c["id"], "display": "C"}],
        },
    )

    body = scim.ok(resp)
    assert body["displayName"] == "Test SCIMv2 (PUT)"
    assert {m["value"]: m.get("display") for m in body["members"]} == {b["id"]: "B", c["id"]: "C"}
    assert body == scim.read(f"/Groups/{group['id']}")
    rows = Membership.objects.filter(group_id=group["id"])
    assert {str(r.user_id): r.display for r in rows} == {b["id"]: "B", c["id"]: "C"}


def test_replace_members_with_empty_list_empties_the_group(scim, group, people):
    patch_group(
        scim,
        group,
        {"op": "add", "path": "members", "value": [{"value": p["id"]} for p in people.values()]},
    )

    patch_group(scim, group, {"op": "replace", "path": "members", "value": []})

    assert stored_members(scim, group) == []
    assert not Membership.objects.filter(group_id=group["id"]).exists()
    assert User.objects.filter(pk__in=[p["id"] for p in people.values()]).count() == 3


# -- authentication ----------------------------------------------------------------------------


def test_wrong_token_is_401_with_a_scim_error(scim):
    wrong = ScimApi("not-the-token-" + (scim.token or "")[::-1])

    resp = wrong.get("/Users", params={"filter": 'userName eq "x"', "startIndex": 1, "count": 100})

    wrong.assert_error(resp, 401)
    assert resp.has_header("WWW-Authenticate")
