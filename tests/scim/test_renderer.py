"""SCIM responses written by orjson are the bytes DRF's JSON renderer writes
(``provisioning.scim.api.ScimRenderer``), and what orjson cannot write goes to DRF's."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest
from django.utils.functional import lazy
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer

from provisioning.scim.api import ScimRenderer

# Floats are written alike but for a negative exponent's leading zero (1e-07 / 1e-7).
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: "e-0" not in repr(f))
    | st.text(st.characters(blacklist_categories=("Cs",)))
)
_documents = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",))), children, max_size=5),
    max_leaves=40,
)


def _drf(data, media_type=None) -> bytes:
    return JSONRenderer().render(data, media_type)


@settings(max_examples=300, deadline=None)
@given(_documents)
def test_the_bytes_are_drfs(document):
    assert ScimRenderer().render(document) == _drf(document)


def test_separators_and_javascript_line_breaks_are_escaped_as_drf_does():
    document = {"a": "line\u2028para\u2029", "b": "\x00\x1f\x7f é 😀", "c": [1, 2.5, True, None]}
    rendered = ScimRenderer().render(document)
    assert rendered == _drf(document)
    assert b"\\u2028" in rendered and b"\\u2029" in rendered and json.loads(rendered) == document


def test_types_orjson_does_not_know_go_to_drfs_encoder():
    later = lazy(lambda: "lazy text", str)
    document = {
        "when": dt.datetime(2026, 11, 30, 2, 35, 12, 123456, tzinfo=dt.UTC),
        "day": dt.date(2026, 11, 30),
        "amount": decimal.Decimal("12.50"),
        "id": uuid.UUID("2819c223-7f76-453a-919d-413861904646"),
        "lazy": later(),
    }
    assert ScimRenderer().render(document) == _drf(document)


@pytest.mark.parametrize(
    "document",
    [{"big": 2**64}, {1: "non-string key"}, {"float": 1e-07}],
    ids=["integer-beyond-64-bits", "non-string-key", "negative-exponent"],
)
def test_what_orjson_refuses_or_writes_otherwise_is_still_json(document):
    rendered = ScimRenderer().render(document)
    assert json.loads(rendered) == json.loads(_drf(document))


def test_a_lone_surrogate_fails_as_before():
    with pytest.raises(UnicodeEncodeError):
        _drf({"bad": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        ScimRenderer().render({"bad": "\ud800"})


def test_an_indented_rendering_is_drfs():
    document = {"a": [1, {"b": "c"}]}
    media = "application/scim+json; indent=2"
    assert ScimRenderer().render(document, media) == _drf(document, media)
    assert b"\n  " in ScimRenderer().render(document, media)


def test_a_list_page_is_rendered_as_before(scim):
    from tests.factories import UserFactory

    UserFactory.create_bulk(30)
    response = scim.get("/Users", params={"count": 30})
    body = json.loads(response.content)
    assert response.content == _drf(body) and body["itemsPerPage"] == 30
