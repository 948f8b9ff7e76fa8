"""OAuth 2.0 credentials of a SCIM client in the management API: client secrets, public
keys for ``private_key_jwt`` (RFC 7523 §2.2), trusted federated issuers, the
authentication settings, and revoking every access token of the client.

Each call does what the console's OAuth panel does (``console/views_oauth.py``), through
the same forms and services (``provisioning.access.oauth_credentials``): reading needs
the viewer role (the panel is on the client's page), every change the administrator
role; issuing a secret, registering keys, trusting an issuer and changing the settings
need the console's recent sign-in (step-up) through the session, revoking does not (it
only takes access away). Changes run in ``api_scope`` (audited, source "api").

A raw client secret is in the one answer that issues it, marked ``Cache-Control:
no-store``; it is never stored, so that call takes no ``Idempotency-Key`` (a replay
would have to keep the secret). The settings have an ETag of their own (only what the
settings form changes), which ``If-Match`` names on a change: token requests, which
change the credentials' ``last_used_at``, do not make it stale.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from console import selectors
from console.views_oauth import client_or_404
from provisioning.access import oauth_credentials as credentials
from provisioning.access.models import ClientKey, ClientSecret, FederatedIssuer, ScimClient
from provisioning.access.oauth_server import TOKEN_PATH
from provisioning.access.oauth_views import issuer
from provisioning.scim.resources import scim_base_url

from .base import Administer, ApiView, api_scope, require_fresh_session
from .idempotency import idempotent
from .preconditions import conditional_response, etag_of, if_match
from .schema import path_id
from .serializers_oauth import (
    AccessTokensRevokedSerializer,
    AddedFederationSerializer,
    AddedKeySerializer,
    FederationAddSerializer,
    IssuedSecretSerializer,
    KeyAddSerializer,
    OAuthCredentialsSerializer,
    OAuthSettingsChangeSerializer,
    OAuthSettingsSerializer,
    SecretIssueSerializer,
)
from .views import ETAG_HEADER, IDEMPOTENCY_KEY, IF_MATCH
from .views_config import NOT_MODIFIED

TAGS = ["scim client oauth"]
SECRET_ID = path_id("secret_id", "A client secret's id.")
KEY_ID = path_id("key_id", "A registered key set's id.")
FEDERATION_ID = path_id("federation_id", "A federated issuer's id.")


# --- Representations ------------------------------------------------------------------------------


def _secret_data(secret: ClientSecret) -> dict:
    return {
        "id": secret.pk,
        "prefix": secret.prefix,
        "state": secret.state,
        "created_at": secret.created_at,
        "expires_at": secret.expires_at,
        "revoked_at": secret.revoked_at,
        "last_used_at": secret.last_used_at,
    }


def _key_data(key: ClientKey) -> dict:
    return {
        "id": key.pk,
        "jwks": key.jwks,
        "jwks_uri": key.jwks_uri,
        "key_ids": list(key.key_ids or []),
        "state": key.state,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def _federation_data(federation: FederatedIssuer) -> dict:
    return {
        "id": federation.pk,
        "issuer": federation.issuer,
        "subject": federation.subject,
        "audience": federation.audience,
        "state": federation.state,
        "created_at": federation.created_at,
        "expires_at": federation.expires_at,
        "revoked_at": federation.revoked_at,
        "last_used_at": federation.last_used_at,
    }


def _settings_data(client: ScimClient) -> dict:
    return {
        "client": {"id": client.pk, "name": client.name},
        "auth_methods": list(client.auth_methods or []),
        "access_token_lifetime": client.access_token_lifetime,
        "allowed_networks": list(client.oauth_allowed_networks or []),
    }


def oauth_representation(request: Request, client_id: uuid.UUID) -> tuple[dict, str]:
    """The client's OAuth panel as the API shows it (read afresh), and its ETag."""
    client = client_or_404(client_id)
    oauth = selectors.client_oauth(client)
    data = {
        "client": {"id": client.pk, "name": client.name},
        "client_id": str(client.pk),
        "token_endpoint": issuer(request) + TOKEN_PATH,
        "issuer": issuer(request),
        "scim_base_url": scim_base_url(request),
        "settings": _settings_data(client),
        "active_access_tokens": oauth["active_access_tokens"],
        "failed_token_requests": client.oauth_failures,
        "last_failed_token_request_at": client.oauth_last_failure_at,
        "secrets": [_secret_data(s) for s in oauth["secrets"]],
        "keys": [_key_data(k) for k in oauth["keys"]],
        "federations": [_federation_data(f) for f in oauth["federations"]],
    }
    data = OAuthCredentialsSerializer(data).data
    return data, etag_of(data)


def settings_representation(client: ScimClient) -> tuple[dict, str]:
    data = OAuthSettingsSerializer(_settings_data(client)).data
    return data, etag_of(data)


def _listed(data: dict, kind: str, pk: int) -> dict:
    """One credential of ``kind`` as the representation lists it (with its state)."""
    return next(row for row in data[kind] if row["id"] == pk)


# --- Reading --------------------------------------------------------------------------------------


class OAuthCredentials(ApiView):
    """The client's OAuth 2.0 panel: the values for the IdP (client id, token endpoint,
    tenant URL), the settings, and its secrets (public prefixes), keys and federated
    issuers, newest first, each with its state; never a secret."""

    @extend_schema(
        responses={200: OAuthCredentialsSerializer, 304: NOT_MODIFIED},
        parameters=[ETAG_HEADER],
        operation_id="scim_client_oauth_retrieve",
        tags=TAGS,
    )
    def get(self, request: Request, client_id: uuid.UUID) -> Response:
        data, etag = oauth_representation(request, client_id)
        return conditional_response(request, data, etag)


class OAuthSettings(ApiView):
    """The client's authentication settings: allowed methods, access-token lifetime and
    networks. Its ETag is what ``If-Match`` names on a change."""

    @extend_schema(
        responses={200: OAuthSettingsSerializer, 304: NOT_MODIFIED},
        parameters=[ETAG_HEADER],
        operation_id="scim_client_oauth_settings_retrieve",
        tags=TAGS,
    )
    def get(self, request: Request, client_id: uuid.UUID) -> Response:
        data, etag = settings_representation(client_or_404(client_id))
        return conditional_response(request, data, etag)


# --- Client secrets -------------------------------------------------------------------------------


class OAuthSecretIssue(Administer):
    """Issue a client secret (valid one, two or three years) and allow the client-secret
    method; the client's other secrets keep working (rotate: issue, configure the IdP,
    revoke the old one). The secret is in this answer only."""

    @extend_schema(
        request=SecretIssueSerializer,
        responses={201: IssuedSecretSerializer},
        operation_id="scim_client_oauth_secrets_issue",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        require_fresh_session(request)
        serializer = SecretIssueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client = client_or_404(client_id)
        summary = {
            "action": "oauth_secret.issue",
            "client": str(client.pk),
            "lifetime_days": serializer.validated_data["lifetime"],
        }
        with transaction.atomic(), api_scope(request, summary):
            secret, raw = credentials.client_secret_issue(
                client=client,
                expires_at=serializer.validated_data["expires_at"],
                operator=request.user,
            )
        oauth, _etag = oauth_representation(request, client.pk)
        data = {"oauth": oauth, "secret": _listed(oauth, "secrets", secret.pk), "raw_secret": raw}
        response = Response(IssuedSecretSerializer(data).data, status=201)
        response["Cache-Control"] = "no-store"
        return response


def _add(
    request: Request, client_id: uuid.UUID, *, body, described, add, listed: str, named: str, answer
) -> Response:
    """Add a key or a federated issuer to a client (the console's step-up for a session;
    ``body`` validates as the console's form does), audited with what ``described``
    says of it; 201 with the client's OAuth panel and the new entry (``listed`` names
    its list there, ``named`` its member in the answer)."""

    def handle() -> Response:
        require_fresh_session(request)
        serializer = body(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client = client_or_404(client_id)
        summary = {**described(data), "client": str(client.pk)}
        with transaction.atomic(), api_scope(request, summary):
            entry = add(client, data)
        oauth, _etag = oauth_representation(request, client.pk)
        return Response(answer({"oauth": oauth, named: _listed(oauth, listed, entry.pk)}).data, status=201)

    return idempotent(handle, request)


def _revoke(request: Request, client_id: uuid.UUID, *, find, missing: str, action: str, described, revoke) -> Response:
    """Revoke one of a client's credentials (``find`` it, 404 with ``missing``), audited as
    ``action`` with what ``described`` says of it; revoking a revoked one changes nothing
    (its first revocation time stays). Answers the client's OAuth panel."""

    def handle() -> Response:
        client = client_or_404(client_id)
        credential = find(client)
        if credential is None:
            raise Http404(missing)
        if credential.revoked_at is None:
            summary = {"action": action, "client": str(client.pk), **described(credential)}
            with transaction.atomic(), api_scope(request, summary):
                revoke(credential)
        return Response(oauth_representation(request, client.pk)[0])

    return idempotent(handle, request)


class OAuthSecretRevoke(Administer):
    """Revoke a client secret: token requests with it are refused from then on (access
    tokens it already obtained run out on their own unless revoked too). Revoking a
    revoked secret keeps its first revocation time."""

    @extend_schema(
        request=None,
        responses=OAuthCredentialsSerializer,
        parameters=[SECRET_ID, IDEMPOTENCY_KEY],
        operation_id="scim_client_oauth_secrets_revoke",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID, secret_id: int) -> Response:
        return _revoke(
            request,
            client_id,
            find=lambda client: selectors.client_secret_get(client, secret_id),
            missing="No such client secret.",
            action="oauth_secret.revoke",
            described=lambda secret: {"prefix": secret.prefix},
            revoke=lambda secret: credentials.client_secret_revoke(secret=secret, operator=request.user),
        )


# --- Public keys (private_key_jwt) ----------------------------------------------------------------


class OAuthKeyAdd(Administer):
    """Register the public keys the client signs its assertions with: a JWKS document
    (public signing keys only) or an https JWKS URL, one of the two. Allows
    ``private_key_jwt``."""

    @extend_schema(
        request=KeyAddSerializer,
        responses={201: AddedKeySerializer},
        parameters=[IDEMPOTENCY_KEY],
        operation_id="scim_client_oauth_keys_add",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        return _add(
            request,
            client_id,
            body=KeyAddSerializer,
            described=lambda data: {"action": "oauth_key.add", "jwks_uri": data["jwks_uri"]},
            add=lambda client, data: credentials.client_key_add(
                client=client, jwks=data["jwks"], jwks_uri=data["jwks_uri"], operator=request.user
            ),
            listed="keys",
            named="key",
            answer=AddedKeySerializer,
        )


class OAuthKeyRevoke(Administer):
    """Revoke registered keys: assertions they verify are refused from then on."""

    @extend_schema(
        request=None,
        responses=OAuthCredentialsSerializer,
        parameters=[KEY_ID, IDEMPOTENCY_KEY],
        operation_id="scim_client_oauth_keys_revoke",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID, key_id: int) -> Response:
        return _revoke(
            request,
            client_id,
            find=lambda client: selectors.client_key_get(client, key_id),
            missing="No such key.",
            action="oauth_key.revoke",
            described=lambda entry: {"id": entry.pk},
            revoke=lambda entry: credentials.client_key_revoke(key=entry, operator=request.user),
        )


# --- Federated issuers ----------------------------------------------------------------------------


class OAuthFederationAdd(Administer):
    """Trust JWTs from an issuer (https, keys through its OpenID discovery document)
    about a subject as the client's credentials. Allows the federation method."""

    @extend_schema(
        request=FederationAddSerializer,
        responses={201: AddedFederationSerializer},
        parameters=[IDEMPOTENCY_KEY],
        operation_id="scim_client_oauth_federations_add",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        return _add(
            request,
            client_id,
            body=FederationAddSerializer,
            described=lambda data: {
                "action": "oauth_federation.add",
                "issuer": data["issuer"],
                "subject": data["subject"],
            },
            add=lambda client, data: credentials.federation_add(
                client=client, operator=request.user, **data
            ),
            listed="federations",
            named="federation",
            answer=AddedFederationSerializer,
        )


class OAuthFederationRevoke(Administer):
    """Stop trusting an issuer's JWTs for the client."""

    @extend_schema(
        request=None,
        responses=OAuthCredentialsSerializer,
        parameters=[FEDERATION_ID, IDEMPOTENCY_KEY],
        operation_id="scim_client_oauth_federations_revoke",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID, federation_id: int) -> Response:
        return _revoke(
            request,
            client_id,
            find=lambda client: selectors.client_federation_get(client, federation_id),
            missing="No such federated issuer.",
            action="oauth_federation.revoke",
            described=lambda federation: {"id": federation.pk},
            revoke=lambda federation: credentials.federation_revoke(
                federation=federation, operator=request.user
            ),
        )


# --- Settings and access tokens -------------------------------------------------------------------


class OAuthSettingsChange(Administer):
    """Change the allowed methods, the lifetime of future access tokens and the networks
    (the fields sent; the others stay), effective at once: access tokens obtained with a
    method switched off stop working too. One change set for the whole."""

    @extend_schema(
        request=OAuthSettingsChangeSerializer,
        responses=OAuthSettingsSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="scim_client_oauth_settings_change",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            client = client_or_404(client_id)
            serializer = OAuthSettingsChangeSerializer(
                data=request.data, context={"client": client}
            )
            serializer.is_valid(raise_exception=True)
            if_match(request, settings_representation(client)[1])
            data = serializer.validated_data
            summary = {
                "action": "oauth_settings.change",
                "client": str(client.pk),
                "fields": sorted(set(serializer.fields) & set(request.data)),
            }
            with transaction.atomic(), api_scope(request, summary):
                credentials.scim_client_change_authentication(
                    client=client,
                    auth_methods=data["auth_methods"],
                    access_token_lifetime=data["access_token_lifetime"],
                    allowed_networks=data["allowed_networks"],
                    operator=request.user,
                )
            data, etag = settings_representation(client_or_404(client.pk))
            return Response(data, headers={"ETag": etag})

        return idempotent(handle, request)


class OAuthAccessTokensRevoke(Administer):
    """Revoke every active access token of the client: its SCIM requests with them get
    401, and the IdP must obtain a new one with a valid credential."""

    @extend_schema(
        request=None,
        responses=AccessTokensRevokedSerializer,
        parameters=[IDEMPOTENCY_KEY],
        operation_id="scim_client_oauth_access_tokens_revoke",
        tags=TAGS,
    )
    def post(self, request: Request, client_id: uuid.UUID) -> Response:
        def handle() -> Response:
            client = client_or_404(client_id)
            summary = {"action": "oauth_access_tokens.revoke", "client": str(client.pk)}
            with transaction.atomic(), api_scope(request, summary):
                count = credentials.access_tokens_revoke(client=client, operator=request.user)
            data = {"revoked": count, "oauth": oauth_representation(request, client.pk)[0]}
            return Response(AccessTokensRevokedSerializer(data).data)

        return idempotent(handle, request)
