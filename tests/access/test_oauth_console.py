"""The OAuth panel of a SCIM client's console page: values for the IdP, a secret shown
once, keys, federated issuers, settings; every change by an administrator only, and
audited with the operator."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.access.models import (
    AccessToken,
    AuthMethod,
    ClientKey,
    ClientSecret,
    FederatedIssuer,
)
from provisioning.audit.models import AuditEntry, ChangeSet
from tests.access.oauth_helpers import basic, jwks, obtain_token, rsa_key, token_request
from tests.factories import OperatorFactory, ScimClientFactory

pytestmark = pytest.mark.django_db


def url(name: str, client, *args) -> str:
    return reverse(f"console:{name}", args=[client.pk, *args])


@pytest.fixture
def administrator():
    return OperatorFactory(role="administrator")


@pytest.fixture
def admin_http(administrator) -> Client:
    http = Client()
    http.force_login(administrator)
    return http


@pytest.fixture
def viewer_http() -> Client:
    http = Client()
    http.force_login(OperatorFactory(role="viewer"))
    return http


@pytest.fixture
def idp():
    return ScimClientFactory(name="entra")


def secret_in(page: str) -> str:
    return re.search(r'id="secret-value"[^>]*value="(scgcs_[^"]+)"', page)[1]


def test_detail_page_shows_what_the_idp_needs(admin_http, idp):
    page = admin_http.get(url("client_detail", idp)).content.decode()
    assert "http://testserver/oauth/token" in page
    assert str(idp.pk) in page
    assert "http://testserver/scim/v2" in page
    assert "OAuth2 Client Credentials Grant" in page  # the Entra notes
    assert "Okta" in page


def test_new_secret_is_shown_once_works_and_is_audited(admin_http, administrator, idp):
    response = admin_http.post(url("oauth_secret_issue", idp), {"lifetime": "730"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    page = response.content.decode()
    raw = secret_in(page)
    assert "http://testserver/oauth/token" in page
    assert 'data-copy="secret-value"' in page
    token = obtain_token(idp.pk, raw)
    assert token
    secret = ClientSecret.objects.get(client=idp)
    assert round((secret.expires_at - secret.created_at).total_seconds() / 86400) == 730
    idp.refresh_from_db()
    assert AuthMethod.CLIENT_SECRET in idp.auth_methods
    # Never shown again.
    detail = admin_http.get(url("client_detail", idp)).content.decode()
    assert raw not in detail and secret.prefix in detail
    # Audited, by the operator, without the digest.
    change_set = ChangeSet.objects.filter(operator=administrator).latest("id")
    assert change_set.source == "console"
    entries = AuditEntry.objects.filter(content_type__model="clientsecret")
    assert entries.exists()
    assert all("digest" not in (entry.changes or {}) for entry in entries)
    assert all(secret.digest not in json.dumps(entry.changes) for entry in entries)


def test_revoke_secret(admin_http, administrator, idp):
    raw = secret_in(admin_http.post(url("oauth_secret_issue", idp), {"lifetime": "365"}).content.decode())
    secret = ClientSecret.objects.get(client=idp)
    response = admin_http.post(url("oauth_secret_revoke", idp, secret.pk))
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.revoked_at is not None
    assert token_request({"grant_type": "client_credentials"}, auth=basic(idp.pk, raw)).status_code == 401
    assert AuditEntry.objects.filter(content_type__model="clientsecret", action=1).exists()


def test_keys_federations_and_settings(admin_http, idp, settings):
    key = rsa_key("console-key")
    admin_http.post(url("oauth_key_add", idp), {"jwks": json.dumps(jwks(key))})
    assert ClientKey.objects.get(client=idp).key_ids == ["console-key"]
    refused = admin_http.post(url("oauth_key_add", idp), {"jwks": json.dumps({"keys": [key.as_dict(private=True)]})}, follow=True)
    assert "private" in refused.content.decode()
    assert ClientKey.objects.count() == 1
    admin_http.post(
        url("oauth_federation_add", idp),
        {"issuer": "https://login.example.com/t/v2.0", "subject": "app-1", "audience": ""},
    )
    federation = FederatedIssuer.objects.get(client=idp)
    page = admin_http.get(url("client_detail", idp)).content.decode()
    assert "console-key" in page and "https://login.example.com/t/v2.0" in page
    admin_http.post(
        url("oauth_settings", idp),
        {"auth_methods": ["client_secret", "federation"], "access_token_lifetime": "7200", "allowed_networks": "10.0.0.0/8"},
    )
    idp.refresh_from_db()
    assert idp.auth_methods == ["client_secret", "federation"]
    assert idp.access_token_lifetime == 7200
    assert idp.oauth_allowed_networks == ["10.0.0.0/8"]
    admin_http.post(url("oauth_key_revoke", idp, ClientKey.objects.get().pk))
    admin_http.post(url("oauth_federation_revoke", idp, federation.pk))
    assert ClientKey.objects.get().revoked_at is not None
    assert FederatedIssuer.objects.get().revoked_at is not None
    assert AuditEntry.objects.filter(content_type__model="clientkey").count() >= 2
    assert AuditEntry.objects.filter(content_type__model="federatedissuer").count() >= 2


def test_revoke_all_access_tokens(admin_http, idp):
    raw = secret_in(admin_http.post(url("oauth_secret_issue", idp), {"lifetime": "365"}).content.decode())
    token = obtain_token(idp.pk, raw)
    admin_http.post(url("oauth_access_tokens_revoke", idp))
    assert AccessToken.objects.get().revoked_at is not None
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_viewers_see_the_panel_but_cannot_change_anything(viewer_http, idp):
    page = viewer_http.get(url("client_detail", idp)).content.decode()
    assert "http://testserver/oauth/token" in page
    assert url("oauth_secret_issue", idp) not in page
    for name in ("oauth_secret_issue", "oauth_key_add", "oauth_federation_add", "oauth_settings", "oauth_access_tokens_revoke"):
        assert viewer_http.post(url(name, idp), {"lifetime": "365"}).status_code == 403
    assert not ClientSecret.objects.exists()


def test_failed_token_requests_show_in_the_client_health(admin_http, idp):
    token_request({"grant_type": "client_credentials"}, auth=basic(idp.pk, "wrong"))
    token_request({"grant_type": "client_credentials"}, auth=basic(idp.pk, "wrong"))
    page = admin_http.get(url("client_detail", idp)).content.decode()
    assert re.search(r"Failed token requests</dt><dd><span class=\"badge warn\">2</span>", page)
    listing = admin_http.get(reverse("console:client_list")).content.decode()
    assert "2 failed" in listing
