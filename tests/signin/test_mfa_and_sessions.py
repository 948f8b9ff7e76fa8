"""Local accounts: MFA (TOTP, recovery codes) at sign-in, MFA required for approvers and
administrators, local passwords turned off except break-glass accounts, session timeouts."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.test import Client

from provisioning.audit.models import AuditEntry
from tests.factories import OperatorFactory

from .conftest import PASSWORD, age_session, enrol_totp, totp_code

pytestmark = pytest.mark.django_db


def _events(user) -> list[str]:
    return [
        e.changes["event"][1]
        for e in AuditEntry.objects.filter(
            action=AuditEntry.Action.ACCESS, object_pk=str(user.pk)
        ).order_by("id")
    ]


def _password(client, user, next_url="/"):
    return client.post(
        f"/login/?next={next_url}", {"username": user.username, "password": PASSWORD}
    )


# --- MFA at sign-in ------------------------------------------------------------------------


def test_password_then_authenticator_code():
    user = OperatorFactory(role="approver", password=PASSWORD)
    secret = enrol_totp(user)
    client = Client()
    first = _password(client, user)
    assert first.status_code == 302 and first["Location"] == "/login/mfa/"
    assert client.get("/").status_code == 302  # not signed in yet

    wrong = client.post(
        "/login/mfa/", {"code": "123456" if totp_code(secret) != "123456" else "654321"}
    )
    assert wrong.status_code == 200
    done = client.post("/login/mfa/", {"code": totp_code(secret)})
    assert done.status_code == 302 and done["Location"] == "/"
    assert client.get("/").status_code == 200
    events = _events(user)
    assert "MFA code refused" in events
    signed_in = AuditEntry.objects.filter(
        changes__event__1="signed in", object_pk=str(user.pk)
    ).get()
    assert signed_in.changes["method"][1] == "password+totp"


def test_a_recovery_code_instead_of_the_app():
    user = OperatorFactory(role="approver", password=PASSWORD)
    enrol_totp(user)
    code = RecoveryCodes(
        Authenticator.objects.get(user=user, type="recovery_codes")
    ).get_unused_codes()[0]
    client = Client()
    _password(client, user)
    assert client.post("/login/mfa/", {"code": code}).status_code == 302
    assert client.get("/").status_code == 200
    # Used once.
    other = Client()
    _password(other, user)
    assert other.post("/login/mfa/", {"code": code}).status_code == 200


def test_enrolling_and_removing_an_authenticator_is_audited(django_capture_on_commit_callbacks):
    user = OperatorFactory(role="viewer", password=PASSWORD)
    client = Client()
    assert _password(client, user).status_code == 302
    page = client.get("/account/mfa/totp/activate/")
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    # allauth announces the new authenticator once its transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        activated = client.post("/account/mfa/totp/activate/", {"code": totp_code(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type="totp").exists()
    deactivated = client.post("/account/mfa/totp/deactivate/", {})
    assert deactivated.status_code == 302
    assert not Authenticator.objects.filter(user=user, type="totp").exists()
    events = _events(user)
    assert "MFA authenticator added" in events and "MFA authenticator removed" in events


# --- MFA required for approvers and administrators -------------------------------------------


@pytest.fixture
def mfa_required(settings):
    settings.SCIMGATE_MFA_REQUIRED = True


def test_an_approver_without_mfa_must_enrol_first(mfa_required):
    user = OperatorFactory(role="approver", password=PASSWORD)
    client = Client()
    assert _password(client, user, "/pending/").status_code == 302
    response = client.get("/pending/")
    assert response.status_code == 302 and response["Location"] == "/account/mfa/totp/activate/"
    htmx = client.get("/pending/", HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == "/account/mfa/totp/activate/"
    # The enrolment page itself is reachable; once enrolled, the console is.
    assert client.get("/account/mfa/totp/activate/").status_code == 200
    secret = client.session["mfa.totp.secret"]
    client.post("/account/mfa/totp/activate/", {"code": totp_code(secret)})
    assert client.get("/pending/").status_code == 200


def test_a_viewer_is_not_forced(mfa_required):
    user = OperatorFactory(role="viewer", password=PASSWORD)
    client = Client()
    _password(client, user)
    assert client.get("/").status_code == 200


def test_the_production_default_requires_mfa_and_step_up():
    from provisioning import settings as production

    assert production.SCIMGATE_MFA_REQUIRED is True
    assert production.SCIMGATE_STEP_UP_MINUTES == 15
    assert production.SCIMGATE_SESSION_IDLE_MINUTES == 30
    assert production.SCIMGATE_SESSION_MAX_HOURS == 8


# --- local passwords and break-glass accounts -----------------------------------------------


@pytest.fixture
def passwords_off(settings):
    settings.SCIMGATE_LOCAL_PASSWORDS = False
    settings.SCIMGATE_BREAK_GLASS_ACCOUNTS = ["Emergency"]


def test_passwords_off_refuses_ordinary_accounts(passwords_off):
    user = OperatorFactory(role="administrator", password=PASSWORD)
    client = Client()
    response = _password(client, user)
    assert response.status_code == 200
    assert client.get("/").status_code == 302
    failed = AuditEntry.objects.filter(changes__event__1="sign-in failed", object_pk=str(user.pk))
    assert failed.exists()


def test_break_glass_accounts_still_sign_in(passwords_off):
    user = OperatorFactory(role="administrator", password=PASSWORD, username="emergency")
    client = Client()
    assert _password(client, user).status_code == 302
    assert client.get("/").status_code == 200


def test_password_sessions_end_when_passwords_are_turned_off(settings):
    user = OperatorFactory(role="viewer", password=PASSWORD)
    client = Client()
    _password(client, user)
    assert client.get("/").status_code == 200
    settings.SCIMGATE_LOCAL_PASSWORDS = False
    assert client.get("/").status_code == 302
    assert "session ended" in _events(user)


def test_the_admin_signs_in_through_the_console():
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- session timeouts ---------------------------------------------------------------------


def _signed_in():
    user = OperatorFactory(role="viewer")
    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 200
    return user, client


def test_idle_timeout(settings):
    user, client = _signed_in()
    age_session(client, seen=settings.SCIMGATE_SESSION_IDLE_MINUTES * 60 + 5)
    response = client.get("/users/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/users/"
    assert client.get("/").status_code == 302
    ended = AuditEntry.objects.filter(
        changes__event__1="session ended", object_pk=str(user.pk)
    ).get()
    assert ended.changes["reason"][1] == "idle timeout"


def test_activity_keeps_an_idle_session_alive(settings):
    _, client = _signed_in()
    age_session(client, seen=settings.SCIMGATE_SESSION_IDLE_MINUTES * 60 - 60)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200


def test_absolute_timeout(settings):
    user, client = _signed_in()
    age_session(client, signed_in=settings.SCIMGATE_SESSION_MAX_HOURS * 3600 + 5, seen=1)
    htmx = client.get("/users/", HTTP_HX_REQUEST="true")
    assert htmx.status_code == 401 and htmx["HX-Redirect"].startswith("/login/")
    ended = AuditEntry.objects.filter(
        changes__event__1="session ended", object_pk=str(user.pk)
    ).get()
    assert ended.changes["reason"][1] == "absolute timeout"


def test_the_audit_log_shows_sign_in_events():
    user = OperatorFactory(role="viewer", password=PASSWORD)
    client = Client()
    _password(client, user)
    page = client.get("/audit/?action=access").content.decode()
    assert "signed in" in page and user.username in page
