"""django-allauth adapters: how operators sign in.

- Accounts: nobody signs up (local operators come from ``createoperator`` or the
  admin); passwords are throttled by django-axes, not by allauth's counter;
  MFA changes need a re-authentication only when the last one is older than a step-up.
- Single sign-on: one OpenID Connect application built from the SCIMGATE_OIDC_*
  settings; the console role comes from the claims of every sign-in; an operator is
  created just in time, never linked to an existing local account by email.
"""

from __future__ import annotations

import re
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.conf import settings
from django.contrib.auth import get_user_model, logout
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import render

from provisioning.access.operator_signin import (
    SignInEvent,
    operator_event_record,
    operator_sync_role,
    role_from_claims,
)
from provisioning.access.units import unit_of_change

from . import session
from .oidc import PROVIDER_ID
from .redirects import safe_next


class OperatorAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        # django-axes throttles password guessing per username and address (it answers
        # 429 with its lockout page); allauth's second counter would refuse differently.
        self._login_failed_rl_usage = None

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        request = context.request
        if (
            request is not None
            and getattr(request, "user", None) is not None
            and request.user.is_authenticated
            and session.authenticated_within(request, settings.ACCOUNT_REAUTHENTICATION_TIMEOUT)
        ):
            # Signed in or stepped up just now: enrolling an authenticator right after
            # sign-in (as MFA_REQUIRED asks) does not ask for the password again.
            return False
        return super().is_reauthentication_required(app=app, **kwargs)


def claims_of(sociallogin: SocialLogin) -> dict:
    """The ID token's claims, with the UserInfo claims (same subject) over them."""
    data = sociallogin.account.extra_data or {}
    return {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}


def granted_role(sociallogin: SocialLogin) -> str | None:
    return role_from_claims(
        claims_of(sociallogin),
        claim=settings.SCIMGATE_OIDC_ROLE_CLAIM,
        values=settings.SCIMGATE_OIDC_ROLE_VALUES,
    )


def _claimed_name(claims: dict) -> str:
    for name in settings.SCIMGATE_OIDC_USERNAME_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return str(claims.get("sub", "operator"))


def unique_username(candidate: str) -> str:
    """``candidate`` (trimmed to fit), or it with -2, -3, ... when an account has it."""
    User = get_user_model()
    field = User._meta.get_field(User.USERNAME_FIELD)
    base = re.sub(r"\s+", "-", candidate)[: field.max_length - 8] or "operator"
    name, n = base, 1
    while User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": name}).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _refusal(request: HttpRequest, reason: str):
    return ImmediateHttpResponse(
        render(request, "account/sso_refused.html", {"reason": reason}, status=403)
    )


class OperatorSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest, provider=None, client_id=None) -> list[SocialApp]:
        if not session.sso_enabled():
            return []
        app_settings: dict[str, Any] = {
            "server_url": settings.SCIMGATE_OIDC_ISSUER,
            "oauth_pkce_enabled": True,
            "fetch_userinfo": settings.SCIMGATE_OIDC_FETCH_USERINFO,
            "scope": list(dict.fromkeys(["openid", *settings.SCIMGATE_OIDC_SCOPES])),
        }
        if settings.SCIMGATE_OIDC_TOKEN_AUTH_METHOD:
            app_settings["token_auth_method"] = settings.SCIMGATE_OIDC_TOKEN_AUTH_METHOD
        app = SocialApp(
            provider="openid_connect",
            provider_id=PROVIDER_ID,
            name=settings.SCIMGATE_OIDC_NAME,
            client_id=settings.SCIMGATE_OIDC_CLIENT_ID,
            secret=settings.SCIMGATE_OIDC_CLIENT_SECRET,
            settings=app_settings,
        )
        if provider and provider not in (app.provider, app.provider_id):
            return []
        if client_id and client_id != app.client_id:
            return []
        return [app]

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return session.sso_enabled()

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data):
        user = super().populate_user(request, sociallogin, data)
        user.username = unique_username(_claimed_name(claims_of(sociallogin)))
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Every sign-in: the role from the claims, now. No role, no sign-in (and an
        existing operator loses their role and every open session)."""
        subject = sociallogin.account.uid
        role = granted_role(sociallogin)
        if (sociallogin.state or {}).get("step_up"):
            self._step_up(request, sociallogin, role)
        if sociallogin.is_existing:
            operator_sync_role(user=sociallogin.user, role=role, subject=subject)
        if role is None:
            reason = f"The identity provider's “{settings.SCIMGATE_OIDC_ROLE_CLAIM}” claim grants no console role."
            operator_event_record(
                event=SignInEvent.SIGN_IN_REFUSED,
                user=sociallogin.user if sociallogin.is_existing else None,
                username=_claimed_name(claims_of(sociallogin)),
                method=session.OIDC,
                idp_subject=subject,
                reason=reason,
            )
            raise _refusal(request, reason)

    def _step_up(self, request: HttpRequest, sociallogin: SocialLogin, role: str | None) -> None:
        """A fresh sign-in asked for by the step-up page: the same operator, still holding
        a role, authenticated again just now (the adapter checked auth_time)."""
        user = request.user
        subject = sociallogin.account.uid
        same = (
            user.is_authenticated
            and sociallogin.is_existing
            and sociallogin.user.pk == user.pk
            and request.session.get(session.IDP_SUBJECT) == subject
        )
        if not same:
            operator_event_record(
                event=SignInEvent.STEP_UP_FAILED,
                user=user if user.is_authenticated else None,
                method=session.OIDC,
                idp_subject=subject,
                reason="the identity provider authenticated another account",
            )
            raise _refusal(request, "The identity provider signed in another account.")
        operator_sync_role(user=user, role=role, subject=subject)
        if role is None:
            logout(request)
            raise _refusal(
                request,
                f"The identity provider's “{settings.SCIMGATE_OIDC_ROLE_CLAIM}” claim no longer grants a console role.",
            )
        session.mark_stepped_up(request)
        operator_event_record(
            event=SignInEvent.STEPPED_UP, user=user, method=session.OIDC, idp_subject=subject
        )
        next_url = safe_next(request, (sociallogin.state or {}).get("next"))
        raise ImmediateHttpResponse(HttpResponseRedirect(next_url))

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form=None):
        """Just-in-time creation of a single sign-on operator, with the role the claims
        grant, in one audited change set."""
        role = granted_role(sociallogin)
        if role is None:  # pre_social_login refused already; never create a roleless user
            raise _refusal(request, "No console role.")
        with transaction.atomic(), unit_of_change(operator=sociallogin.user, source="signin"):
            user = super().save_user(request, sociallogin, form)
            operator_sync_role(user=user, role=role, subject=sociallogin.account.uid)
        return user

    def on_authentication_error(
        self, request: HttpRequest, provider, error=None, exception=None, extra_context=None
    ) -> None:
        reason = str(exception) if exception else str(error or "unknown error")
        operator_event_record(
            event=SignInEvent.SIGN_IN_FAILED,
            username="(single sign-on)",
            method=session.OIDC,
            reason=reason[:300],
        )
        # One page for every failure, a cancellation at the provider included.
        raise ImmediateHttpResponse(
            render(
                request,
                "socialaccount/authentication_error.html",
                {"auth_error": {"code": error}},
                status=401,
            )
        )
