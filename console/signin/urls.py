"""Sign-in, MFA and step-up URLs. allauth's views keep allauth's URL names (its own
redirects use them); every view an operator reaches signed in is wrapped in
``require_role``, so the URL walk (tests/console/test_url_permissions.py) checks it.
The public ones: signing in (password, MFA code, identity provider) and out."""

from __future__ import annotations

from allauth.account import views as account_views
from allauth.mfa.base import views as mfa_views
from allauth.mfa.recovery_codes import views as recovery_views
from allauth.mfa.totp import views as totp_views
from allauth.mfa.webauthn import views as webauthn_views
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console.permissions import require_role

from . import oidc, stepup, views

operator = require_role("viewer")

urlpatterns = [
    # Public.
    path("login/", views.login, name="account_login"),
    path("logout/", auth_views.LogoutView.as_view(), name="account_logout"),
    path("login/sso/", views.oidc_login, name="oidc_login"),
    path("login/sso/callback/", oidc.callback, name="oidc_callback"),
    path("login/mfa/", mfa_views.authenticate, name="mfa_authenticate"),
    path("login/inactive/", account_views.account_inactive, name="account_inactive"),
    # Signed-in operators: step-up, re-authentication, their own authenticators.
    path("account/step-up/", stepup.step_up, name="step_up"),
    path(
        "account/reauthenticate/",
        operator(account_views.reauthenticate),
        name="account_reauthenticate",
    ),
    path(
        "account/mfa/",
        include(
            [
                path("", operator(mfa_views.index), name="mfa_index"),
                path(
                    "reauthenticate/",
                    operator(mfa_views.reauthenticate),
                    name="mfa_reauthenticate",
                ),
                path(
                    "totp/activate/",
                    operator(totp_views.activate_totp),
                    name="mfa_activate_totp",
                ),
                path(
                    "totp/deactivate/",
                    operator(totp_views.deactivate_totp),
                    name="mfa_deactivate_totp",
                ),
                path(
                    "recovery-codes/",
                    operator(recovery_views.view_recovery_codes),
                    name="mfa_view_recovery_codes",
                ),
                path(
                    "recovery-codes/generate/",
                    operator(recovery_views.generate_recovery_codes),
                    name="mfa_generate_recovery_codes",
                ),
                path(
                    "recovery-codes/download/",
                    operator(recovery_views.download_recovery_codes),
                    name="mfa_download_recovery_codes",
                ),
                path("webauthn/", operator(webauthn_views.list_webauthn), name="mfa_list_webauthn"),
                path(
                    "webauthn/add/", operator(webauthn_views.add_webauthn), name="mfa_add_webauthn"
                ),
                path(
                    "webauthn/reauthenticate/",
                    operator(webauthn_views.reauthenticate_webauthn),
                    name="mfa_reauthenticate_webauthn",
                ),
                path(
                    "webauthn/keys/<int:pk>/remove/",
                    operator(webauthn_views.remove_webauthn),
                    name="mfa_remove_webauthn",
                ),
                path(
                    "webauthn/keys/<int:pk>/edit/",
                    operator(webauthn_views.edit_webauthn),
                    name="mfa_edit_webauthn",
                ),
            ]
        ),
    ),
]
