"""Operator sessions: idle and absolute timeouts, local passwords turned off, and MFA
enrolment for the roles that require it.

Runs after authentication on every request with a signed-in user. A session that
has ended is logged out and the operator sent to the sign-in page (an htmx request
gets an ``HX-Redirect``, as ``require_role`` does). Sessions of a single sign-on
operator whose claims lost their role end without this middleware: the role sync
changes their session hash (``operator_sync_role``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from console.permissions import has_role
from provisioning.access.operator_signin import SignInEvent, operator_event_record

from . import session

# How often the last-seen time is written (a session save per request would be a write
# per click and per htmx poll).
_SEEN_RESOLUTION = 30
# Paths an operator who must enrol an authenticator may still reach.
_ENROLMENT_PATHS = ("/account/", "/logout/", "/static/")


def _go(request: HttpRequest, url: str, *, status: int = 302) -> HttpResponse:
    if getattr(request, "htmx", False):
        response = HttpResponseClientRedirect(url)
        response.status_code = status if status != 302 else 200
        return response
    return HttpResponseRedirect(url)


class OperatorSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            refusal = self._check(request, user)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _check(self, request: HttpRequest, user) -> HttpResponse | None:
        now = time.time()
        data = request.session
        signed_in = data.get(session.SIGNED_IN_AT)
        if not isinstance(signed_in, int | float):
            # A session from before these clocks existed: its timeouts start now; it earns
            # no step-up credit (no authentication was seen).
            data[session.SIGNED_IN_AT] = data[session.SEEN_AT] = now
            data.setdefault(session.METHOD, session.PASSWORD)
            return None
        reason = self._ended(request, user, now, signed_in)
        if reason:
            return self._end(request, user, reason)
        if now - data.get(session.SEEN_AT, 0) >= _SEEN_RESOLUTION:
            data[session.SEEN_AT] = now
        if self._must_enrol(request, user):
            messages.warning(
                request,
                "Your role needs two-factor authentication: set up an authenticator app "
                "before you continue.",
            )
            return _go(request, reverse("mfa_activate_totp"))
        return None

    def _ended(self, request: HttpRequest, user, now: float, signed_in: float) -> str:
        data = request.session
        idle = settings.SCIMGATE_SESSION_IDLE_MINUTES * 60
        seen = data.get(session.SEEN_AT, signed_in)
        if idle > 0 and now - seen > idle:
            return "idle timeout"
        limit = settings.SCIMGATE_SESSION_MAX_HOURS * 3600
        if limit > 0 and now - signed_in > limit:
            return "absolute timeout"
        if data.get(session.METHOD) == session.PASSWORD and not session.local_password_allowed(
            user.get_username()
        ):
            return "local passwords turned off"
        return ""

    def _end(self, request: HttpRequest, user, reason: str) -> HttpResponse:
        operator_event_record(event=SignInEvent.SESSION_ENDED, user=user, reason=reason)
        path = request.get_full_path()
        logout(request)
        messages.info(request, "Your session ended; sign in again.")
        login = redirect_to_login(path, settings.LOGIN_URL)
        return _go(request, login["Location"], status=401)

    def _must_enrol(self, request: HttpRequest, user) -> bool:
        if not settings.SCIMGATE_MFA_REQUIRED or request.path.startswith(_ENROLMENT_PATHS):
            return False
        data = request.session
        if data.get(session.MFA_OK) or data.get(session.METHOD) == session.OIDC:
            return False
        if not has_role(user, "approver"):
            return False
        from allauth.mfa.models import Authenticator

        if Authenticator.objects.filter(
            user=user, type__in=(Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
        ).exists():
            data[session.MFA_OK] = True
            return False
        return True
