"""The sign-in page (local password and single sign-on) and the start of an OpenID
Connect sign-in. The MFA pages are allauth's (``urls.py``)."""

from __future__ import annotations

from allauth.account.views import LoginView
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from requests import RequestException

from . import oidc, session
from .redirects import safe_next


class OperatorLoginView(LoginView):
    """allauth's login (its MFA stage included), offering single sign-on beside it."""

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context.update(
            {
                "sso_enabled": session.sso_enabled(),
                "sso_name": settings.SCIMGATE_OIDC_NAME,
                "local_passwords": settings.SCIMGATE_LOCAL_PASSWORDS,
                "next": safe_next(self.request, self.request.GET.get("next"), ""),
            }
        )
        return context

    def render_to_response(self, context, **kwargs) -> HttpResponse:
        response = super().render_to_response(context, **kwargs)
        return oidc.allow_form_posts_to_idp(response) if session.sso_enabled() else response


login = OperatorLoginView.as_view()


@require_POST
def oidc_login(request: HttpRequest) -> HttpResponse:
    """Start a sign-in at the identity provider (a POST, so no other site can start one)."""
    if not session.sso_enabled():
        raise Http404("Single sign-on is not configured.")
    next_url = safe_next(request, request.POST.get("next"), "") or None
    try:
        return oidc.start_sign_in(request, next_url)
    except (OAuth2Error, RequestException) as exc:
        return oidc.failed(request, exc)
