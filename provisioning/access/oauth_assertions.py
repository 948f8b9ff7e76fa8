"""JWT client assertions (RFC 7523): the client's own (``private_key_jwt``, §2.2) and
those of a trusted external issuer (federation), checked the same way:

- the signature, with an asymmetric algorithm of ASYMMETRIC_ALGORITHMS and a key of
  the client (a registered JWKS document or URL) or of the issuer (OpenID discovery →
  ``jwks_uri``); a key id not found makes the keys be fetched once more, then the
  assertion is refused;
- ``iss`` and ``sub`` (the client id for ``private_key_jwt``, the registered issuer and
  subject for federation), ``aud`` (the token endpoint or the issuer identifier; the
  registered audience for federation), ``exp`` (required, at most a day ahead),
  ``nbf`` and ``iat`` (not in the future), each with SCIMGATE_OAUTH_CLOCK_SKEW;
- replay (§3 ``jti``): an assertion is used once. Its issuer and ``jti`` (or, without a
  ``jti``, its signed header and claims, not the signature) are recorded until it
  expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key

from .models import AssertionUse, ClientKey, FederatedIssuer, ScimClient
from .oauth_keys import KeysUnavailable, import_keys, jwks_from_issuer, jwks_from_url

logger = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
)  # fmt: skip
MAX_ASSERTION_LENGTH = 16 * 1024
# An assertion valid for longer than this is refused (its jti would be kept that long).
MAX_ASSERTION_LIFETIME = 24 * 3600


class AssertionRejected(Exception):
    """An assertion that does not authenticate. ``reason`` is for the server's log and
    may be told to the caller: it never quotes the assertion."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UnverifiedJwt:
    """A compact JWS split and decoded, nothing verified yet."""

    raw: str
    header: dict
    claims: dict


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 §6)")


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(
        base64.urlsafe_b64decode(padded.encode("ascii")), parse_constant=_no_constant
    )


def parse_jwt(raw: str) -> UnverifiedJwt:
    """Split a compact JWT into header and claims (both JSON objects), or refuse it."""
    if not isinstance(raw, str) or len(raw) > MAX_ASSERTION_LENGTH:
        raise AssertionRejected("the assertion is not a JWT of acceptable size")
    parts = raw.split(".")
    if len(parts) != 3 or not all(parts):
        raise AssertionRejected("the assertion is not a signed JWT (compact JWS)")
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, TypeError, UnicodeError, binascii.Error, RecursionError, OverflowError):
        # Any unreadable assertion is a rejection (invalid_client or invalid_grant,
        # RFC 6749 §5.2), never a server error: deeply nested JSON, bytes that are not
        # UTF-8, NaN/Infinity…
        raise AssertionRejected("the assertion's header or claims are not base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected("the assertion's header or claims are not JSON objects")
    return UnverifiedJwt(raw=raw, header=header, claims=claims)


KeyLoader = Callable[[bool], list[Key]]


def verify_signature(jwt: UnverifiedJwt, load_keys: KeyLoader) -> None:
    """Check the signature with the keys ``load_keys(refresh)`` returns: those with the
    header's ``kid`` (all of them without one). No candidate key: load once more with
    ``refresh=True`` (a rotated key), then refuse."""
    alg = jwt.header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise AssertionRejected(f"the signing algorithm is not one of {', '.join(ASYMMETRIC_ALGORITHMS)}")
    if "crit" in jwt.header:
        raise AssertionRejected("the assertion names critical header parameters")
    kid = jwt.header.get("kid")
    candidates: list[Key] = []
    for refresh in (False, True):
        try:
            keys = load_keys(refresh)
        except KeysUnavailable as exc:
            logger.warning("OAuth assertion keys unavailable: %s", exc)
            raise AssertionRejected("the signing keys could not be loaded") from None
        candidates = [k for k in keys if kid is None or k.kid == kid]
        if candidates:
            break
    if not candidates:
        raise AssertionRejected("no registered key has the assertion's key id")
    for key in candidates:
        try:
            jws.deserialize_compact(jwt.raw, key, algorithms=[alg])
            return
        except (JoseError, ValueError, TypeError):
            continue
    raise AssertionRejected("the signature does not verify")


def _number(claims: dict, name: str, *, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise AssertionRejected(f"the assertion has no “{name}”")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AssertionRejected(f"“{name}” is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        # NaN compares false with everything and would pass every time check.
        raise AssertionRejected(f"“{name}” is not a finite number")
    return number


def check_claims(
    jwt: UnverifiedJwt, *, issuer: str, subject: str, audiences: Iterable[str], now: float | None = None
) -> float:
    """Check iss, sub, aud, exp, nbf and iat (RFC 7523 §3); return ``exp``."""
    claims = jwt.claims
    now = time.time() if now is None else now
    skew = settings.SCIMGATE_OAUTH_CLOCK_SKEW
    if claims.get("iss") != issuer:
        raise AssertionRejected("the assertion's issuer (iss) is not the expected one")
    if claims.get("sub") != subject:
        raise AssertionRejected("the assertion's subject (sub) is not the expected one")
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not set(a for a in named if isinstance(a, str)) & set(audiences):
        raise AssertionRejected("the assertion's audience (aud) is not this token endpoint")
    exp = _number(claims, "exp", required=True)
    if exp + skew <= now:
        raise AssertionRejected("the assertion has expired (exp)")
    if exp > now + MAX_ASSERTION_LIFETIME + skew:
        raise AssertionRejected("the assertion is valid for more than a day (exp)")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf - skew > now:
        raise AssertionRejected("the assertion is not valid yet (nbf)")
    iat = _number(claims, "iat")
    if iat is not None and iat - skew > now:
        raise AssertionRejected("the assertion was issued in the future (iat)")
    jti = claims.get("jti")
    if jti is not None and not isinstance(jti, str):
        raise AssertionRejected("“jti” is not a string")
    return exp


def record_use(jwt: UnverifiedJwt, exp: float) -> None:
    """Refuse a second use of the same assertion (RFC 7523 §3, item 7); remember this one
    until it expires. Expired records are deleted on the way."""
    issuer = str(jwt.claims.get("iss"))
    jti = jwt.claims.get("jti")
    # Without a jti, the signed part (header.payload) identifies the assertion, never the
    # signature: an ECDSA signature (s → n − s) or the unused bits of its last base64url
    # character can be changed without the key, which would make a "new" assertion.
    signed_part = jwt.raw.rsplit(".", 1)[0]
    material = f"jti\0{issuer}\0{jti}" if jti else f"jwt\0{signed_part}"
    key = hashlib.sha256(material.encode()).hexdigest()
    now = timezone.now()
    skew = timedelta(seconds=settings.SCIMGATE_OAUTH_CLOCK_SKEW)
    expires_at = datetime.fromtimestamp(exp, tz=UTC) + skew
    AssertionUse.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            AssertionUse.objects.create(key=key, expires_at=expires_at)
    except IntegrityError:
        raise AssertionRejected("the assertion was already used (jti replay)") from None


def _active(queryset, now: datetime):
    return queryset.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def client_keys_loader(client: ScimClient) -> tuple[KeyLoader, list[ClientKey]]:
    """A key loader over the client's active registered keys (documents and URLs)."""
    registered = list(_active(ClientKey.objects.filter(client=client), timezone.now()))

    def load(refresh: bool) -> list[Key]:
        keys: list[Key] = []
        for entry in registered:
            if entry.jwks is not None:
                if not refresh:
                    keys.extend(import_keys(entry.jwks))
            else:
                keys.extend(jwks_from_url(entry.jwks_uri, refresh=refresh))
        return keys

    return load, registered


def verify_private_key_jwt(
    jwt: UnverifiedJwt, *, client: ScimClient, audiences: Iterable[str]
) -> ClientKey:
    """RFC 7523 §2.2: iss and sub are the client id, signed with one of its keys. Returns
    the registered key entry that verified it."""
    load, registered = client_keys_loader(client)
    if not registered:
        raise AssertionRejected("the client has no registered keys")
    exp = check_claims(jwt, issuer=str(client.pk), subject=str(client.pk), audiences=audiences)
    verify_signature(jwt, load)
    record_use(jwt, exp)
    kid = jwt.header.get("kid")
    for entry in registered:
        if entry.jwks is not None and kid in entry.key_ids:
            return entry
    return registered[0] if len(registered) == 1 else _entry_holding(registered, kid)


def _entry_holding(registered: list[ClientKey], kid: str | None) -> ClientKey:
    """The registered entry whose keys hold ``kid`` (cached URL documents included)."""
    for entry in registered:
        if entry.jwks is None and any(k.kid == kid for k in jwks_from_url(entry.jwks_uri)):
            return entry
    return registered[0]


def federations_for(claims: dict, *, client: ScimClient | None = None) -> list[FederatedIssuer]:
    """Active trusted issuers matching the assertion's (unverified) iss and sub, of
    ``client`` or of any client."""
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str):
        return []
    queryset = FederatedIssuer.objects.select_related("client", "client__role").filter(
        issuer=iss, subject=sub
    )
    if client is not None:
        queryset = queryset.filter(client=client)
    return list(_active(queryset, timezone.now()))


def verify_federated(
    jwt: UnverifiedJwt, *, federation: FederatedIssuer, token_endpoint: str
) -> None:
    """A JWT from a trusted issuer: its iss, sub and audience as registered (default: the
    token endpoint), signed with a key the issuer publishes."""
    audience = federation.audience or token_endpoint
    exp = check_claims(
        jwt, issuer=federation.issuer, subject=federation.subject, audiences=[audience]
    )
    verify_signature(jwt, lambda refresh: jwks_from_issuer(federation.issuer, refresh=refresh))
    record_use(jwt, exp)
