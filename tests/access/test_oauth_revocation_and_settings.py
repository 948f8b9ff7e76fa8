"""Credential changes of the OAuth panel are audited with their operator, and a
settings form with one invalid value changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.access.models import AccessToken
from provisioning.access.oauth_credentials import access_tokens_revoke
from provisioning.audit.models import AuditEntry, ChangeSet
from tests.access.oauth_helpers import obtain_token
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db


def _revocation_entries(client) -> list[AuditEntry]:
    entries = AuditEntry.objects.filter(content_type__model="scimclient", object_pk=str(client.pk))
    return [e for e in entries if "oauth_access_revoked" in (e.changes or {})]


def test_revoking_all_access_tokens_is_audited_with_the_operator(oauth_client):
    client, secret = oauth_client
    obtain_token(client.pk, secret)
    obtain_token(client.pk, secret)
    operator = OperatorFactory(role="administrator")
    assert access_tokens_revoke(client=client, operator=operator) == 2
    [entry] = _revocation_entries(client)
    assert entry.changes["oauth_access_revoked"] == ["0", "2"]
    assert entry.actor_id == operator.pk
    assert entry.change_set is not None and entry.change_set.operator_id == operator.pk
    # Nothing left to revoke: nothing recorded.
    assert access_tokens_revoke(client=client, operator=operator) == 0
    assert len(_revocation_entries(client)) == 1


def test_console_revocation_is_audited(oauth_client):
    client, secret = oauth_client
    obtain_token(client.pk, secret)
    administrator = OperatorFactory(role="administrator")
    http = Client()
    http.force_login(administrator)
    http.post(reverse("console:oauth_access_tokens_revoke", args=[client.pk]))
    assert AccessToken.objects.get().revoked_at is not None
    [entry] = _revocation_entries(client)
    assert entry.actor_id == administrator.pk
    assert ChangeSet.objects.get(pk=entry.change_set_id).source == "console"


def test_narrowed_networks_apply_to_access_tokens_already_issued(oauth_client):
    """The client's allowed networks are checked on every SCIM request with an access
    token as they are now: narrowing them shuts out tokens issued before."""
    from provisioning.access.oauth_credentials import scim_client_set_oauth_settings

    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    scim_client_set_oauth_settings(client=client, allowed_networks=["203.0.113.0/24"])
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    # From inside the network it still works; widening again lets it back in.
    allowed = Client(REMOTE_ADDR="203.0.113.9")
    assert allowed.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    scim_client_set_oauth_settings(client=client, allowed_networks=[])
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


@pytest.mark.parametrize(
    "posted",
    [
        {"auth_methods": ["static_token"], "access_token_lifetime": "7200", "allowed_networks": "not-a-cidr"},
        {"auth_methods": ["static_token"], "access_token_lifetime": "12", "allowed_networks": "10.0.0.0/8"},
        {"auth_methods": ["nonsense"], "access_token_lifetime": "7200", "allowed_networks": "10.0.0.0/8"},
    ],
)
def test_settings_form_with_an_invalid_value_changes_nothing(oauth_client, posted):
    client, _ = oauth_client
    before = (list(client.auth_methods), client.access_token_lifetime, list(client.oauth_allowed_networks))
    http = Client()
    http.force_login(OperatorFactory(role="administrator"))
    response = http.post(reverse("console:oauth_settings", args=[client.pk]), posted, follow=True)
    assert response.status_code == 200
    client.refresh_from_db()
    assert (client.auth_methods, client.access_token_lifetime, client.oauth_allowed_networks) == before


def test_settings_refused_by_the_service_roll_back_the_methods(oauth_client, monkeypatch):
    """Should a service refuse a value the form accepted, the methods already set in
    the same request are rolled back with it."""
    from django.core.exceptions import ValidationError

    from provisioning.access import oauth_credentials

    def refuse(**kwargs):
        raise ValidationError({"allowed_networks": "refused"})

    monkeypatch.setattr(oauth_credentials, "scim_client_set_oauth_settings", refuse)
    client, _ = oauth_client
    http = Client()
    http.force_login(OperatorFactory(role="administrator"))
    http.post(
        reverse("console:oauth_settings", args=[client.pk]),
        {"auth_methods": ["static_token"], "access_token_lifetime": "7200", "allowed_networks": ""},
    )
    client.refresh_from_db()
    assert client.auth_methods == ["client_secret"]


def test_valid_settings_are_saved_in_one_change_set(oauth_client):
    client, _ = oauth_client
    administrator = OperatorFactory(role="administrator")
    http = Client()
    http.force_login(administrator)
    sets_before = ChangeSet.objects.count()
    http.post(
        reverse("console:oauth_settings", args=[client.pk]),
        {"auth_methods": ["client_secret", "static_token"], "access_token_lifetime": "7200",
         "allowed_networks": "10.0.0.1/8"},
    )
    client.refresh_from_db()
    assert set(client.auth_methods) == {"static_token", "client_secret"}
    assert client.access_token_lifetime == 7200
    assert client.oauth_allowed_networks == ["10.0.0.0/8"]
    assert ChangeSet.objects.count() == sets_before + 1
