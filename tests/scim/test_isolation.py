"""Isolation between SCIM clients: what a client reads of other clients' resources.

A role grants ``read`` per resource type and may limit a client to the resources it
created (``own_resources_only``: others are 404, never 403). References inside a
resource follow the same rule: a user's ``groups`` and a group's ``members`` (RFC 7643
§4.1.2, §4.2) list only resources the client may read, in every response that carries
them (list, get, ``.search``, POST/PUT/PATCH, ``attributes=``), and filters on
``members`` match only those, so neither a foreign resource's name nor its id nor its
existence reaches the client. Errors say only what the client sent.

The directory for every test (``world``):

- ``regional`` (ownership-limited, every permission) created user Uma, groups Own
  (Uma in it) and Outer (Own nested in it): Uma is a direct member of Own and an
  indirect one of Outer;
- ``hq`` (provisioner) created user Hal and the group "HQ Secret" holding Uma and Hal,
  nested "HQ Secret" in regional's group Via, added Hal and "HQ Secret" to Own, and
  nested Outer in its own group "HQ Top".
"""

from __future__ import annotations

import json
import uuid

import pytest

from provisioning.access.clients import scim_client_create
from provisioning.access.roles import scim_role_create
from provisioning.directory import services
from provisioning.directory.models import User
from provisioning.oversight.models import PolicyRule
from tests.factories import ProvisionedGroupFactory, ProvisionedUserFactory, ScimClientFactory
from tests.scim.conftest import GROUP_SCHEMA, USER_SCHEMA, ScimApi

pytestmark = pytest.mark.django_db

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ALL = [f"{t}:{o}" for t in ("User", "Group") for o in ("read", "create", "replace", "patch", "delete")]
SECRET_NAME = "HQ Secret"
TOP_NAME = "HQ Top"


class World:
    pass


def add_members(group, *members, client):
    entries = [
        {"value": str(m.pk), "type": "Group" if hasattr(m, "display_name") else "User"}
        for m in members
    ]
    services.group_patch(
        group_id=group.pk,
        operations=[services.PatchOperation("add", "members", entries)],
        client=client,
    )


@pytest.fixture
def world(db) -> World:
    w = World()
    role = scim_role_create(name="regional-role", permissions=ALL, own_resources_only=True)
    w.regional = ScimClientFactory(name="regional", role=role)
    w.hq, _token = scim_client_create(name="hq", role="provisioner")
    w.uma = ProvisionedUserFactory(client=w.regional, userName="uma@example.test")
    w.own = ProvisionedGroupFactory(client=w.regional, displayName="Own", members=[w.uma])
    w.outer = ProvisionedGroupFactory(client=w.regional, displayName="Outer", members=[w.own])
    w.via = ProvisionedGroupFactory(client=w.regional, displayName="Via")
    w.hal = ProvisionedUserFactory(
        client=w.hq, userName="Hal@HQ.example", externalId="hq-ext-7", displayName="Hal HQ"
    )
    w.secret = ProvisionedGroupFactory(
        client=w.hq, displayName=SECRET_NAME, externalId="hq-grp-1", members=[w.uma, w.hal]
    )
    add_members(w.via, w.secret, client=w.hq)
    add_members(w.own, w.hal, w.secret, client=w.hq)
    w.top = ProvisionedGroupFactory(client=w.hq, displayName=TOP_NAME, members=[w.outer])
    w.api = ScimApi(w.regional.raw_token)
    return w


def foreign_markers(w: World) -> list[str]:
    return [
        SECRET_NAME,
        str(w.secret.pk),
        TOP_NAME,
        str(w.top.pk),
        "Hal@HQ.example",
        str(w.hal.pk),
        "hq-ext-7",
        "Hal HQ",
    ]


def assert_no_foreign(w: World, response, *, sent: tuple[str, ...] = ()) -> None:
    """No name, id or attribute of another client's resources in the response, except
    values the client itself ``sent`` (case-sensitive: a userName's stored spelling
    differs from the one sent)."""
    text = response.content.decode()
    for marker in foreign_markers(w):
        if marker not in sent:
            assert marker not in text, f"{marker!r} leaks in {text[:800]}"


def groups_of(document: dict) -> list[tuple[str, str, str]]:
    return [(g["value"], g["display"], g["type"]) for g in document.get("groups", [])]


def member_ids(document: dict) -> list[str]:
    return [m["value"] for m in document.get("members", [])]


def expected_groups(w: World) -> list[tuple[str, str, str]]:
    return [(str(w.own.pk), "Own", "direct"), (str(w.outer.pk), "Outer", "indirect")]


# --- An ownership-limited client ----------------------------------------------------


def test_a_scoped_client_sees_only_its_own_groups_of_a_user(world):
    w, api = world, world.api
    response = api.get(f"/Users/{w.uma.pk}")
    assert groups_of(api.ok(response)) == expected_groups(w)
    # Via holds Uma only through the foreign group: that path is not visible either.
    assert_no_foreign(w, response)
    assert str(w.via.pk) not in response.content.decode()


@pytest.mark.parametrize(
    "how",
    ["list", "filter", "attributes", "search", "root search", "excluded other"],
)
def test_every_read_of_users_hides_foreign_groups(world, how):
    w, api = world, world.api
    if how == "list":
        response = api.get("/Users")
    elif how == "filter":
        response = api.get("/Users", params={"filter": 'userName eq "uma@example.test"'})
    elif how == "attributes":
        response = api.get("/Users", params={"attributes": "groups"})
    elif how == "excluded other":
        response = api.get(f"/Users/{w.uma.pk}", params={"excludedAttributes": "emails"})
    elif how == "search":
        response = api.post("/Users/.search", {"schemas": [SEARCH], "attributes": ["groups"]})
    else:
        response = api.post("/.search", {"schemas": [SEARCH], "filter": 'userName pr'})
    body = api.ok(response)
    resources = body.get("Resources", [body])
    [uma] = [r for r in resources if r["id"] == str(w.uma.pk)]
    assert groups_of(uma) == expected_groups(w)
    assert_no_foreign(w, response)


@pytest.mark.parametrize("how", ["get", "get members", "list", "search", "root search"])
def test_every_read_of_groups_hides_foreign_members(world, how):
    w, api = world, world.api
    if how == "get":  # the whole group, streamed
        response = api.get(f"/Groups/{w.own.pk}")
        assert response.streamed
    elif how == "get members":
        response = api.get(f"/Groups/{w.own.pk}", params={"attributes": "members"})
    elif how == "list":
        response = api.get("/Groups")
    elif how == "search":
        response = api.post("/Groups/.search", {"schemas": [SEARCH]})
    else:
        response = api.post("/.search", {"schemas": [SEARCH], "filter": "displayName pr"})
    body = api.ok(response)
    by_id = {r["id"]: r for r in body.get("Resources", [body])}
    assert member_ids(by_id[str(w.own.pk)]) == [str(w.uma.pk)]
    if str(w.via.pk) in by_id:
        assert member_ids(by_id[str(w.via.pk)]) == []
    assert_no_foreign(w, response)


def test_write_responses_hide_foreign_references(world):
    w, api = world, world.api
    patched = api.patch_ops(
        f"/Users/{w.uma.pk}", {"op": "replace", "path": "displayName", "value": "Uma R"}
    )
    assert groups_of(api.ok(patched)) == expected_groups(w)
    assert_no_foreign(w, patched)
    put = api.put(
        f"/Users/{w.uma.pk}",
        {"schemas": [USER_SCHEMA], "userName": "uma@example.test", "displayName": "Uma P"},
    )
    assert groups_of(api.ok(put)) == expected_groups(w)
    assert_no_foreign(w, put)
    group_patch = api.patch_ops(
        f"/Groups/{w.own.pk}",
        {"op": "replace", "path": "externalId", "value": "own-1"},
        params={"attributes": "members,displayName"},
    )
    assert member_ids(api.ok(group_patch)) == [str(w.uma.pk)]
    assert_no_foreign(w, group_patch)
    # A group created with the client's own user: Uma's groups are the client's own still.
    created = api.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "New", "members": [{"value": str(w.uma.pk)}]}
    )
    assert member_ids(api.ok(created, 201)) == [str(w.uma.pk)]
    assert_no_foreign(w, created)
    # A PUT that would drop a member the client cannot see is refused without naming it.
    put_group = api.put(
        f"/Groups/{w.via.pk}",
        {"schemas": [GROUP_SCHEMA], "displayName": "Via", "members": [{"value": str(w.uma.pk)}]},
    )
    api.assert_error(put_group, 400, "invalidValue")
    assert_no_foreign(w, put_group)


def test_bulk_and_held_responses_hide_foreign_references(world):
    w, api = world, world.api
    PolicyRule.objects.create(name="hold deactivations", kind="deactivate_user", action="hold")
    bulk = api.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "Operations": [
                {
                    "method": "PATCH",
                    "path": f"/Users/{w.uma.pk}",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": "Lead"}],
                    },
                },
                {
                    "method": "PATCH",
                    "path": f"/Groups/{w.own.pk}",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "externalId", "value": "o"}],
                    },
                },
            ],
        },
    )
    results = api.ok(bulk)["Operations"]
    assert [r["status"] for r in results] == ["200", "200"]
    assert_no_foreign(w, bulk)
    held = api.patch_ops(f"/Users/{w.uma.pk}", {"op": "replace", "path": "active", "value": False})
    assert held.status_code == 202
    assert_no_foreign(w, held)
    status = api.get(held["Location"])
    api.ok(status)
    assert_no_foreign(w, status)


@pytest.mark.parametrize(
    "filter_",
    [
        'members.value eq "{hal}"',
        'members[value eq "{secret}"]',
        'members[type eq "Group"] and displayName eq "Via"',
        'members.display eq "whatever"',
        'displayName eq "Via" and members pr',
        'displayName eq "Via" and not (members.value ne "{secret}")',
    ],
)
def test_member_filters_match_only_visible_members(world, filter_):
    w, api = world, world.api
    text = filter_.format(hal=w.hal.pk, secret=w.secret.pk)
    listed = api.search("/Groups", filter=text)
    # What matches is what the client sees: Via shows no members, Own shows only Uma.
    assert listed["totalResults"] == 0, listed
    searched = api.ok(api.post("/Groups/.search", {"schemas": [SEARCH], "filter": text}))
    assert searched["totalResults"] == 0


def test_member_filters_still_match_own_members(world):
    w, api = world, world.api
    listed = api.search("/Groups", filter=f'members.value eq "{w.uma.pk}"')
    assert {r["id"] for r in listed["Resources"]} == {str(w.own.pk)}
    nested = api.search("/Groups", filter='members[type eq "Group"]')
    assert {r["id"] for r in nested["Resources"]} == {str(w.outer.pk)}
    absent = api.search("/Groups", filter=f'members.value ne "{w.uma.pk}"')
    assert str(w.own.pk) not in {r["id"] for r in absent["Resources"]}


def test_a_groups_filter_on_users_answers_the_same_for_any_id(world):
    w, api = world, world.api
    foreign = api.get("/Users", params={"filter": f'groups.value eq "{w.secret.pk}"'})
    unknown = api.get("/Users", params={"filter": f'groups.value eq "{uuid.uuid4()}"'})
    assert foreign.status_code == unknown.status_code
    if foreign.status_code == 200:
        assert api.json(foreign)["totalResults"] == 0
    else:
        assert api.json(foreign)["detail"] == api.json(unknown)["detail"]


def test_adding_a_foreign_group_that_would_close_a_cycle_answers_like_a_missing_one(world):
    w, api = world, world.api
    # "HQ Top" holds Own through Outer; adding it to Own would close a cycle, but the
    # client must learn only what it learns of an id that does not exist.
    answers = []
    for ident in (str(w.top.pk), str(uuid.uuid4())):
        response = api.patch_ops(
            f"/Groups/{w.own.pk}",
            {"op": "add", "path": "members", "value": [{"value": ident}]},
        )
        detail = api.assert_error(response, 400, "invalidValue")["detail"]
        assert_no_foreign(w, response, sent=(ident,))
        answers.append(detail.replace(ident, "<sent id>"))
    assert answers[0] == answers[1]


def test_a_protected_enclosing_group_is_not_named_to_a_client_that_cannot_read_it(world):
    w = world
    role = scim_role_create(
        name="regional-guarded", permissions=ALL, own_resources_only=True,
        protected_group_names=[TOP_NAME],
    )
    w.regional.role = role
    w.regional.save()
    # Own is nested in the foreign "HQ Top" (through Outer): protected through it.
    new = ProvisionedUserFactory(client=w.regional)
    response = w.api.patch_ops(
        f"/Groups/{w.own.pk}",
        {"op": "add", "path": "members", "value": [{"value": str(new.pk)}]},
    )
    w.api.assert_error(response, 403)
    assert_no_foreign(w, response)


def test_removing_members_never_names_a_foreign_one(world):
    w, api = world, world.api
    response = api.patch_ops(f"/Groups/{w.own.pk}", {"op": "remove", "path": "members"})
    if response.status_code >= 400:
        api.assert_error(response, 400)
    assert_no_foreign(w, response)


# --- A client without Group:read (users-only) ---------------------------------------


@pytest.fixture
def users_only(world):
    return ScimApi(scim_client_create(name="hr", role="users-only")[1])


@pytest.mark.parametrize(
    "how", ["get", "attributes", "list", "search", "root search", "patch", "put", "post"]
)
def test_a_users_only_client_sees_no_groups(world, users_only, how):
    w, api = world, users_only
    path = f"/Users/{w.uma.pk}"
    if how == "get":
        response = api.get(path)
    elif how == "attributes":
        response = api.get(path, params={"attributes": "groups,userName"})
    elif how == "list":
        response = api.get("/Users", params={"filter": 'userName eq "uma@example.test"'})
    elif how == "search":
        response = api.post("/Users/.search", {"schemas": [SEARCH], "attributes": ["groups"]})
    elif how == "root search":
        response = api.post("/.search", {"schemas": [SEARCH]})
    elif how == "patch":
        response = api.patch_ops(path, {"op": "replace", "path": "title", "value": "Dr"})
    elif how == "put":
        response = api.put(path, {"schemas": [USER_SCHEMA], "userName": "uma@example.test"})
    else:
        user = api.create_user()
        add_members(w.secret, User.objects.get(pk=user["id"]), client=w.hq)
        response = api.get(f"/Users/{user['id']}")
    body = api.ok(response)
    for resource in body.get("Resources", [body]):
        assert resource.get("groups", []) == []
        assert resource.get("meta", {}).get("resourceType", "User") == "User"
    text = response.content.decode()
    for marker in (SECRET_NAME, str(w.secret.pk), "Own", str(w.own.pk), str(w.outer.pk)):
        assert marker not in text


# --- A client that reads groups but not users ----------------------------------------


def test_a_groups_only_reader_sees_only_group_members(world):
    w = world
    role = scim_role_create(name="group-reader", permissions=["Group:read"])
    api = ScimApi(ScimClientFactory(name="gr", role=role).raw_token)
    for response in (
        api.get(f"/Groups/{w.own.pk}"),
        api.get(f"/Groups/{w.own.pk}", params={"attributes": "members"}),
        api.get("/Groups", params={"filter": 'displayName eq "Own"'}),
    ):
        body = api.ok(response)
        [own] = body.get("Resources", [body])
        assert [(m["value"], m["type"]) for m in own["members"]] == [(str(w.secret.pk), "Group")]
        assert str(w.uma.pk) not in response.content.decode()
        assert str(w.hal.pk) not in response.content.decode()
    assert api.search("/Groups", filter=f'members.value eq "{w.uma.pk}"')["totalResults"] == 0
    assert api.search("/Groups", filter='members[type eq "User"]')["totalResults"] == 0


# --- Unrestricted readers still see everything ------------------------------------------


@pytest.mark.parametrize("role", ["read-only", "provisioner"])
def test_an_unrestricted_reader_sees_every_reference(world, role):
    w = world
    api = ScimApi(scim_client_create(name=f"all-{role}", role=role)[1])
    uma = api.read(f"/Users/{w.uma.pk}")
    assert {g["value"] for g in uma["groups"]} == {
        str(g.pk) for g in (w.own, w.outer, w.secret, w.via, w.top)
    }
    own = api.read(f"/Groups/{w.own.pk}")
    assert member_ids(own) == [str(w.uma.pk), str(w.hal.pk), str(w.secret.pk)]
    matched = api.search("/Groups", filter=f'members.value eq "{w.hal.pk}"')
    assert {r["id"] for r in matched["Resources"]} == {str(w.own.pk), str(w.secret.pk)}


# --- Uniqueness conflicts say only what the client sent ----------------------------


def conflict_detail(api: ScimApi, response) -> str:
    return api.assert_error(response, 409, "uniqueness")["detail"]


@pytest.mark.parametrize("role", ["scoped", "users-only", "provisioner"])
def test_a_username_conflict_names_only_what_was_sent(world, role):
    w = world
    api = w.api if role == "scoped" else ScimApi(scim_client_create(name=f"c-{role}", role=role)[1])
    sent = "hal@hq.EXAMPLE"
    answers = [
        api.post("/Users", {"schemas": [USER_SCHEMA], "userName": sent, "externalId": "mine-1"}),
        api.put(f"/Users/{w.uma.pk}", {"schemas": [USER_SCHEMA], "userName": sent}),
        api.patch_ops(f"/Users/{w.uma.pk}", {"op": "replace", "path": "userName", "value": sent}),
    ]
    for response in answers:
        detail = conflict_detail(api, response)
        assert sent in detail
        body = json.loads(response.content)
        assert set(body) <= {"schemas", "status", "scimType", "detail"}
        assert_no_foreign(w, response, sent=(sent,))


@pytest.mark.parametrize("role", ["scoped", "provisioner"])
def test_a_display_name_conflict_names_only_what_was_sent(world, role):
    w = world
    api = w.api if role == "scoped" else ScimApi(scim_client_create(name=f"c-{role}", role=role)[1])
    sent = "hq SECRET"
    answers = [
        api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": sent}),
        api.patch_ops(f"/Groups/{w.via.pk}", {"op": "replace", "path": "displayName", "value": sent}),
    ]
    for response in answers:
        detail = conflict_detail(api, response)
        assert sent in detail
        body = json.loads(response.content)
        assert set(body) <= {"schemas", "status", "scimType", "detail"}
        assert_no_foreign(w, response, sent=(sent,))


def test_a_bulk_conflict_names_only_what_was_sent(world):
    w, api = world, world.api
    bulk = api.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "a",
                    "data": {"schemas": [USER_SCHEMA], "userName": "HAL@hq.example"},
                }
            ],
        },
    )
    [result] = api.ok(bulk)["Operations"]
    assert result["status"] == "409"
    assert "HAL@hq.example" in result["response"]["detail"]
    assert_no_foreign(w, bulk)


@pytest.mark.parametrize("start", [1, 2])
def test_a_scoped_clients_unfiltered_list_holds_only_its_own(world, monkeypatch, start):
    """A list without filter pages the whole directory through compiled statements
    (``selectors.directory_page``) only for a client that may read every resource; a
    scoped client's first and deep pages stay its own, and ``directory_page`` refuses it."""
    from provisioning.directory import selectors

    monkeypatch.setattr(selectors, "DEEP_OFFSET", 1)
    own = ProvisionedUserFactory(client=world.regional, userName="vic@example.test")
    body = world.api.ok(world.api.get("/Users", params={"startIndex": start, "count": 5}))
    assert body["totalResults"] == 2
    expected = [str(world.uma.pk), str(own.pk)][start - 1 :]
    assert [r["id"] for r in body["Resources"]] == expected
    with pytest.raises(ValueError, match="its own only"):
        selectors.directory_page(world.regional, User, offset=0, limit=5)
