"""Representations and request bodies of a SCIM client's OAuth 2.0 credentials: client
secrets (by public prefix), registered public keys, trusted federated issuers and the
authentication settings. A raw client secret appears only in the answer that issues it
(``IssuedSecretSerializer``); no other shape has a field for it, or for a digest.

Request bodies are validated by the console's own forms (``console/oauth_forms.py``),
then by the services the console calls, so the API and the console apply one rule with
one implementation.
"""

from __future__ import annotations

import json

from rest_framework import serializers

from console.oauth_forms import (
    SECRET_LIFETIMES,
    TOKEN_LIFETIMES,
    FederationAddForm,
    KeyAddForm,
    OAuthSettingsForm,
    SecretIssueForm,
)
from provisioning.access.models import AuthMethod

from .serializers_config import ClientNameSerializer, networks_field

CREDENTIAL_STATES = ["active", "expired", "revoked"]
SECRET_DAYS = [int(value) for value, _label in SECRET_LIFETIMES]
TOKEN_SECONDS = [int(value) for value, _label in TOKEN_LIFETIMES]


def _form_errors(form) -> dict[str, list[str]]:
    return {
        ("non_field_errors" if name == "__all__" else name): list(errors)
        for name, errors in form.errors.items()
    }


def _validated(form) -> dict:
    if not form.is_valid():
        raise serializers.ValidationError(_form_errors(form))
    return form.cleaned_data


# --- Representations -----------------------------------------------------------------------------


class ClientSecretSerializer(serializers.Serializer):
    """A client secret as it is listed: its public prefix, never the secret or its digest."""

    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The secret's public prefix (scgcs_<prefix>_…).")
    state = serializers.ChoiceField(choices=CREDENTIAL_STATES)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="A client secret always expires.")
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(
        allow_null=True, help_text="The last token request it authenticated."
    )


class ClientKeySerializer(serializers.Serializer):
    """Public keys for ``private_key_jwt`` (RFC 7523 §2.2): a JWKS document (public
    members only, RFC 7517 §5) or the URL of one."""

    id = serializers.IntegerField()
    jwks = serializers.DictField(
        allow_null=True, help_text="The registered JWKS document; null for a JWKS URL."
    )
    jwks_uri = serializers.CharField(allow_blank=True, help_text="Empty for a document.")
    key_ids = serializers.ListField(
        child=serializers.CharField(), help_text="The document's kids; empty for a URL."
    )
    state = serializers.ChoiceField(choices=CREDENTIAL_STATES)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class FederatedIssuerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    issuer = serializers.CharField(help_text="The assertions' iss.")
    subject = serializers.CharField(help_text="The assertions' sub.")
    audience = serializers.CharField(
        allow_blank=True, help_text="The assertions' aud; empty: the token endpoint's URL."
    )
    state = serializers.ChoiceField(choices=CREDENTIAL_STATES)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class OAuthSettingsSerializer(serializers.Serializer):
    client = ClientNameSerializer()
    auth_methods = serializers.ListField(
        child=serializers.ChoiceField(choices=AuthMethod.choices),
        help_text="The methods the client may authenticate with; empty: none.",
    )
    access_token_lifetime = serializers.IntegerField(
        help_text="Seconds its future access tokens live (one to six hours)."
    )
    allowed_networks = serializers.ListField(
        child=serializers.CharField(),
        help_text="CIDRs token requests and access tokens may come from; empty: anywhere.",
    )


class OAuthCredentialsSerializer(serializers.Serializer):
    """What the console's OAuth panel shows: the values for the IdP, the settings and the
    credentials, newest first; never a secret."""

    client = ClientNameSerializer()
    client_id = serializers.CharField(help_text="The OAuth client_id: the client's id.")
    token_endpoint = serializers.CharField()
    issuer = serializers.CharField(
        help_text="Metadata at <issuer>/.well-known/oauth-authorization-server (RFC 8414)."
    )
    scim_base_url = serializers.CharField(help_text="The tenant URL IdPs ask for.")
    settings = OAuthSettingsSerializer()
    active_access_tokens = serializers.IntegerField(help_text="Neither revoked nor expired.")
    failed_token_requests = serializers.IntegerField(
        help_text="Failed client authentications at the token endpoint."
    )
    last_failed_token_request_at = serializers.DateTimeField(allow_null=True)
    secrets = ClientSecretSerializer(many=True)
    keys = ClientKeySerializer(many=True)
    federations = FederatedIssuerSerializer(many=True)


class IssuedSecretSerializer(serializers.Serializer):
    """The one answer that carries a raw client secret: it is not stored and cannot be
    read again."""

    oauth = OAuthCredentialsSerializer()
    secret = ClientSecretSerializer()
    raw_secret = serializers.CharField(
        help_text="The client secret for the IdP (client_id: the client's id). Shown once: "
        "store it now."
    )


class AddedKeySerializer(serializers.Serializer):
    oauth = OAuthCredentialsSerializer()
    key = ClientKeySerializer()


class AddedFederationSerializer(serializers.Serializer):
    oauth = OAuthCredentialsSerializer()
    federation = FederatedIssuerSerializer()


class AccessTokensRevokedSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many active access tokens were revoked.")
    oauth = OAuthCredentialsSerializer()


# --- Requests, validated by the console's forms -----------------------------------------------------


class SecretIssueSerializer(serializers.Serializer):
    """The console's secret form: how long the secret is valid."""

    lifetime = serializers.ChoiceField(
        choices=SECRET_DAYS,
        required=False,
        default=SECRET_DAYS[0],
        help_text="Days the secret is valid (the console's choices); default one year.",
    )

    def validate(self, attrs):
        form = SecretIssueForm({"lifetime": str(attrs["lifetime"])})
        data = _validated(form)
        return {"lifetime": data["lifetime"], "expires_at": form.expires_at()}


class KeyAddSerializer(serializers.Serializer):
    """The console's key form: a JWKS document or a JWKS URL, one of the two."""

    jwks = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='A JWKS document of public signing keys, {"keys": [...]} (RFC 7517 §5); '
        "never a private key.",
    )
    jwks_uri = serializers.CharField(
        required=False, allow_blank=True, max_length=2048, help_text="Or the https URL of one."
    )

    def validate(self, attrs):
        jwks = attrs.get("jwks")
        data = _validated(
            KeyAddForm(
                {
                    "jwks": json.dumps(jwks) if jwks is not None else "",
                    "jwks_uri": attrs.get("jwks_uri", ""),
                }
            )
        )
        return {"jwks": data["jwks"], "jwks_uri": data["jwks_uri"] or ""}


class FederationAddSerializer(serializers.Serializer):
    """The console's federated-issuer form."""

    issuer = serializers.CharField(max_length=2048, help_text="The issuer URL (https).")
    subject = serializers.CharField(max_length=512, help_text="The sub its tokens carry.")
    audience = serializers.CharField(
        max_length=2048,
        required=False,
        allow_blank=True,
        help_text="The aud its tokens carry; empty: this server's token endpoint URL.",
    )

    def validate(self, attrs):
        return _validated(FederationAddForm({"audience": "", **attrs}))


class OAuthSettingsChangeSerializer(serializers.Serializer):
    """The console's settings form; only the fields sent change, the others keep the
    client's current values (``context["client"]``) and the whole is validated."""

    auth_methods = serializers.ListField(
        child=serializers.ChoiceField(choices=AuthMethod.choices),
        required=False,
        max_length=len(AuthMethod.choices),
        help_text="The methods the client may use; empty: none (it cannot authenticate).",
    )
    access_token_lifetime = serializers.ChoiceField(
        choices=TOKEN_SECONDS, required=False, help_text="Seconds (the console's choices)."
    )
    allowed_networks = networks_field("CIDRs; empty: anywhere.")

    def validate_allowed_networks(self, value: list[str]) -> list[str]:
        # The console's form reads one network per line.
        if any(len(network.splitlines()) > 1 for network in value):
            raise serializers.ValidationError("One network per entry, without line breaks.")
        return value

    def validate(self, attrs):
        client = self.context["client"]
        methods = attrs.get("auth_methods", client.auth_methods)
        networks = attrs.get("allowed_networks", client.oauth_allowed_networks)
        # Not sent: the lifetime stays as it is (None), even one the form does not offer.
        lifetime = attrs.get("access_token_lifetime", TOKEN_SECONDS[0])
        data = _validated(
            OAuthSettingsForm(
                {
                    "auth_methods": list(methods),
                    "access_token_lifetime": str(lifetime),
                    "allowed_networks": "\n".join(networks),
                }
            )
        )
        if "access_token_lifetime" not in attrs:
            data["access_token_lifetime"] = None
        return data
