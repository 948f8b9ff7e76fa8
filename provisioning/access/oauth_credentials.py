"""OAuth 2.0 credentials of SCIM clients: client secrets, public keys for
``private_key_jwt``, trusted federated issuers, the methods a client may use, and
its access-token settings.

Every change takes the ``operator`` (a Django user, or None for a command-line
action) and runs in one audited change set. Registering a credential of a kind
allows that method for the client (``ScimClient.auth_methods``); the administrator
can switch any method off again (``scim_client_set_auth_methods``).

A client secret looks like ``scgcs_<prefix>_<secret>``: 8 public alphanumeric
characters that identify it, then 32 random bytes. Only the SHA-256 digest of the
whole secret is stored (256 random bits: a slow hash adds nothing), and the raw
secret is returned once, at creation.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .clients import clean_networks, scim_client_create
from .models import (
    ACCESS_TOKEN_LIFETIME_MAX,
    ACCESS_TOKEN_LIFETIME_MIN,
    AccessToken,
    AuthMethod,
    ClientKey,
    ClientSecret,
    FederatedIssuer,
    Role,
    ScimClient,
)
from .oauth_keys import AddressRefused, KeysUnavailable, check_destination
from .token_check import credential_create
from .units import unit_of_change

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

SECRET_SCHEME = "scgcs"
SECRET_DEFAULT_LIFETIME = timedelta(days=365)
# Three years: the longest Entra accepts, and the longest an administrator may choose.
SECRET_MAX_LIFETIME = timedelta(days=3 * 365 + 1)
# A JWKS document larger than this is not a client's key set.
MAX_JWKS_KEYS = 20

# Members of a JWK that only a private or symmetric key has (RFC 7518 §6).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _allow(client: ScimClient, method: str) -> None:
    """Add ``method`` to the client's allowed methods (inside the caller's unit of change)."""
    locked = ScimClient.objects.select_for_update().get(pk=client.pk)
    if method not in locked.auth_methods:
        locked.auth_methods = [*locked.auth_methods, method]
        locked.save(update_fields=["auth_methods"])
    client.auth_methods = locked.auth_methods


def _clean_expiry(expires_at: datetime | None, *, default: timedelta | None, maximum: timedelta | None):
    now = timezone.now()
    if expires_at is None:
        return now + default if default is not None else None
    if timezone.is_naive(expires_at):
        raise ValidationError({"expires_at": "The expiry needs a time zone."})
    if expires_at <= now:
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    if maximum is not None and expires_at > now + maximum:
        raise ValidationError({"expires_at": "A client secret expires within three years."})
    return expires_at


# --- Client secrets ----------------------------------------------------------------


@transaction.atomic
def scim_client_create_oauth(
    *, name: str, role: Role | str, operator: AbstractBaseUser | None = None
) -> tuple[ScimClient, str]:
    """Create a SCIM client that authenticates with OAuth client credentials: its first
    client secret, no static token. Returns the client and the raw secret (shown once).
    Raises ValidationError as ``scim_client_create`` does."""
    with unit_of_change(operator=operator):
        client, _none = scim_client_create(
            name=name, role=role, static_token=False, operator=operator
        )
        _secret, raw = client_secret_issue(client=client, operator=operator)
    return client, raw


@transaction.atomic
def client_secret_issue(
    *,
    client: ScimClient,
    expires_at: datetime | None = None,
    operator: AbstractBaseUser | None = None,
) -> tuple[ClientSecret, str]:
    """Issue a client secret (default expiry one year, at most three); return it and
    the raw secret, shown once. The client's other secrets keep working: rotate by
    issuing one, configuring it in the IdP, then revoking the old one."""
    expires_at = _clean_expiry(
        expires_at, default=SECRET_DEFAULT_LIFETIME, maximum=SECRET_MAX_LIFETIME
    )
    with unit_of_change(operator=operator):
        _allow(client, AuthMethod.CLIENT_SECRET)
        return credential_create(
            SECRET_SCHEME,
            lambda prefix, digest: ClientSecret.objects.create(
                client=client, prefix=prefix, digest=digest, expires_at=expires_at
            ),
        )


@transaction.atomic
def client_secret_revoke(*, secret: ClientSecret, operator: AbstractBaseUser | None = None) -> None:
    """Revoke a client secret; access tokens already issued with it run out on their own
    (at most six hours) unless revoked too (``access_tokens_revoke``)."""
    locked = ClientSecret.objects.select_for_update().get(pk=secret.pk)
    if locked.revoked_at is None:
        with unit_of_change(operator=operator):
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    secret.revoked_at = locked.revoked_at


# --- Public keys (private_key_jwt) ---------------------------------------------------


def clean_jwks(document: Any) -> tuple[dict, list[str]]:
    """A JWKS document of public signing keys (RFC 7517 §5), and its key ids.

    Refused: anything but ``{"keys": [...]}``, private or symmetric keys (a client
    registers only what verifies its signatures), keys that do not import, more than
    MAX_JWKS_KEYS keys, and several keys without distinct ``kid``s.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValidationError({"jwks": 'A JWKS document is a JSON object {"keys": [...]}.'})
    keys = document["keys"]
    if not keys:
        raise ValidationError({"jwks": "The JWKS document holds no keys."})
    if len(keys) > MAX_JWKS_KEYS:
        raise ValidationError({"jwks": f"A JWKS document may hold at most {MAX_JWKS_KEYS} keys."})
    for key in keys:
        if not isinstance(key, dict):
            raise ValidationError({"jwks": "Every key of a JWKS document is a JSON object."})
        if _PRIVATE_MEMBERS & set(key) or key.get("kty") == "oct":
            raise ValidationError(
                {"jwks": "The JWKS document holds private or symmetric key material: "
                 "register only the public keys."}
            )
        if key.get("use", "sig") != "sig":
            raise ValidationError({"jwks": "Only signing keys (use “sig”) can be registered."})
    try:
        imported = KeySet.import_key_set(document)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValidationError({"jwks": f"The JWKS document does not hold usable keys ({exc})."}) from None
    kids = [key.get("kid") for key in keys]
    if len(imported.keys) != len(keys):
        raise ValidationError({"jwks": "The JWKS document holds a key of an unknown type."})
    if len(kids) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise ValidationError({"jwks": "With several keys, each needs its own “kid”."})
    return {"keys": [dict(key) for key in keys]}, [kid for kid in kids if kid]


def clean_url(value: str, field: str) -> str:
    """An https URL (http only with SCIMGATE_OAUTH_ALLOW_HTTP, for development) whose
    host resolves to public addresses only (others with
    SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES, for development)."""
    value = (value or "").strip()
    parts = urlsplit(value)
    allowed = ("https", "http") if settings.SCIMGATE_OAUTH_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.password:
        raise ValidationError({field: f"“{value[:200]}” is not an https URL."})
    if len(value) > 2048:
        raise ValidationError({field: "The URL is longer than 2048 characters."})
    try:
        check_destination(value)
    except AddressRefused:
        raise ValidationError(
            {field: f"“{parts.hostname[:200]}” is not a public address: keys are fetched only from "
             "public addresses (SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES allows others, for development)."}
        ) from None
    except KeysUnavailable:
        raise ValidationError({field: f"The host “{parts.hostname[:200]}” does not resolve."}) from None
    return value


@transaction.atomic
def client_key_add(
    *,
    client: ScimClient,
    jwks: Any = None,
    jwks_uri: str = "",
    expires_at: datetime | None = None,
    operator: AbstractBaseUser | None = None,
) -> ClientKey:
    """Register the public keys ``client`` signs its assertions with: a JWKS document
    or the URL of one (fetched when needed, cached). Allows ``private_key_jwt``."""
    if (jwks is None) == (not jwks_uri):
        raise ValidationError({"jwks": "Give either a JWKS document or a JWKS URL."})
    expires_at = _clean_expiry(expires_at, default=None, maximum=None)
    fields: dict[str, Any] = {"client": client, "expires_at": expires_at}
    if jwks is not None:
        fields["jwks"], fields["key_ids"] = clean_jwks(jwks)
    else:
        fields["jwks_uri"] = clean_url(jwks_uri, "jwks_uri")
    with unit_of_change(operator=operator):
        _allow(client, AuthMethod.PRIVATE_KEY_JWT)
        return ClientKey.objects.create(**fields)


@transaction.atomic
def client_key_revoke(*, key: ClientKey, operator: AbstractBaseUser | None = None) -> None:
    locked = ClientKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked_at is None:
        with unit_of_change(operator=operator):
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    key.revoked_at = locked.revoked_at


# --- Federated issuers -----------------------------------------------------------------


@transaction.atomic
def federation_add(
    *,
    client: ScimClient,
    issuer: str,
    subject: str,
    audience: str = "",
    expires_at: datetime | None = None,
    operator: AbstractBaseUser | None = None,
) -> FederatedIssuer:
    """Trust JWTs from ``issuer`` about ``subject`` (for ``audience``; empty: the token
    endpoint's URL) as this client's credentials. Allows the federation method."""
    issuer = clean_url(issuer, "issuer")
    subject = (subject or "").strip()
    audience = (audience or "").strip()
    if not subject:
        raise ValidationError({"subject": "Name the subject (sub) the issuer's tokens carry."})
    if len(subject) > 512:
        raise ValidationError({"subject": "The subject is longer than 512 characters."})
    if len(audience) > 2048:
        raise ValidationError({"audience": "The audience is longer than 2048 characters."})
    expires_at = _clean_expiry(expires_at, default=None, maximum=None)
    if FederatedIssuer.objects.filter(
        client=client, issuer=issuer, subject=subject, revoked_at__isnull=True
    ).exists():
        raise ValidationError({"subject": "This issuer and subject are already trusted."})
    with unit_of_change(operator=operator):
        _allow(client, AuthMethod.FEDERATION)
        return FederatedIssuer.objects.create(
            client=client, issuer=issuer, subject=subject, audience=audience, expires_at=expires_at
        )


@transaction.atomic
def federation_revoke(
    *, federation: FederatedIssuer, operator: AbstractBaseUser | None = None
) -> None:
    locked = FederatedIssuer.objects.select_for_update().get(pk=federation.pk)
    if locked.revoked_at is None:
        with unit_of_change(operator=operator):
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    federation.revoked_at = locked.revoked_at


# --- Methods and access-token settings --------------------------------------------------


@transaction.atomic
def scim_client_set_auth_methods(
    *, client: ScimClient, methods: Iterable[str], operator: AbstractBaseUser | None = None
) -> ScimClient:
    """Choose which methods ``client`` may authenticate with; effective at once (access
    tokens obtained with a method switched off stop working too)."""
    valid = set(AuthMethod.values)
    chosen = [m for m in AuthMethod.values if m in set(methods)]
    unknown = sorted(set(methods) - valid)
    if unknown:
        raise ValidationError({"auth_methods": f"Unknown method: {', '.join(unknown)}."})
    with unit_of_change(operator=operator):
        locked = ScimClient.objects.select_for_update().get(pk=client.pk)
        if locked.auth_methods != chosen:
            locked.auth_methods = chosen
            locked.save(update_fields=["auth_methods"])
    client.auth_methods = chosen
    return client


@transaction.atomic
def scim_client_set_oauth_settings(
    *,
    client: ScimClient,
    access_token_lifetime: int | None = None,
    allowed_networks: Iterable[str] | None = None,
    operator: AbstractBaseUser | None = None,
) -> ScimClient:
    """Set the lifetime of the client's future access tokens (seconds, one to six hours)
    and the networks its token requests and access tokens may come from (empty: any)."""
    locked = ScimClient.objects.select_for_update().get(pk=client.pk)
    fields = []
    if access_token_lifetime is not None:
        if not ACCESS_TOKEN_LIFETIME_MIN <= int(access_token_lifetime) <= ACCESS_TOKEN_LIFETIME_MAX:
            raise ValidationError(
                {"access_token_lifetime": "An access token lives between one and six hours."}
            )
        locked.access_token_lifetime = int(access_token_lifetime)
        fields.append("access_token_lifetime")
    if allowed_networks is not None:
        locked.oauth_allowed_networks = clean_networks(allowed_networks)
        fields.append("oauth_allowed_networks")
    if fields:
        with unit_of_change(operator=operator):
            locked.save(update_fields=fields)
    client.access_token_lifetime = locked.access_token_lifetime
    client.oauth_allowed_networks = locked.oauth_allowed_networks
    return client


@transaction.atomic
def scim_client_change_authentication(
    *,
    client: ScimClient,
    auth_methods: Iterable[str],
    access_token_lifetime: int | None = None,
    allowed_networks: Iterable[str] | None = None,
    operator: AbstractBaseUser | None = None,
) -> ScimClient:
    """The authentication settings form as one change: the allowed methods, then the
    lifetime and networks (``None``: as they are), in one transaction and one change
    set, so a value a service refuses changes nothing."""
    with unit_of_change(operator=operator):
        scim_client_set_auth_methods(client=client, methods=auth_methods, operator=operator)
        return scim_client_set_oauth_settings(
            client=client,
            access_token_lifetime=access_token_lifetime,
            allowed_networks=allowed_networks,
            operator=operator,
        )


@transaction.atomic
def access_tokens_revoke(
    *, client: ScimClient, operator: AbstractBaseUser | None = None
) -> int:
    """Revoke every unexpired access token of ``client``; returns how many. The IdP
    must then fetch a new one with a valid credential.

    Access tokens are not audited one by one (the token endpoint issues them), so the
    revocation is recorded as one audit entry on the client, in the operator's change
    set: how many tokens were revoked (``oauth_access_revoked``: a member name that
    does not say "token", which the audit log would drop as a secret)."""
    now = timezone.now()
    with unit_of_change(operator=operator):
        count = AccessToken.objects.filter(
            client=client, revoked_at__isnull=True, expires_at__gt=now
        ).update(revoked_at=now)
        if count:
            _record_client_event(client, {"oauth_access_revoked": ["0", str(count)]})
    return count


def _record_client_event(client: ScimClient, changes: dict) -> None:
    """One audit entry (an update of ``client``) for a change no audited row carries;
    stamped with the current unit of change's operator and change set."""
    from auditlog import get_logentry_model

    entry_model = get_logentry_model()
    entry_model.objects.log_create(
        client, action=entry_model.Action.UPDATE, changes=changes, force_log=True
    )
