"""Which audit entries may be retired: the ones a change record repeats (audit 0006).

An entry of a directory user or group whose change set holds a record of the same
resource, or of a membership whose change set holds a record of its group. The
verification checks every retired row against this rule, so moving any other entry out
of the log (a configuration change, say) is reported even though its hash still fits.
The migration keeps its own copy of the rule, as migrations do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType

from .models import ChangeRecord, RetiredEntry

_DIRECTORY_MODELS = ("user", "group", "membership")


def _group_ids(changes) -> set[str]:
    values = (changes.get("group") or []) if isinstance(changes, dict) else []
    return {str(value) for value in values if value not in (None, "None")}


def unrepeated(rows: Iterable[RetiredEntry]) -> set[int]:
    """The ids of ``rows`` that are not entries a change record repeats (two queries)."""
    rows = list(rows)
    if not rows:
        return set()
    types = dict(
        ContentType.objects.filter(app_label="directory", model__in=_DIRECTORY_MODELS).values_list(
            "pk", "model"
        )
    )
    parsed = {}
    for row in rows:
        try:
            payload = json.loads(row.payload)
        except ValueError:
            payload = None
        parsed[row.pk] = payload if isinstance(payload, dict) else {}
    set_ids = {p.get("change_set_id") for p in parsed.values() if isinstance(p.get("change_set_id"), int)}
    recorded: set[tuple[int, str]] = set()
    groups: dict[int, set[str]] = {}
    for set_id, resource_id, resource_type in ChangeRecord.objects.filter(
        change_set_id__in=set_ids
    ).values_list("change_set_id", "resource_id", "resource_type"):
        recorded.add((set_id, str(resource_id)))
        if resource_type == "Group":
            groups.setdefault(set_id, set()).add(str(resource_id))
    bad = set()
    for pk, payload in parsed.items():
        model = types.get(payload.get("content_type_id"))
        set_id = payload.get("change_set_id")
        if model == "membership":
            touched = groups.get(set_id, set())
            named = _group_ids(payload.get("changes"))
            ok = bool(touched) and (not named or bool(named & touched))
        else:
            ok = model is not None and (set_id, str(payload.get("object_pk"))) in recorded
        if not ok:
            bad.add(pk)
    return bad
