"""The OAuth 2.0 authorization server for SCIM clients: what the token endpoint
decides, without HTTP (``oauth_views`` parses and answers).

Grants:
- ``client_credentials`` (RFC 6749 §4.4), the client authenticated by
  ``client_secret_basic``, ``client_secret_post`` (§2.3.1), ``private_key_jwt``
  (RFC 7523 §2.2: ``client_assertion`` signed with the client's key, iss = sub = the
  client id) or a federated ``client_assertion`` (a JWT from an issuer trusted for the
  client: iss, sub and aud as registered, keys from the issuer's discovery document);
- ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RFC 7523 §2.1) with a federated
  ``assertion``: the trusted issuer and subject identify the client.

Errors are RFC 6749 §5.2's. A client may use only the methods it allows
(``ScimClient.auth_methods``) from the networks it allows. Failed client
authentication is logged with the claimed client id only (when it is one: a UUID),
and counted on the client (``oauth_failures``) when that id names one. The access token issued is
``scgat_<prefix>_<secret>``, stored as its SHA-256 digest, bound to the client; it
authenticates SCIM requests through ``token_check`` like a static token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import unquote_plus

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import (
    AccessToken,
    AuthMethod,
    ClientKey,
    ClientSecret,
    FederatedIssuer,
    ScimClient,
)
from .oauth_assertions import (
    ASSERTION_TYPE,
    ASYMMETRIC_ALGORITHMS,
    AssertionRejected,
    federations_for,
    parse_jwt,
    verify_federated,
    verify_private_key_jwt,
)
from .oauth_credentials import SECRET_SCHEME
from .token_check import (
    ACCESS_TOKEN_SCHEME,
    LAST_USED_RESOLUTION,
    address_allowed,
    credential_create,
    token_digest,
)

logger = logging.getLogger(__name__)

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_TYPES = (CLIENT_CREDENTIALS, JWT_BEARER)
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
SCOPE = "scim"
TOKEN_PATH = "/oauth/token"
# Access tokens expired longer ago than this are deleted when the client gets a new one.
EXPIRED_TOKEN_KEEP = timedelta(days=1)

_SECRET_RE = re.compile(rf"{SECRET_SCHEME}_(?P<prefix>[A-Za-z0-9]{{8}})_[A-Za-z0-9_-]{{43}}")
_MAX_PARAMETER = 16 * 1024


class OAuthError(Exception):
    """An RFC 6749 §5.2 error. ``log_reason`` says more in the server log; ``client`` is
    the client the request named, when there is one."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        log_reason: str = "",
        client: ScimClient | None = None,
        claimed_id: str = "",
        method: str = "",
    ):
        super().__init__(description)
        self.error = error
        self.description = description
        self.log_reason = log_reason or description
        self.client = client
        self.claimed_id = claimed_id
        self.method = method

    @property
    def status(self) -> int:
        return 401 if self.error == "invalid_client" else 400


@dataclass
class TokenRequest:
    """What the token endpoint received: form parameters (name → every value sent),
    the Authorization header, the client's address, and this server's identifiers."""

    params: dict[str, list[str]]
    authorization: str | None
    address: str | None
    issuer: str
    token_endpoint: str


@dataclass
class Authenticated:
    client: ScimClient
    method: str  # token endpoint auth method, e.g. client_secret_basic
    credential: str  # "secret:<prefix>", "key:<id>", "federation:<id>"
    touch: list = field(default_factory=list)  # (model, pk) of credentials to mark used


@dataclass
class TokenResponse:
    access_token: str
    expires_in: int
    token: AccessToken

    def as_dict(self) -> dict:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": SCOPE,
        }


def metadata(*, issuer: str) -> dict:
    """Authorization server metadata (RFC 8414 §2): exactly what is implemented."""
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGORITHMS),
        "scopes_supported": [SCOPE],
        # No authorization endpoint: no response type is supported.
        "response_types_supported": [],
    }


# --- Parameters ------------------------------------------------------------------------


def _single(params: dict[str, list[str]]) -> dict[str, str]:
    """RFC 6749 §3.2: parameters must not be included more than once."""
    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"Parameter sent more than once: {repeated[0][:64]}")
    single = {name: values[0] for name, values in params.items()}
    if any(len(value) > _MAX_PARAMETER for value in single.values()):
        raise OAuthError("invalid_request", "A parameter is too long")
    return single


def _basic_credentials(header: str) -> tuple[str, str]:
    """client id and secret of ``Authorization: Basic`` (RFC 6749 §2.3.1: each
    form-urlencoded before base64)."""
    try:
        decoded = base64.b64decode(header.split(None, 1)[1].strip(), validate=True).decode("utf-8")
        client_id, secret = decoded.split(":", 1)
    except (IndexError, ValueError, UnicodeDecodeError, binascii.Error):
        raise OAuthError(
            "invalid_client", "Malformed Basic credentials", method="client_secret_basic"
        ) from None
    return unquote_plus(client_id), unquote_plus(secret)


def claimed_client_id(params: dict[str, list[str]], authorization: str | None) -> str:
    """The client id a request names (for rate limiting and logs), unverified."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            return _basic_credentials(authorization)[0][:100]
        except OAuthError:
            return ""
    for name in ("client_id",):
        if params.get(name):
            return params[name][0][:100]
    for name in ("client_assertion", "assertion"):
        if params.get(name):
            try:
                claims = parse_jwt(params[name][0]).claims
            except AssertionRejected:
                return ""
            value = claims.get("sub") if name == "client_assertion" else claims.get("iss")
            return str(value)[:100] if value is not None else ""
    return ""


def _client(client_id: str, method: str) -> ScimClient:
    try:
        pk = uuid.UUID(client_id)
    except (ValueError, AttributeError, TypeError):
        pk = None
    client = (
        ScimClient.objects.select_related("role").filter(pk=pk).first() if pk is not None else None
    )
    if client is None:
        raise OAuthError(
            "invalid_client", "Client authentication failed", log_reason="unknown client id",
            claimed_id=client_id, method=method,
        )
    return client


def _refuse(client: ScimClient, method: str, reason: str, description: str = "Client authentication failed"):
    return OAuthError(
        "invalid_client", description, log_reason=reason, client=client,
        claimed_id=str(client.pk), method=method,
    )


# --- Client authentication -----------------------------------------------------------------


def _authenticate_secret(client_id: str, raw: str, method: str) -> Authenticated:
    client = _client(client_id, method)
    match = _SECRET_RE.fullmatch(raw or "")
    secret = (
        ClientSecret.objects.filter(client=client, prefix=match["prefix"]).first() if match else None
    )
    # Compared in constant time; a missing secret is compared too, against nothing.
    digest = token_digest(raw or "")
    if secret is None or not hmac.compare_digest(secret.digest, digest):
        raise _refuse(client, method, "wrong client secret")
    if not client.allows_method(AuthMethod.CLIENT_SECRET):
        raise _refuse(client, method, "client secrets are not allowed for this client")
    if secret.revoked_at is not None:
        raise _refuse(client, method, "revoked client secret", "The client secret has been revoked")
    if secret.expires_at <= timezone.now():
        raise _refuse(client, method, "expired client secret", "The client secret has expired")
    return Authenticated(client, method, f"secret:{secret.prefix}", [(ClientSecret, secret.pk)])


def _authenticate_assertion(params: dict[str, str], request: TokenRequest) -> Authenticated:
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError(
            "invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}",
            claimed_id=params.get("client_id", "")[:100], method="private_key_jwt",
        )
    try:
        jwt = parse_jwt(params.get("client_assertion", ""))
    except AssertionRejected as exc:
        raise OAuthError(
            "invalid_client", "Client authentication failed", log_reason=exc.reason,
            claimed_id=params.get("client_id", "")[:100], method="private_key_jwt",
        ) from None
    iss, sub = jwt.claims.get("iss"), jwt.claims.get("sub")
    client_id = params.get("client_id") or (sub if iss == sub else None)
    if client_id is not None and iss == sub == client_id:
        client = _client(str(client_id), "private_key_jwt")
        if not client.allows_method(AuthMethod.PRIVATE_KEY_JWT):
            raise _refuse(client, "private_key_jwt", "private_key_jwt is not allowed for this client")
        try:
            entry = verify_private_key_jwt(
                jwt, client=client, audiences=[request.token_endpoint, request.issuer]
            )
        except AssertionRejected as exc:
            raise _refuse(client, "private_key_jwt", exc.reason) from None
        return Authenticated(client, "private_key_jwt", f"key:{entry.pk}", [(ClientKey, entry.pk)])
    # A federated assertion: the client is the one named, or the one trusting iss/sub.
    client = _client(str(client_id), "federation") if client_id is not None else None
    return _authenticate_federated(jwt, request, client=client, error="invalid_client")


def _authenticate_federated(jwt, request: TokenRequest, *, client: ScimClient | None, error: str):
    method = "federation"
    candidates = federations_for(jwt.claims, client=client)
    if not candidates:
        if client is not None:
            raise _refuse(client, method, "no trusted issuer matches the assertion's iss and sub")
        raise OAuthError(
            error, "The assertion's issuer and subject are not trusted",
            claimed_id=str(jwt.claims.get("iss", ""))[:100], method=method,
        )
    if len({f.client_id for f in candidates}) > 1:
        # One issuer and subject trusted by several clients: the request must name one.
        raise OAuthError(
            "invalid_request", "Several clients trust this issuer and subject: send client_id",
            method=method,
        )
    federation: FederatedIssuer = candidates[0]
    client = federation.client
    if not client.allows_method(AuthMethod.FEDERATION):
        raise _refuse(client, method, "federated assertions are not allowed for this client")
    try:
        verify_federated(jwt, federation=federation, token_endpoint=request.token_endpoint)
    except AssertionRejected as exc:
        if error == "invalid_client":
            raise _refuse(client, method, exc.reason) from None
        raise OAuthError(
            error, f"The assertion is not valid: {exc.reason}", log_reason=exc.reason,
            client=client, claimed_id=str(client.pk), method=method,
        ) from None
    return Authenticated(
        client, method, f"federation:{federation.pk}", [(FederatedIssuer, federation.pk)]
    )


def _authenticate(params: dict[str, str], request: TokenRequest) -> Authenticated | None:
    """The authenticated client, or None when the request carries no client credentials.
    RFC 6749 §2.3: one method per request."""
    authorization = (request.authorization or "").strip()
    basic = authorization[:6].lower() == "basic "
    used = [
        name
        for name, present in (
            ("client_secret_basic", basic),
            ("client_secret_post", "client_secret" in params),
            ("client_assertion", "client_assertion" in params),
        )
        if present
    ]
    if len(used) > 1:
        raise OAuthError("invalid_request", "Use one client authentication method per request")
    if authorization and not basic:
        raise OAuthError(
            "invalid_client", "Authenticate the client with HTTP Basic, client_secret or client_assertion"
        )
    if basic:
        client_id, secret = _basic_credentials(authorization)
        return _authenticate_secret(client_id, secret, "client_secret_basic")
    if "client_secret" in params:
        if not params.get("client_id"):
            raise OAuthError("invalid_request", "client_secret needs client_id")
        return _authenticate_secret(params["client_id"], params["client_secret"], "client_secret_post")
    if "client_assertion" in params:
        return _authenticate_assertion(params, request)
    return None


def _check_scope(params: dict[str, str]) -> None:
    requested = set((params.get("scope") or "").split())
    if requested - {SCOPE}:
        raise OAuthError("invalid_scope", f"The only scope is “{SCOPE}”")


def token_request_handle(request: TokenRequest) -> TokenResponse:
    """Answer one token request with an access token, or raise ``OAuthError``."""
    params = _single(request.params)
    grant_type = params.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type not in GRANT_TYPES:
        raise OAuthError("unsupported_grant_type", f"Supported: {', '.join(GRANT_TYPES)}")
    authenticated = _authenticate(params, request)
    if grant_type == CLIENT_CREDENTIALS:
        if authenticated is None:
            raise OAuthError("invalid_client", "Client authentication is required")
    else:
        authenticated = _jwt_bearer_grant(params, request, authenticated)
    _check_scope(params)
    client = authenticated.client
    if not address_allowed(client.oauth_allowed_networks, request.address):
        raise _refuse(
            client, authenticated.method, "address outside the client's allowed networks",
            "The client may not request tokens from this network address",
        )
    return _issue(authenticated)


def _jwt_bearer_grant(params, request: TokenRequest, authenticated: Authenticated | None):
    """RFC 7523 §2.1 with a federated assertion; an invalid assertion is invalid_grant."""
    if not params.get("assertion"):
        raise OAuthError("invalid_request", "assertion is required")
    try:
        jwt = parse_jwt(params["assertion"])
    except AssertionRejected as exc:
        raise OAuthError("invalid_grant", f"The assertion is not valid: {exc.reason}") from None
    granted = _authenticate_federated(
        jwt, request, client=authenticated.client if authenticated else None, error="invalid_grant"
    )
    if authenticated is not None:
        # The client authenticated on its own; the assertion only proves the grant.
        return authenticated
    return granted


# --- Access tokens -----------------------------------------------------------------------


@transaction.atomic
def _issue(authenticated: Authenticated) -> TokenResponse:
    client = authenticated.client
    now = timezone.now()
    lifetime = client.access_token_lifetime
    token, raw = credential_create(
        ACCESS_TOKEN_SCHEME,
        lambda prefix, digest: AccessToken.objects.create(
            client=client,
            prefix=prefix,
            digest=digest,
            expires_at=now + timedelta(seconds=lifetime),
            auth_method=authenticated.method,
            credential=authenticated.credential,
            # Informational: requests are checked against the client's
            # current networks (token_check), not this copy.
            allowed_networks=list(client.oauth_allowed_networks),
        ),
    )
    # No signals on these models: plain UPDATE/DELETE statements, no audit entries for use.
    for model, pk in authenticated.touch:
        model.objects.filter(pk=pk).exclude(last_used_at__gt=now - LAST_USED_RESOLUTION).update(
            last_used_at=now
        )
    AccessToken.objects.filter(client=client, expires_at__lt=now - EXPIRED_TOKEN_KEEP).delete()
    logger.info(
        "OAuth access token %s issued to client %s (%s, %s)",
        token.prefix, client.pk, authenticated.method, authenticated.credential,
    )
    return TokenResponse(access_token=raw, expires_in=lifetime, token=token)


def loggable_client_id(claimed: str) -> str:
    """The claimed client id for the log only when it has our client id format (a
    UUID): anything else may be a secret sent in the wrong place (a swapped Basic
    user and password) or text crafted for the log, and is never written."""
    if not claimed:
        return "-"
    try:
        return str(uuid.UUID(claimed))
    except (ValueError, AttributeError, TypeError):
        return "(not a client id)"


def token_failure_record(error: OAuthError, *, address: str | None) -> None:
    """Log a refused token request with the client id only (``loggable_client_id``),
    and count a failed client authentication on the client it named."""
    logger.warning(
        "OAuth token request refused: %s (client %s, method %s, address %s): %s",
        error.error, loggable_client_id(error.claimed_id), error.method or "-", address,
        error.log_reason,
    )
    if error.error in ("invalid_client", "invalid_grant") and error.client is not None:
        ScimClient.objects.filter(pk=error.client.pk).update(
            oauth_failures=F("oauth_failures") + 1, oauth_last_failure_at=timezone.now()
        )
