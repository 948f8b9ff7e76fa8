"""Operator sign-in in Chromium: single sign-on through a local OpenID Provider, TOTP
enrolment and sign-in with a generated code, and a step-up prompt before an approval.

Screenshots: signin-*.png, mfa-*.png and step-up-*.png in tests/screenshots/.
"""

from __future__ import annotations

import re
import time
from importlib import import_module

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from console.permissions import operator_role
from console.signin import session as keys
from provisioning.access.operators import operator_create
from provisioning.oversight.models import PendingOperation
from tests.signin.conftest import GROUPS, enrol_totp, totp_code
from tests.signin.oidc_provider import Provider

from .test_oversight_browser import Idp, enable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unusual passphrase"


@pytest.fixture
def idp(settings):
    provider = Provider().start()
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    yield provider
    provider.stop()


def _password_sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _session(page):
    """The server-side session of the browser's cookie."""
    cookie = next(
        c for c in page.context.cookies() if c["name"] == django_settings.SESSION_COOKIE_NAME
    )
    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    return store(session_key=cookie["value"])


def _next_code(secret: str, used: str) -> str:
    """A code the authenticator app shows after ``used`` (each code is accepted once)."""
    code = totp_code(secret)
    while code == used:
        time.sleep(1)
        code = totp_code(secret)
    return code


def test_single_sign_on_through_the_identity_provider(live_server, page, screenshot, idp):
    idp.interactive = True
    idp.user.sub = "00u-browser"
    idp.user.claims = {
        "groups": ["everyone", GROUPS["approver"]],
        "preferred_username": "ana.sso",
        "email": "ana.sso@example.com",
        "name": "Ana Sso",
    }
    page.goto(f"{live_server.url}/users/")
    page.wait_for_url(re.compile(r"/login/\?next=/users/"))
    expect(page.get_by_role("button", name="Sign in with Test IdP")).to_be_visible()
    screenshot("signin-page-sso")

    page.get_by_role("button", name="Sign in with Test IdP").click()
    page.wait_for_url(re.compile(re.escape(idp.issuer) + r"/authorize\?"))
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    screenshot("signin-idp")

    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{live_server.url}/users/")
    request = idp.authorization_requests[-1]
    assert request["code_challenge_method"] == "S256" and request["nonce"]
    expect(page.locator(".operator")).to_contain_text("ana.sso")
    expect(page.locator(".operator .role")).to_have_text("approver")
    screenshot("signin-sso-users")
    user = get_user_model().objects.get(username="ana.sso")
    assert operator_role(user) == "approver"

    # The audit log shows the sign-in with its method and the IdP subject.
    page.goto(f"{live_server.url}/audit/?action=access")
    row = page.locator("#results tbody tr").filter(has_text="signed in").first
    expect(row).to_contain_text("oidc")
    expect(row).to_contain_text("00u-browser")
    screenshot("signin-audit")


def test_totp_enrolment_then_sign_in_with_a_generated_code(live_server, page, screenshot, settings):
    settings.SCIMGATE_MFA_REQUIRED = True
    operator_create(username="admin-mfa", role="administrator", password=PASSWORD)
    _password_sign_in(page, live_server, "admin-mfa")
    # An administrator without an authenticator is sent to enrol one before anything else.
    page.wait_for_url(f"{live_server.url}/account/mfa/totp/activate/")
    expect(page.get_by_role("heading", name="Activate Authenticator App")).to_be_visible()
    screenshot("mfa-enrol")
    secret = page.locator("#authenticator_secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    first = totp_code(secret)
    page.get_by_label("Authenticator code").fill(first)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url(re.compile(r"/account/mfa/"))
    assert Authenticator.objects.filter(user__username="admin-mfa", type="totp").exists()
    screenshot("mfa-enrolled")
    page.goto(f"{live_server.url}/")
    expect(
        page.get_by_role("heading", name=re.compile("Dashboard|Overview|scimgate", re.I)).first
    ).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    _password_sign_in(page, live_server, "admin-mfa")
    page.wait_for_url(f"{live_server.url}/login/mfa/")
    screenshot("mfa-code-prompt")
    page.get_by_label("Code").fill(_next_code(secret, first))
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.locator(".operator")).to_contain_text("admin-mfa")
    screenshot("mfa-signed-in")


def test_a_step_up_prompt_before_an_approval(live_server, page, screenshot, settings):
    settings.SCIMGATE_STEP_UP_MINUTES = 15
    enable("Hold user deletions")
    scim = Idp(live_server)
    user = scim.create_user("leaver@example.com", displayName="Lee Ver")
    assert scim.call("DELETE", f"/Users/{user['id']}")[0] == 202

    approver, _ = operator_create(username="approver-op", role="approver", password=PASSWORD)
    secret = enrol_totp(approver)
    recovery = RecoveryCodes(Authenticator.objects.get(user=approver, type="recovery_codes"))
    _password_sign_in(page, live_server, "approver-op")
    page.wait_for_url(f"{live_server.url}/login/mfa/")
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(f"{live_server.url}/")

    # Twenty minutes later: the sign-in is older than the step-up window.
    stored = _session(page)
    stored[keys.AUTHENTICATED_AT] = time.time() - 20 * 60
    stored.save()

    page.goto(f"{live_server.url}/pending/")
    row = page.locator("#results tbody tr").filter(has_text="leaver@example.com")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(r"/account/step-up/\?next=%2Fpending%2F"))
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    screenshot("step-up-prompt")
    assert PendingOperation.objects.get().status == PendingOperation.Status.PENDING

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authenticator code").fill(recovery.get_unused_codes()[0])
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{live_server.url}/pending/")

    row = page.locator("#results tbody tr").filter(has_text="leaver@example.com")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Approve").click()
    page.wait_for_selector("#results tr.decided")
    assert "Approved and applied" in row.inner_text()
    screenshot("step-up-approved")
    assert PendingOperation.objects.get().status == PendingOperation.Status.APPLIED
