"""The user page of a user whose SCIM deletion was deferred: the scheduled date, and the
restore (an approver's action, refused to a viewer)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.oversight.models import CircuitBreaker

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def retired(idp):
    CircuitBreaker.objects.update_or_create(
        client=None, defaults={"deletion_delay_days": 14}
    )
    user = directory.user_create(
        document={"userName": f"leaver{XSS}@example.com", "active": True}, client=idp
    )
    directory.user_delete(user_id=user.pk, client=idp)
    return User.with_retired.get(pk=user.pk)


def test_the_user_page_shows_the_scheduled_deletion(retired, viewer_client):
    page = viewer_client.get(reverse("console:user_detail", args=[retired.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Deletion scheduled" in body and "deleted for good on" in body
    assert retired.deletion_due.strftime("%Y-%m-%d") in body
    assert XSS not in body
    assert reverse("console:user_restore", args=[retired.pk]) not in body  # a viewer


def test_a_viewer_cannot_restore(retired, viewer_client):
    url = reverse("console:user_restore", args=[retired.pk])
    token = csrf_token(viewer_client, reverse("console:user_detail", args=[retired.pk]))
    assert viewer_client.post(url, {"csrfmiddlewaretoken": token}).status_code == 403
    assert User.with_retired.get(pk=retired.pk).retired


def test_an_approver_restores_the_user(retired, approver_client, approver):
    detail = reverse("console:user_detail", args=[retired.pk])
    url = reverse("console:user_restore", args=[retired.pk])
    assert url in approver_client.get(detail).content.decode()
    token = csrf_token(approver_client, detail)

    response = approver_client.post(url, {"csrfmiddlewaretoken": token}, follow=True)

    assert "restored; it stays deactivated" in response.content.decode()
    user = User.objects.get(pk=retired.pk)
    assert user.deletion_due is None and user.active is False
    again = approver_client.post(url, {"csrfmiddlewaretoken": token}, follow=True)
    assert "is not scheduled for deletion" in again.content.decode()
