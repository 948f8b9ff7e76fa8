"""Redaction reads a request the way the parsers do: any letter case, PATCH path/value
pairs (RFC 7644 §3.5.2), Bulk data (§3.7), form-encoded and unparseable bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.audit.redaction import (
    REDACTED,
    Redacted,
    is_secret_key,
    redact,
    redact_body,
    redact_body_text,
    redact_query,
)
from provisioning.scim.schema import RESOURCE_SCHEMAS, schema_documents

SECRET = "Hidden-Value-31415"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD_URN = "urn:ietf:params:scim:schemas:core:2.0:User:password"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "PASSWORD",
        "password1",
        "Password_2",
        "userPassword",
        "passwd",
        "pwd",
        "pass",
        "pw",
        "passphrase",
        "passcode",
        "pin",
        "otp",
        "secret",
        "client_secret",
        "clientSecret",
        "Client-Secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "bearer",
        "credential",
        "credentials",
        "Authorization",
        "client_assertion",
        "privateKey",
        "private_key",
        "private-key",
        "PRIVATE KEY",
        "api_key",
        "apiKey",
        "x-api-key",
        "signing_key",
        PASSWORD_URN,
        PASSWORD_URN.upper(),
        "password.value",
        'password[type eq "x"]',
        'password[type eq "x"].value',
        "pass\u00adword",
        "to\u212aen",
    ],
)
def test_secret_names_in_every_spelling(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "userName",
        "displayName",
        "name.givenName",
        "title",
        "emails",
        "value",
        "path",
        "op",
        "passive",
        "compass",
        "shipping",
        "typing",
        "hold_keys",
        "publicKey",
        "keywords",
        'emails[value eq "password"].value',
        'emails[type eq "token"]',
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "",
        "   ",
    ],
)
def test_ordinary_names_are_not_secrets(key):
    assert not is_secret_key(key)


def _attribute_names(attributes):
    for attribute in attributes:
        yield attribute.name
        yield from _attribute_names(attribute.sub_attributes.values())


def test_no_attribute_the_server_stores_is_taken_for_a_secret():
    """A held operation's stored request is redacted and applied later: only attributes
    the directory drops anyway (``password``) may be replaced in it."""
    names = {
        name
        for schema in RESOURCE_SCHEMAS.values()
        for attributes in schema.attributes.values()
        for name in _attribute_names(attributes.values())
    }
    assert {"userName", "emails", "x509Certificates", "employeeNumber", "members"} <= names
    assert {name for name in names if is_secret_key(name)} == {"password"}
    # The discovery documents are logged as responses: nothing in them is replaced.
    documents = schema_documents()
    assert redact(documents) == documents


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Replace", "Path": "password", "Value": SECRET},
        {"OP": "replace", "PATH": "PASSWORD", "VALUE": SECRET},
        {"op": "add", "path": PASSWORD_URN, "value": SECRET},
        {"op": "add", "pAtH": f" {PASSWORD_URN.upper()} ", "vAlUe": SECRET},
        {"op": "replace", "path": "password.value", "value": SECRET},
        {"op": "replace", "path": 'password[type eq "work"]', "Value": SECRET},
        {"op": "replace", "path": "password1", "value": {"nested": [SECRET]}},
        {"op": "replace", "path": f'password[value eq "{SECRET}"]'},
        {"op": "replace", "value": {"PassWord": SECRET, "title": "kept"}},
        {"op": "replace", "value": {PASSWORD_URN: SECRET}},
        {
            "op": "replace",
            "Value": {"urn:ietf:params:scim:schemas:core:2.0:User": {"password": SECRET}},
        },
    ],
)
def test_patch_operations_lose_their_secret_however_spelled(operation):
    body = {
        "schemas": [PATCH_OP],
        "Operations": [operation, {"op": "add", "path": "title", "value": "t"}],
    }
    cleaned = redact(body)
    assert SECRET not in json.dumps(cleaned)
    assert cleaned["Operations"][1] == {"op": "add", "path": "title", "value": "t"}
    raw = json.dumps(body).encode()
    for stored in (redact_body(raw)[1], redact_body_text(raw), json.dumps(redact_body(raw)[0])):
        assert SECRET not in stored and REDACTED in stored


def test_a_value_filter_naming_a_secret_is_not_a_secret_attribute():
    operation = {
        "op": "replace",
        "path": 'emails[value eq "password"].value',
        "value": "a@example.com",
    }
    assert redact(operation) == operation


@pytest.mark.parametrize("data_key", ["data", "Data", "DATA"])
@pytest.mark.parametrize("value_key", ["value", "Value", "VALUE"])
def test_bulk_operations_lose_their_secret(data_key, value_key):
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "PATCH",
                "path": "/Users/1",
                data_key: {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "path": "password", value_key: SECRET}],
                },
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "x",
                data_key: {"userName": "u", "Password": SECRET},
            },
        ],
    }
    assert SECRET not in redact_body_text(json.dumps(body).encode())


@pytest.mark.parametrize(
    "raw",
    [
        f"userName=ann&password={SECRET}".encode(),
        f"userName=ann&p%61ssword={SECRET}".encode(),
        f"userName=ann&pass+word={SECRET}".encode(),
        f"PWD={SECRET}&x=1".encode(),
        f"userName=ann&note=a;password={SECRET}".encode(),
    ],
)
def test_form_encoded_bodies_keep_their_pairs_without_secrets(raw):
    stored = redact_body_text(raw, "application/x-www-form-urlencoded")
    assert SECRET not in stored
    assert stored.startswith(("userName=ann&", "[unparsed body", "PWD=[REDACTED]"))


@pytest.mark.parametrize(
    "raw",
    [
        # Invalid JSON, with keys the old loose pattern missed (password1) or did not.
        f'{{"userName": "eve", "password1": "{SECRET}"}}garbage'.encode(),
        f'{{"userName": "eve", "password": "{SECRET}",}}'.encode(),
        f'{{"Operations":[{{"op":"replace","Path":"password","Value":"{SECRET}"}}]'.encode(),
        # Not JSON at all, with no secret-like name anywhere.
        f"my new one is {SECRET}".encode(),
        f"{SECRET}".encode(),
        # Bytes that are not UTF-8, and nesting deeper than any parser recurses.
        b'\x80\xff{"password": "' + SECRET.encode() + b'"}',
        b"[" * 5000 + f'{{"password": "{SECRET}"}}'.encode() + b"]" * 5000,
    ],
)
def test_a_body_that_cannot_be_parsed_keeps_only_size_type_and_shape(raw):
    for stored in (
        redact_body_text(raw, "application/scim+json; charset=utf-8"),
        redact_body(raw)[1],
    ):
        assert SECRET not in stored
        assert stored.startswith(f"[unparsed body: {len(raw)} bytes, ")
    assert redact_body_text(raw, "application/scim+json; charset=utf-8").startswith(
        f"[unparsed body: {len(raw)} bytes, application/scim+json] "
    )
    assert redact_body(raw)[0] is None


def test_the_shape_of_an_unparsed_body_keeps_names_and_masks_values():
    raw = b'{"userName": "eve",\n "password": "x", "n": 12, "ok": true,}'
    assert redact_body_text(raw, "application/json") == (
        f"[unparsed body: {len(raw)} bytes, application/json] "
        '{"userName": "*", "password": "*", "n": *, "ok": *,}'
    )
    # A client's header is not stored as sent either.
    assert ", text/other]" in redact_body_text(raw, f"text/{SECRET}; x=<y>")
    assert ", unknown]" in redact_body_text(raw, f"{SECRET}/plain")
    assert ", unknown]" in redact_body_text(raw)


def test_valid_json_without_secrets_is_kept_exactly_and_with_them_is_storable():
    raw = '{"userName": "zoë@example.com",\n "active": true}'.encode()
    assert redact_body_text(raw) == raw.decode()
    # A lone surrogate sent escaped stays escaped: the text can be stored anywhere.
    stored = redact_body_text(b'{"title": "\\ud800", "password": "x"}')
    stored.encode("utf-8")
    assert stored == '{"title":"\\ud800","password":"[REDACTED]"}'


@pytest.mark.parametrize(
    "query",
    [
        f"password={SECRET}",
        f"PassWord={SECRET}&count=1",
        f"access_token={SECRET}",
        f"client-secret={SECRET}",
        f"a=1;password={SECRET}",
        f"filter=password+eq+%22{SECRET}%22",
        f'filter={PASSWORD_URN} eq "{SECRET}" and userName eq "x"',
    ],
)
def test_query_strings_lose_their_secret(query):
    assert SECRET not in redact_query(query)


def test_ordinary_query_strings_are_kept():
    assert (
        redact_query('filter=userName eq "bob"&count=10') == "filter=userName+eq+%22bob%22&count=10"
    )
    assert (
        redact_query('attributes=emails[type eq "work"]') == "attributes=emails[type+eq+%22work%22]"
    )


_names = st.sampled_from(["password", "Password1", "PWD", "client_secret", "privateKey", "TOKEN"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["userName", "title", "emails", "value", "op"]), children, max_size=3
        )
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    document=_json,
    name=_names,
    path_key=st.sampled_from(["path", "Path", "PATH"]),
    value_key=st.sampled_from(["value", "Value", "VALUE"]),
    where=st.integers(0, 1),
)
def test_a_secret_anywhere_in_any_document_is_never_stored(
    document, name, path_key, value_key, where
):
    secret = {name: SECRET} if where else {"op": "replace", path_key: name, value_key: SECRET}
    body = {"Operations": [document, secret], "data": [secret, document]}
    raw = json.dumps(body).encode()
    assert SECRET not in redact_body_text(raw)
    assert SECRET not in json.dumps(redact_body(raw)[0])


def test_only_what_redaction_made_is_not_redacted_again():
    """``_describe`` marks the request it redacted; ``redact`` gives that back as it is
    (no second copy) and still redacts any plain object, whoever built it."""
    from django.test import RequestFactory

    from provisioning.audit.middleware import _describe

    body = b'{"userName": "a", "password": "hunter2"}'
    request = RequestFactory().post("/scim/v2/Users?access_token=abc", body, content_type="application/json")
    described = _describe(request, body)
    assert isinstance(described, Redacted)
    assert described["body"]["password"] == REDACTED and "abc" not in described["query"]
    assert redact(described) is described
    plain = dict(described, body={"password": "hunter2"})
    assert redact(plain)["body"]["password"] == REDACTED
