"""Console pages for a SCIM client's OAuth 2.0 credentials: client secrets (shown
once), public keys for ``private_key_jwt``, trusted federated issuers, allowed
methods and access-token settings. The OAuth panel itself is part of the client page
(``views_access.client_detail``).

Every change needs the administrator role and is a POST through
``provisioning.access.oauth_credentials`` with ``operator=request.user``: one audited
change set per action. A raw client secret exists only in the response that creates
it.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from provisioning.access import oauth_credentials as credentials
from provisioning.access.oauth_server import TOKEN_PATH
from provisioning.access.oauth_views import issuer
from provisioning.scim.resources import scim_base_url

from . import selectors
from .oauth_forms import FederationAddForm, KeyAddForm, OAuthSettingsForm, SecretIssueForm
from .permissions import require_role
from .signin.stepup import require_step_up


def oauth_context(request: HttpRequest, client) -> dict:
    """What the client page's OAuth panel shows: the values to paste into the IdP, the
    credentials, and the forms."""
    return {
        "oauth": selectors.client_oauth(client),
        "token_endpoint": issuer(request) + TOKEN_PATH,
        "oauth_issuer": issuer(request),
        "secret_form": SecretIssueForm(auto_id="secret_%s"),
        "key_form": KeyAddForm(auto_id="key_%s"),
        "federation_form": FederationAddForm(auto_id="federation_%s"),
        "oauth_settings_form": OAuthSettingsForm(
            auto_id="oauth_%s",
            initial={
                "auth_methods": client.auth_methods,
                "access_token_lifetime": str(client.access_token_lifetime),
                "allowed_networks": "\n".join(client.oauth_allowed_networks),
            },
        ),
    }


def client_or_404(client_id: uuid.UUID):
    client = selectors.client_get(client_id)
    if client is None:
        raise Http404("No such SCIM client")
    return client


def _back(client) -> HttpResponse:
    return redirect(reverse("console:client_detail", args=[client.pk]) + "#oauth-heading")


def _errors(request: HttpRequest, form, error: ValidationError | None = None) -> None:
    texts = list(error.messages) if error is not None else [
        text for errors in form.errors.values() for text in errors
    ]
    messages.error(request, " ".join(texts) or "The form is not valid.")


@require_role("administrator")
@require_step_up
@require_POST
def secret_issue(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    """Issue a client secret and show it, once, with what the IdP needs beside it."""
    client = client_or_404(client_id)
    form = SecretIssueForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return _back(client)
    try:
        secret, raw = credentials.client_secret_issue(
            client=client, expires_at=form.expires_at(), operator=request.user
        )
    except ValidationError as error:
        _errors(request, form, error)
        return _back(client)
    response = render(
        request,
        "console/clients/secret.html",
        {
            "client": client,
            "secret": secret,
            "raw_secret": raw,
            "token_endpoint": issuer(request) + TOKEN_PATH,
            "scim_base": scim_base_url(request),
        },
    )
    add_never_cache_headers(response)
    return response


@require_role("administrator")
@require_POST
def secret_revoke(request: HttpRequest, client_id: uuid.UUID, secret_id: int) -> HttpResponse:
    client = client_or_404(client_id)
    secret = selectors.client_secret_get(client, secret_id)
    if secret is None:
        raise Http404("No such client secret")
    if secret.revoked_at is None:
        credentials.client_secret_revoke(secret=secret, operator=request.user)
        messages.success(request, f"Client secret {secret.prefix}… revoked.")
    return _back(client)


@require_role("administrator")
@require_step_up
@require_POST
def key_add(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    client = client_or_404(client_id)
    form = KeyAddForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return _back(client)
    try:
        entry = credentials.client_key_add(
            client=client,
            jwks=form.cleaned_data["jwks"],
            jwks_uri=form.cleaned_data["jwks_uri"] or "",
            operator=request.user,
        )
    except ValidationError as error:
        _errors(request, form, error)
        return _back(client)
    messages.success(
        request,
        f"Keys registered ({', '.join(entry.key_ids) or entry.jwks_uri or 'no kid'}); "
        "private_key_jwt is allowed.",
    )
    return _back(client)


@require_role("administrator")
@require_POST
def key_revoke(request: HttpRequest, client_id: uuid.UUID, key_id: int) -> HttpResponse:
    client = client_or_404(client_id)
    entry = selectors.client_key_get(client, key_id)
    if entry is None:
        raise Http404("No such key")
    if entry.revoked_at is None:
        credentials.client_key_revoke(key=entry, operator=request.user)
        messages.success(request, "Keys revoked.")
    return _back(client)


@require_role("administrator")
@require_step_up
@require_POST
def federation_add(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    client = client_or_404(client_id)
    form = FederationAddForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return _back(client)
    try:
        federation = credentials.federation_add(client=client, operator=request.user, **form.cleaned_data)
    except ValidationError as error:
        _errors(request, form, error)
        return _back(client)
    messages.success(request, f"JWTs from {federation.issuer} about {federation.subject} are trusted.")
    return _back(client)


@require_role("administrator")
@require_POST
def federation_revoke(request: HttpRequest, client_id: uuid.UUID, federation_id: int) -> HttpResponse:
    client = client_or_404(client_id)
    federation = selectors.client_federation_get(client, federation_id)
    if federation is None:
        raise Http404("No such federated issuer")
    if federation.revoked_at is None:
        credentials.federation_revoke(federation=federation, operator=request.user)
        messages.success(request, f"{federation.issuer} is no longer trusted for {client.name}.")
    return _back(client)


@require_role("administrator")
@require_step_up
@require_POST
def oauth_settings(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    client = client_or_404(client_id)
    form = OAuthSettingsForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return _back(client)
    data = form.cleaned_data
    # One change: a value refused by the services still changes nothing.
    try:
        credentials.scim_client_change_authentication(
            client=client,
            auth_methods=data["auth_methods"],
            access_token_lifetime=data["access_token_lifetime"],
            allowed_networks=data["allowed_networks"],
            operator=request.user,
        )
    except ValidationError as error:
        client.refresh_from_db()
        _errors(request, form, error)
        return _back(client)
    messages.success(request, "Authentication settings saved.")
    return _back(client)


@require_role("administrator")
@require_POST
def access_tokens_revoke(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    client = client_or_404(client_id)
    count = credentials.access_tokens_revoke(client=client, operator=request.user)
    messages.success(request, f"{count} access token{'s' if count != 1 else ''} revoked.")
    return _back(client)
