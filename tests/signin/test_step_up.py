"""Step-up re-authentication before decisions that matter (SCIMGATE_STEP_UP_MINUTES)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from provisioning.audit.models import AuditEntry
from tests.factories import OperatorFactory

from .conftest import (
    GROUPS,
    PASSWORD,
    age_session,
    at_idp,
    back,
    enrol_totp,
    query_of,
    sign_in,
    totp_code,
)

pytestmark = pytest.mark.django_db

STALE = 20 * 60
# No such object: a view that runs answers 404, the step-up check answers before it.
NOWHERE = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def step_up_on(settings):
    settings.SCIMGATE_STEP_UP_MINUTES = 15


def _approver(**kwargs):
    user = OperatorFactory(role="approver", password=PASSWORD, **kwargs)
    client = Client()
    client.force_login(user)
    return user, client


def _events(user) -> list[str]:
    return [
        e.changes["event"][1]
        for e in AuditEntry.objects.filter(
            action=AuditEntry.Action.ACCESS, object_pk=str(user.pk)
        ).order_by("id")
    ]


def test_a_fresh_sign_in_counts(settings):
    _, client = _approver()
    # The approval view runs (404: no such pending operation) without a step-up.
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        f"/pending/{NOWHERE}/approve/",
        f"/pending/{NOWHERE}/reject/",
        "/changesets/999999/rollback/",
        f"/quarantines/{NOWHERE}/release/",
        f"/clients/{NOWHERE}/tokens/rotate/",
        f"/clients/{NOWHERE}/oauth/secrets/",
        "/policies/999999/toggle/",
        "/roles/new/",
        f"/policies/circuit-breaker/clients/{NOWHERE}/",
        f"/users/{NOWHERE}/restore/",
        f"/users/{NOWHERE}/reactivate/",
        "/schemas/new/",
        "/schemas/999999/edit/",
        "/schemas/999999/delete/",
    ],
)
def test_a_stale_authentication_is_sent_to_step_up(path):
    _, client = _approver(is_superuser=True)
    age_session(client, authenticated=STALE)
    response = client.post(path, HTTP_REFERER="http://testserver/pending/")
    assert response.status_code == 302
    assert response["Location"] == "/account/step-up/?next=%2Fpending%2F"


def test_htmx_gets_a_client_redirect_to_step_up():
    _, client = _approver()
    age_session(client, authenticated=STALE)
    response = client.post(
        f"/pending/{uuid.uuid4()}/approve/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/pending/?status=pending",
    )
    assert response.status_code == 403
    assert response["HX-Redirect"] == "/account/step-up/?next=%2Fpending%2F%3Fstatus%3Dpending"
    assert response.content == b""


def test_a_foreign_referer_is_not_a_next_page():
    _, client = _approver()
    age_session(client, authenticated=STALE)
    response = client.post(
        f"/pending/{uuid.uuid4()}/approve/", HTTP_REFERER="https://evil.example/x"
    )
    assert response["Location"] == "/account/step-up/?next=%2F"


def test_step_up_with_password_and_authenticator_code():
    user, client = _approver()
    secret = enrol_totp(user)
    age_session(client, authenticated=STALE)
    page = client.get("/account/step-up/?next=/pending/")
    assert page.status_code == 200 and b'name="code"' in page.content

    wrong = client.post(
        "/account/step-up/", {"password": PASSWORD, "code": "000000", "next": "/pending/"}
    )
    assert wrong.status_code == 200
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 302  # still stale

    response = client.post(
        "/account/step-up/", {"password": PASSWORD, "code": totp_code(secret), "next": "/pending/"}
    )
    assert response.status_code == 302 and response["Location"] == "/pending/"
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 404
    events = _events(user)
    assert "step-up failed" in events and events[-1] == "stepped up"


def test_step_up_needs_the_password_too():
    user, client = _approver()
    secret = enrol_totp(user)
    age_session(client, authenticated=STALE)
    response = client.post("/account/step-up/", {"password": "wrong", "code": totp_code(secret)})
    assert response.status_code == 200
    assert b"That password is not right." in response.content
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 302  # still stale


def test_step_up_without_mfa_is_the_password():
    user, client = _approver()
    age_session(client, authenticated=STALE)
    assert b'name="code"' not in client.get("/account/step-up/").content
    assert client.post("/account/step-up/", {"password": PASSWORD, "next": "/"}).status_code == 302
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 404


def test_step_up_with_the_identity_provider(sso):
    sso.user.sub = "00u-step"
    sso.user.claims = {"groups": [GROUPS["approver"]], "preferred_username": "stepper"}
    client = Client()
    assert sign_in(client).status_code == 302
    age_session(client, authenticated=STALE)
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 302

    page = client.get("/account/step-up/?next=/pending/")
    assert b"Sign in again with Test IdP" in page.content
    redirect = client.post("/account/step-up/", {"next": "/pending/"})
    params = query_of(redirect["Location"])
    assert params["prompt"] == "login" and params["max_age"] == "0"
    done = back(client, at_idp(redirect["Location"]))
    assert done.status_code == 302 and done["Location"] == "/pending/"
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 404
    assert AuditEntry.objects.filter(
        changes__event__1="stepped up", changes__method__1="oidc"
    ).exists()


def test_a_step_up_without_a_fresh_authentication_at_the_idp_is_refused(sso):
    """max_age=0 asks the provider to authenticate again; an ID token whose auth_time is
    older than the step-up request shows it did not (OpenID Connect Core §3.1.2.1)."""
    import time

    sso.user.sub = "00u-lazy"
    sso.user.claims = {"groups": [GROUPS["approver"]], "preferred_username": "lazy"}
    client = Client()
    assert sign_in(client).status_code == 302
    age_session(client, authenticated=STALE)
    sso.id_token_claims = {"auth_time": int(time.time()) - 3600}
    redirect = client.post("/account/step-up/", {"next": "/pending/"})
    response = back(client, at_idp(redirect["Location"]))
    assert response.status_code == 401
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 302


def test_a_step_up_by_another_idp_account_is_refused(sso):
    sso.user.sub = "00u-first"
    sso.user.claims = {"groups": [GROUPS["approver"]], "preferred_username": "first"}
    client = Client()
    assert sign_in(client).status_code == 302
    age_session(client, authenticated=STALE)
    sso.user.sub = "00u-second"
    sso.user.claims = {"groups": [GROUPS["administrator"]], "preferred_username": "second"}
    redirect = client.post("/account/step-up/", {"next": "/"})
    response = back(client, at_idp(redirect["Location"]))
    assert response.status_code == 403
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 302
    assert AuditEntry.objects.filter(changes__event__1="step-up failed").exists()


def test_off_when_zero(settings):
    settings.SCIMGATE_STEP_UP_MINUTES = 0
    _, client = _approver()
    age_session(client, authenticated=24 * 3600)
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 404


def test_a_session_from_before_the_clocks_earns_no_step_up_credit():
    from console.signin import session as keys

    _, client = _approver()
    stored = client.session
    for name in (keys.SIGNED_IN_AT, keys.SEEN_AT, keys.AUTHENTICATED_AT, keys.METHOD):
        stored.pop(name, None)
    stored.save()
    assert client.get("/").status_code == 200  # still signed in; its timeouts start now
    assert client.post(f"/pending/{uuid.uuid4()}/approve/").status_code == 302
