"""The keys that sign SETs, and the JWKS that publishes them.

One key is active (signs); a key replaced by ``rotate`` is *retiring*: it no longer signs
but stays in ``/.well-known/jwks.json`` until its ``retired_at`` (the end of the overlap),
so a receiver that cached the previous JWKS, or holds SETs signed just before the
rotation, can still verify them. After ``retired_at`` the key is no longer published
(``retire_due`` marks it retired). ``kid`` is the key's RFC 7638 thumbprint.

The first key is created on first need (a SET to sign, a JWKS to publish); two processes
doing so at once are kept to one by the ``one_active_signing_key`` constraint. Private
keys are stored as PEM encrypted with ``crypto.seal``.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey, import_key

from .crypto import seal, unseal
from .models import SigningKey

# RFC 8417 §2.3: the "typ" of a SET.
SET_TYPE = "secevent+jwt"
RSA_BITS = 2048

# kid -> imported private key (decrypting and parsing a PEM costs more than signing).
_private_keys: dict[str, RSAKey | ECKey] = {}


def _generate(algorithm: str) -> tuple[RSAKey | ECKey, str]:
    if algorithm == SigningKey.Algorithm.RS256:
        key = RSAKey.generate_key(RSA_BITS)
    elif algorithm == SigningKey.Algorithm.ES256:
        key = ECKey.generate_key("P-256")
    else:
        raise ValueError(f"unsupported signing algorithm {algorithm!r} (RS256 or ES256)")
    return key, key.thumbprint()


def _new_key(algorithm: str) -> SigningKey:
    key, kid = _generate(algorithm)
    public = {**key.as_dict(private=False), "kid": kid, "alg": algorithm, "use": "sig"}
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        private_key=seal(key.as_pem(private=True).decode()),
        public_jwk=public,
        status=SigningKey.Status.ACTIVE,
    )


def active_key() -> SigningKey:
    """The key that signs now, created when there is none (concurrency-safe: a process
    that loses the race reads the winner's key)."""
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if key is not None:
        return key
    candidate = _new_key(settings.SCIMGATE_EVENTS_SIGNING_ALGORITHM)
    try:
        with transaction.atomic():
            candidate.save()
        return candidate
    except IntegrityError:
        return SigningKey.objects.get(status=SigningKey.Status.ACTIVE)


def _private(key: SigningKey) -> RSAKey | ECKey:
    loaded = _private_keys.get(key.kid)
    if loaded is None:
        loaded = import_key(unseal(key.private_key), "RSA" if key.algorithm == "RS256" else "EC")
        _private_keys[key.kid] = loaded
    return loaded


def sign(claims: dict, key: SigningKey | None = None) -> str:
    """The compact JWS of ``claims`` (a SET), signed with the active key (or ``key``):
    header ``alg``, ``kid``, ``typ: secevent+jwt``."""
    key = key or active_key()
    header = {"alg": key.algorithm, "kid": key.kid, "typ": SET_TYPE}
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, payload, _private(key), algorithms=[key.algorithm])


def published_keys() -> list[SigningKey]:
    """Active and retiring keys whose overlap has not ended, newest first."""
    now = timezone.now()
    return [
        key
        for key in SigningKey.objects.filter(
            status__in=[SigningKey.Status.ACTIVE, SigningKey.Status.RETIRING]
        )
        if key.status == SigningKey.Status.ACTIVE or key.retired_at is None or key.retired_at > now
    ]


def jwks() -> dict:
    """The JWKS document of ``/.well-known/jwks.json`` (public halves only)."""
    active_key()
    return {"keys": [key.public_jwk for key in published_keys()]}


def retire_due(now=None) -> int:
    """Mark retiring keys whose overlap has ended as retired; the number retired."""
    now = now or timezone.now()
    return SigningKey.objects.filter(status=SigningKey.Status.RETIRING, retired_at__lte=now).update(
        status=SigningKey.Status.RETIRED
    )


@transaction.atomic
def rotate(*, algorithm: str | None = None, overlap: timedelta | None = None) -> SigningKey:
    """Replace the active key by a new one (``algorithm``, default the setting's). The
    previous key keeps being published for ``overlap`` (default
    SCIMGATE_EVENTS_KEY_OVERLAP_HOURS); an overlap of zero retires it at once."""
    algorithm = algorithm or settings.SCIMGATE_EVENTS_SIGNING_ALGORITHM
    if overlap is None:
        overlap = timedelta(hours=settings.SCIMGATE_EVENTS_KEY_OVERLAP_HOURS)
    if overlap < timedelta(0):
        raise ValueError("the overlap cannot be negative")
    new = _new_key(algorithm)
    now = timezone.now()
    previous = list(SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE))
    for key in previous:
        key.retiring_since = now
        key.retired_at = now + overlap
        key.status = SigningKey.Status.RETIRING if overlap else SigningKey.Status.RETIRED
        key.save(update_fields=["status", "retiring_since", "retired_at"])
    new.save()
    retire_due(now)
    return new
