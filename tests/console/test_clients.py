"""SCIM clients: list and health, create (token shown once), rotate, revoke, role; permissions, escaping."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.access.clients import scim_client_create
from provisioning.access.models import Role, ScimClient, ScimToken
from provisioning.access.roles import scim_role_create
from provisioning.audit.models import AuditEntry, ChangeSet, RequestLog
from provisioning.audit.request_log import request_log_write

pytestmark = pytest.mark.django_db

LIST = reverse("console:client_list")
NEW = reverse("console:client_create")
SCRIPT = "<script>alert(1)</script>"


def csrf(client: Client, url: str = LIST) -> dict:
    assert client.get(url).status_code == 200
    return {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}


def detail(client: ScimClient) -> str:
    return reverse("console:client_detail", args=[client.pk])


def raw_token_in(html: str) -> str:
    start = html.index('id="token-value"')
    value = html[start:].split('value="', 1)[1]
    return value.split('"', 1)[0]


def scim_get_users(token: str):
    return Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}")


# --- Permissions ---------------------------------------------------------------------


def test_viewer_reads_but_cannot_change(viewer_client, idp):
    assert viewer_client.get(LIST).status_code == 200
    assert viewer_client.get(detail(idp)).status_code == 200
    assert viewer_client.get(NEW).status_code == 403
    token = idp.tokens.get()
    for url in (
        NEW,
        reverse("console:token_rotate", args=[idp.pk]),
        reverse("console:token_revoke", args=[idp.pk, token.pk]),
        reverse("console:client_set_role", args=[idp.pk]),
    ):
        assert viewer_client.post(url, {"name": "x", "role": 1}).status_code == 403
    assert ScimClient.objects.count() == 1 and idp.tokens.count() == 1


def test_approver_cannot_change_clients(approver_client, idp):
    token = idp.tokens.get()
    assert approver_client.get(NEW).status_code == 403
    assert (
        approver_client.get(
            reverse("console:token_revoke_confirm", args=[idp.pk, token.pk])
        ).status_code
        == 403
    )
    assert (
        approver_client.post(reverse("console:token_revoke", args=[idp.pk, token.pk])).status_code
        == 403
    )
    token.refresh_from_db()
    assert token.revoked_at is None


def test_viewer_sees_no_write_controls(viewer_client, idp):
    html = viewer_client.get(detail(idp)).content.decode()
    assert "Issue new token" not in html and "Revoke…" not in html and "Assign role" not in html
    assert "New SCIM client" not in viewer_client.get(LIST).content.decode()


def test_unknown_client_is_404(viewer_client, admin_client):
    assert (
        viewer_client.get(reverse("console:client_detail", args=[uuid.uuid4()])).status_code == 404
    )
    response = admin_client.post(
        reverse("console:token_rotate", args=[uuid.uuid4()]), csrf(admin_client)
    )
    assert response.status_code == 404


def test_writes_need_post_and_csrf(admin_client, idp):
    token = idp.tokens.get()
    assert admin_client.get(reverse("console:token_rotate", args=[idp.pk])).status_code == 405
    assert (
        admin_client.get(reverse("console:token_revoke", args=[idp.pk, token.pk])).status_code
        == 405
    )
    assert admin_client.get(reverse("console:client_set_role", args=[idp.pk])).status_code == 405
    # No CSRF token: refused before anything changes.
    assert (
        admin_client.post(reverse("console:token_revoke", args=[idp.pk, token.pk])).status_code
        == 403
    )
    token.refresh_from_db()
    assert token.revoked_at is None


# --- Create: the token is shown once ------------------------------------------------


def test_create_shows_the_token_once_and_it_works(admin_client, administrator):
    form = admin_client.get(NEW)
    assert form.status_code == 200 and b'name="allowed_networks"' in form.content
    data = {
        **csrf(admin_client, NEW),
        "name": "Okta production",
        "role": Role.objects.get(name="provisioner").pk,
    }
    response = admin_client.post(NEW, data)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = raw_token_in(html)
    client = ScimClient.objects.get(name="Okta production")
    token = client.tokens.get()
    assert raw.startswith(f"scg_{token.prefix}_")
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert token.digest not in html
    assert "http://testserver/scim/v2" in html and 'data-copy="token-value"' in html

    # The token authenticates against the SCIM API.
    assert scim_get_users(raw).status_code == 200

    # And it is never shown again: not on the detail page, the list or the dashboard.
    for url in (detail(client), LIST, reverse("console:home")):
        page = admin_client.get(url).content.decode()
        assert raw not in page and raw.split("_", 2)[2] not in page and token.digest not in page
        assert token.prefix in page or url != detail(client)

    # One audited change set, by the operator, from the console.
    change_set = ChangeSet.objects.get(operator=administrator)
    assert change_set.source == "console"
    assert {e.content_type.model for e in change_set.entries.all()} == {"scimclient", "scimtoken"}


def test_create_with_expiry_and_networks(admin_client):
    expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    data = {
        **csrf(admin_client, NEW),
        "name": "entra",
        "role": Role.objects.get(name="read-only").pk,
        "expires_at": expires,
        "allowed_networks": "10.0.0.1/8\n2001:db8::/32\n",
    }
    response = admin_client.post(NEW, data)
    assert response.status_code == 200
    token = ScimToken.objects.get(client__name="entra")
    assert token.allowed_networks == ["10.0.0.0/8", "2001:db8::/32"]
    assert token.expires_at.strftime("%Y-%m-%dT%H:%M") == expires
    assert "10.0.0.0/8" in response.content.decode()
    # A network-bound token refuses other addresses.
    raw = raw_token_in(response.content.decode())
    assert scim_get_users(raw).status_code == 401  # the test client is 127.0.0.1


def test_create_errors_keep_the_form_and_create_nothing(admin_client, idp):
    token = csrf(admin_client, NEW)
    role = Role.objects.get(name="provisioner").pk
    bad_network = admin_client.post(
        NEW, {**token, "name": "new-one", "role": role, "allowed_networks": "not-a-network"}
    )
    assert bad_network.status_code == 400
    assert "is not a network in CIDR notation" in bad_network.content.decode()
    taken = admin_client.post(NEW, {**token, "name": "OKTA-PROD", "role": role})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    past = admin_client.post(
        NEW, {**token, "name": "late", "role": role, "expires_at": "2001-01-01T00:00"}
    )
    assert past.status_code == 400 and "must be in the future" in past.content.decode()
    assert list(ScimClient.objects.values_list("name", flat=True)) == ["okta-prod"]
    assert ScimToken.objects.count() == 1
    for response in (bad_network, taken, past):
        assert 'id="token-value"' not in response.content.decode()


# --- Rotate, revoke, role ------------------------------------------------------------


def test_rotate_shows_a_new_token_and_the_old_one_keeps_working(admin_client):
    client, old_raw = scim_client_create(name="idp", role="provisioner")
    response = admin_client.post(
        reverse("console:token_rotate", args=[client.pk]), csrf(admin_client)
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_raw = raw_token_in(response.content.decode())
    assert new_raw != old_raw and client.tokens.count() == 2
    assert scim_get_users(new_raw).status_code == 200
    assert scim_get_users(old_raw).status_code == 200
    assert new_raw not in admin_client.get(detail(client)).content.decode()


def test_rotate_with_grace_period_expires_the_others(admin_client):
    client, old_raw = scim_client_create(name="idp", role="provisioner")
    data = {**csrf(admin_client), "expire_old_in": "3600"}
    admin_client.post(reverse("console:token_rotate", args=[client.pk]), data)
    old = client.tokens.order_by("created_at").first()
    assert old.expires_at is not None
    assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)


def test_revoke_confirms_then_revokes(admin_client):
    client, raw = scim_client_create(name="idp", role="provisioner")
    token = client.tokens.get()
    page = admin_client.get(detail(client)).content.decode()
    confirm_url = reverse("console:token_revoke_confirm", args=[client.pk, token.pk])
    assert confirm_url in page
    confirm = admin_client.get(confirm_url)
    assert confirm.status_code == 200
    assert reverse("console:token_revoke", args=[client.pk, token.pk]) in confirm.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None  # the confirmation page changes nothing

    response = admin_client.post(
        reverse("console:token_revoke", args=[client.pk, token.pk]), csrf(admin_client)
    )
    assert response.status_code == 302 and response["Location"] == detail(client)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert scim_get_users(raw).status_code == 401
    assert "Revoked" in admin_client.get(detail(client)).content.decode()


def test_revoke_only_the_clients_own_tokens(admin_client):
    client, _ = scim_client_create(name="one", role="provisioner")
    other, _ = scim_client_create(name="two", role="provisioner")
    foreign = other.tokens.get()
    url = reverse("console:token_revoke", args=[client.pk, foreign.pk])
    assert admin_client.post(url, csrf(admin_client)).status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_assign_role(admin_client, administrator, idp):
    read_only = Role.objects.get(name="read-only")
    url = reverse("console:client_set_role", args=[idp.pk])
    response = admin_client.post(url, {**csrf(admin_client), "role": read_only.pk})
    assert response.status_code == 302
    idp.refresh_from_db()
    assert idp.role == read_only
    assert ChangeSet.objects.filter(operator=administrator, source="console").exists()
    page = admin_client.get(detail(idp)).content.decode()
    assert "now has the role read-only (was provisioner)" in page
    # An unknown role changes nothing.
    admin_client.post(url, {**csrf(admin_client), "role": 999999})
    idp.refresh_from_db()
    assert idp.role == read_only


# --- Listing, health and escaping ------------------------------------------------------


def _log(client, status: int, *, path="/scim/v2/Users", ago=timedelta(minutes=5)):
    return request_log_write(
        timestamp=timezone.now() - ago,
        correlation_id=uuid.uuid4(),
        scim_client=client,
        method="GET",
        path=path,
        status=status,
        latency_ms=3.0,
    )


def test_list_shows_tokens_denied_requests_and_24h_health(viewer_client, idp):
    for status in (200, 200, 201, 409):
        _log(idp, status)
    _log(idp, 500, ago=timedelta(hours=30))  # outside the window, and older than the 409
    _log(idp, 404, path="/scim/v2/Users/gone", ago=timedelta(hours=1))
    ScimClient.objects.filter(pk=idp.pk).update(denied_requests=7)

    response = viewer_client.get(LIST)
    [client] = response.context["clients"]
    assert client.token_count == 1 and client.denied_requests == 7
    assert (client.health.requests, client.health.errors) == (5, 2)
    assert client.health.error_rate == pytest.approx(40.0)
    # The latest error is the most recent failing request, wherever it falls.
    assert client.health.last_error.status == 409
    html = response.content.decode()
    assert "40.0 %" in html
    assert reverse("console:request_detail", args=[client.health.last_error.pk]) in html


def test_health_costs_the_same_queries_for_many_clients(viewer_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(LIST).status_code == 200
        return len(captured)

    first, _ = scim_client_create(name="first", role="provisioner")
    _log(first, 500)
    one = queries()
    for i in range(5):
        client, _ = scim_client_create(name=f"c{i}", role="no-delete")
        _log(client, 200)
        _log(client, 503)
    assert queries() == one


def test_revoked_and_expired_tokens_do_not_count(viewer_client, idp):
    ScimToken.objects.filter(client=idp).update(revoked_at=timezone.now())
    [client] = viewer_client.get(LIST).context["clients"]
    assert client.token_count == 0
    assert "none" in viewer_client.get(LIST).content.decode()


def test_untrusted_names_and_paths_are_escaped(viewer_client):
    client, _ = scim_client_create(name=SCRIPT, role="provisioner")
    _log(client, 404, path='/scim/v2/Users/<img src=x onerror="alert(2)">')
    scim_role_create(name="<b>bold</b>", permissions=["User:read"])
    for url in (LIST, detail(client), reverse("console:home")):
        html = viewer_client.get(url).content.decode()
        assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html
    assert (
        "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"
        in viewer_client.get(detail(client)).content.decode()
    )


def test_detail_lists_tokens_and_recent_requests_and_errors(viewer_client, idp):
    token = idp.tokens.get()
    ok = _log(idp, 200)
    failed = _log(idp, 409, path="/scim/v2/Groups")
    response = viewer_client.get(detail(idp))
    html = response.content.decode()
    assert f"{token.prefix}…" in html and token.digest not in html
    assert {r.pk for r in response.context["requests"]["recent"]} == {ok.pk, failed.pk}
    assert [r.pk for r in response.context["requests"]["errors"]] == [failed.pk]
    assert reverse("console:request_detail", args=[failed.pk]) in html
    assert RequestLog.objects.count() == 2


def test_token_page_never_leaks_into_json_or_logs(admin_client):
    data = {
        **csrf(admin_client, NEW),
        "name": "quiet",
        "role": Role.objects.get(name="provisioner").pk,
    }
    raw = raw_token_in(admin_client.post(NEW, data).content.decode())
    stored = json.dumps(list(ChangeSet.objects.values("request")), default=str)
    assert raw.split("_", 2)[2] not in stored
    for entry in AuditEntry.objects.all():
        assert raw.split("_", 2)[2] not in json.dumps(entry.changes or {}) + entry.search_text
