"""The operator's API tokens page: list, create (shown once, never cached), revoke;
only one's own tokens; creating needs a fresh sign-in (step-up)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.access.models import OperatorToken
from provisioning.access.operator_tokens import operator_token_create, operator_token_verify
from provisioning.audit.models import AuditEntry
from tests.factories import OperatorFactory
from tests.signin.conftest import age_session

from .conftest import csrf_token

pytestmark = pytest.mark.django_db

LIST = reverse("console:api_token_list")
CREATE = reverse("console:api_token_create")


def create(client: Client, **data):
    return client.post(
        CREATE, {"csrfmiddlewaretoken": csrf_token(client, LIST), "expires_in": "90", **data}
    )


def test_a_viewer_creates_a_token_shown_once(viewer_client, viewer):
    response = create(viewer_client, name="nightly report")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r'value="(scgop_[^"]+)"', response.content.decode()).group(1)
    token = operator_token_verify(raw)
    assert token.operator == viewer and token.name == "nightly report"
    assert token.expires_at is not None
    listing = viewer_client.get(LIST).content.decode()
    assert "nightly report" in listing and token.prefix in listing
    assert raw not in listing  # never shown again
    entry = AuditEntry.objects.get(content_type__model="operatortoken")
    assert entry.actor == viewer and "digest" not in entry.changes


def test_a_token_needs_a_name(viewer_client):
    response = create(viewer_client, name="   ")
    assert response.status_code == 400
    assert not OperatorToken.objects.exists()


def test_revoking_one_of_ones_own_tokens(viewer_client, viewer):
    token, raw = operator_token_create(user=viewer, name="old")
    response = viewer_client.post(
        reverse("console:api_token_revoke", args=[token.pk]),
        {"csrfmiddlewaretoken": csrf_token(viewer_client, LIST)},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "Revoked" in viewer_client.get(LIST).content.decode()


def test_another_operators_token_is_404_and_not_listed(viewer_client):
    other, _raw = operator_token_create(user=OperatorFactory(role="viewer"), name="theirs")
    assert "theirs" not in viewer_client.get(LIST).content.decode()
    response = viewer_client.post(
        reverse("console:api_token_revoke", args=[other.pk]),
        {"csrfmiddlewaretoken": csrf_token(viewer_client, LIST)},
    )
    assert response.status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_creating_needs_a_step_up(settings, viewer_client):
    settings.SCIMGATE_STEP_UP_MINUTES = 15
    age_session(viewer_client, authenticated=20 * 60)
    response = create(viewer_client, name="late")
    assert response.status_code == 302 and "/account/step-up/" in response["Location"]
    assert not OperatorToken.objects.exists()


def test_anonymous_goes_to_sign_in():
    response = Client().get(LIST)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
