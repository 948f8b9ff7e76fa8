"""The canonical text a row's hash covers, encoded once (provisioning/audit/models.py).

A row is hashed as it is written and again by ``verifyaudit`` from what the database
gives back. ``normalised_json`` and ``canonical_payload`` give the text of the JSON
fields once, for the hash and for the column alike: for any value, what they give must
be exactly what encoding the read-back value gives, or a row written today would fail
verification tomorrow.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.audit.change_sets import change_set_build, insert_together
from provisioning.audit.models import (
    ChangeRecord,
    ChangeSet,
    audit_hmac,
    canonical_json,
    canonical_payload,
    normalised_json,
)

# What a JSON field can be handed: JSON itself, and what the encoder turns into JSON
# (tuples, datetimes, UUIDs, decimals, non-string keys, NaN and infinities).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.uuids(),
    st.datetimes(timezones=st.just(datetime.UTC)),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        # Keys of one type: json sorts them before turning them into strings.
        st.dictionaries(st.integers(min_value=-1000, max_value=1000), inner, max_size=4),
    ),
    max_leaves=12,
)


def json_roundtrip(value):
    """What a JSON column gives back: the value encoded, then decoded (the oracle)."""
    return json.loads(canonical_json(value))


def _same(left, right) -> bool:
    """Equal, NaN included (NaN is not equal to itself)."""
    return canonical_json(left) == canonical_json(right)


@settings(max_examples=400, deadline=None)
@given(values)
def test_normalised_json_is_the_round_trip_and_its_text(value):
    normal, text = normalised_json(value)
    assert _same(normal, json_roundtrip(value))
    # The text is the encoding of what the column gives back, not of what was handed in.
    assert text == canonical_json(json_roundtrip(value))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "before", "after", "z_9", "Id"]), values, max_size=6), st.data())
def test_canonical_payload_is_the_canonical_json_of_the_normalised_values(fields, data):
    normalised = {}
    texts = {}
    for key, value in fields.items():
        if data.draw(st.booleans(), label=f"{key} as text"):
            normalised[key], texts[key] = normalised_json(value)
        else:
            normalised[key] = value
    assert canonical_payload(normalised, texts) == canonical_json(normalised)


def test_int_keys_sort_as_the_strings_they_become():
    """The one case where encoding a value and encoding it read back differ: ``{2: .., 10: ..}``
    sorts 2 before 10, but read back ``"10"`` sorts before ``"2"``."""
    value = {2: "b", 10: "a"}
    assert canonical_json(value) == '{"2":"b","10":"a"}'
    normal, text = normalised_json(value)
    assert normal == {"10": "a", "2": "b"}
    assert text == '{"10":"a","2":"b"}'


def test_nan_is_encoded_as_read_back():
    normal, text = normalised_json([math.nan, math.inf])
    assert text == "[NaN,Infinity]"
    assert math.isnan(normal[0])


def _record(change_set: ChangeSet, before, after) -> ChangeRecord:
    return ChangeRecord(
        change_set=change_set,
        action="patch",
        resource_type="User",
        resource_id=uuid.uuid4(),
        resource_name="alice@example.com",
        before=before,
        after=after,
        changed_attributes=("title",),
        members_added=[{"value": str(uuid.uuid4()), "type": "User"}],
        search_text="User alice title",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "before, after",
    [
        ({"document": {"title": "Engineer"}, "version": 3}, {"document": {"title": "Manager"}, "version": 4}),
        # Values that are not JSON as handed in: what is stored and hashed is their JSON.
        (
            {"document": {"title": ("a", "b")}, "ids": {2: "two", 10: "ten"}},
            {"at": datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC), "n": decimal.Decimal("1.50")},
        ),
    ],
)
def test_a_record_written_verifies_against_what_the_database_gives_back(before, after):
    """Through ``insert_together`` (one statement on PostgreSQL, the JSON sent as text cast
    to jsonb; two saves elsewhere): the row read back hashes to the hash it was written
    with, and its JSON columns hold the values the record was normalised to."""
    change_set = change_set_build(
        correlation_id=uuid.uuid4(),
        source="scim",
        request={"method": "PATCH", "body": {"Operations": [{"op": "replace", "path": "title"}]}},
    )
    record = _record(change_set, before, after)
    insert_together(change_set, record)
    stored = ChangeRecord.objects.get(pk=record.pk)
    stored_set = ChangeSet.objects.get(pk=change_set.pk)
    assert stored_set.compute_hash() == stored_set.content_hash == change_set.content_hash
    assert stored.compute_hash() == stored.content_hash == record.content_hash
    assert stored.content_hash == audit_hmac(canonical_json(stored.hash_values()))
    for field in ("before", "after", "changed_attributes", "members_added", "members_removed"):
        assert getattr(stored, field) == getattr(record, field), field
    assert stored.before == json_roundtrip(before)
    assert stored_set.request == change_set.request


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_json_columns_are_sent_as_their_canonical_text():
    change_set = change_set_build(correlation_id=uuid.uuid4(), source="scim", request={"b": 1, "a": [2]})
    record = _record(change_set, {"document": {"title": "x"}}, {"document": {"title": "y"}})
    with CaptureQueriesContext(connection) as ctx:
        insert_together(change_set, record)
    [query] = ctx.captured_queries
    assert query["sql"].count("::jsonb") == 6
    assert '\'{"a":[2],"b":1}\'::jsonb' in query["sql"]
