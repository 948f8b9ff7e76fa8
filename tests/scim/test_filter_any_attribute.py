"""Filters and sortBy on every attribute of the served schemas, through the SCIM API.

Attributes without a column live in the resource's ``attributes`` JSON and are
compared with the database's JSON operators (PostgreSQL jsonb, SQLite JSON1) with
the semantics the column translation has (RFC 7644 §3.4.2.2): absent (missing, null,
"") matches ``ne`` and not ``pr``; strings compare case-insensitively unless the
attribute is caseExact (RFC 7643 §2.2); a multi-valued attribute matches when one of
its elements does, and the conditions of a value path apply to the same element.
"""

from __future__ import annotations

import pytest

from provisioning.access.clients import scim_client_create
from provisioning.access.roles import scim_role_create
from provisioning.directory.models import User
from provisioning.directory.query import filter_to_q, sort_expression
from provisioning.scim.errors import InvalidFilter
from provisioning.scim.filters import parse_filter
from provisioning.scim.schema import RESOURCE_SCHEMAS, USER_SCHEMA, Attribute, AttributePath
from tests.factories import ScimClientFactory, UserFactory
from tests.scim.conftest import ENTERPRISE_SCHEMA as ENT
from tests.scim.conftest import USER_SCHEMA as USER
from tests.scim.conftest import ScimApi

pytestmark = pytest.mark.django_db

HOSTILE = 'O\'Brien "100%" _x_ \\ $.title [0]'


@pytest.fixture
def people(scim):
    """Four users whose attributes live mostly in JSON; ``cy`` has almost nothing."""
    ana = scim.create_user(
        "ana@example.test",
        title="Senior Engineer",
        nickName="Ani",
        name={"givenName": "Ana", "familyName": "Lima", "middleName": "Maria", "formatted": "Ana M. Lima"},
        emails=[{"value": "ana@x.com", "type": "work", "primary": True, "display": "Ana Work"}],
        addresses=[
            {"type": "work", "locality": "Lisbon", "country": "PT"},
            {"type": "home", "locality": "Porto"},
        ],
        phoneNumbers=[
            {"value": "+351 555 0101", "type": "work"},
            {"value": "+351 555 0199", "type": "mobile", "primary": True},
        ],
        roles=[{"value": "Admin"}],
        entitlements=[{"value": "vpn", "type": "network"}],
        ims=[{"value": "ana_im", "type": "xmpp"}],
        x509Certificates=[{"value": "QUJDRA==", "primary": True}],
        **{
            "schemas": [USER, ENT],
            ENT: {
                "department": "Engineering",
                "costCenter": "10",
                "division": "R&D",
                "organization": "Acme",
                "manager": {"value": "m-1", "displayName": "Maria Boss"},
            },
        },
    )
    ben = scim.create_user(
        "ben@example.test",
        title="engineer",
        emails=[{"value": "ben@y.org", "type": "home"}],
        addresses=[{"type": "work", "locality": "Porto"}],
        phoneNumbers=[{"value": "+1 555 0102", "type": "work"}],
        x509Certificates=[{"value": "qujdra=="}],
        **{"schemas": [USER, ENT], ENT: {"department": "Sales", "costCenter": "9", "division": "Ops"}},
    )
    cy = scim.create_user("cy@example.test", title="")  # "" is absent: not stored
    dee = scim.create_user(
        "dee@example.test",
        title=HOSTILE,
        nickName="100%",
        **{"schemas": [USER, ENT], ENT: {"costCenter": "100", "department": "sales"}},
    )
    return {"ana": ana, "ben": ben, "cy": cy, "dee": dee}


ALL = {"ana", "ben", "cy", "dee"}


def found(api: ScimApi, text: str, **params) -> set[str]:
    body = api.search("/Users", filter=text, count=50, **params)
    names = {r["userName"].split("@")[0] for r in body["Resources"]}
    assert body["totalResults"] == len(names)
    return names


def order(api: ScimApi, sort_by: str, descending: bool = False) -> list[str]:
    params = {"sortBy": sort_by, "count": 50, "attributes": "userName"}
    if descending:
        params["sortOrder"] = "descending"
    body = api.search("/Users", **params)
    return [r["userName"].split("@")[0] for r in body["Resources"]]


# --- Single-valued simple attributes -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('title eq "ENGINEER"', {"ben"}),  # caseExact false: LOWER on both sides
        ('title ne "engineer"', {"ana", "cy", "dee"}),  # absent matches ne
        ('title co "engin"', {"ana", "ben"}),
        ('title sw "senior"', {"ana"}),
        ('title ew "EER"', {"ana", "ben"}),
        ('title gt "p"', {"ana"}),  # "senior engineer"; absent is never greater
        ('title ge "engineer"', {"ana", "ben", "dee"}),
        ('title lt "f"', {"ben"}),
        ('title le "engineer"', {"ben"}),
        ("title pr", {"ana", "ben", "dee"}),
        ("not (title pr)", {"cy"}),
        ('title eq ""', {"cy"}),  # "" means absent
        ('title ne ""', {"ana", "ben", "dee"}),
        ('title co ""', {"ana", "ben", "dee"}),
        ('not (title eq "engineer")', {"ana", "cy", "dee"}),  # NOT of an absent value is true
        ('nickName eq "ani"', {"ana"}),
        ('name.middleName sw "MAR"', {"ana"}),
        ('name.formatted co "m. l"', {"ana"}),
        ('name.honorificPrefix pr', set()),
        (f'{ENT}:department eq "sales"', {"ben", "dee"}),
        (f'{ENT.lower()}:DEPARTMENT eq "Engineering"', {"ana"}),  # URN and name case-insensitive
        (f'{ENT}:costCenter eq "10"', {"ana"}),
        (f'{ENT}:costCenter gt "10"', {"ben", "dee"}),  # a string: "100" and "9" sort after "10"
        (f'{ENT}:division eq "r&d"', {"ana"}),
        (f'{ENT}:organization pr', {"ana"}),
        (f'not ({ENT}:organization pr)', {"ben", "cy", "dee"}),
        # manager.displayName is readOnly (RFC 7643 §4.3): never stored from a write.
        (f'{ENT}:manager.displayName pr', set()),
        (f'{ENT}:manager.displayName ne "maria boss"', ALL),
        (f'{ENT}:manager[value eq "M-1"]', {"ana"}),  # one object: same as manager.value
        ('name[middleName eq "maria" and givenName eq "ana"]', {"ana"}),  # JSON and column parts
        ("name pr", {"ana"}),  # a complex attribute is present when a sub-attribute is
    ],
)
def test_single_valued(scim, people, text, expected):
    assert found(scim, text) == expected


# --- Multi-valued complex attributes --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('addresses.locality eq "porto"', {"ana", "ben"}),  # some element matches
        ('addresses.locality ne "porto"', {"cy", "dee"}),  # no element equals
        ('addresses.country eq "PT"', {"ana"}),
        ('addresses.type eq "home"', {"ana"}),
        ("addresses pr", {"ana", "ben"}),
        ("not (addresses pr)", {"cy", "dee"}),
        ("addresses.region pr", set()),
        ('phoneNumbers eq "+1 555 0102"', {"ben"}),  # no sub-attribute: "value"
        ('phoneNumbers.value co "555 01"', {"ana", "ben"}),
        ('phoneNumbers.value sw "+351"', {"ana"}),
        ("phoneNumbers.primary eq true", {"ana"}),
        ("phoneNumbers.primary eq false", set()),  # absent is not false
        ("phoneNumbers.primary ne true", {"ben", "cy", "dee"}),
        ('roles.value eq "admin"', {"ana"}),
        ('roles eq "ADMIN"', {"ana"}),
        ('entitlements[type eq "network" and value eq "vpn"]', {"ana"}),
        ('ims.value ew "_im"', {"ana"}),
        ("x509Certificates.primary eq true", {"ana"}),
        # x509Certificates.value is not caseExact in this server's schema: both match.
        ('x509Certificates.value eq "QUJDRA=="', {"ana", "ben"}),
        # Email sub-attributes without an index row are read from the JSON.
        ('emails.display eq "ana work"', {"ana"}),
        ('emails[type eq "work" and display co "work"]', {"ana"}),
        ('emails[type eq "home" and display co "work"]', set()),
    ],
)
def test_multi_valued(scim, people, text, expected):
    assert found(scim, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Ana has a work address in Lisbon and a home address in Porto: no single element
        # is a work address in Porto (RFC 7644 §3.4.2.2, valuePath).
        ('addresses[type eq "work" and locality eq "porto"]', {"ben"}),
        ('addresses.type eq "work" and addresses.locality eq "porto"', {"ana", "ben"}),
        ('addresses[type eq "work" or locality eq "porto"]', {"ana", "ben"}),
        ('addresses[not (type eq "work")]', {"ana"}),
        ('addresses[type ne "work" and locality pr]', {"ana"}),
        ('addresses[country pr]', {"ana"}),
        ('not (addresses[type eq "home"])', {"ben", "cy", "dee"}),
        ('phoneNumbers[type eq "mobile" and primary eq true]', {"ana"}),
        ('phoneNumbers[type eq "work" and primary eq true]', set()),
        ('phoneNumbers[value sw "+1" and type eq "work"] or title eq "senior engineer"', {"ana", "ben"}),
    ],
)
def test_value_paths(scim, people, text, expected):
    assert found(scim, text) == expected


def test_a_sub_attribute_after_a_value_filter_is_not_filter_syntax(scim, people):
    # RFC 7644 §3.4.2.2, Figure 1: valuePath = attrPath "[" valFilter "]"; the trailing
    # ".subAttr" belongs to PATCH paths (§3.5.2, Figure 5), not to filters.
    response = scim.get("/Users", params={"filter": 'addresses[type eq "work"].locality eq "Porto"'})
    scim.assert_error(response, 400, "invalidFilter")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName sw "an" or title eq "engineer"', {"ana", "ben"}),
        ('userName sw "b" and title eq "engineer"', {"ben"}),
        (f'emails.value co "@x.com" and {ENT}:department pr', {"ana"}),
        (f'not (emails pr) or {ENT}:costCenter eq "100"', {"cy", "dee"}),
        (f'(title pr and not ({ENT}:department eq "sales")) or phoneNumbers pr', {"ana", "ben"}),
        ('name.givenName eq "ana" and name.middleName eq "maria"', {"ana"}),
    ],
)
def test_columns_and_json_mixed(scim, people, text, expected):
    assert found(scim, text) == expected


def test_post_search_uses_the_same_translation(scim, people):
    body = scim.ok(
        scim.post(
            "/Users/.search",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": 'addresses[locality eq "lisbon"]',
                "sortBy": "title",
            },
        )
    )
    assert [r["userName"] for r in body["Resources"]] == ["ana@example.test"]


# --- Hostile values and attribute names ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('title eq "o\'brien \\"100%\\" _x_ \\\\ $.title [0]"', {"dee"}),
        ('title co "\\"100%\\""', {"dee"}),
        ('title co "%"', {"dee"}),
        ('title co "_x_"', {"dee"}),
        ('title co "e_r"', set()),  # "_" is not a wildcard
        ('title sw "%"', set()),  # nor is "%"
        ('title co "\\\\"', {"dee"}),  # a backslash is literal
        ('title co "$.title"', {"dee"}),
        ('title co "[0]"', {"dee"}),
        ('title eq "x\' OR \'1\'=\'1"', set()),
        ('title eq "\\") OR (1=1"', set()),
        ('nickName eq "100%"', {"dee"}),
        ('nickName eq "100_"', set()),
        ('addresses.locality eq "porto\' or 1=1 --"', set()),
        ('addresses[locality co "%"]', set()),
    ],
)
def test_hostile_values_match_literally(scim, people, text, expected):
    assert found(scim, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        'title" eq "x"',
        '$.title eq "x"',
        'title.$ eq "x"',
        "title[0] eq \"x\"",
        'title[value eq "x"]',  # a simple attribute takes no value filter
        "addresses.locality.x pr",
        f'{ENT}:department.x eq "x"',
        f'{ENT}:dept eq "x"',
        'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:$.department eq "x"',
        'urn:x:"y":title eq "x"',
        'addresses[locality[type eq "x"]]',
        'addresses[bogus eq "x"]',
        "password pr",
    ],
)
def test_hostile_attribute_names_are_refused(scim, people, text):
    scim.assert_error(scim.get("/Users", params={"filter": text}), 400, "invalidFilter")


def test_json_keys_are_never_formatted_into_sql(db):
    """The enterprise URN holds dots; read as an unquoted JSON path, ``...:2.0:User`` would
    split into the keys ``...:2`` and ``0:User``, and this user would match."""
    decoy = {"urn:ietf:params:scim:schemas:extension:enterprise:2": {"0:User": {"department": "Sales"}}}
    UserFactory(user_name="decoy", attributes=decoy)
    UserFactory(user_name="real", attributes={ENT: {"department": "Sales"}})
    # A key that is a JSON path itself, and a value that looks like one.
    UserFactory(user_name="pathy", attributes={"$.title": "x", "title": "$.title"})
    q = filter_to_q(parse_filter(f'{ENT}:department eq "sales"'), "User")
    assert set(User.objects.filter(q).values_list("user_name", flat=True)) == {"real"}
    q = filter_to_q(parse_filter('title eq "x"'), "User")
    assert not User.objects.filter(q).exists()
    q = filter_to_q(parse_filter('title eq "$.title"'), "User")
    assert list(User.objects.filter(q).values_list("user_name", flat=True)) == ["pathy"]


def test_manager_display_name_from_stored_json(db):
    UserFactory(user_name="m", attributes={ENT: {"manager": {"displayName": "Maria Boss"}}})
    UserFactory(user_name="n", attributes={ENT: {"department": "x"}})
    q = filter_to_q(parse_filter(f'{ENT}:manager.displayName co "BOSS"'), "User")
    assert list(User.objects.filter(q).values_list("user_name", flat=True)) == ["m"]
    q = filter_to_q(parse_filter(f'{ENT}:manager[displayName sw "maria"]'), "User")
    assert list(User.objects.filter(q).values_list("user_name", flat=True)) == ["m"]
    expression = sort_expression(f"{ENT}:manager.displayName", "User", descending=True)
    assert list(User.objects.order_by(expression, "pk").values_list("user_name", flat=True)) == ["m", "n"]


def test_malformed_stored_values_never_fail(db):
    """Data an older version may have stored: objects where scalars belong, scalars where
    arrays belong. They compare as absent (or as their text), never raise."""
    UserFactory(user_name="odd", attributes={"title": {"x": 1}, "addresses": "Porto", "phoneNumbers": [5, "x", None]})
    for text in (
        'title eq "x"',
        "title pr",
        'addresses.locality eq "porto"',
        "addresses pr",
        'phoneNumbers.value eq "x"',
        'phoneNumbers[type eq "work"]',
    ):
        list(User.objects.filter(filter_to_q(parse_filter(text), "User")))
    assert not User.objects.filter(filter_to_q(parse_filter("addresses pr"), "User")).exists()
    order_by = sort_expression("phoneNumbers", "User")
    assert list(User.objects.order_by(order_by).values_list("user_name", flat=True)) == ["odd"]


# --- A user's groups ---------------------------------------------------------------------


@pytest.fixture
def teams(scim, people):
    red = scim.create_group("Red Team", members=[{"value": people["ana"]["id"]}])
    blue = scim.create_group("Blue_Team", members=[{"value": people["ben"]["id"]}, {"value": red["id"]}])
    return {"red": red, "blue": blue}


def test_groups_value_display_and_type(scim, people, teams):
    red, blue = teams["red"]["id"], teams["blue"]["id"]
    assert found(scim, f'groups.value eq "{red}"') == {"ana"}
    assert found(scim, f'groups eq "{blue}"') == {"ben"}  # direct members only
    assert found(scim, f'groups.value eq "{red.upper()}"') == set()  # ids match exactly
    assert found(scim, 'groups.value eq "not-a-uuid"') == set()
    assert found(scim, f'groups.value ne "{red}"') == {"ben", "cy", "dee"}
    assert found(scim, 'groups.display eq "red team"') == {"ana"}
    assert found(scim, 'groups.display co "_"') == {"ben"}
    assert found(scim, 'groups.display sw "%"') == set()
    assert found(scim, 'groups.type eq "direct"') == {"ana", "ben"}
    assert found(scim, "groups pr") == {"ana", "ben"}
    assert found(scim, "not (groups pr)") == {"cy", "dee"}
    assert found(scim, f'groups[value eq "{blue}" and display eq "blue_team"]') == {"ben"}
    assert found(scim, f'groups[value eq "{blue}" and display eq "red team"]') == set()
    scim.assert_error(scim.get("/Users", params={"filter": 'groups.value co "a"'}), 400, "invalidFilter")


def test_a_client_without_group_read_cannot_probe_groups(scim, people, teams):
    """A users-only client sees no groups in a user (RFC 7643 §4.1.2, as rendered), so no
    filter on them matches: neither a group's id nor its name can be probed."""
    api = ScimApi(scim_client_create(name="hr", role="users-only")[1])
    red = teams["red"]["id"]
    assert found(api, f'groups.value eq "{red}"') == set()
    assert found(api, 'groups.display eq "Red Team"') == set()
    assert found(api, 'groups[display sw "r"]') == set()
    assert found(api, "groups pr") == set()
    assert found(api, f'not (groups.value eq "{red}")') == ALL


def test_an_ownership_limited_client_sees_only_its_groups(scim, people, teams):
    role = scim_role_create(
        name="regional-users",
        permissions=["User:read", "User:create", "Group:read", "Group:create", "Group:patch"],
        own_resources_only=True,
    )
    client = ScimClientFactory(name="regional", role=role)
    api = ScimApi(client.raw_token)
    mine = api.create_user("mine@example.test", title="engineer")
    own = api.create_group("Own Team", members=[{"value": mine["id"]}])
    red = teams["red"]["id"]
    # Its own user and group: found. Another client's group: not found, even for its own
    # user once that user is added to it.
    assert found(api, f'groups.value eq "{own["id"]}"') == {"mine"}
    added = scim.patch_ops(
        f"/Groups/{red}", {"op": "add", "path": "members", "value": [{"value": mine["id"]}]}
    )
    assert added.status_code == 204, added.content
    assert found(api, f'groups.value eq "{red}"') == set()
    assert found(api, 'groups.display eq "red team"') == set()
    assert found(api, 'groups[display co "team"]') == {"mine"}  # its own group only
    document = api.read(f"/Users/{mine['id']}")
    assert [g["display"] for g in document["groups"]] == ["Own Team"]
    # The provisioner, reading everything, finds the user through either group.
    assert found(scim, f'groups.value eq "{red}"') == {"ana", "mine"}


# --- sortBy --------------------------------------------------------------------------


def ranked(names: list[str], *present: str) -> bool:
    """``names`` starts with ``present`` in that order; the others (absent: tied, ordered
    by id) follow."""
    return names[: len(present)] == list(present) and set(names[len(present) :]) == ALL - set(present)


def test_sort_by_title_absent_last_both_ways(scim, people):
    assert order(scim, "title") == ["ben", "dee", "ana", "cy"]  # engineer < o'brien < senior
    assert order(scim, "title", descending=True) == ["ana", "dee", "ben", "cy"]


def test_sort_by_enterprise_attributes(scim, people):
    department = f"{ENT}:department"
    # Case-insensitive: "sales" and "Sales" are equal, the id breaks the tie.
    by_department = order(scim, department)
    assert by_department[0] == "ana" and set(by_department[1:3]) == {"ben", "dee"}
    assert by_department[3] == "cy"
    assert order(scim, department, descending=True)[-1] == "cy"
    # costCenter is a string attribute: text order, the same on every database.
    assert order(scim, f"{ENT}:costCenter") == ["ana", "dee", "ben", "cy"]  # "10" < "100" < "9"
    assert order(scim, f"{ENT}:costCenter", descending=True) == ["ben", "dee", "ana", "cy"]
    assert ranked(order(scim, f"{ENT}:division"), "ben", "ana")  # "ops" < "r&d"
    assert ranked(order(scim, f"{ENT}:division", descending=True), "ana", "ben")
    assert ranked(order(scim, "name.middleName", descending=True), "ana")
    assert ranked(order(scim, "nickName"), "dee", "ana")  # "100%" < "ani"


def test_sort_by_multi_valued_uses_primary_then_first(scim, people):
    # RFC 7644 §3.4.2.3: the primary value if any, else the first value.
    # Ana's primary phone is "+351 555 0199" (her second); Ben has "+1 555 0102".
    assert ranked(order(scim, "phoneNumbers"), "ben", "ana")
    assert ranked(order(scim, "phoneNumbers.value", descending=True), "ana", "ben")
    assert ranked(order(scim, "phoneNumbers.type"), "ana", "ben")  # mobile < work
    # These addresses have no "primary": the first element, Ana's Lisbon before Ben's Porto.
    assert ranked(order(scim, "addresses.locality"), "ana", "ben")
    assert ranked(order(scim, "addresses.locality", descending=True), "ben", "ana")
    # emails.value keeps its column (the primary email); other email sub-attributes JSON.
    assert ranked(order(scim, "emails.type"), "ben", "ana")  # home < work


@pytest.mark.parametrize("sort_by", ["password", "name", "meta", "meta.location", "groups.value", "bogus"])
def test_sort_refusals(scim, people, sort_by):
    scim.assert_error(scim.get("/Users", params={"sortBy": sort_by}), 400, "invalidValue")


def test_sort_expression_can_be_annotated_and_compared(people):
    """Keyset paging annotates the ordering's expression and compares it with a row's value."""
    expression = sort_expression("title", "User").expression
    keyed = User.objects.annotate(key=expression).filter(key__isnull=False)
    rows = list(keyed.order_by("key", "pk").values_list("user_name", "key"))
    assert [key for _name, key in rows[:3]] == ["engineer", HOSTILE.lower(), "senior engineer"]
    last = rows[0][1]
    assert User.objects.annotate(key=expression).filter(key=last).count() == 1
    after = User.objects.annotate(key=expression).filter(key__gt=last)
    assert set(after.values_list("user_name", flat=True)) == {"ana@example.test", "dee@example.test"}
    phones = sort_expression("phoneNumbers.value", "User").expression
    values = dict(User.objects.annotate(key=phones).values_list("user_name", "key"))
    assert values["ana@example.test"] == "+351 555 0199"
    assert values["cy@example.test"] is None


# --- Any extension schema: typed attributes ------------------------------------------------

EXT = "urn:example:params:scim:schemas:extension:acme:2.0:User"


def _ext_attributes() -> dict[str, Attribute]:
    attributes = [
        Attribute(name="level", type="integer", urn=EXT),
        Attribute(name="score", type="decimal", urn=EXT),
        Attribute(name="since", type="dateTime", urn=EXT),
        Attribute(name="badge", type="string", case_exact=True, urn=EXT),
        Attribute(name="tags", type="string", multi_valued=True, urn=EXT),
        Attribute(name="onCall", type="boolean", urn=EXT),
        Attribute(name="secret", type="string", returned="never", mutability="writeOnly", urn=EXT),
    ]
    return {a.name.lower(): a for a in attributes}


class _WithExtension:
    """The User schema plus one more extension, as a registered extension resolves: an
    attribute of any schema the ResourceSchema knows, stored under its URN."""

    def __init__(self, base):
        self.base = base
        self.extension = _ext_attributes()

    def resolve(self, path: str) -> AttributePath:
        from provisioning.scim.errors import InvalidPath

        if path.lower().startswith(EXT.lower() + ":"):
            name, _, sub = path[len(EXT) + 1 :].partition(".")
            attribute = self.extension.get(name.lower())
            if attribute is None or sub:
                raise InvalidPath(f"Unknown attribute '{path}'")
            return AttributePath(attribute)
        return self.base.resolve(path)

    def __getattr__(self, name):
        return getattr(self.base, name)


@pytest.fixture
def extended(monkeypatch, db):
    monkeypatch.setitem(RESOURCE_SCHEMAS, "User", _WithExtension(USER_SCHEMA))
    UserFactory(
        user_name="u10",
        attributes={EXT: {"level": 10, "score": 2.5, "since": "2024-05-01T10:00:00+02:00", "badge": "Gold", "tags": ["a", "B"], "onCall": True}},
    )
    UserFactory(
        user_name="u9",
        attributes={EXT: {"level": 9, "score": 10, "since": "2024-05-01T08:30:00Z", "badge": "gold", "tags": ["b"], "onCall": False}},
    )
    UserFactory(user_name="u100", attributes={EXT: {"level": 100, "score": -1.25, "since": "2023-12-31T23:59:59.5Z"}})
    UserFactory(user_name="none", attributes={EXT: {"level": None}})


def ext_users(text: str) -> set[str]:
    q = filter_to_q(parse_filter(text), "User")
    return set(User.objects.filter(q).values_list("user_name", flat=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{EXT}:level eq 10", {"u10"}),
        (f"{EXT}:level gt 9", {"u10", "u100"}),  # numerically: 100 > 9 although "100" < "9"
        (f"{EXT}:level le 10", {"u9", "u10"}),
        (f"{EXT}:level ne 10", {"u9", "u100", "none"}),
        (f"{EXT}:level pr", {"u9", "u10", "u100"}),  # null is absent
        (f"{EXT}:score ge 2.5", {"u10", "u9"}),
        (f"{EXT}:score lt 0", {"u100"}),
        (f"{EXT}:score eq 10.0", {"u9"}),
        # Instants, whatever the offset: 10:00+02:00 is 08:00Z.
        (f'{EXT}:since lt "2024-05-01T08:30:00Z"', {"u10", "u100"}),
        (f'{EXT}:since eq "2024-05-01T08:00:00Z"', {"u10"}),
        (f'{EXT}:since gt "2024-01-01"', {"u10", "u9"}),
        (f'{EXT}:since ge "2024-05-01T10:30:00+02:00"', {"u9"}),
        (f'{EXT}:badge eq "Gold"', {"u10"}),  # caseExact
        (f'{EXT}:badge eq "gold"', {"u9"}),
        (f'{EXT}:badge sw "G"', {"u10"}),
        (f'{EXT}:badge co "OL"', set()),
        (f'{EXT}:tags eq "b"', {"u10", "u9"}),  # an array of strings: some element
        (f'{EXT}:tags ne "b"', {"u100", "none"}),
        (f"{EXT}:tags pr", {"u10", "u9"}),
        (f"{EXT}:onCall eq true", {"u10"}),
        (f"{EXT}:onCall eq false", {"u9"}),
        (f"{EXT}:onCall ne true", {"u9", "u100", "none"}),
    ],
)
def test_typed_extension_attributes(extended, text, expected):
    assert ext_users(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f'{EXT}:level eq "10"', "numeric"),
        (f'{EXT}:level co 1', "'co' is not supported"),
        (f'{EXT}:since gt "yesterday"', "ISO 8601"),
        (f"{EXT}:onCall gt true", "boolean"),
        (f'{EXT}:secret eq "x"', "never stored or returned"),
        (f'{EXT}:tags[value eq "x"]', "does not take a value filter"),
    ],
)
def test_typed_extension_refusals(extended, text, fragment):
    with pytest.raises(InvalidFilter) as exc:
        ext_users(text)
    assert fragment in exc.value.detail


def test_typed_extension_sorting(extended):
    def names(sort_by, descending=False):
        expression = sort_expression(sort_by, "User", descending)
        return list(User.objects.order_by(expression, "pk").values_list("user_name", flat=True))

    # Numbers numerically on both databases; absent (null) last in both directions.
    assert names(f"{EXT}:level") == ["u9", "u10", "u100", "none"]
    assert names(f"{EXT}:level", True) == ["u100", "u10", "u9", "none"]
    assert names(f"{EXT}:score") == ["u100", "u10", "u9", "none"]
    assert names(f"{EXT}:since") == ["u100", "u10", "u9", "none"]
    assert names(f"{EXT}:badge")[:2] == ["u10", "u9"]  # caseExact: "Gold" < "gold"
    assert names(f"{EXT}:tags")[:2] == ["u10", "u9"]  # the first value: "a" < "b"
    expression = sort_expression(f"{EXT}:level", "User").expression
    keyed = User.objects.annotate(key=expression)
    assert set(keyed.filter(key__gt=9).values_list("user_name", flat=True)) == {"u10", "u100"}


def test_meta_derived_attributes(scim, people):
    ana = people["ana"]
    assert found(scim, 'meta.resourceType eq "User"') == ALL
    assert found(scim, 'meta.resourceType eq "user"') == set()  # caseExact
    assert found(scim, 'meta.resourceType ne "User"') == set()
    assert found(scim, f'meta.version eq {_quoted(ana["meta"]["version"])}') >= {"ana"}
    assert found(scim, 'meta.version eq "W/\\"999\\""') == set()
    assert found(scim, "meta pr") == ALL
    assert set(order(scim, "meta.resourceType")) == ALL
    assert set(order(scim, "meta.version")) == ALL


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
