"""Forms for a SCIM client's OAuth 2.0 credentials. They parse what an operator typed;
``provisioning.access.oauth_credentials`` validates it (expiries, JWKS documents, URLs)
and its ValidationErrors land back on the fields."""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from provisioning.access.clients import clean_networks
from provisioning.access.models import (
    ACCESS_TOKEN_LIFETIME_MAX,
    ACCESS_TOKEN_LIFETIME_MIN,
    AuthMethod,
)

SECRET_LIFETIMES = [("365", "1 year"), ("730", "2 years"), ("1095", "3 years")]
TOKEN_LIFETIMES = [
    (str(hours * 3600), f"{hours} hour{'s' if hours > 1 else ''}")
    for hours in range(ACCESS_TOKEN_LIFETIME_MIN // 3600, ACCESS_TOKEN_LIFETIME_MAX // 3600 + 1)
]


class SecretIssueForm(forms.Form):
    lifetime = forms.TypedChoiceField(
        label="Valid for", choices=SECRET_LIFETIMES, coerce=int, initial="365"
    )

    def expires_at(self):
        return timezone.now() + timedelta(days=self.cleaned_data["lifetime"])


class KeyAddForm(forms.Form):
    jwks = forms.CharField(
        label="JWKS document",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": '{"keys": [{"kty": "RSA", "kid": "…", "n": "…", "e": "AQAB"}]}', "spellcheck": "false"}),
        help_text="The client's public keys (never its private key).",
    )
    jwks_uri = forms.URLField(
        label="or JWKS URL",
        required=False,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://idp.example.com/jwks.json"}),
    )

    def clean_jwks(self):
        text = self.cleaned_data["jwks"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise ValidationError("This is not JSON.") from None

    def clean(self):
        data = super().clean()
        if (data.get("jwks") is None) == (not data.get("jwks_uri")):
            raise ValidationError("Paste a JWKS document or give a JWKS URL (one of the two).")
        return data


class FederationAddForm(forms.Form):
    issuer = forms.CharField(
        label="Issuer URL",
        max_length=2048,
        widget=forms.TextInput(attrs={"placeholder": "https://login.microsoftonline.com/<tenant id>/v2.0"}),
    )
    subject = forms.CharField(label="Subject (sub)", max_length=512)
    audience = forms.CharField(
        label="Audience (aud)",
        max_length=2048,
        required=False,
        help_text="Empty: this server's token endpoint URL.",
    )


class OAuthSettingsForm(forms.Form):
    auth_methods = forms.MultipleChoiceField(
        label="Allowed methods",
        choices=AuthMethod.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    access_token_lifetime = forms.TypedChoiceField(
        label="Access tokens live", choices=TOKEN_LIFETIMES, coerce=int
    )
    allowed_networks = forms.CharField(
        label="Allowed networks",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "203.0.113.0/24"}),
        help_text="One CIDR per line: token requests and access tokens only from these. Empty: anywhere.",
    )

    def clean_allowed_networks(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["allowed_networks"].splitlines() if line.strip()]
        try:
            return clean_networks(lines)
        except ValidationError as error:
            raise ValidationError(error.message_dict["allowed_networks"]) from None
