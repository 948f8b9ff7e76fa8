"""Django admin for SCIM clients: tokens are listed read-only, digests never shown."""

import pytest
from django.urls import reverse

from provisioning.access.clients import scim_token_revoke
from provisioning.access.models import ScimToken
from provisioning.access.token_check import scim_token_authenticate
from tests.factories import ScimTokenFactory

pytestmark = pytest.mark.django_db


def test_change_page_lists_tokens_without_digest_or_secret(admin_client, okta):
    client, raw = okta
    token = client.tokens.get()
    response = admin_client.get(reverse("admin:access_scimclient_change", args=[client.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert token.prefix in body
    assert token.digest not in body
    assert raw not in body
    assert raw.split("_", 2)[2] not in body


def test_changelist_counts_only_unrevoked_tokens(admin_client, okta):
    client, _raw = okta
    revoked = ScimTokenFactory(client=client)
    scim_token_revoke(token=revoked)
    ScimTokenFactory(client=client)
    response = admin_client.get(reverse("admin:access_scimclient_changelist"))
    assert response.status_code == 200
    [row] = response.context["cl"].result_list
    assert row.name == "okta"
    assert row._active_tokens == 2


def test_clients_cannot_be_added_in_the_admin(admin_client):
    response = admin_client.get(reverse("admin:access_scimclient_add"))
    assert response.status_code == 403


def test_revoke_action_revokes_every_token(admin_client, okta):
    client, raw = okta
    response = admin_client.post(
        reverse("admin:access_scimclient_changelist"),
        {"action": "revoke_tokens", "_selected_action": [str(client.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"Revoked 1 token(s)." in response.content
    assert ScimToken.objects.get(client=client).is_revoked
    assert scim_token_authenticate(raw) is None
