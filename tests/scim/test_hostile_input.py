"""Hostile input gets a SCIM 400, never a 500, and the same answer on SQLite and PostgreSQL.

NUL characters and lone surrogates are refused wherever they appear (PostgreSQL
cannot store a NUL, and no JSON encoder can write a lone surrogate as UTF-8);
JSON nested deeper than the parser allows is refused before it recurses; every
field of a request body is type-checked; values longer than an attribute's
declared maximum are refused before they reach a column; and filter literals the
database cannot represent are ``invalidFilter``.
"""

from __future__ import annotations

import json

import pytest

from provisioning.directory.models import Group, User
from provisioning.scim.api import json_depth
from provisioning.scim.schema import GROUP_SCHEMA as GROUP_RESOURCE
from provisioning.scim.schema import USER_SCHEMA as USER_RESOURCE
from tests.scim.conftest import ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
WRONG_TYPE = ("invalidValue", "invalidSyntax")

NUL = "\x00"
SURROGATE = "\ud800"


@pytest.fixture
def alice(scim) -> dict:
    return scim.create_user("alice@x.com", displayName="Alice")


def _raw(document) -> str:
    """JSON text as an IdP writes it: non-ASCII escaped, so a lone surrogate travels as \\ud800."""
    return json.dumps(document)


# -- NUL characters and lone surrogates ------------------------------------------------------------


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: {"userName": f"a{s}b"},
        lambda s: {"userName": "ok@x.com", "displayName": s},
        lambda s: {"userName": "ok@x.com", "title": f"x{s}"},
        lambda s: {"userName": "ok@x.com", "emails": [{"value": f"a{s}@x.com", "type": "work"}]},
        lambda s: {"userName": "ok@x.com", "name": {"givenName": s}},
        lambda s: {"userName": "ok@x.com", ENTERPRISE_SCHEMA: {"department": s}},
        lambda s: {"userName": "ok@x.com", f"title{s}": "x"},
        lambda s: {"userName": "ok@x.com", "name": {f"given{s}Name": "x"}},
        lambda s: {"userName": "ok@x.com", "schemas": [USER_SCHEMA, s]},
    ],
    ids=[
        "userName",
        "displayName",
        "title",
        "email",
        "name-part",
        "extension",
        "key",
        "nested-key",
        "schemas",
    ],
)
def test_nul_and_lone_surrogate_in_body_are_invalid_value(scim, make, bad):
    body = {"schemas": [USER_SCHEMA], **make(bad)}

    resp = scim.post("/Users", raw=_raw(body))

    scim.assert_error(resp, 400, "invalidValue")
    assert not User.objects.exists()


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_and_lone_surrogate_in_patch_are_invalid_value(scim, alice, bad):
    for operation in (
        {"op": "replace", "path": "displayName", "value": f"x{bad}"},
        {"op": "replace", "path": f"display{bad}Name", "value": "x"},
        {"op": "replace", "value": {"displayName": bad}},
    ):
        body = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
        resp = scim.patch(f"/Users/{alice['id']}", raw=_raw(body))

        scim.assert_error(resp, 400, "invalidValue")
    assert User.objects.get().display_name == "Alice"


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_and_lone_surrogate_in_group_and_bulk_are_invalid_value(scim, bad):
    group = {"schemas": [GROUP_SCHEMA], "displayName": f"G{bad}"}
    scim.assert_error(scim.post("/Groups", raw=_raw(group)), 400, "invalidValue")
    bulk = {
        "schemas": [BULK],
        "Operations": [{"method": "POST", "path": "/Groups", "bulkId": "g", "data": group}],
    }
    scim.assert_error(scim.post("/Bulk", raw=_raw(bulk)), 400, "invalidValue")
    assert not Group.objects.exists()


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize("endpoint", ["/.search", "/Users/.search", "/Groups/.search"])
def test_nul_and_lone_surrogate_in_search_body_are_invalid_value(scim, endpoint, bad):
    for body in (
        {"schemas": [SEARCH], "filter": f'displayName eq "{bad}"'},
        {"schemas": [SEARCH], "attributes": [f"display{bad}Name"]},
        {"schemas": [SEARCH], "sortBy": bad},
    ):
        scim.assert_error(scim.post(endpoint, raw=_raw(body)), 400, "invalidValue")


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_and_lone_surrogate_in_a_delete_body_are_invalid_value(scim, alice, bad):
    # The view ignores the body, but the DELETE's change set records its request.
    body = {"schemas": [USER_SCHEMA], "userName": f"x{bad}"}

    resp = scim.delete(f"/Users/{alice['id']}", raw=_raw(body))

    scim.assert_error(resp, 400, "invalidValue")
    assert User.objects.filter(pk=alice["id"]).exists()


@pytest.mark.parametrize(
    "raw", ["not json", "[" * 100_000, '{"a": NaN}', "\x00", b"\xff"], ids=repr
)
def test_a_malformed_delete_body_is_invalid_syntax(scim, alice, raw):
    # RFC 9110 §9.3.5: a DELETE body has no defined meaning; one that is sent must be
    # well-formed, since the change set of the DELETE records it.
    resp = scim.delete(f"/Users/{alice['id']}", raw=raw)

    scim.assert_error(resp, 400, "invalidSyntax")
    assert User.objects.filter(pk=alice["id"]).exists()


def test_a_well_formed_delete_body_does_not_stop_the_delete(scim, alice):
    resp = scim.delete(f"/Users/{alice['id']}", {"schemas": [USER_SCHEMA], "userName": "x"})

    assert resp.status_code == 204, resp.content
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "path",
    ["/Users/%00", "/Groups/a%00b", "/Users/%00/x", "/PendingOperations/%00", "/Sch%00emas"],
)
def test_nul_in_the_url_path_is_invalid_value(scim, path):
    scim.assert_error(scim.get(path), 400, "invalidValue")


@pytest.mark.parametrize("path", ["/%0A", "/Users%0A", "/a%0Ab"])
def test_a_path_with_a_newline_is_a_scim_404(scim, path):
    scim.assert_error(scim.get(path), 404)


@pytest.mark.parametrize(
    "params",
    [
        {"filter": 'userName eq "a"', "attributes": f"user{NUL}Name"},
        {"excludedAttributes": NUL},
        {"sortBy": f"userName{NUL}"},
        {"count": f"1{NUL}"},
        {"startIndex": NUL},
        {"sortOrder": NUL},
        {f"x{NUL}": "1"},
    ],
    ids=["attributes", "excluded", "sortBy", "count", "startIndex", "sortOrder", "name"],
)
def test_nul_in_a_query_parameter_is_invalid_value(scim, alice, params):
    scim.assert_error(scim.get("/Users", params=params), 400, "invalidValue")
    scim.assert_error(scim.get(f"/Users/{alice['id']}", params=params), 400, "invalidValue")


@pytest.mark.parametrize("header", ["HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH"])
def test_nul_in_a_header_that_is_read_is_invalid_value(scim, alice, header):
    resp = scim.get(f"/Users/{alice['id']}", **{header: f'W/"1"{NUL}'})
    scim.assert_error(resp, 400, "invalidValue")
    resp = scim.put(
        f"/Users/{alice['id']}",
        {"schemas": [USER_SCHEMA], "userName": "alice@x.com", "displayName": "Changed"},
        **{header: f'W/"1"{NUL}'},
    )
    scim.assert_error(resp, 400, "invalidValue")
    assert User.objects.get().display_name == "Alice"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"userName": "a\x00b"}',
        b'{"userName": "ok@x.com"}\x00',
        b'{"userName": "\xff\xfe"}',
        b'{"userName": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8: not UTF-8
        b"\x00",
        b'{"userName": NaN}',
        b'{"userName": "ok@x.com", "title": 1e999}',
        b'{"userName": ' + b"9" * 5000 + b"}",
    ],
    ids=[
        "nul-in-string",
        "nul-after",
        "bad-utf8",
        "encoded-surrogate",
        "only-nul",
        "nan",
        "infinite",
        "5000-digits",
    ],
)
def test_raw_nul_byte_or_undecodable_body_is_400(scim, raw):
    resp = scim.post("/Users", raw=raw)

    scim.assert_error(resp, 400, WRONG_TYPE)
    assert not User.objects.exists()


@pytest.mark.parametrize("charset", ["rot13", "utf-16", "latin-1", "bogus"])
def test_declared_charsets_do_not_break_parsing(scim, charset):
    # RFC 8259 §8.1: JSON exchanged between systems is UTF-8; a declared charset is not obeyed.
    raw = json.dumps({"schemas": [USER_SCHEMA], "userName": "cs@x.com"}).encode()

    resp = scim.post("/Users", raw=raw, content_type=f"application/scim+json; charset={charset}")

    assert resp.status_code == 201, resp.content


# -- nesting depth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_invalid_syntax(scim, alice, depth, opener):
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    for method, path, raw in (
        ("POST", "/Users", f'{{"userName": "n@x.com", "title": {nested}}}'),
        ("PATCH", f"/Users/{alice['id']}", f'{{"Operations": {nested}}}'),
        ("POST", "/.search", nested),
        ("POST", "/Bulk", nested),
    ):
        resp = scim.request(method, path, raw=raw)
        body = scim.assert_error(resp, 400, "invalidSyntax")
        assert "nest" in body["detail"]
    assert User.objects.count() == 1


def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(scim):
    # 60 levels of a value the schema refuses: parsed, then refused as a value, not as syntax.
    nested = "[" * 60 + "]" * 60
    resp = scim.post("/Users", raw=f'{{"userName": "n@x.com", "title": {nested}}}')
    scim.assert_error(resp, 400, "invalidValue")
    # Brackets inside strings are text, however many.
    user = scim.create_user("b@x.com", title="[" * 500 + '\\"{' * 100)
    assert user["title"] == "[" * 500 + '\\"{' * 100


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [{"b": []}], "c": {}}', 4),
        (json.dumps(["[[[", "]]]]]", "\\", '\\"[[', '"{']).encode(), 1),
        (b"[[[" + b"]" * 10, 3),
        (b'[["unterminated [[[[[[ \\" [[[', 2),  # the rest is one string
        (b"[" * 1000, 1000),
    ],
)
def test_json_depth_counts_brackets_outside_strings(raw, depth):
    assert json_depth(raw) == depth


# -- request-body field types ----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/.search", "/Users/.search", "/Groups/.search"])
@pytest.mark.parametrize(
    "fields",
    [
        {"schemas": 5},
        {"schemas": SEARCH},
        {"schemas": [SEARCH, 5]},
        {"schemas": {"a": SEARCH}},
        {"attributes": {}},
        {"attributes": {"a": 1}},
        {"attributes": 5},
        {"attributes": ["userName", 5]},
        {"excludedAttributes": {}},
        {"excludedAttributes": [["x"]]},
        {"filter": 5},
        {"filter": ["userName pr"]},
        {"filter": {}},
        {"startIndex": "one"},
        {"startIndex": 1.5},
        {"startIndex": [1]},
        {"startIndex": True},
        {"count": {}},
        {"count": 2.5},
        {"count": 10**30},
        {"startIndex": 10**30},
        {"startIndex": -(10**30)},
        {"sortBy": 5},
        {"sortBy": ["userName"]},
        {"sortOrder": 5},
        {"sortOrder": ["ascending"]},
        {"sortOrder": "sideways"},
    ],
    ids=repr,
)
def test_search_request_fields_are_type_checked(scim, endpoint, fields):
    body = {"schemas": [SEARCH], **fields}

    scim.assert_error(scim.post(endpoint, body), 400, ("invalidValue", "invalidSyntax"))


@pytest.mark.parametrize("endpoint", ["/.search", "/Users/.search", "/Groups/.search"])
def test_well_typed_search_requests_still_work(scim, alice, endpoint):
    for body in (
        {"schemas": [SEARCH], "attributes": ["id"], "count": 5, "startIndex": 1},
        {"schemas": [SEARCH], "attributes": "id,meta", "count": "5", "startIndex": "1"},
        {"schemas": [SEARCH], "excludedAttributes": [], "filter": "id pr"},
        {"schemas": [SEARCH], "startIndex": 2**62, "count": 10},
        {"schemas": [SEARCH], "count": 2**62},
    ):
        assert scim.post(endpoint, body).status_code == 200, body


@pytest.mark.parametrize(
    "params",
    [
        {"count": str(10**30)},
        {"startIndex": str(10**30)},
        {"startIndex": str(-(10**30))},
        {"count": "9" * 5000},
    ],
    ids=["count", "startIndex", "negative", "5000-digits"],
)
def test_out_of_range_paging_parameters_are_invalid_value(scim, alice, params):
    scim.assert_error(scim.get("/Users", params=params), 400, "invalidValue")


def test_paging_far_beyond_the_end_is_an_empty_page(scim, alice):
    body = scim.search("/Users", startIndex=str(2**62), count=str(2**62))

    assert body["totalResults"] == 1 and body["itemsPerPage"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": 5, "Operations": []},
        {"schemas": BULK, "Operations": [{"method": "DELETE", "path": "/Users/x"}]},
        {"schemas": [BULK, 5], "Operations": [{"method": "DELETE", "path": "/Users/x"}]},
        {"schemas": [BULK], "Operations": [{"method": 5, "path": "/Users", "bulkId": "a"}]},
        {"schemas": [BULK], "Operations": [{"method": "POST", "path": 5, "bulkId": "a"}]},
        {"schemas": [BULK], "Operations": [{"method": "DELETE", "path": {"a": 1}}]},
        {"schemas": [BULK], "Operations": [{"method": "DELETE", "path": "/Users/x", "version": 5}]},
        {"schemas": [BULK], "Operations": [{"method": "PUT", "path": "/Users/x", "version": {}}]},
        {
            "schemas": [BULK],
            "Operations": [{"method": "PUT", "path": "/Users/x", "version": ["1"]}],
        },
        {
            "schemas": [BULK],
            "failOnErrors": "1",
            "Operations": [{"method": "DELETE", "path": "/x"}],
        },
    ],
    ids=repr,
)
def test_bulk_request_fields_are_type_checked(scim, body):
    scim.assert_error(scim.post("/Bulk", body), 400, WRONG_TYPE)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PUT", {"schemas": 5, "userName": "alice@x.com"}),
        ("PUT", {"schemas": [USER_SCHEMA, 5], "userName": "alice@x.com"}),
        ("PATCH", {"schemas": [PATCH_SCHEMA], "Operations": [{"op": 5}]}),
        (
            "PATCH",
            {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": 5, "value": 1}]},
        ),
        ("PATCH", {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "value": 5}]}),
        ("PATCH", {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "value": [1]}]}),
        ("PATCH", {"schemas": 5, "Operations": [{"op": "add", "value": {}}]}),
    ],
    ids=repr,
)
def test_write_bodies_are_type_checked(scim, alice, method, body):
    resp = scim.request(method, f"/Users/{alice['id']}", body)

    scim.assert_error(resp, 400, ("invalidValue", "invalidSyntax", "invalidPath", "noTarget"))
    assert User.objects.get().display_name == "Alice"


# -- declared maximum lengths ----------------------------------------------------------------------

# (resource, attribute path as written in a document, how to put a value there, maximum)
LIMITED = [
    ("User", "userName", lambda v: {"userName": v}, 255),
    ("User", "externalId", lambda v: {"externalId": v}, 255),
    ("User", "displayName", lambda v: {"displayName": v}, 255),
    ("User", "name.givenName", lambda v: {"name": {"givenName": v}}, 255),
    ("User", "name.familyName", lambda v: {"name": {"familyName": v}}, 255),
    ("User", "emails.value", lambda v: {"emails": [{"value": v}]}, 320),
    ("User", "emails.type", lambda v: {"emails": [{"value": "e@x.com", "type": v}]}, 64),
    (
        "User",
        f"{ENTERPRISE_SCHEMA}:employeeNumber",
        lambda v: {ENTERPRISE_SCHEMA: {"employeeNumber": v}},
        255,
    ),
    (
        "User",
        f"{ENTERPRISE_SCHEMA}:manager.value",
        lambda v: {ENTERPRISE_SCHEMA: {"manager": {"value": v}}},
        255,
    ),
    ("Group", "displayName", lambda v: {"displayName": v}, 255),
    ("Group", "externalId", lambda v: {"externalId": v}, 255),
]


def _document(resource: str, extra: dict) -> dict:
    if resource == "User":
        return {"schemas": [USER_SCHEMA], "userName": "limits@x.com", **extra}
    return {"schemas": [GROUP_SCHEMA], "displayName": "Limits", **extra}


@pytest.mark.parametrize(
    ("resource", "name", "make", "maximum"), LIMITED, ids=[f"{r}-{n}" for r, n, _, _ in LIMITED]
)
def test_values_longer_than_the_declared_maximum_are_invalid_value(
    scim, resource, name, make, maximum
):
    endpoint = f"/{resource}s"
    # Multi-byte characters: the limit counts characters, as both databases' columns do.
    too_long = "é" * (maximum + 1)

    body = scim.assert_error(
        scim.post(endpoint, _document(resource, make(too_long))), 400, "invalidValue"
    )

    assert (
        name.rsplit(":", 1)[-1].split(".")[-1] in body["detail"] and str(maximum) in body["detail"]
    )
    model = User if resource == "User" else Group
    assert not model.objects.exists()
    # Exactly the maximum is accepted and stored whole.
    created = scim.ok(scim.post(endpoint, _document(resource, make("é" * maximum))), 201)
    assert "é" * maximum in json.dumps(created, ensure_ascii=False)


def test_maximum_lengths_apply_to_put_patch_and_bulk(scim, alice):
    too_long = "x" * 256
    put = {"schemas": [USER_SCHEMA], "userName": "alice@x.com", "displayName": too_long}
    scim.assert_error(scim.put(f"/Users/{alice['id']}", put), 400, "invalidValue")
    for operation in (
        {"op": "replace", "path": "displayName", "value": too_long},
        {"op": "replace", "value": {"displayName": too_long}},
        {"op": "add", "path": "emails", "value": [{"value": "y" * 321}]},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "y" * 321},
        {"op": "replace", "path": "name.givenName", "value": too_long},
        {"op": "replace", "path": f"{ENTERPRISE_SCHEMA}:manager", "value": too_long},
    ):
        resp = scim.patch_ops(f"/Users/{alice['id']}", operation)
        scim.assert_error(resp, 400, "invalidValue")
    bulk = {
        "schemas": [BULK],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "u",
                "data": _document("User", {"userName": too_long}),
            }
        ],
    }
    [result] = scim.ok(scim.post("/Bulk", bulk))["Operations"]
    assert result["status"] == "400" and result["response"]["scimType"] == "invalidValue"
    assert User.objects.get().display_name == "Alice"


def test_group_member_display_longer_than_its_maximum_is_invalid_value(scim, alice):
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Displayed",
        "members": [{"value": alice["id"], "display": "d" * 256}],
    }
    scim.assert_error(scim.post("/Groups", body), 400, "invalidValue")
    group = scim.create_group("Patched")
    resp = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": alice["id"], "display": "d" * 256}]},
    )
    scim.assert_error(resp, 400, "invalidValue")


def test_schemas_document_the_maximum_lengths(scim):
    schemas = {s["id"]: s for s in scim.read("/Schemas")["Resources"]}
    for resource, name, _make, maximum in LIMITED:
        schema = USER_RESOURCE if resource == "User" else GROUP_RESOURCE
        note = f"at most {maximum} characters"
        if name == "externalId":
            # A common attribute (RFC 7643 §3.1), not listed among the schema's attributes.
            assert f"externalId {note}" in schemas[schema.core]["description"]
            continue
        resolved = schema.resolve(name)
        attributes = schemas[resolved.urn]["attributes"]
        [attribute] = [a for a in attributes if a["name"] == resolved.attribute.name]
        if resolved.sub_attribute is not None:
            [attribute] = [
                s for s in attribute["subAttributes"] if s["name"] == resolved.sub_attribute.name
            ]
        assert note in attribute["description"], (name, attribute)
    [members] = [a for a in schemas[GROUP_SCHEMA]["attributes"] if a["name"] == "members"]
    [display] = [s for s in members["subAttributes"] if s["name"] == "display"]
    assert "at most 255 characters" in display["description"]


def test_declared_maximum_lengths_are_the_column_sizes():
    from provisioning.directory.models import Membership

    columns = {
        ("User", "userName"): User._meta.get_field("user_name"),
        ("User", "externalId"): User._meta.get_field("external_id"),
        ("User", "displayName"): User._meta.get_field("display_name"),
        ("User", "name.givenName"): User._meta.get_field("given_name"),
        ("User", "name.familyName"): User._meta.get_field("family_name"),
        ("User", "emails.value"): User._meta.get_field("primary_email"),
        ("User", "emails.type"): User.email_rows.rel.related_model._meta.get_field("type"),
        ("User", f"{ENTERPRISE_SCHEMA}:employeeNumber"): User._meta.get_field("employee_number"),
        ("User", f"{ENTERPRISE_SCHEMA}:manager.value"): User._meta.get_field("manager_id"),
        ("Group", "displayName"): Group._meta.get_field("display_name"),
        ("Group", "externalId"): Group._meta.get_field("external_id"),
        ("Group", "members.display"): Membership._meta.get_field("display"),
    }
    for (resource, name), column in columns.items():
        schema = USER_RESOURCE if resource == "User" else GROUP_RESOURCE
        assert schema.resolve(name).target.max_length == column.max_length, (resource, name)
    assert {(r, n) for r, n, _, _ in LIMITED} | {("Group", "members.display")} == set(columns)


# -- filter literals out of range ------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        'meta.created gt "9999-12-31T23:59:59-23:59"',
        'meta.lastModified lt "0001-01-01T00:00:00+01:00"',
        'meta.created eq "9999-12-31T23:59:59-00:01"',
        'meta.created gt "10000-01-01T00:00:00Z"',
        'meta.created gt "2024-01-01T00:00:00+99:00"',
        'meta.created gt "2024-02-30T00:00:00Z"',
        'emails[primary eq true] and meta.created ge "0001-01-01T00:00:00+00:01"',
        "userName eq 99999999999999999999",
        "meta.created gt 1e999",
    ],
)
@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
def test_filter_literals_out_of_range_are_invalid_filter(scim, alice, endpoint, expression):
    if endpoint == "/Groups" and expression.startswith("emails"):
        expression = expression.replace("emails[primary eq true]", "members pr")
    scim.assert_error(scim.get(endpoint, params={"filter": expression}), 400, "invalidFilter")


def test_root_search_with_out_of_range_date_is_invalid_filter(scim, alice):
    body = {"schemas": [SEARCH], "filter": 'meta.created gt "9999-12-31T23:59:59-23:59"'}

    scim.assert_error(scim.post("/.search", body), 400, "invalidFilter")


@pytest.mark.parametrize(
    ("expression", "found"),
    [
        # In UTC 9999-12-31T00:00:59: a valid instant, whatever offsets a database takes.
        ('meta.created gt "9999-12-31T23:59:59+23:59"', False),
        ('meta.created lt "9999-12-31T23:59:59+23:59"', True),
        ('meta.created gt "2000-01-01T00:00:00+15:59"', True),
        ('meta.created gt "2000-01-01T00:00:00-15:59"', True),
        ('meta.created lt "9999-12-30T00:00:00+14:00"', True),
        ('meta.created lt "0001-01-02T00:00:00+14:00"', False),
    ],
)
def test_dates_with_offsets_in_range_still_filter(scim, alice, expression, found):
    body = scim.search("/Users", filter=expression)

    assert body["totalResults"] == (1 if found else 0)
