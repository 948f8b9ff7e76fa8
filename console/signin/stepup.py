"""Step-up re-authentication before decisions that matter.

``require_step_up`` wraps a console view (inside ``require_role``): when the
operator's last authentication is older than SCIMGATE_STEP_UP_MINUTES, the request
is not run; the operator is sent to the step-up page (an htmx request gets an
``HX-Redirect`` there), with ``next`` the page they acted from, to confirm it is
them and then repeat the action. Local operators confirm with their password and,
when they have one, an MFA code (authenticator app or recovery code); single
sign-on operators sign in again at the identity provider (``prompt=login``,
``max_age=0``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from allauth.mfa.base.forms import ReauthenticateForm
from allauth.mfa.models import Authenticator
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect
from requests import RequestException

from console.permissions import require_role
from provisioning.access.operator_signin import SignInEvent, operator_event_record

from . import oidc, session
from .redirects import referring_page, safe_next

View = Callable[..., HttpResponse]


def step_up_url(next_url: str) -> str:
    return f"{reverse('step_up')}?{urlencode({'next': next_url})}"


def require_step_up(view: View) -> View:
    """Run ``view`` only for an operator who authenticated within the step-up window."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if session.step_up_fresh(request):
            return view(request, *args, **kwargs)
        if request.method in ("GET", "HEAD") and not getattr(request, "htmx", False):
            back = request.get_full_path()
        else:
            # A form post cannot be replayed by a redirect: back to the page it came from.
            back = referring_page(request)
        url = step_up_url(back)
        if getattr(request, "htmx", False):
            response = HttpResponseClientRedirect(url)
            response.status_code = 403
            return response
        return HttpResponseRedirect(url)

    checked.requires_step_up = True  # type: ignore[attr-defined]
    return checked


class StepUpForm(forms.Form):
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    code = forms.CharField(
        label="Authenticator code",
        required=False,
        help_text="From your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"}
        ),
    )

    def __init__(self, *args, request: HttpRequest, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user = request.user
        self.needs_code = Authenticator.objects.filter(
            user=self.user,
            type__in=(Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES),
        ).exists()
        self._mfa_form: ReauthenticateForm | None = None
        if not self.needs_code:
            del self.fields["code"]
        else:
            self.fields["code"].required = True

    def clean(self) -> dict:
        data = super().clean()
        password = data.get("password")
        if password:
            # Through the backends, so django-axes counts a wrong password here too.
            user = authenticate(self.request, username=self.user.get_username(), password=password)
            if user is None or user.pk != self.user.pk:
                raise forms.ValidationError("That password is not right.", code="password")
        if self.needs_code and data.get("code"):
            mfa = ReauthenticateForm(data={"code": data["code"]}, user=self.user)
            if not mfa.is_valid():
                self.add_error("code", mfa.errors.get("code") or "That code is not right.")
            self._mfa_form = mfa
        return data

    def save(self) -> None:
        if self._mfa_form is not None:
            # Records the MFA re-authentication (and the recovery code's use) with allauth.
            self._mfa_form.save()


@require_role("viewer")
@require_http_methods(["GET", "POST"])
def step_up(request: HttpRequest) -> HttpResponse:
    """Confirm it is the operator: password and MFA code, or the identity provider."""
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    context: dict[str, Any] = {
        "next": next_url,
        "minutes": settings.SCIMGATE_STEP_UP_MINUTES,
        "fresh": session.step_up_fresh(request),
    }
    if session.is_idp_operator(request.user):
        context["sso_name"] = settings.SCIMGATE_OIDC_NAME
        if request.method == "POST":
            if not session.sso_enabled():
                context["error"] = "Single sign-on is not configured."
            else:
                try:
                    return oidc.start_step_up(request, next_url)
                except (OAuth2Error, RequestException) as exc:
                    return oidc.failed(request, exc)
        return oidc.allow_form_posts_to_idp(render(request, "account/step_up.html", context))
    form = StepUpForm(request.POST if request.method == "POST" else None, request=request)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            session.mark_stepped_up(request)
            operator_event_record(
                event=SignInEvent.STEPPED_UP,
                user=request.user,
                method=session.PASSWORD + ("+mfa" if form.needs_code else ""),
            )
            return HttpResponseRedirect(next_url)
        operator_event_record(
            event=SignInEvent.STEP_UP_FAILED,
            user=request.user,
            method=session.PASSWORD,
            reason="; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()),
        )
    context["form"] = form
    return render(request, "account/step_up.html", context)
