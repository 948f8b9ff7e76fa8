"""Flagged changes: the review queue, the change set diff, accept (htmx and plain),
rollback with conflicts and force, four eyes, and mass rollback with a preview."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning.audit.models import ChangeSet
from provisioning.directory import services as directory
from provisioning.oversight.models import PolicyRule, Review, Rollback
from provisioning.scim.patch import parse_patch_request
from tests.factories import ProvisionedUserFactory, ScimClientFactory
from tests.scim.conftest import PATCH_SCHEMA, ScimApi

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db

LIST = reverse("console:review_list")
HTMX = {"HTTP_HX_REQUEST": "true"}
DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
RENAME = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "displayName", "value": "Later"}],
}


@pytest.fixture
def scim(db) -> ScimApi:
    return ScimApi(ScimClientFactory(name="okta-prod").raw_token)


@pytest.fixture
def flagged(scim):
    """A flagged SCIM deactivation: (user document, review)."""
    PolicyRule.objects.create(name="Review deactivations", kind="deactivate_user", action="flag")
    user = scim.create_user("flagged@example.com", active=True, displayName="Flo")
    assert scim.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 200
    return user, Review.objects.get()


def post(client: Client, path: str, data: dict | None = None, *, htmx: bool = False):
    token = csrf_token(client, LIST)
    return client.post(
        path, {"csrfmiddlewaretoken": token, **(data or {})}, **(HTMX if htmx else {})
    )


def rollback_url(change_set_id) -> str:
    return reverse("console:change_set_rollback", args=[change_set_id])


# --- Queue and detail --------------------------------------------------------------------


def test_the_queue_lists_open_reviews(flagged, viewer_client):
    user, review = flagged
    response = viewer_client.get(LIST)
    assert response.status_code == 200
    assert [row["review"] for row in response.context["rows"]] == [review]
    body = response.content.decode()
    assert "flagged@example.com" in body and "Review deactivations" in body
    assert reverse("console:review_accept", args=[review.pk]) not in body  # a viewer


def test_the_detail_shows_the_change_records_as_the_audit_log_does(flagged, viewer_client):
    user, review = flagged
    response = viewer_client.get(reverse("console:review_detail", args=[review.pk]))
    [item] = response.context["records"]
    assert item["href"] == reverse("console:user_detail", args=[user["id"]])
    assert {row.name for row in item["diff"]} >= {"active"}
    body = response.content.decode()
    assert f'href="{item["href"]}"' in body
    assert f"?resource_type=User&amp;resource={user['id']}" in body  # its history


def test_the_queue_filters_and_answers_htmx(flagged, viewer_client, scim):
    _, review = flagged
    assert viewer_client.get(LIST, {"resource_type": "Group"}).context["rows"] == []
    assert len(viewer_client.get(LIST, {"resource_type": "User"}).context["rows"]) == 1
    assert viewer_client.get(LIST, {"status": "accepted"}).context["rows"] == []
    assert len(viewer_client.get(LIST, {"status": ""}).context["rows"]) == 1
    partial = viewer_client.get(LIST, {"status": "open"}, **HTMX)
    assert partial.content.lstrip().startswith(b'<section id="results"')
    assert "HX-Request" in partial["Vary"]


def test_detail_shows_the_before_after_diff_and_the_rollback_preview(flagged, viewer_client):
    user, review = flagged
    response = viewer_client.get(reverse("console:review_detail", args=[review.pk]))
    assert response.status_code == 200
    [record] = response.context["records"]
    active = next(row for row in record["diff"] if row.name == "active")
    assert (active.before, active.after) == ("true", "false")
    assert response.context["steps"][0].description.startswith("Put User flagged@example.com back")
    assert not response.context["conflicts"]
    body = response.content.decode()
    assert "Review deactivations" in body
    assert rollback_url(review.change_set_id) not in body  # a viewer gets no action


def test_escaping(scim, viewer_client):
    PolicyRule.objects.create(name="Flag names", kind="identity_change", action="flag")
    user = scim.create_user("esc@example.com")
    scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "userName", "value": XSS}],
        },
    )
    review = Review.objects.get()
    for page in (LIST, reverse("console:review_detail", args=[review.pk])):
        body = viewer_client.get(page).content.decode()
        assert XSS not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


# --- Accept --------------------------------------------------------------------------------


def test_accepting_inline_swaps_the_row(flagged, approver_client, approver):
    _, review = flagged
    response = post(approver_client, reverse("console:review_accept", args=[review.pk]), htmx=True)
    assert response.status_code == 200
    assert response.content.lstrip().startswith(f'<tr id="review-{review.pk}"'.encode())
    assert b"accepted" in response.content
    review.refresh_from_db()
    assert (review.status, review.decided_by) == (Review.Status.ACCEPTED, approver)

    again = post(approver_client, reverse("console:review_accept", args=[review.pk]), htmx=True)
    assert again.status_code == 400 and again["X-Console-Fragment"] == "row"


def test_accepting_without_javascript_redirects_to_the_detail(flagged, approver_client):
    _, review = flagged
    response = post(approver_client, reverse("console:review_accept", args=[review.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("console:review_detail", args=[review.pk])


def test_a_viewer_cannot_accept_or_roll_back(flagged, viewer_client):
    _, review = flagged
    assert viewer_client.post(reverse("console:review_accept", args=[review.pk])).status_code == 403
    assert viewer_client.get(rollback_url(review.change_set_id)).status_code == 403
    assert viewer_client.post(rollback_url(review.change_set_id)).status_code == 403
    assert viewer_client.get(reverse("console:mass_rollback")).status_code == 403
    review.refresh_from_db()
    assert review.status == Review.Status.OPEN


def test_four_eyes_on_a_console_change(approver_client, approver):
    PolicyRule.objects.create(
        name="Flag console deactivations",
        kind="deactivate_user",
        action="flag",
        applies_to_console=True,
    )
    user = ProvisionedUserFactory(userName="mine@example.com", active=True)
    from provisioning.audit.context import change_set_scope

    with change_set_scope(operator=approver, source="console"):
        directory.user_patch(
            user_id=user.pk,
            operations=parse_patch_request(DEACTIVATE),
            client=None,
            operator=approver,
        )
    review = Review.objects.get()
    assert review.change_set.operator == approver

    refused = post(approver_client, reverse("console:review_accept", args=[review.pk]), htmx=True)
    assert refused.status_code == 403
    assert "another approver" in refused.content.decode()
    rollback = post(approver_client, rollback_url(review.change_set_id))
    assert rollback.status_code == 403


# --- Rollback --------------------------------------------------------------------------------


def test_rolling_back_reactivates_and_closes_the_review(flagged, approver_client, approver, scim):
    user, review = flagged
    preview = approver_client.get(rollback_url(review.change_set_id))
    assert preview.status_code == 200
    assert b"Roll back</button>" in preview.content
    assert b'name="force"' not in preview.content

    response = post(approver_client, rollback_url(review.change_set_id))

    assert response.status_code == 302
    assert response["Location"] == reverse("console:review_detail", args=[review.pk])
    assert scim.read(f"/Users/{user['id']}")["active"] is True
    review.refresh_from_db()
    assert review.status == Review.Status.ROLLED_BACK
    rollback = Rollback.objects.get()
    assert rollback.operator == approver and not rollback.forced
    detail = approver_client.get(response["Location"]).content.decode()
    assert "rolled back as change set" in detail

    again = post(approver_client, rollback_url(review.change_set_id))
    assert again.status_code == 400
    assert "already been rolled back" in again.content.decode()


def test_a_conflict_is_shown_and_needs_explicit_force(flagged, approver_client, scim):
    user, review = flagged
    scim.patch(f"/Users/{user['id']}", RENAME)

    preview = approver_client.get(rollback_url(review.change_set_id))
    assert preview.context["conflicts"] and not preview.context["blocked"]
    assert (
        b'name="force"' in preview.content and b"changed after this change set" in preview.content
    )

    refused = post(approver_client, rollback_url(review.change_set_id))
    assert refused.status_code == 400
    assert "force" in refused.content.decode()
    assert scim.read(f"/Users/{user['id']}")["active"] is False

    forced = post(approver_client, rollback_url(review.change_set_id), {"force": "yes"})
    assert forced.status_code == 302
    current = scim.read(f"/Users/{user['id']}")
    assert current["active"] is True
    assert Rollback.objects.get().forced is True


def test_a_blocked_rollback_offers_no_button(scim, approver_client):
    user = scim.create_user("gone@example.com")
    scim.delete(f"/Users/{user['id']}")
    change_set = ChangeSet.objects.latest("id")
    scim.create_user("gone@example.com")  # the userName is taken again

    preview = approver_client.get(rollback_url(change_set.pk))
    assert preview.context["blocked"]
    assert b"cannot override" in preview.content
    assert b'<button type="submit" class="danger">' not in preview.content
    refused = post(approver_client, rollback_url(change_set.pk), {"force": "yes"})
    assert refused.status_code == 400


def test_unknown_change_set_is_404(approver_client):
    assert approver_client.get(rollback_url(999999)).status_code == 404


# --- Mass rollback -----------------------------------------------------------------------------


def _range() -> dict:
    now = timezone.localtime()
    return {
        "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
    }


def test_mass_rollback_previews_then_rolls_back_everything(
    scim, approver_client, django_capture_on_commit_callbacks
):
    from provisioning.access.models import ScimClient

    client = ScimClient.objects.get(name="okta-prod")
    users = [scim.create_user(f"m{i}@example.com", active=True) for i in range(3)]
    for user in users:
        scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    expected = ChangeSet.objects.filter(scim_client=client).count()  # 3 creates + 3 patches

    page = approver_client.get(reverse("console:mass_rollback"))
    assert page.status_code == 200 and "preview" not in page.context

    params = {"client": str(client.pk), **_range()}
    preview = approver_client.get(reverse("console:mass_rollback"), params)
    assert preview.status_code == 200
    assert len(preview.context["change_set_ids"]) == expected
    assert len(preview.context["steps"]) == expected
    assert not preview.context["conflicts"]

    ids = [str(pk) for pk in preview.context["change_set_ids"]]
    with django_capture_on_commit_callbacks(execute=True):  # six change sets: a rollback job
        response = post(
            approver_client, reverse("console:mass_rollback"), {**params, "change_sets": ids}
        )
    assert response.status_code == 302
    assert response["Location"].startswith("/rollbacks/jobs/")
    for user in users:
        assert scim.get(f"/Users/{user['id']}").status_code == 404  # the creates are undone too
    assert Rollback.objects.count() == expected


def test_mass_rollback_refuses_when_the_range_changed_since_the_preview(scim, approver_client):
    from provisioning.access.models import ScimClient

    client = ScimClient.objects.get(name="okta-prod")
    scim.create_user("a@example.com")
    params = {"client": str(client.pk), **_range()}
    ids = [
        str(pk)
        for pk in approver_client.get(reverse("console:mass_rollback"), params).context[
            "change_set_ids"
        ]
    ]
    scim.create_user("b@example.com")  # arrives after the preview

    response = post(
        approver_client, reverse("console:mass_rollback"), {**params, "change_sets": ids}
    )
    assert response.status_code == 409
    assert "changed since the preview" in response.content.decode()
    assert not Rollback.objects.exists()


def test_mass_rollback_validates_the_range(approver_client, scim):
    from provisioning.access.models import ScimClient

    client = ScimClient.objects.get(name="okta-prod")
    response = approver_client.get(
        reverse("console:mass_rollback"),
        {"client": str(client.pk), "since": "2026-01-02T00:00", "until": "2026-01-01T00:00"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["until"]
