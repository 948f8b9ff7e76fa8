"""Quarantines: the list and the decision page (held operations by kind), release of all,
one kind or selected operations, and discard; each ends the quarantine and needs an
approver and a confirmation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning.audit.models import AuditEntry
from provisioning.directory.models import User
from provisioning.oversight.models import CircuitBreaker, PendingOperation, Quarantine
from tests.factories import ScimClientFactory
from tests.scim.conftest import PATCH_SCHEMA, ScimApi

from .conftest import csrf_token

pytestmark = pytest.mark.django_db

LIST = reverse("console:quarantine_list")
DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


@pytest.fixture
def quarantine(db):
    """A burst of 5 deactivations against a limit of 2: 2 applied, 3 held in quarantine."""
    CircuitBreaker.objects.update_or_create(
        pk=CircuitBreaker.objects.values_list("pk", flat=True).first() or 1,
        defaults={"max_operations": 2, "window_minutes": 10, "enabled": True},
    )
    scim = ScimApi(ScimClientFactory(name="burst-idp").raw_token)
    users = [scim.create_user(f"b{i}@example.com", active=True) for i in range(5)]
    # Established users: deactivating what the client created moments ago is churn.
    User.objects.update(created=timezone.now() - timedelta(days=1))
    statuses = [scim.patch(f"/Users/{u['id']}", DEACTIVATE).status_code for u in users]
    assert statuses == [200, 200, 202, 202, 202]
    return Quarantine.objects.get(status=Quarantine.Status.ACTIVE), users


def url(name: str, quarantine) -> str:
    return reverse(f"console:{name}", args=[quarantine.pk])


def post(client: Client, path: str, data: dict) -> object:
    token = csrf_token(client, LIST)
    return client.post(path, {"csrfmiddlewaretoken": token, **data})



def shown(confirm) -> list[str]:
    """Every operation a release confirmation showed (applied and discarded): the form
    posts them all, so one held since is never decided unseen."""
    return [str(op.pk) for op in [*confirm.context["apply"], *confirm.context["discard"]]]

def test_the_list_and_detail_show_the_quarantine_to_a_viewer(quarantine, viewer_client):
    q, _ = quarantine
    page = viewer_client.get(LIST)
    assert page.status_code == 200
    assert [item.held for item in page.context["active"]] == [3]
    assert "burst-idp" in page.content.decode()

    detail = viewer_client.get(url("quarantine_detail", q))
    assert detail.status_code == 200
    assert len(detail.context["held"]) == 3
    body = detail.content.decode()
    assert q.reason in body
    assert url("quarantine_release", q) not in body  # a viewer: no actions
    assert url("quarantine_discard", q) not in body


def test_release_and_discard_need_an_approver(quarantine, approver_client, viewer_client):
    q, _ = quarantine
    assert viewer_client.get(url("quarantine_release", q)).status_code == 403
    assert viewer_client.post(url("quarantine_release", q), {"confirm": "yes"}).status_code == 403
    assert viewer_client.post(url("quarantine_discard", q)).status_code == 403
    q.refresh_from_db()
    assert q.status == Quarantine.Status.ACTIVE
    assert approver_client.get(url("quarantine_release", q)).status_code == 200
    assert approver_client.get(url("quarantine_discard", q)).status_code == 200


def test_releasing_all_confirms_then_applies_them(
    quarantine, admin_client, administrator, django_capture_on_commit_callbacks
):
    q, users = quarantine
    confirm = admin_client.get(url("quarantine_release", q), {"scope": "all"})
    assert confirm.status_code == 200
    assert len(confirm.context["apply"]) == 3 and confirm.context["discard"] == []

    unconfirmed = post(admin_client, url("quarantine_release", q), {"scope": "all"})
    assert unconfirmed.status_code == 400

    shown = [str(op.pk) for op in confirm.context["apply"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            admin_client,
            url("quarantine_release", q),
            {"scope": "all", "pending": shown, "confirm": "yes"},
        )
    assert response.status_code == 302
    q.refresh_from_db()
    assert (q.status, q.ended_by) == (Quarantine.Status.RELEASED, administrator)
    assert not User.objects.filter(active=True).exists()
    # The quarantine's end is audited as the administrator's console action.
    entry = AuditEntry.objects.filter(object_pk=str(q.pk)).latest("id")
    assert entry.actor == administrator and entry.change_set.source == "console"

    again = post(
        admin_client,
        url("quarantine_release", q),
        {"scope": "all", "pending": shown, "confirm": "yes"},
    )
    assert again.status_code == 400
    assert "already ended" in again.content.decode()


def test_releasing_selected_discards_the_rest(
    quarantine, admin_client, django_capture_on_commit_callbacks
):
    q, users = quarantine
    held = list(q.operations.order_by("created_at"))
    chosen = str(held[1].pk)

    confirm = admin_client.get(url("quarantine_release", q), {"pending": [chosen]})
    assert [op.pk for op in confirm.context["apply"]] == [held[1].pk]
    assert len(confirm.context["discard"]) == 2

    with django_capture_on_commit_callbacks(execute=True):
        post(
            admin_client,
            url("quarantine_release", q),
            {"pending": [chosen], "shown": shown(confirm), "confirm": "yes"},
        )

    statuses = {str(op.pk): op.status for op in PendingOperation.objects.all()}
    assert statuses[chosen] == PendingOperation.Status.APPLIED
    assert sorted(statuses.values()).count(PendingOperation.Status.DISCARDED) == 2
    active = set(User.objects.filter(active=True).values_list("user_name", flat=True))
    assert active == {"b2@example.com", "b4@example.com"}


def test_discarding_confirms_then_drops_everything(quarantine, admin_client):
    q, _ = quarantine
    confirm = admin_client.get(url("quarantine_discard", q))
    assert confirm.status_code == 200 and len(confirm.context["held"]) == 3
    assert b"Discard 3 operations" in confirm.content

    response = post(admin_client, url("quarantine_discard", q), {})
    assert response.status_code == 302
    q.refresh_from_db()
    assert q.status == Quarantine.Status.DISCARDED
    assert set(PendingOperation.objects.values_list("status", flat=True)) == {"discarded"}
    assert User.objects.filter(active=True).count() == 3

    detail = admin_client.get(url("quarantine_detail", q))
    assert url("quarantine_release", q) not in detail.content.decode()


def test_the_navigation_and_dashboard_show_quarantined_clients(quarantine, viewer_client):
    page = viewer_client.get(reverse("console:home")).content.decode()
    assert f'href="{LIST}">1</a>' in page
    assert "burst-idp" in page and "quarantined" in page


def test_unknown_quarantine_is_404(admin_client):
    import uuid

    assert (
        admin_client.get(reverse("console:quarantine_detail", args=[uuid.uuid4()])).status_code
        == 404
    )


@pytest.fixture
def mixed(db):
    """A quarantine holding 2 deletions, 1 deactivation and 1 member removal."""
    from provisioning.directory.models import Group, Membership

    CircuitBreaker.objects.update_or_create(
        pk=CircuitBreaker.objects.values_list("pk", flat=True).first() or 1,
        defaults={"max_operations": 1, "window_minutes": 10, "enabled": True},
    )
    scim = ScimApi(ScimClientFactory(name="mixed-idp").raw_token)
    users = [scim.create_user(f"m{i}@example.com", active=True) for i in range(5)]
    group = scim.create_group("team", members=[{"value": users[4]["id"]}])
    User.objects.update(created=timezone.now() - timedelta(days=1))
    Group.objects.update(created=timezone.now() - timedelta(days=1))
    Membership.objects.update(created=timezone.now() - timedelta(days=1))
    assert scim.delete(f"/Users/{users[0]['id']}").status_code == 204
    assert [scim.delete(f"/Users/{u['id']}").status_code for u in users[1:3]] == [202, 202]
    assert scim.patch(f"/Users/{users[3]['id']}", DEACTIVATE).status_code == 202
    remove = {"op": "remove", "path": f'members[value eq "{users[4]["id"]}"]'}
    assert scim.patch_ops(f"/Groups/{group['id']}", remove).status_code == 202
    return Quarantine.objects.get(status=Quarantine.Status.ACTIVE), users, group


def test_the_decision_page_groups_what_is_held_by_kind(mixed, approver_client):
    q, users, _group = mixed
    page = approver_client.get(url("quarantine_detail", q))
    groups = {
        g.kind: (g.count, [op.resource_label for op in g.samples]) for g in page.context["by_kind"]
    }
    assert groups == {
        "deletion": (2, ["m1@example.com", "m2@example.com"]),
        "deactivation": (1, ["m3@example.com"]),
        "member_removal": (1, ["team"]),
    }
    body = page.content.decode()
    assert f"{url('quarantine_release', q)}?kind=deletion" in body
    assert "Allow only the deletions (2)…" in body


def test_releasing_one_kind_from_the_console(
    mixed, approver_client, approver, django_capture_on_commit_callbacks
):
    q, users, group = mixed
    confirm = approver_client.get(url("quarantine_release", q), {"kind": "deletion"})
    assert confirm.status_code == 200
    assert {op.resource_label for op in confirm.context["apply"]} == {
        "m1@example.com",
        "m2@example.com",
    }
    assert len(confirm.context["discard"]) == 2
    assert "Allow the deletions of mixed-idp?" in confirm.content.decode()
    ids = [str(op.pk) for op in confirm.context["apply"]]

    with django_capture_on_commit_callbacks(execute=True):
        done = post(
            approver_client,
            url("quarantine_release", q),
            {"kind": "deletion", "pending": ids, "shown": shown(confirm), "confirm": "yes"},
        )
    assert done.status_code == 302
    assert not User.objects.filter(pk__in=[users[1]["id"], users[2]["id"]]).exists()
    assert User.objects.get(pk=users[3]["id"]).active is True
    q.refresh_from_db()
    assert (q.status, q.ended_by) == (Quarantine.Status.RELEASED, approver)
    assert q.operations.filter(status=PendingOperation.Status.DISCARDED).count() == 2


@pytest.mark.parametrize("how", ["scope all", "every one selected"])
def test_release_all_applies_only_what_the_confirmation_showed(
    quarantine, admin_client, django_capture_on_commit_callbacks, how
):
    """An operation held after the confirmation was shown is neither applied nor discarded
    unseen: the release is refused and shown again with it. Whether the operator chose
    "all" or selected every operation shown (the form then posts every id it showed)."""
    q, users = quarantine
    if how == "scope all":
        confirm = admin_client.get(url("quarantine_release", q), {"scope": "all"})
    else:
        every = [str(op.pk) for op in q.operations.filter(status=PendingOperation.Status.PENDING)]
        confirm = admin_client.get(url("quarantine_release", q), {"pending": every})
    shown = [str(op.pk) for op in confirm.context["apply"]]
    assert 'name="pending"' in confirm.content.decode()
    posted = {"pending": shown, "shown": shown, "confirm": "yes"}
    if how == "scope all":
        posted["scope"] = "all"
    # A sixth user, deactivated while the operator reads the page, is held too.
    scim = ScimApi(ScimClientFactory(name="late-idp").raw_token)
    late = scim.create_user("late@example.com", active=True)
    User.objects.filter(pk=late["id"]).update(created=timezone.now() - timedelta(days=1))
    first = q.operations.order_by("created_at").first()
    PendingOperation.objects.create(
        **{
            f.attname: getattr(first, f.attname)
            for f in PendingOperation._meta.concrete_fields
            if f.attname not in {"id", "resource_id", "fingerprint"}
        },
        resource_id=late["id"],
    )
    assert q.operations.filter(status=PendingOperation.Status.PENDING).count() == 4

    refused = post(admin_client, url("quarantine_release", q), posted)
    assert refused.status_code == 400
    assert "1 operation was held since this page was shown" in refused.content.decode()
    if how == "scope all":
        assert len(refused.context["apply"]) == 4  # shown again, now with the new one
    else:
        assert len(refused.context["discard"]) == 1  # the new one, shown, not yet chosen
    q.refresh_from_db()
    assert q.status == Quarantine.Status.ACTIVE
    assert q.operations.filter(status=PendingOperation.Status.PENDING).count() == 4


@pytest.mark.parametrize("pending", [None, ["not-an-id"], ["", "12"]])
def test_a_release_naming_no_held_operation_is_refused(quarantine, admin_client, pending):
    q, _ = quarantine
    data = {"confirm": "yes", **({"pending": pending} if pending else {})}
    refused = post(admin_client, url("quarantine_release", q), data)
    assert refused.status_code == 400
    assert "names no held operation" in refused.content.decode()
    q.refresh_from_db()
    assert q.status == Quarantine.Status.ACTIVE
    assert not q.operations.exclude(status=PendingOperation.Status.PENDING).exists()


def test_release_shows_operations_awaiting_a_second_approver(
    quarantine, admin_client, django_capture_on_commit_callbacks
):
    q, users = quarantine
    held = list(q.operations.order_by("created_at"))
    PendingOperation.objects.filter(pk=held[0].pk).update(two_approvers=True)
    confirm = admin_client.get(url("quarantine_release", q), {"scope": "all"})
    assert "your release is the first approval" in confirm.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        done = post(
            admin_client,
            url("quarantine_release", q),
            {"scope": "all", "pending": [str(op.pk) for op in held], "confirm": "yes"},
        )
    assert done.status_code == 302
    page = admin_client.get(done["Location"])
    assert "2 operations approved, 1 awaiting a second approver" in page.content.decode()
    assert PendingOperation.objects.get(pk=held[0].pk).status == PendingOperation.Status.PENDING
