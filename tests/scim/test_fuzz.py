"""Property-based fuzzing of every SCIM endpoint: whatever a client sends, the answer is
never a 5xx, every error is a SCIM Error body (RFC 7644 §3.12), and the request log
gains exactly one row per request.

Requests are generated from SCIM-shaped parts (documents, PATCH operations, search and
bulk requests, filters, attribute paths) mixed with arbitrary JSON, text holding NUL
characters and lone surrogates, numbers beyond 64 bits, raw bytes, odd content types
and conditional headers. The ``scim-fuzz`` profile keeps the run reproducible
(derandomized, no example database) and moderate (about 250 requests in all).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioning.audit.models import RequestLog
from provisioning.directory.models import Group, User
from tests.factories import ScimClientFactory
from tests.scim.conftest import (
    BASE,
    ENTERPRISE_SCHEMA,
    ERROR_SCHEMA,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    SCIM_JSON,
    USER_SCHEMA,
    ScimApi,
)

settings.register_profile(
    "scim-fuzz",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
FUZZ = settings.get_profile("scim-fuzz")

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
# Replaced by the ids of a real user and group when a request is sent.
UID, GID = "{uid}", "{gid}"

pytestmark = pytest.mark.django_db

# -- building blocks -----------------------------------------------------------------------------

# Every character, NUL and lone surrogates included.
any_text = st.text(st.characters(exclude_categories=[]), max_size=12)
NASTY = [
    "",
    " ",
    "\x00",
    "\ud800",
    "a\udfffb",
    "x" * 300,
    "é" * 321,
    "[",
    "{",
    '"',
    "\\",
    "%",
    "_",
    "*",
    'W/"1"',
    "9999-12-31T23:59:59+23:59",
    "0001-01-01T00:00:00+01:00",
    "2024-02-30T00:00:00Z",
    "bulkId:nope",
    UID,
    GID,
]
text = st.one_of(any_text, st.sampled_from(NASTY))

ATTRIBUTES = [
    "schemas",
    "id",
    "externalId",
    "userName",
    "displayName",
    "name",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "active",
    "title",
    "members",
    "members.value",
    "members.display",
    "groups",
    "meta",
    "meta.created",
    "meta.lastModified",
    "password",
    ENTERPRISE_SCHEMA,
    f"{ENTERPRISE_SCHEMA}:manager",
    f"{ENTERPRISE_SCHEMA}:manager.value",
    f"{ENTERPRISE_SCHEMA}:employeeNumber",
    "urn:example:unknown:2.0:User:x",
    "bogus",
]
MESSAGE_KEYS = [
    "Operations",
    "op",
    "path",
    "value",
    "filter",
    "attributes",
    "excludedAttributes",
    "startIndex",
    "count",
    "sortBy",
    "sortOrder",
    "method",
    "bulkId",
    "version",
    "data",
    "failOnErrors",
]
attribute_name = st.sampled_from(ATTRIBUTES)
key = st.one_of(st.sampled_from(ATTRIBUTES + MESSAGE_KEYS), text)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    scalar,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(key, children, max_size=4),
    max_leaves=16,
)

# -- filters and PATCH paths ---------------------------------------------------------------------

OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "xx"]
literal = st.one_of(
    st.sampled_from(
        [
            "true",
            "false",
            "null",
            "99999999999999999999999",
            "-99999999999999999999999",
            "1e999",
            "1.5",
            '"9999-12-31T23:59:59+23:59"',
            '"9999-12-31T23:59:59-23:59"',
            '"0001-01-01T00:00:00+01:00"',
            '"2024-01-01"',
            f'"{UID}"',
            "'single'",
            '"\\ud800"',
            '"\\u0000"',
        ]
    ),
    text.map(json.dumps),
    st.integers().map(str),
)
comparison = st.one_of(
    st.builds(lambda a, o, v: f"{a} {o} {v}", attribute_name, st.sampled_from(OPERATORS), literal),
    st.builds(lambda a: f"{a} pr", attribute_name),
)


def _combine(inner):
    return st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda a, f: f"{a}[{f}]", st.sampled_from(["emails", "members", "name"]), inner),
    )


filter_text = st.one_of(
    st.recursive(comparison, _combine, max_leaves=5),
    text,
    st.sampled_from(["(" * 60 + "userName pr" + ")" * 60, "userName eq", "and", '"']),
)
patch_path = st.one_of(
    attribute_name,
    st.builds(
        lambda a, f, s: f"{a}[{f}]{s}",
        st.sampled_from(["emails", "members", "phoneNumbers", "name"]),
        filter_text,
        st.sampled_from(["", ".value", ".type", ".display", ".bogus", "x"]),
    ),
    text,
)

# -- request bodies ------------------------------------------------------------------------------


def _document(schema: str, required: str):
    return st.fixed_dictionaries(
        {
            "schemas": st.one_of(st.just([schema]), json_value),
            required: st.one_of(text, json_value),
        },
        optional={
            attribute: st.one_of(text, json_value)
            for attribute in ATTRIBUTES
            if attribute not in ("schemas", required)
        }
        | {
            "emails": st.lists(
                st.fixed_dictionaries(
                    {"value": text}, optional={"type": text, "primary": json_value}
                ),
                max_size=3,
            ),
            "members": st.lists(
                st.fixed_dictionaries(
                    {"value": st.one_of(st.sampled_from([UID, GID]), text)},
                    optional={"display": text, "type": text},
                ),
                max_size=3,
            ),
        },
    )


user_document = _document(USER_SCHEMA, "userName")
group_document = _document(GROUP_SCHEMA, "displayName")
patch_operation = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(["add", "remove", "replace", "Add", "Replace"]), json_value)},
    optional={"path": st.one_of(patch_path, json_value), "value": json_value},
)
patch_body = st.fixed_dictionaries(
    {
        "schemas": st.one_of(st.just([PATCH_SCHEMA]), json_value),
        "Operations": st.one_of(st.lists(patch_operation, max_size=4), json_value),
    }
)
search_body = st.fixed_dictionaries(
    {"schemas": st.one_of(st.just([SEARCH]), json_value)},
    optional={
        "filter": st.one_of(filter_text, json_value),
        "attributes": st.one_of(st.lists(attribute_name, max_size=3), text, json_value),
        "excludedAttributes": st.one_of(st.lists(attribute_name, max_size=3), json_value),
        "startIndex": st.one_of(
            st.integers(), st.integers(min_value=2**62, max_value=2**70), json_value
        ),
        "count": st.one_of(st.integers(), json_value),
        "sortBy": st.one_of(attribute_name, json_value),
        "sortOrder": st.one_of(st.sampled_from(["ascending", "descending"]), json_value),
    },
)
bulk_operation = st.fixed_dictionaries(
    {
        "method": st.one_of(st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET"]), json_value),
        "path": st.one_of(
            st.sampled_from(["/Users", "/Groups", f"/Users/{UID}", f"/Groups/{GID}", "/Bulk"]),
            json_value,
        ),
    },
    optional={
        "bulkId": st.one_of(st.sampled_from(["a", "b"]), json_value),
        "version": st.one_of(st.just('W/"1"'), json_value),
        "data": st.one_of(user_document, group_document, patch_body, json_value),
    },
)
bulk_body = st.fixed_dictionaries(
    {
        "schemas": st.one_of(st.just([BULK]), json_value),
        "Operations": st.one_of(st.lists(bulk_operation, max_size=3), json_value),
    },
    optional={"failOnErrors": json_value},
)

# Mostly well-formed requests, so that the fuzzing also reaches the write paths and
# the renderers, not only the first check that refuses a request.
word = st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=12)
valid_filter = st.one_of(
    st.builds(
        lambda a, o, v: f"{a} {o} {json.dumps(v)}",
        st.sampled_from(
            ["userName", "displayName", "externalId", "name.givenName", "emails.value", "emails"]
        ),
        st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "lt"]),
        word,
    ),
    st.builds(
        lambda a, o, v: f'{a} {o} "{v}"',
        st.sampled_from(["meta.created", "meta.lastModified"]),
        st.sampled_from(["gt", "ge", "lt", "le", "eq"]),
        st.sampled_from(["2024-01-01", "2024-01-01T00:00:00+14:00", "9999-12-31T23:59:59+23:59"]),
    ),
    st.sampled_from(
        [
            "active eq true",
            "userName pr",
            "displayName pr and not (externalId pr)",
            'emails[type eq "work" and value co "@"]',
            f'members[value eq "{UID}"]',
            f'id eq "{UID}"',
        ]
    ),
)
valid_user = st.fixed_dictionaries(
    {"schemas": st.just([USER_SCHEMA]), "userName": word.map(lambda w: f"{w}@x.com")},
    optional={
        "displayName": st.one_of(word, text),
        "externalId": st.one_of(word, text),
        "title": st.one_of(word, text),
        "active": st.one_of(st.booleans(), st.sampled_from(["True", "false"])),
        "name": st.fixed_dictionaries({}, optional={"givenName": word, "familyName": text}),
        "emails": st.lists(
            st.fixed_dictionaries(
                {"value": word.map(lambda w: f"{w}@x.com")},
                optional={"type": st.sampled_from(["work", "home"]), "primary": st.booleans()},
            ),
            max_size=3,
        ),
        ENTERPRISE_SCHEMA: st.fixed_dictionaries(
            {}, optional={"employeeNumber": word, "manager": st.just({"value": UID})}
        ),
    },
)
valid_group = st.fixed_dictionaries(
    {"schemas": st.just([GROUP_SCHEMA]), "displayName": word},
    optional={
        "externalId": word,
        "members": st.lists(
            st.fixed_dictionaries(
                {"value": st.sampled_from([UID, GID])}, optional={"display": st.one_of(word, text)}
            ),
            max_size=2,
        ),
    },
)
valid_patch_operation = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Replace"])},
    optional={
        "path": st.sampled_from(
            [
                "displayName",
                "title",
                "active",
                "externalId",
                "name.givenName",
                "emails",
                'emails[type eq "work"].value',
                "members",
                f'members[value eq "{UID}"]',
                f"{ENTERPRISE_SCHEMA}:manager",
            ]
        ),
        "value": st.one_of(
            word,
            text,
            st.booleans(),
            st.just([{"value": UID}]),
            st.just({"displayName": "Renamed"}),
        ),
    },
)
valid_patch = st.fixed_dictionaries(
    {
        "schemas": st.just([PATCH_SCHEMA]),
        "Operations": st.lists(valid_patch_operation, min_size=1, max_size=3),
    }
)

valid_search = st.fixed_dictionaries(
    {"schemas": st.just([SEARCH])},
    optional={
        "filter": valid_filter,
        "attributes": st.lists(attribute_name, max_size=2),
        "startIndex": st.integers(min_value=-2, max_value=5),
        "count": st.integers(min_value=-1, max_value=5),
        "sortBy": st.sampled_from(["userName", "displayName", "meta.created"]),
    },
)
json_body = st.one_of(
    valid_user,
    valid_group,
    valid_patch,
    valid_search,
    user_document,
    group_document,
    patch_body,
    search_body,
    bulk_body,
    json_value,
)


def _nested(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    return opener * depth + "1" + closer * depth


raw_body = st.one_of(
    st.binary(max_size=64),
    st.builds(
        _nested, st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":'])
    ).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"\x00",
            b'{"userName": "a\x00"}',
            b'{"userName": "\xff"}',
            b'{"userName": "\xed\xa0\x80"}',
            b'{"userName": NaN}',
            b'{"count": 1e999}',
            b'{"count": ' + b"9" * 5000 + b"}",
            b"\xef\xbb\xbf{}",
        ]
    ),
)

# -- URLs, query parameters, headers ---------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


ENDPOINTS = [
    "/Users",
    "/Groups",
    f"/Users/{UID}",
    f"/Groups/{GID}",
    "/Users/.search",
    "/Groups/.search",
    "/.search",
    "/Bulk",
    "/Me",
    "/ServiceProviderConfig",
    "/ResourceTypes",
    "/ResourceTypes/User",
    "/Schemas",
    f"/Schemas/{USER_SCHEMA}",
    "/PendingOperations/00000000-0000-0000-0000-000000000000",
]
endpoint = st.one_of(
    # Real endpoints three times as often as made-up ones.
    st.sampled_from(ENDPOINTS),
    st.sampled_from(ENDPOINTS),
    st.sampled_from(ENDPOINTS),
    st.builds(
        lambda kind, ident: f"/{kind}/{_segment(ident)}",
        st.sampled_from(["Users", "Groups", "Schemas", "PendingOperations", "ResourceTypes"]),
        text,
    ),
    text.map(lambda t: "/" + _segment(t)),
)
PARAMETERS = [
    "filter",
    "attributes",
    "excludedAttributes",
    "startIndex",
    "count",
    "sortBy",
    "sortOrder",
]
valid_query = st.fixed_dictionaries(
    {},
    optional={
        "filter": valid_filter,
        "count": st.integers(min_value=0, max_value=5).map(str),
        "startIndex": st.integers(min_value=1, max_value=3).map(str),
        "attributes": st.sampled_from(["userName,emails", "displayName", "members", "id"]),
        "sortBy": st.sampled_from(["userName", "meta.lastModified"]),
        "sortOrder": st.sampled_from(["ascending", "descending"]),
    },
)
query = valid_query | st.dictionaries(
    st.one_of(st.sampled_from(PARAMETERS), text),
    st.one_of(
        filter_text,
        attribute_name,
        text,
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.sampled_from(["ascending", "descending"]),
    ),
    max_size=3,
)
header_text = st.one_of(
    st.text(st.characters(max_codepoint=255, exclude_categories=[]), max_size=16),
    st.sampled_from(['W/"1"', '"1"', "*", 'W/"1", W/"2"', 'W/"99999999999999999999999"']),
)
headers = st.fixed_dictionaries(
    {}, optional={"HTTP_IF_MATCH": header_text, "HTTP_IF_NONE_MATCH": header_text}
)
content_type = st.sampled_from(
    [
        SCIM_JSON,
        SCIM_JSON,
        "application/json",
        "text/plain",
        "",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        f"{SCIM_JSON}; charset=utf-16",
        f"{SCIM_JSON}; charset=bogus",
    ]
)
# A charset naming a codec that is not a text encoding (rot13, base64, ...) fails inside
# Django's WSGIRequest when the URL has a query string, before any middleware runs; the
# raw-body test sends it without one.
odd_content_type = st.one_of(
    content_type, st.sampled_from(["application/json; charset=rot13", f"{SCIM_JSON}; charset=hex"])
)
method = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])

# -- the property --------------------------------------------------------------------------------


@pytest.fixture
def fuzz_client(db) -> ScimApi:
    client = ScimClientFactory(role="provisioner")
    return ScimApi(client.raw_token)


def _ids(scim: ScimApi) -> dict[str, str]:
    """A user and a group to aim at; DELETEs may have removed the previous ones."""
    user = User.objects.order_by("created").first()
    if user is None:
        user = User.objects.get(pk=scim.create_user(f"fuzz-{User.objects.count()}")["id"])
    group = Group.objects.order_by("created").first()
    if group is None:
        group = Group.objects.get(pk=scim.create_group(f"fuzz-{Group.objects.count()}")["id"])
    return {UID: str(user.pk), GID: str(group.pk)}


def _fill(text_: str, ids: dict[str, str]) -> str:
    for placeholder, value in ids.items():
        text_ = text_.replace(placeholder, value)
    return text_


def _query_string(params: dict[str, str]) -> str:
    return "&".join(f"{_segment(k)}={_segment(v)}" for k, v in params.items())


def send(scim: ScimApi, verb: str, path: str, *, params=None, body=None, raw=None, **kw):
    """One request, checked: no 5xx, errors are SCIM Errors, one request-log row."""
    ids = _ids(scim)
    url = BASE + _fill(path, ids)
    if params:
        url += "?" + _fill(_query_string(params), ids)
    if raw is None and body is not None:
        # ensure_ascii: lone surrogates travel as \ud800 escapes, as a JSON encoder writes them
        raw = _fill(json.dumps(body), ids).encode()
    logged = RequestLog.objects.count()

    resp = scim.request(verb, url, raw=raw if raw is not None else b"", **kw)

    described = f"{verb} {url} {(raw or b'')[:300]!r} -> {resp.status_code} {resp.content[:300]!r}"
    # RFC 7644 §3.11: a service provider without /Me answers 501, its one 5xx by design.
    assert resp.status_code < 500 or (resp.status_code == 501 and path == "/Me"), described
    if resp.status_code >= 400:
        assert resp["Content-Type"].startswith(SCIM_JSON), described
        error = json.loads(resp.content)
        assert ERROR_SCHEMA in error["schemas"], described
        assert error["status"] == str(resp.status_code), described
    assert RequestLog.objects.count() == logged + 1, f"request log: {described}"
    return resp


@settings(FUZZ, max_examples=110)
@given(
    verb=method, path=endpoint, params=query, body=json_body, headers=headers, ctype=content_type
)
def test_any_request_to_any_endpoint(fuzz_client, verb, path, params, body, headers, ctype):
    send(fuzz_client, verb, path, params=params, body=body, content_type=ctype, **headers)


@settings(FUZZ, max_examples=40)
@given(
    path=st.sampled_from(["/Users", "/Groups", "/Users/.search", "/Groups/.search", "/.search"]),
    expression=st.one_of(valid_filter, filter_text),
    extra=query,
)
def test_filters(fuzz_client, path, expression, extra):
    if path.endswith(".search"):
        send(fuzz_client, "POST", path, body={"schemas": [SEARCH], "filter": expression, **extra})
    else:
        send(fuzz_client, "GET", path, params={**extra, "filter": expression})


@settings(FUZZ, max_examples=50)
@given(
    path=st.sampled_from([f"/Users/{UID}", f"/Groups/{GID}"]),
    operations=st.lists(st.one_of(valid_patch_operation, patch_operation), min_size=1, max_size=4),
    params=query,
    headers=headers,
)
def test_patch_operations(fuzz_client, path, operations, params, headers):
    body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
    send(fuzz_client, "PATCH", path, params=params, body=body, **headers)


@settings(FUZZ, max_examples=30)
@given(
    verb=st.sampled_from(["POST", "PUT", "PATCH"]),
    path=st.sampled_from(["/Users", f"/Users/{UID}", f"/Groups/{GID}", "/.search", "/Bulk"]),
    raw=raw_body,
    ctype=odd_content_type,
)
def test_raw_bodies(fuzz_client, verb, path, raw, ctype):
    send(fuzz_client, verb, path, raw=raw, content_type=ctype)


@settings(FUZZ, max_examples=25)
@given(
    body=st.one_of(
        bulk_body,
        st.fixed_dictionaries(
            {
                "schemas": st.just([BULK]),
                "Operations": st.lists(
                    st.one_of(
                        st.fixed_dictionaries(
                            {
                                "method": st.just("POST"),
                                "path": st.just("/Users"),
                                "bulkId": st.sampled_from(["a", "b"]),
                                "data": valid_user,
                            }
                        ),
                        st.fixed_dictionaries(
                            {
                                "method": st.just("PATCH"),
                                "path": st.sampled_from(["/Users/bulkId:a", f"/Groups/{GID}"]),
                                "data": valid_patch,
                            }
                        ),
                        st.fixed_dictionaries(
                            {"method": st.just("DELETE"), "path": st.just("/Users/bulkId:b")}
                        ),
                    ),
                    min_size=1,
                    max_size=4,
                ),
            }
        ),
    )
)
def test_bulk_requests(fuzz_client, body):
    send(fuzz_client, "POST", "/Bulk", body=body)
