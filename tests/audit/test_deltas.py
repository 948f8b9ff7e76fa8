"""What an update keeps (provisioning/audit/deltas.py): the document before the change is
rebuilt exactly from the one it left, for any pair of documents."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.audit import deltas

EXTENSION = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

text = st.text(alphabet="abcXYZ@.", min_size=1, max_size=6)
email = st.fixed_dictionaries(
    {"value": text}, optional={"type": st.sampled_from(["work", "home"]), "primary": st.booleans()}
)
emails = st.lists(email, min_size=1, max_size=12)
extension = st.dictionaries(st.sampled_from(["department", "costCenter", "division"]), text, min_size=1)
document = st.fixed_dictionaries(
    {"userName": text},
    optional={
        "title": text,
        "active": st.booleans(),
        "name": st.fixed_dictionaries({"givenName": text}, optional={"familyName": text}),
        "emails": emails,
        "phoneNumbers": st.lists(st.fixed_dictionaries({"value": text}), min_size=1, max_size=3),
        EXTENSION: extension,
    },
)


@st.composite
def edited(draw, documents=document):
    """A document and another one derived from it, or unrelated to it."""
    before = draw(documents)
    if draw(st.booleans()):
        return before, draw(documents)
    after = {**before}
    if "emails" in before and draw(st.booleans()):
        values = list(before["emails"])
        for _ in range(draw(st.integers(0, 4))):
            choice = draw(st.sampled_from(["insert", "delete", "change"]))
            at = draw(st.integers(0, len(values)))
            if choice == "insert":
                values.insert(at, draw(email))
            elif values and at < len(values):
                values[at : at + 1] = [] if choice == "delete" else [draw(email)]
        after["emails"] = values or draw(emails)
    if draw(st.booleans()):
        after["title"] = draw(text)
    if EXTENSION in before and draw(st.booleans()):
        after[EXTENSION] = {**before[EXTENSION], "division": draw(text)}
    return before, after


@settings(max_examples=300, deadline=None)
@given(edited())
def test_the_document_before_is_rebuilt_exactly(pair):
    before, after = pair
    old, new = deltas.update_snapshots(before, after)
    assert deltas.state(old) == deltas.digest(before)
    assert deltas.state(new) == deltas.document_state(after)
    assert deltas.document_before(old, new, after) == before


@settings(max_examples=300, deadline=None)
@given(st.lists(text, max_size=15), st.lists(text, max_size=15))
def test_list_edits_turn_one_list_into_the_other(old, new):
    result = list(old)
    for i1, i2, j1, j2 in reversed(deltas.list_edits(old, new)):
        result[i1:i2] = new[j1:j2]
    assert result == new


@settings(max_examples=200, deadline=None)
@given(edited(), document)
def test_rebuilding_from_a_resource_changed_since_never_fails(pair, later):
    """A forced rollback over later changes: the attributes the change touched get their
    values from before it, the others keep theirs."""
    before, after = pair
    old, new = deltas.update_snapshots(before, after)
    rebuilt = deltas.document_before(old, new, later)
    touched = {tuple(change["path"]) for change in new["changes"]}
    for key, value in later.items():
        if (key,) not in touched and not any(path[0] == key for path in touched):
            assert rebuilt[key] == value


def test_one_value_changed_in_a_long_list_keeps_that_value():
    before = {"userName": "a", "emails": [{"value": f"u{i}"} for i in range(100)]}
    after = {"userName": "a", "emails": [*before["emails"][:50], {"value": "new"}, *before["emails"][51:]]}
    old, new = deltas.update_snapshots(before, after)
    assert old["document"] == {"emails": [{"value": "u50"}]}
    assert new["document"] == {"emails": [{"value": "new"}]}
    assert new["changes"] == [{"path": ["emails"], "edits": [[50, 51, 50, 51]]}]


def test_an_extension_attribute_is_kept_on_its_own():
    before = {"userName": "a", EXTENSION: {"department": "R&D", "costCenter": "1"}}
    after = {"userName": "a", EXTENSION: {"department": "Board", "costCenter": "1"}}
    old, new = deltas.update_snapshots(before, after)
    assert old["document"] == {EXTENSION: {"department": "R&D"}}
    assert new["document"] == {EXTENSION: {"department": "Board"}}
    assert deltas.document_before(old, new, after) == before


def test_json_types_are_told_apart():
    """``1 == True`` in Python; a document holding one is not the same as one holding the other."""
    old, new = deltas.update_snapshots({"x": 1}, {"x": True})
    assert new["document"] == {"x": True} and old["document"] == {"x": 1}


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-2, max_value=2)
    | st.sampled_from([0.0, -0.0, 1.0, 2.0, float("nan")])
    | st.sampled_from(["", "a", "A"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner, max_size=2),
    max_leaves=8,
)


@settings(max_examples=500, deadline=None)
@given(_json_values, _json_values)
def test_same_is_equal_canonical_json(old, new):
    """``_same`` walks values instead of encoding them and agrees with comparing their
    canonical JSON (``1``, ``1.0`` and ``true`` differ; ``0.0`` and ``-0.0`` differ)."""
    from provisioning.audit.models import canonical_json

    expected = old == new and canonical_json(old) == canonical_json(new)
    assert deltas._same(old, new) is expected
    assert deltas._same(old, old) is (old == old)


def test_same_tells_numbers_and_booleans_apart():
    assert not deltas._same({"a": [1]}, {"a": [True]})
    assert not deltas._same([1], [1.0])
    assert not deltas._same(0.0, -0.0)
    assert deltas._same({"a": [1, {"b": "x"}], "c": None}, {"c": None, "a": [1, {"b": "x"}]})
