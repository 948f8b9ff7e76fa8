"""SCIM filter parsing, PATCH paths, value-filter evaluation (provisioning.scim.filters) and
their ORM translation (provisioning.directory.query)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from provisioning.directory.models import Group, Membership, User
from provisioning.directory.query import filter_to_q, membership_q, sort_expression
from provisioning.scim.errors import InvalidFilter, InvalidPath, InvalidValue
from provisioning.scim.filters import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    Compare,
    Not,
    Or,
    Present,
    ValuePath,
    matches,
    parse_filter,
    parse_patch_path,
)
from provisioning.scim.schema import ENTERPRISE_USER, GROUP_SCHEMA, USER, USER_SCHEMA
from tests.factories import GroupFactory, UserFactory

EMAILS = USER_SCHEMA.core_attribute("emails")
MEMBERS = GROUP_SCHEMA.core_attribute("members")

# --- parser ------------------------------------------------------------------


def test_and_binds_tighter_than_or():
    assert parse_filter("a eq 1 or b eq 2 and c eq 3") == Or(
        Compare("a", "eq", 1), And(Compare("b", "eq", 2), Compare("c", "eq", 3))
    )


def test_and_or_are_left_associative():
    assert parse_filter("a pr and b pr and c pr") == And(
        And(Present("a"), Present("b")), Present("c")
    )


def test_grouping_overrides_precedence():
    assert parse_filter("(a eq 1 or b eq 2) and c eq 3") == And(
        Or(Compare("a", "eq", 1), Compare("b", "eq", 2)), Compare("c", "eq", 3)
    )


def test_not_with_and_without_space():
    expected = And(Not(Present("a")), Compare("b", "eq", "x"))
    assert parse_filter('not (a pr) and b eq "x"') == expected
    assert parse_filter('NOT(a pr) AND b eq "x"') == expected


def test_operators_and_keywords_are_case_insensitive():
    assert parse_filter('userName EQ "x"') == Compare("userName", "eq", "x")
    assert parse_filter('userName Eq "x" Or title PR') == Or(
        Compare("userName", "eq", "x"), Present("title")
    )
    for op in ("ne", "co", "sw", "ew", "gt", "ge", "lt", "le"):
        assert parse_filter(f'a {op.upper()} "v"') == Compare("a", op, "v")


def test_value_path():
    assert parse_filter('emails[type eq "work" and value co "@example.com"]') == ValuePath(
        "emails", And(Compare("type", "eq", "work"), Compare("value", "co", "@example.com"))
    )
    assert parse_filter('userType eq "E" and emails[not (type eq "home")] or x pr') == Or(
        And(
            Compare("userType", "eq", "E"), ValuePath("emails", Not(Compare("type", "eq", "home")))
        ),
        Present("x"),
    )


def test_paths_with_urn_and_sub_attributes():
    urn_path = f"{ENTERPRISE_USER}:employeeNumber"
    assert parse_filter(f'{urn_path} eq "42"') == Compare(urn_path, "eq", "42")
    assert parse_filter("name.familyName pr") == Present("name.familyName")
    assert parse_filter(f"{ENTERPRISE_USER}:manager.value pr") == Present(
        f"{ENTERPRISE_USER}:manager.value"
    )
    assert parse_filter("members.$ref pr") == Present("members.$ref")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('a eq "x\\"y"', 'x"y'),
        ('a eq "back\\\\slash"', "back\\slash"),
        ('a eq "caf\\u00e9"', "café"),
        ('a eq "\\ud83d\\ude00"', "\U0001f600"),
        ('a eq "tab\\tnl\\n\\/"', "tab\tnl\n/"),
        ('a eq "]) and ("', "]) and ("),
        ("a eq true", True),
        ("a eq FALSE", False),
        ("a eq null", None),
        ("a eq 0", 0),
        ("a eq -12", -12),
        ("a eq 1.5", 1.5),
        ("a eq 2e3", 2000.0),
    ],
)
def test_comp_values(text, value):
    node = parse_filter(text)
    assert node == Compare("a", "eq", value)
    assert type(node.value) is type(value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("userName", "expected an operator"),
        ('userName equals "x"', "expected an operator"),
        ("userName eq", "expected a value"),
        ("userName eq bjensen", "found 'bjensen' at position 13"),
        ("userName eq 'bjensen'", "double quotes"),
        ('userName eq "x', "unterminated string"),
        ('userName eq "\\x"', "invalid escape"),
        ('userName eq "\\u12"', "hex digits"),
        ('userName eq "\\ud800"', "surrogate"),
        ('userName eq "a\\u0000"', "NUL"),
        ('userName eq "a\tb"', "control characters"),
        ("userName eq 01", "position 14"),
        ("(userName pr", "expected 'and', 'or' or ')'"),
        ("userName pr)", "found ')' at position 12"),
        ("userName pr and", "expected an attribute name"),
        ("userName pr or or x pr", "expected an attribute name"),
        ('userName pr "x"', "expected 'and', 'or' or the end"),
        ("not userName pr", "expected '(' after 'not'"),
        ("not (userName pr", "expected 'and', 'or' or ')'"),
        ('emails[type eq "work"', "expected 'and', 'or' or ']'"),
        ('emails[type eq "work"].value eq "x"', "'.'"),
        ('emails[x[y eq "z"]]', "cannot be nested"),
        ("emails[]", "expected an attribute name"),
        ("()", "expected an attribute name"),
        ('"x" eq "x"', "expected an attribute name"),
        ("1 eq 1", "expected an attribute name"),
        ("urn:foo:2.0 pr", "invalid attribute path"),
        ("a.b.c pr", "invalid attribute path"),
        ("user@name pr", "unexpected character '@'"),
        ("userName eq #", "unexpected character '#'"),
    ],
)
def test_syntax_errors(text, fragment):
    with pytest.raises(InvalidFilter) as exc:
        parse_filter(text)
    assert exc.value.scim_type == "invalidFilter"
    assert exc.value.status == 400
    assert fragment in exc.value.detail


def test_error_names_the_position():
    with pytest.raises(InvalidFilter, match=r"expected a value .* found 'and' at position 13"):
        parse_filter("userName eq and")


def test_length_and_depth_caps():
    long = 'userName eq "' + "x" * MAX_FILTER_LENGTH + '"'
    with pytest.raises(InvalidFilter, match="longer than"):
        parse_filter(long)
    ok = "(" * MAX_DEPTH + "a pr" + ")" * MAX_DEPTH
    assert parse_filter(ok) == Present("a")
    deep = "(" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidFilter, match="nesting"):
        parse_filter(deep)
    nots = "not (" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidFilter, match="nesting"):
        parse_filter(nots)


def test_non_string_filter_is_invalid():
    with pytest.raises(InvalidFilter):
        parse_filter(None)  # type: ignore[arg-type]


# --- PATCH paths -------------------------------------------------------------


def test_patch_path_simple_and_sub_attribute():
    path = parse_patch_path("USERNAME", USER_SCHEMA)
    assert (path.urn, path.attribute.name, path.sub_attribute, path.value_filter) == (
        USER,
        "userName",
        None,
        None,
    )
    path = parse_patch_path("name.FamilyName", USER_SCHEMA)
    assert (path.attribute.name, path.sub_attribute.name) == ("name", "familyName")
    assert str(path) == "name.familyName"


def test_patch_path_value_filter_with_sub_attribute():
    path = parse_patch_path('emails[TYPE eq "work"].Value', USER_SCHEMA)
    assert path.attribute is EMAILS
    assert path.sub_attribute.name == "value"
    assert path.value_filter == Compare("type", "eq", "work")  # canonical sub-attribute name
    assert str(path) == 'emails[type eq "work"].value'

    path = parse_patch_path('addresses[type eq "work"].postalCode', USER_SCHEMA)
    assert (path.attribute.name, path.sub_attribute.name) == ("addresses", "postalCode")


def test_patch_path_members_filter():
    member = "2819c223-7f76-453a-919d-413861904646"
    path = parse_patch_path(f'members[value eq "{member}"]', GROUP_SCHEMA)
    assert path.attribute is MEMBERS
    assert path.sub_attribute is None
    assert path.value_filter == Compare("value", "eq", member)


def test_patch_path_extension():
    path = parse_patch_path(f"{ENTERPRISE_USER}:manager", USER_SCHEMA)
    assert (path.urn, path.attribute.name, path.sub_attribute) == (ENTERPRISE_USER, "manager", None)
    path = parse_patch_path(f"{ENTERPRISE_USER.lower()}:Manager.value", USER_SCHEMA)
    assert (path.urn, path.attribute.name, path.sub_attribute.name) == (
        ENTERPRISE_USER,
        "manager",
        "value",
    )
    assert str(path) == f"{ENTERPRISE_USER}:manager.value"
    path = parse_patch_path(ENTERPRISE_USER, USER_SCHEMA)
    assert (path.urn, path.attribute, path.sub_attribute) == (ENTERPRISE_USER, None, None)
    path = parse_patch_path(f"{USER}:emails[primary eq true].value", USER_SCHEMA)
    assert (path.urn, path.attribute, path.value_filter) == (
        USER,
        EMAILS,
        Compare("primary", "eq", True),
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nickname.x",
        "unknownAttr",
        "name.nope",
        "name.givenName.x",
        USER,
        "urn:example:unknown:schema:attr",
        f"{ENTERPRISE_USER}:nope",
        'name[givenName eq "x"]',
        'emails.value[type eq "x"]',
        'userName[value eq "x"]',
        'emails[type eq "work"].nope',
        'emails[type eq "work"]value',
        'emails[type eq "work"].value.x',
        'emails [type eq "work"]',
        "emails-",
    ],
)
def test_patch_path_invalid_path(text):
    with pytest.raises(InvalidPath) as exc:
        parse_patch_path(text, USER_SCHEMA)
    assert exc.value.scim_type == "invalidPath"


def test_patch_path_extension_unknown_to_groups():
    with pytest.raises(InvalidPath):
        parse_patch_path(f"{ENTERPRISE_USER}:manager", GROUP_SCHEMA)


@pytest.mark.parametrize(
    "text",
    [
        'emails[type eq "work"',
        "emails[type eq work]",
        'emails[nope eq "x"]',
        "emails[primary gt true]",
        "emails[type eq null]",
        'emails[x[y eq "z"]]',
    ],
)
def test_patch_path_bad_value_filter(text):
    with pytest.raises(InvalidFilter):
        parse_patch_path(text, USER_SCHEMA)


# --- matches -----------------------------------------------------------------


def value_filter(text: str):
    return parse_patch_path(f"emails[{text}]", USER_SCHEMA).value_filter


WORK = {"value": "Ana@Example.com", "type": "work", "primary": True}
HOME = {"value": "ana@home.org", "type": "home"}


@pytest.mark.parametrize(
    ("text", "element", "expected"),
    [
        ('type eq "work"', WORK, True),
        ('type eq "WORK"', WORK, True),  # caseExact false
        ('type eq "work"', HOME, False),
        ('value co "@example.COM"', WORK, True),
        ('value sw "ana@"', WORK, True),
        ('value ew ".org"', HOME, True),
        ('value ew ".org"', WORK, False),
        ('type eq "work" and value co "@example.com"', WORK, True),
        ('type eq "work" and value co "@example.com"', HOME, False),
        ('type eq "home" or primary eq true', WORK, True),
        ('not (type eq "work")', HOME, True),
        ("primary pr", WORK, True),
        ("primary pr", HOME, False),
        ("display pr", {"value": "x", "display": ""}, False),
        ('type ne "work"', HOME, True),
        ('type ne "work"', {"value": "x"}, True),  # absent matches ne
        ('type eq "work"', {"value": "x"}, False),  # absent never equals
        ('type co ""', {"value": "x"}, False),
        ("primary eq true", WORK, True),
        ("primary eq false", WORK, False),
        ("primary eq false", HOME, False),  # absent is not false
        ("primary eq true", {"primary": "True"}, True),  # Entra sends strings
        ("primary eq false", {"primary": "false"}, True),
        ("primary ne true", {"primary": "False"}, True),
        ('type gt "home"', WORK, True),
        ('type lt "home"', WORK, False),
        ('type ge "home"', HOME, True),
        ('type le "HOME"', HOME, True),
        ('Type eq "work"', {"TYPE": "work"}, True),  # JSON keys as the IdP sent them
        ('value eq "x"', {"value": 5}, False),
        ('value eq "x"', "not-a-dict", False),
    ],
)
def test_matches(text, element, expected):
    assert matches(value_filter(text), element, EMAILS) is expected


def test_matches_case_exact_sub_attribute():
    node = parse_filter('value eq "ABC-1"')
    assert matches(node, {"value": "ABC-1"}, MEMBERS)
    assert not matches(node, {"value": "abc-1"}, MEMBERS)  # members.value is caseExact
    assert not matches(parse_filter('value co "abc"'), {"value": "ABC-1"}, MEMBERS)


def test_matches_datetime_and_numbers():
    meta = USER_SCHEMA.core_attribute("meta")
    element = {"lastModified": "2024-05-01T10:00:00+02:00"}
    assert matches(parse_filter('lastModified gt "2024-05-01T07:59:59Z"'), element, meta)
    assert not matches(parse_filter('lastModified gt "2024-05-01T08:00:00Z"'), element, meta)
    assert matches(parse_filter('lastModified eq "2024-05-01T08:00:00Z"'), element, meta)
    assert matches(parse_filter('lastModified lt "2024-05-02"'), element, meta)
    with pytest.raises(InvalidFilter, match="ISO 8601"):
        matches(parse_filter('lastModified gt "yesterday"'), element, meta)
    with pytest.raises(InvalidFilter):
        matches(parse_filter('lastModified co "2024"'), element, meta)


def test_matches_rejects_unknown_sub_attribute_and_bad_types():
    with pytest.raises(InvalidFilter, match="Unknown attribute 'nope'"):
        matches(parse_filter('nope eq "x"'), WORK, EMAILS)
    with pytest.raises(InvalidFilter, match="null"):
        matches(parse_filter("type eq null"), WORK, EMAILS)
    with pytest.raises(InvalidFilter, match="boolean"):
        matches(parse_filter('primary co "t"'), WORK, EMAILS)
    with pytest.raises(InvalidFilter, match="quoted string"):
        matches(parse_filter("type eq 5"), WORK, EMAILS)


# --- ORM translation ---------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def people(db):
    alice = UserFactory(
        user_name="alice@x.com",
        external_id="Ext-A",
        display_name="Alice Liddell",
        given_name="Alice",
        family_name="Liddell",
        employee_number="100%",
        manager_id="boss-1",
        active=True,
        emails=[("alice@x.com", "work", True), ("alice@home.org", "home", False)],
        created=T0,
    )
    # Her work email and her @x email are different elements.
    bob = UserFactory(
        user_name="Bob@Y.org",
        external_id="ext-b",
        display_name="Bob_Builder",
        family_name="Builder",
        employee_number="1000",
        active=False,
        emails=[("bob@y.org", "work", True), ("bob@x.com", "home", False)],
        created=T0 + timedelta(minutes=10),
    )
    # No externalId, no emails, never sent ``active`` (NULL).
    carol = UserFactory(user_name="carol", display_name="", created=T0 + timedelta(minutes=20))
    return {"alice": alice, "bob": bob, "carol": carol}


def users(text: str) -> set[str]:
    q = filter_to_q(parse_filter(text), "User")
    return set(User.objects.filter(q).values_list("user_name", flat=True))


def groups(text: str) -> set[str]:
    q = filter_to_q(parse_filter(text), "Group")
    return set(Group.objects.filter(q).values_list("display_name", flat=True))


ALL = {"alice@x.com", "Bob@Y.org", "carol"}


@pytest.mark.django_db
class TestUserFilters:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('userName eq "ALICE@X.COM"', {"alice@x.com"}),
            ('USERNAME eq "bob@y.org"', {"Bob@Y.org"}),
            ('userName ne "alice@x.com"', {"Bob@Y.org", "carol"}),
            ('userName co "@"', {"alice@x.com", "Bob@Y.org"}),
            ('userName sw "B"', {"Bob@Y.org"}),
            ('userName ew ".ORG"', {"Bob@Y.org"}),
            ('userName gt "b"', {"Bob@Y.org", "carol"}),
            ('userName le "bob@y.org"', {"alice@x.com", "Bob@Y.org"}),
            (f'{USER}:userName eq "carol"', {"carol"}),
            ('externalId eq "Ext-A"', {"alice@x.com"}),
            ('externalId eq "ext-a"', set()),  # case-exact
            ('externalId sw "ext"', {"Bob@Y.org"}),  # case-exact on SQLite too
            ('externalId co "xt-"', {"alice@x.com", "Bob@Y.org"}),
            ('externalId ne "Ext-A"', {"Bob@Y.org", "carol"}),  # NULL matches ne
            ("externalId pr", {"alice@x.com", "Bob@Y.org"}),
            ("not (externalId pr)", {"carol"}),
            ('displayName eq ""', {"carol"}),  # "" means absent
            ('displayName ne ""', {"alice@x.com", "Bob@Y.org"}),
            ("displayName pr", {"alice@x.com", "Bob@Y.org"}),
            ('displayName lt "b"', {"alice@x.com"}),  # absent is not less than anything
            ('displayName co ""', {"alice@x.com", "Bob@Y.org"}),
            ('name.familyName eq "liddell"', {"alice@x.com"}),
            ("name.givenName pr", {"alice@x.com"}),
            ("active eq true", {"alice@x.com"}),  # not carol: her document has no active
            ("active eq false", {"Bob@Y.org"}),
            ('active eq "False"', {"Bob@Y.org"}),
            ("active ne true", {"Bob@Y.org", "carol"}),
            ("active ne false", {"alice@x.com", "carol"}),
            ("active pr", {"alice@x.com", "Bob@Y.org"}),
            ("not (active pr)", {"carol"}),
            ("id pr", ALL),
            ("not (id pr)", set()),
            (f'{ENTERPRISE_USER}:employeeNumber eq "1000"', {"Bob@Y.org"}),
            (f'{ENTERPRISE_USER}:manager.value eq "BOSS-1"', {"alice@x.com"}),
            (f'{ENTERPRISE_USER}:manager eq "boss-1"', {"alice@x.com"}),
            ('userName eq "alice@x.com" or userName eq "carol"', {"alice@x.com", "carol"}),
            ('not (active eq false) and not (userName sw "c")', {"alice@x.com"}),
            (
                'userName pr and (externalId eq "ext-b" or displayName co "lid")',
                {"alice@x.com", "Bob@Y.org"},
            ),
        ],
    )
    def test_columns(self, people, text, expected):
        assert users(text) == expected

    def test_percent_and_underscore_match_literally(self, people):
        number = f"{ENTERPRISE_USER}:employeeNumber"
        assert users(f'{number} co "0%"') == {"alice@x.com"}
        assert users(f'{number} sw "100%"') == {"alice@x.com"}
        assert users(f'{number} sw "10%"') == set()  # LIKE '10%' would match "100%" and "1000"
        assert users(f'{number} ew "%"') == {"alice@x.com"}
        assert users('displayName co "_"') == {"Bob@Y.org"}
        assert users('displayName co "b_b"') == {"Bob@Y.org"}
        assert users('displayName co "e_l"') == set()  # "_" is not a wildcard
        assert users('displayName sw "%"') == set()
        assert users('userName co "\\\\"') == set()  # a backslash is literal too

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('emails eq "ALICE@x.com"', {"alice@x.com"}),
            ('emails.value co "@x.com"', {"alice@x.com", "Bob@Y.org"}),
            ('emails.type eq "home"', {"alice@x.com", "Bob@Y.org"}),
            ("emails.primary eq true", {"alice@x.com", "Bob@Y.org"}),
            ("emails pr", {"alice@x.com", "Bob@Y.org"}),
            ("not (emails pr)", {"carol"}),
            ('emails ne "bob@x.com"', {"alice@x.com", "carol"}),  # no email equals it
            ('emails[type eq "work" and value co "@x"]', {"alice@x.com"}),
            ('emails[type eq "work" and value co "@X.com"]', {"alice@x.com"}),
            ('emails[type eq "home" and value co "@x"]', {"Bob@Y.org"}),
            ('emails[type eq "work" and primary eq false]', set()),
            ('emails[type ne "work"]', {"alice@x.com", "Bob@Y.org"}),
            ('emails[not (type eq "work") and value ew ".org"]', {"alice@x.com"}),
            ('emails[type eq "work" or value sw "nobody"]', {"alice@x.com", "Bob@Y.org"}),
            ('not (emails[type eq "home" and value co "@x"])', {"alice@x.com", "carol"}),
            ('emails[value co "@x"] and emails[type eq "work" and value co "@y"]', {"Bob@Y.org"}),
        ],
    )
    def test_emails(self, people, text, expected):
        assert users(text) == expected

    def test_id(self, people):
        alice = people["alice"]
        assert users(f'id eq "{alice.pk}"') == {"alice@x.com"}
        assert users(f'id ne "{alice.pk}"') == {"Bob@Y.org", "carol"}
        assert users(f'id eq "{str(alice.pk).upper()}"') == set()  # case-exact
        assert users(f'id eq "{alice.pk.hex}"') == set()
        assert users(f'id eq "{uuid.uuid4()}"') == set()
        assert users('id eq "not-a-uuid"') == set()  # Entra's probe: empty, not an error
        assert users('id ne "not-a-uuid"') == ALL
        assert users("id pr") == ALL
        with pytest.raises(InvalidFilter, match="'co'"):
            users('id co "a"')

    def test_meta_datetimes(self, people):
        assert users('meta.lastModified gt "2024-01-01T00:05:00Z"') == {"Bob@Y.org", "carol"}
        assert users('meta.lastModified ge "2024-01-01T00:10:00Z"') == {"Bob@Y.org", "carol"}
        assert users('meta.lastModified lt "2024-01-01T01:10:00+01:00"') == {"alice@x.com"}
        assert users('meta.created le "2024-01-01"') == {"alice@x.com"}  # midnight UTC
        assert users('meta.created eq "2024-01-01T00:20:00Z"') == {"carol"}
        assert users('meta.created ne "2024-01-01T00:20:00Z"') == {"alice@x.com", "Bob@Y.org"}
        assert users('meta.created gt "2024-01-01T00:19:59.999"') == {"carol"}  # naive = UTC
        with pytest.raises(InvalidFilter, match="ISO 8601"):
            users('meta.lastModified gt "last tuesday"')
        with pytest.raises(InvalidFilter, match="ISO 8601"):
            users('meta.lastModified gt "2024-13-01T00:00:00Z"')
        with pytest.raises(InvalidFilter):
            users("meta.lastModified gt 5")
        with pytest.raises(InvalidFilter):
            users('meta.created co "2024"')

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            # Every other attribute of a served schema is filterable (through its JSON);
            # what cannot match anything is refused.
            ('password eq "x"', "Filtering on 'password' is not supported"),
            ("password pr", "never stored or returned"),
            ('meta.location eq "x"', "Filtering on 'meta.location' is not supported"),
            ('meta.version co "1"', "'co' is not supported for 'meta.version'"),
            ('bogus eq "x"', "Unknown attribute 'bogus'"),
            ('name.bogus eq "x"', "Unknown attribute 'name.bogus'"),
            ('urn:example:bogus:attr eq "x"', "Unknown attribute"),
            ('members eq "x"', "Unknown attribute 'members'"),
            ('emails[bogus eq "x"]', "Unknown attribute 'bogus'"),
            ('emails.value[type eq "x"]', "does not take a value filter"),
            ('userName[type eq "x"]', "does not take a value filter"),
            ("userName eq 5", "quoted string"),
            ("userName eq true", "quoted string"),
            ("userName eq null", "not (userName pr)"),
            ("externalId ne null", "null"),
            ("active co true", "'co' is not supported for boolean"),
            ("active gt false", "boolean"),
            ('active eq "yes"', "true or false"),
            ("active eq 1", "true or false"),
            ('emails.primary sw "t"', "boolean"),
            ('meta eq "x"', "'meta' is complex"),
            ('name eq "x"', "'name' is complex"),
            ('name.familyName.x eq "x"', "name.familyName.x"),
            ('groups.$ref eq "x"', "Filtering on 'groups.$ref' is not supported"),
        ],
    )
    def test_rejected(self, people, text, fragment):
        with pytest.raises(InvalidFilter) as exc:
            users(text)
        assert exc.value.scim_type == "invalidFilter"
        assert fragment in exc.value.detail

    def test_long_and_chain(self, people):
        text = " and ".join(["userName pr"] * 250) + ' and userName eq "carol"'
        assert len(text) < MAX_FILTER_LENGTH
        assert users(text) == {"carol"}

    def test_unicode_value_roundtrip(self, db):
        UserFactory(user_name="josé@x.com", display_name="José", created=T0)
        assert users('userName eq "jos\\u00e9@x.com"') == {"josé@x.com"}
        assert users('displayName eq "José"') == {"josé@x.com"}

    def test_unknown_resource(self):
        with pytest.raises(ValueError):
            filter_to_q(parse_filter("id pr"), "Widget")


@pytest.mark.django_db
class TestGroupFilters:
    @pytest.fixture
    def org(self, people):
        admins = GroupFactory(display_name="Admins", external_id="G-1", created=T0)
        staff = GroupFactory(display_name="Staff", created=T0 + timedelta(minutes=5))
        empty = GroupFactory(display_name="Empty_Group", created=T0 + timedelta(minutes=10))
        Membership.objects.create(group=admins, user=people["alice"], display="Alice L")
        Membership.objects.create(group=staff, user=people["bob"])
        Membership.objects.create(group=staff, member_group=admins, display="Admins")
        return {"admins": admins, "staff": staff, "empty": empty, **people}

    def test_display_name_and_columns(self, org):
        assert groups('displayName eq "admins"') == {"Admins"}
        assert groups('displayName co "_"') == {"Empty_Group"}
        assert groups('externalId eq "G-1"') == {"Admins"}
        assert groups('externalId eq "g-1"') == set()
        assert groups(f'id eq "{org["staff"].pk}"') == {"Staff"}
        assert groups('meta.created gt "2024-01-01T00:01:00Z"') == {"Staff", "Empty_Group"}

    def test_members(self, org):
        alice, bob, admins = org["alice"].pk, org["bob"].pk, org["admins"].pk
        assert groups(f'members[value eq "{alice}"]') == {"Admins"}
        assert groups(f'members eq "{bob}"') == {"Staff"}
        assert groups(f'members.value eq "{admins}"') == {"Staff"}  # nested group
        assert groups(f'members.value ne "{alice}"') == {"Staff", "Empty_Group"}
        assert groups('members[value eq "not-a-uuid"]') == set()
        assert groups("members pr") == {"Admins", "Staff"}
        assert groups("not (members pr)") == {"Empty_Group"}
        assert groups('members[type eq "group"]') == {"Staff"}
        assert groups('members.type eq "User"') == {"Admins", "Staff"}
        assert groups('members[type eq "Robot"]') == set()
        assert groups(f'members[type eq "User" and value eq "{alice}"]') == {"Admins"}
        assert groups(f'members[type eq "Group" and value eq "{alice}"]') == set()
        assert groups('members[display co "alice"]') == {"Admins"}
        assert groups('members[display ne "Admins"]') == {"Admins", "Staff"}  # NULL display
        assert groups("members[display pr]") == {"Admins", "Staff"}
        assert groups("members[not (display pr)]") == {"Staff"}

    def test_membership_q_for_patch_removal(self, org):
        staff = org["staff"]
        path = parse_patch_path(f'members[value eq "{org["admins"].pk}"]', GROUP_SCHEMA)
        rows = Membership.objects.filter(membership_q(path.value_filter), group=staff)
        assert [m.member_group_id for m in rows] == [org["admins"].pk]
        path = parse_patch_path('members[type eq "User" or display eq "ADMINS"]', GROUP_SCHEMA)
        assert Membership.objects.filter(membership_q(path.value_filter)).count() == 3
        path = parse_patch_path('members[value eq "NOT-A-UUID"]', GROUP_SCHEMA)
        assert not Membership.objects.filter(membership_q(path.value_filter)).exists()

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ('userName eq "x"', "Unknown attribute 'userName'"),
            ('members.$ref eq "x"', "not supported"),
            ('members[value co "a"]', "'co' is not supported"),
            ('members.type sw "U"', "not supported"),
            (f'{ENTERPRISE_USER}:employeeNumber eq "1"', "Unknown attribute"),
        ],
    )
    def test_rejected(self, org, text, fragment):
        with pytest.raises(InvalidFilter) as exc:
            groups(text)
        assert fragment in exc.value.detail


# --- sortBy ------------------------------------------------------------------


def sorted_users(sort_by: str, descending: bool = False) -> list[str]:
    order = sort_expression(sort_by, "User", descending)
    return list(User.objects.order_by(order, "pk").values_list("user_name", flat=True))


@pytest.mark.django_db
def test_sort_expression(people):
    assert sorted_users("userName") == ["alice@x.com", "Bob@Y.org", "carol"]  # case-insensitive
    assert sorted_users("USERNAME", descending=True) == ["carol", "Bob@Y.org", "alice@x.com"]
    assert sorted_users("meta.lastModified", descending=True) == [
        "carol",
        "Bob@Y.org",
        "alice@x.com",
    ]
    assert sorted_users("externalId") == ["alice@x.com", "Bob@Y.org", "carol"]  # NULL last
    assert sorted_users("externalId", descending=True) == ["Bob@Y.org", "alice@x.com", "carol"]
    assert sorted_users("active") == ["Bob@Y.org", "alice@x.com", "carol"]  # NULL last
    assert sorted_users("active", descending=True) == ["alice@x.com", "Bob@Y.org", "carol"]
    assert sorted_users("name.familyName") == ["carol", "Bob@Y.org", "alice@x.com"]
    GroupFactory(display_name="beta", created=T0)
    GroupFactory(display_name="Alpha", created=T0)
    order = sort_expression("displayName", "Group", False)
    ordered = Group.objects.order_by(order, "pk").values_list("display_name", flat=True)
    assert list(ordered) == ["Alpha", "beta"]


@pytest.mark.django_db
def test_sort_by_primary_email(db):
    UserFactory(user_name="u1", primary_email="Zed@x.com", created=T0)
    UserFactory(user_name="u2", primary_email="amy@x.com", created=T0)
    assert sorted_users("emails.value") == ["u2", "u1"]
    assert sorted_users("emails", descending=True) == ["u1", "u2"]


@pytest.mark.parametrize(
    ("sort_by", "resource"),
    [
        ("bogus", "User"),
        ("password", "User"),
        ("meta.location", "User"),
        ("groups.display", "User"),
        ('emails[type eq "work"]', "User"),
        ("members", "Group"),
        ("members.value", "Group"),
        ("userName", "Group"),
        ("", "User"),
        ("name", "User"),
    ],
)
def test_sort_expression_rejects(sort_by, resource):
    with pytest.raises(InvalidValue) as exc:
        sort_expression(sort_by, resource, False)
    assert exc.value.scim_type == "invalidValue"
