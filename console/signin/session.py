"""What an operator's session knows about how and when they authenticated.

Set at every sign-in (``signals.on_logged_in``) and step-up; read by the session
middleware (timeouts, MFA enrolment) and the step-up check. Times are Unix seconds.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

SIGNED_IN_AT = "scimgate_signed_in_at"
SEEN_AT = "scimgate_seen_at"
# The last authentication that proved the operator is present: sign-in or step-up.
AUTHENTICATED_AT = "scimgate_authenticated_at"
METHOD = "scimgate_signin_method"
IDP_SUBJECT = "scimgate_idp_subject"
MFA_OK = "scimgate_mfa_ok"

OIDC = "oidc"
PASSWORD = "password"


def mark_signed_in(request: HttpRequest, *, method: str, subject: str = "") -> None:
    now = time.time()
    session = request.session
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now
    session[AUTHENTICATED_AT] = now
    session[METHOD] = method
    if subject:
        session[IDP_SUBJECT] = subject
    else:
        session.pop(IDP_SUBJECT, None)
    session.pop(MFA_OK, None)


def mark_stepped_up(request: HttpRequest) -> None:
    request.session[AUTHENTICATED_AT] = time.time()


def signed_in_with_idp(request: HttpRequest) -> bool:
    return request.session.get(METHOD) == OIDC


def is_idp_operator(user: AbstractBaseUser) -> bool:
    """Whether ``user`` signs in only through the identity provider (no local password)."""
    from allauth.socialaccount.models import SocialAccount

    return not user.has_usable_password() and SocialAccount.objects.filter(user=user).exists()


def authenticated_within(request: HttpRequest, seconds: float) -> bool:
    at = request.session.get(AUTHENTICATED_AT)
    return isinstance(at, int | float) and time.time() - at < seconds


def step_up_fresh(request: HttpRequest) -> bool:
    """Whether the operator authenticated recently enough for a decision that matters."""
    minutes = settings.SCIMGATE_STEP_UP_MINUTES
    return minutes <= 0 or authenticated_within(request, minutes * 60)


def local_password_allowed(username: str) -> bool:
    """Whether ``username`` may sign in with a local password (SCIMGATE_LOCAL_PASSWORDS,
    else only the break-glass accounts; names compare case-insensitively)."""
    if settings.SCIMGATE_LOCAL_PASSWORDS:
        return True
    wanted = (username or "").casefold()
    return any(wanted == name.casefold() for name in settings.SCIMGATE_BREAK_GLASS_ACCOUNTS)


def sso_enabled() -> bool:
    return bool(settings.SCIMGATE_OIDC_ISSUER and settings.SCIMGATE_OIDC_CLIENT_ID)
