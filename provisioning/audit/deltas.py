"""What the audit trail keeps of an update: the attributes it changed, not the resource.

A create keeps the whole resource (the record of what was created) and a delete keeps
everything a restore needs; an update (replace or patch) keeps only what it changed,
so one change adds a bounded number of bytes however large the resource is:

- ``document`` in the before and after snapshots of a change record holds the changed
  attributes only (extension attributes under their URN, one by one), each with its
  value before and after; an attribute the change added is absent from the before
  document, one it removed from the after document;
- a multi-valued attribute that was a list before and after is kept as the edit:
  the before document holds the values removed, the after document those added, and
  ``changes`` says where (``[i1, i2, j1, j2]``: ``before[i1:i2]`` became
  ``after[j1:j2]``, as ``difflib`` opcodes), so ``emails`` with one value changed
  keeps that value, not the list;
- ``digest`` is a hash of the whole document before and after: a rollback finds a
  resource changed since the change by comparing digests, and rebuilds the document
  before the change from the current one, exactly (``document_before``).

Snapshots recorded before this format (``partial`` absent) hold whole documents and
are read as they are.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from difflib import SequenceMatcher
from typing import Any

from provisioning.scim.resources import copy_json

from .models import canonical_json

PARTIAL = "partial"
# Lists compared element by element when both sides' middles are at most this many
# values long (after common head and tail); beyond, the middle is one edit.
_MATCHED_SPAN = 1000

Path = tuple[str, ...]


def digest(document: dict | None) -> str | None:
    """The hash a snapshot keeps of a whole document (key order does not matter)."""
    if document is None:
        return None
    return hashlib.sha256(canonical_json(document).encode("utf-8", "surrogatepass")).hexdigest()


def is_partial(snapshot: dict | None) -> bool:
    return bool(snapshot) and snapshot.get(PARTIAL) is True


def state(snapshot: dict | None) -> str | None:
    """The digest of the whole document a snapshot describes (None without a snapshot)."""
    if snapshot is None:
        return None
    if is_partial(snapshot):
        return snapshot["digest"]
    return digest(snapshot.get("document") or {})


def document_state(document: dict | str | None) -> str | None:
    """A current document (or a digest already) as comparable with ``state``."""
    return document if isinstance(document, str) or document is None else digest(document)


# --- Computing a delta ---------------------------------------------------------------


def changed_paths(before: dict, after: dict) -> list[Path]:
    """The attributes that differ: top-level keys, and ``(urn, name)`` inside an extension
    object present on both sides."""
    paths: list[Path] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if _same(old, new):
            continue
        if key.startswith("urn:") and isinstance(old, dict) and isinstance(new, dict):
            paths += [
                (key, name)
                for name in sorted(old.keys() | new.keys())
                if not _same(old.get(name, _ABSENT), new.get(name, _ABSENT))
            ]
        else:
            paths.append((key,))
    return paths


_ABSENT = object()


def _same(old: Any, new: Any) -> bool:
    """Equal as JSON (``1`` and ``true`` are equal in Python, not in a document)."""
    if old is _ABSENT or new is _ABSENT:
        return old is new
    return old == new and _same_json(old, new)


def _same_json(old: Any, new: Any) -> bool:
    """Whether two values Python finds equal have the same canonical JSON: the same
    types all the way down (``1``, ``1.0`` and ``true`` differ), floats of the same sign
    (``0.0`` and ``-0.0`` differ). Walked, not serialised: an unchanged attribute of an
    update costs no encoding. Values of other types are compared as encoded."""
    kind = type(old)
    if kind is not type(new):
        return False
    if kind is dict:
        return all(_same_json(value, new[key]) for key, value in old.items())
    if kind is list:
        return all(_same_json(a, b) for a, b in zip(old, new, strict=True))
    if kind in (str, int, bool) or old is None:
        return True
    if kind is float:
        return math.copysign(1.0, old) == math.copysign(1.0, new)
    return canonical_json(old) == canonical_json(new)


def delta(before: dict, after: dict) -> tuple[dict, dict, list[dict]]:
    """``(before part, after part, changes)`` of an update; see the module docstring."""
    old_part: dict = {}
    new_part: dict = {}
    changes: list[dict] = []
    for path in changed_paths(before, after):
        old, new = _get(before, path), _get(after, path)
        change: dict[str, Any] = {"path": list(path)}
        if isinstance(old, list) and isinstance(new, list):
            edits = list_edits(old, new)
            change["edits"] = [list(edit) for edit in edits]
            old = [value for i1, i2, _j1, _j2 in edits for value in old[i1:i2]]
            new = [value for _i1, _i2, j1, j2 in edits for value in new[j1:j2]]
        if old is not _ABSENT:
            _put(old_part, path, copy_json(old))
        if new is not _ABSENT:
            _put(new_part, path, copy_json(new))
        changes.append(change)
    return old_part, new_part, changes


def list_edits(old: list, new: list) -> list[tuple[int, int, int, int]]:
    """Where two lists differ, as ``(i1, i2, j1, j2)``: ``old[i1:i2]`` became ``new[j1:j2]``."""
    old_keys = [canonical_json(value) for value in old]
    new_keys = [canonical_json(value) for value in new]
    head = 0
    while head < min(len(old), len(new)) and old_keys[head] == new_keys[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(old), len(new)) - head
        and old_keys[len(old) - 1 - tail] == new_keys[len(new) - 1 - tail]
    ):
        tail += 1
    old_end, new_end = len(old) - tail, len(new) - tail
    if head == old_end and head == new_end:
        return []
    if max(old_end - head, new_end - head) > _MATCHED_SPAN:
        return [(head, old_end, head, new_end)]
    matcher = SequenceMatcher(None, old_keys[head:old_end], new_keys[head:new_end], autojunk=False)
    return [
        (head + i1, head + i2, head + j1, head + j2)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def update_snapshots(before: dict, after: dict) -> tuple[dict, dict]:
    """The ``document``, ``digest`` and ``changes`` of an update's two snapshots."""
    old_part, new_part, changes = delta(before, after)
    return (
        {"document": old_part, PARTIAL: True, "digest": digest(before)},
        {"document": new_part, PARTIAL: True, "digest": digest(after), "changes": changes},
    )


# --- Reading a delta back ------------------------------------------------------------------


def document_before(before: dict, after: dict, current: dict) -> dict:
    """The whole document before the change, rebuilt from ``current``.

    Exact when ``current`` is the document the change left (``state(after)`` equals
    ``document_state(current)``). When the resource changed since (a forced rollback),
    attributes the change did not touch keep their current values and the ones it
    touched get their values from before it; a list edited since is put back by value
    (the values the change added are removed, those it removed are inserted where
    they were).
    """
    if not is_partial(before):
        return copy_json(before.get("document") or {})
    document = copy_json(current)
    old_part, new_part = before.get("document") or {}, after.get("document") or {}
    for change in after.get("changes", []):
        path = tuple(change["path"])
        old = _get(old_part, path)
        if "edits" in change:
            present = _get(document, path)
            added = _get(new_part, path)
            old = undo_edits(
                present if isinstance(present, list) else [],
                [tuple(edit) for edit in change["edits"]],
                old if isinstance(old, list) else [],
                added if isinstance(added, list) else [],
            ) or _ABSENT  # stored documents never hold an empty list
        if old is _ABSENT:
            _remove(document, path)
        else:
            _put(document, path, copy_json(old))
    return document


def undo_edits(current: list, edits: list[tuple], removed: list, added: list) -> list:
    """``current`` with ``edits`` undone: the values ``added`` taken out, ``removed`` put back."""
    if _at_their_places(current, edits, added):
        result, position, taken = [], 0, 0
        for i1, i2, j1, j2 in edits:
            result += current[position:j1]
            result += removed[taken : taken + (i2 - i1)]
            taken += i2 - i1
            position = j2
        return result + current[position:]
    # Changed since: by value.
    taken_out = Counter(canonical_json(value) for value in added)
    result = []
    for value in current:
        key = canonical_json(value)
        if taken_out[key] > 0:
            taken_out[key] -= 1
        else:
            result.append(value)
    taken = 0
    for i1, i2, _j1, _j2 in edits:
        for offset in range(i2 - i1):
            result.insert(min(i1 + offset, len(result)), removed[taken])
            taken += 1
    return result


def _at_their_places(current: list, edits: list[tuple], added: list) -> bool:
    """Whether ``current`` still holds the values ``added`` where the edits put them."""
    if sum(j2 - j1 for _i1, _i2, j1, j2 in edits) != len(added):
        return False
    taken = 0
    for _i1, _i2, j1, j2 in edits:
        if j2 > len(current):
            return False
        if [canonical_json(v) for v in current[j1:j2]] != [
            canonical_json(v) for v in added[taken : taken + (j2 - j1)]
        ]:
            return False
        taken += j2 - j1
    return True


def _get(document: dict, path: Path) -> Any:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def _put(document: dict, path: Path, value: Any) -> None:
    *parents, leaf = path
    node = document
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _remove(document: dict, path: Path) -> None:
    *parents, leaf = path
    node = document
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)
    if parents and node == {}:
        # Stored documents never hold an empty extension object.
        _remove(document, tuple(parents))
