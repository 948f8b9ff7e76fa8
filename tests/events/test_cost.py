"""What the outbox costs a write: a fixed number of queries, whatever the number of
events, streams or group members."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.directory import pipeline
from provisioning.events.models import Delivery, Event, EventStream
from provisioning.events.recorder import events_recorder
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def without_events_recorder():
    pipeline.unregister("events")
    yield
    pipeline.register_recorder("events", events_recorder, order=400)


def patch_title(scim, user_id: str, title: str) -> int:
    """Queries of one PATCH of a user's title (the whole request, authentication included)."""
    with CaptureQueriesContext(connection) as captured:
        scim.ok(
            scim.patch_ops(f"/Users/{user_id}", {"op": "replace", "path": "title", "value": title})
        )
    return len(captured.captured_queries)


def test_patch_user_costs_one_query_more_without_streams_two_with_one(
    scim, make_stream, without_events_recorder
):
    user = scim.create_user("cost@x.example")
    patch_title(scim, user["id"], "warm-up")
    baseline = patch_title(scim, user["id"], "no events recorder")

    pipeline.register_recorder("events", events_recorder, order=400)
    patch_title(scim, user["id"], "stream list read")
    no_stream = patch_title(scim, user["id"], "no stream")
    stream = make_stream()
    # The first write after a stream changed reads the settings again (the stream list,
    # the policy rules, the breakers and the registered extension schemas share one
    # revision); later ones use the process's copy (``outbox.streams``,
    # ``access.config_cache``).
    first_after_change = patch_title(scim, user["id"], "one stream, list read")
    one_stream = patch_title(scim, user["id"], "one stream")
    for _ in range(4):
        make_stream()
    patch_title(scim, user["id"], "five streams, list read")
    five_streams = patch_title(scim, user["id"], "five streams")
    make_stream(payload=EventStream.Payload.FULL)
    patch_title(scim, user["id"], "a full stream, list read")
    with_full = patch_title(scim, user["id"], "a full stream")

    # The event insert; with a stream, the deliveries too: in the same statement on
    # PostgreSQL (a data-modifying CTE), one insert more elsewhere.
    assert no_stream - baseline == 1
    assert one_stream - baseline == (1 if connection.vendor == "postgresql" else 2)
    assert first_after_change == one_stream + 4
    assert five_streams == one_stream
    # A full stream: the user's groups, read once to render ``data``.
    assert with_full - one_stream == 1
    assert Event.objects.filter(kind="patch").count() == 8
    assert Delivery.objects.filter(stream=stream).count() == 6


def test_a_deactivation_adds_an_event_not_a_query(scim, make_stream):
    make_stream()
    user = scim.create_user("d@x.example", active=True)  # reads the stream list once
    with CaptureQueriesContext(connection) as deactivate:
        scim.ok(
            scim.patch_ops(
                f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
            )
        )

    outbox = [q["sql"] for q in deactivate.captured_queries if '"events_' in q["sql"]]
    # The two events in one INSERT and their deliveries in another, or both in one
    # statement on PostgreSQL (the stream list is the process's copy).
    assert len(outbox) == (1 if connection.vendor == "postgresql" else 2)
    assert [e.kind for e in Event.objects.filter(resource_id=user["id"]).order_by("id")] == [
        "create",
        "patch",
        "deactivate",
    ]
    assert Delivery.objects.count() == 3


def add_and_remove_one_member(scim, group_id: str, user_id: str) -> tuple[int, int, list[dict]]:
    counts = []
    for operation in (
        {"op": "add", "path": "members", "value": [{"value": user_id}]},
        {"op": "remove", "path": f'members[value eq "{user_id}"]'},
    ):
        with CaptureQueriesContext(connection) as captured:
            assert scim.patch_ops(f"/Groups/{group_id}", operation).status_code == 204
        counts.append(len(captured.captured_queries))
    added, removed = Event.objects.filter(resource_id=group_id).order_by("-id")[:2][::-1]
    return counts[0], counts[1], [added.payload, removed.payload]


def test_a_membership_change_costs_the_same_in_a_group_of_10_and_of_3000(scim, make_stream):
    make_stream()
    make_stream(payload=EventStream.Payload.FULL)
    small = GroupFactory(members=UserFactory.create_bulk(10))
    large = GroupFactory(members=UserFactory.create_bulk(3000))
    probe = scim.create_user("probe@x.example")
    add_and_remove_one_member(scim, str(small.pk), probe["id"])  # warm-up

    small_add, small_remove, _ = add_and_remove_one_member(scim, str(small.pk), probe["id"])
    large_add, large_remove, payloads = add_and_remove_one_member(scim, str(large.pk), probe["id"])

    assert (small_add, small_remove) == (large_add, large_remove)
    added, removed = payloads
    assert added["members"] == {"added": [probe["id"]], "removed": []}
    assert removed["members"] == {"added": [], "removed": [probe["id"]]}
    assert len(added["data"]["Operations"]) == len(removed["data"]["Operations"]) == 1
    # Never the group's members: the payload is as small as for a group of one.
    assert len(json.dumps(added)) < 1000 and len(json.dumps(removed)) < 1000
