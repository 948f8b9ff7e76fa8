"""The operator's own API tokens for the management API: list, create (shown once),
revoke. Every operator manages their own tokens only; creating one is a new credential,
so it needs a recent sign-in (step-up), as issuing any credential does in the console."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.access import operator_tokens

from .actions import add_service_errors
from .permissions import operator_role, require_role
from .signin.stepup import require_step_up

EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses it: a script, a machine, a pipeline.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "deploy pipeline"}),
    )
    expires_in = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="90", required=False)

    def expires_at(self):
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=int(days)) if days else None


def _state(token, now) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _list_page(request: HttpRequest, form: ApiTokenForm, status: int = 200) -> HttpResponse:
    now = timezone.now()
    tokens = list(operator_tokens.operator_tokens_of(request.user))
    for token in tokens:
        token.state = _state(token, now)
    context = {"tokens": tokens, "form": form, "role": operator_role(request.user)}
    return render(request, "console/account/api_tokens.html", context, status=status)


@require_role("viewer")
@require_GET
def api_token_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, ApiTokenForm(auto_id="token_%s"))


@require_role("viewer")
@require_step_up
@require_http_methods(["POST"])
def api_token_create(request: HttpRequest) -> HttpResponse:
    """Create a token and show it on the only page that ever shows it."""
    form = ApiTokenForm(request.POST, auto_id="token_%s")
    if form.is_valid():
        try:
            token, raw = operator_tokens.operator_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
                operator=request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            response = render(
                request,
                "console/account/api_token_created.html",
                {"token": token, "raw_token": raw, "api_base": request.build_absolute_uri("/api/v1/")},
            )
            add_never_cache_headers(response)
            return response
    return _list_page(request, form, status=400)


@require_role("viewer")
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = operator_tokens.operator_token_get(request.user, token_id)
    if token is None:
        raise Http404("No such API token")
    if token.is_revoked:
        messages.warning(request, f"API token “{token.name}” was already revoked.")
    else:
        operator_tokens.operator_token_revoke(token=token, operator=request.user)
        messages.success(
            request, f"API token “{token.name}” ({token.prefix}…) revoked; requests using it now get 401."
        )
    return redirect(reverse("console:api_token_list"))
