"""Services for SCIM clients and their bearer tokens.

A token looks like ``scg_<prefix>_<secret>``:

- ``prefix`` is 8 random alphanumeric characters, unique, stored in clear. It
  identifies the token in lookups, logs and the console; it is not a secret.
- ``secret`` is ``secrets.token_urlsafe(32)`` (32 random bytes, 43 characters).

Only the SHA-256 digest of the whole raw token is stored. A slow password hash
is not needed: the token carries 256 bits of randomness, so the digest cannot be
brute-forced, and hashing must stay cheap because it runs on every SCIM request.
"""

import hashlib
import hmac
import re
import secrets
import string
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import ScimClient, ScimToken

TOKEN_SCHEME = "scg"
PREFIX_LENGTH = 8
SECRET_BYTES = 32
# Raw tokens longer than this are rejected before any hashing or lookup.
MAX_TOKEN_LENGTH = 256
# last_used_at is recorded with this resolution, so busy clients cost no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_PREFIX_ALPHABET = string.ascii_letters + string.digits
_PREFIX_ATTEMPTS = 5
_TOKEN_RE = re.compile(
    rf"{TOKEN_SCHEME}_(?P<prefix>[A-Za-z0-9]{{{PREFIX_LENGTH}}})_(?P<secret>[A-Za-z0-9_-]{{43,}})"
)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_prefix() -> str:
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def token_prefix_of(raw: str | None) -> str | None:
    """Return the prefix of a well-formed raw token, else None.

    Safe to log: the prefix is public, and nothing of the secret is returned.
    """
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_LENGTH:
        return None
    match = _TOKEN_RE.fullmatch(raw)
    return match["prefix"] if match else None


@transaction.atomic
def scim_client_create(*, name: str, role: str) -> tuple[ScimClient, str]:
    """Create a SCIM client and its first token.

    Returns the client and the raw token, which is not stored and cannot be
    shown again. Raises ValidationError (keyed by field) for an empty or too
    long name, a name already taken (case-insensitively) or an unknown role.
    """
    name = (name or "").strip()
    errors: dict[str, str] = {}
    max_length = ScimClient._meta.get_field("name").max_length
    if not name:
        errors["name"] = "A SCIM client needs a name."
    elif len(name) > max_length:
        errors["name"] = f"The name must be at most {max_length} characters long."
    elif ScimClient.objects.filter(name__iexact=name).exists():
        errors["name"] = f"A SCIM client named “{name}” already exists."
    if role not in ScimClient.Role.values:
        errors["role"] = (
            f"Unknown role “{role}”; choose one of: {', '.join(ScimClient.Role.values)}."
        )
    if errors:
        raise ValidationError(errors)

    try:
        # A savepoint, so a concurrent create of the same name leaves the outer
        # transaction usable and surfaces as a validation error, not a 500.
        with transaction.atomic():
            client = ScimClient.objects.create(name=name, role=role)
    except IntegrityError as exc:
        raise ValidationError({"name": f"A SCIM client named “{name}” already exists."}) from exc
    _token, raw = scim_token_issue(client=client)
    return client, raw


@transaction.atomic
def scim_token_issue(*, client: ScimClient) -> tuple[ScimToken, str]:
    """Issue a new token for ``client``; return it and the raw token (shown once).

    Existing tokens stay valid: rotate by issuing a new one, configuring it in
    the IdP, then revoking the old one.
    """
    attempts = 0
    while True:
        prefix = _new_prefix()
        raw = f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        try:
            with transaction.atomic():
                token = ScimToken.objects.create(client=client, prefix=prefix, digest=_digest(raw))
            return token, raw
        except IntegrityError:
            # A prefix collision (about one in 62**8 per existing token): draw again.
            attempts += 1
            if attempts >= _PREFIX_ATTEMPTS:
                raise


@transaction.atomic
def scim_token_revoke(*, token: ScimToken) -> None:
    """Revoke ``token``. Revoking a revoked token keeps its first revocation time."""
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
    token.revoked_at = locked.revoked_at


def scim_token_authenticate(raw: str | None) -> ScimToken | None:
    """Return the valid, unrevoked token for a raw bearer token, or None.

    ``raw`` is the token itself, without the ``Bearer`` scheme. The returned
    token has its ``client`` loaded. Digests are compared in constant time.
    Last use is recorded on the token and its client at most once per
    LAST_USED_RESOLUTION, so most requests cost one SELECT and no write.
    """
    prefix = token_prefix_of(raw)
    if prefix is None:
        return None
    token = ScimToken.objects.select_related("client").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.digest, _digest(raw)):
        return None
    if token.revoked_at is not None:
        return None
    now = timezone.now()
    if _is_stale(token.last_used_at, now) or _is_stale(token.client.last_used_at, now):
        _record_use(token=token, now=now)
    return token


def _is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or last_used_at <= now - LAST_USED_RESOLUTION


@transaction.atomic
def _record_use(*, token: ScimToken, now: datetime) -> None:
    # The staleness test is repeated in SQL, so concurrent requests write once;
    # .update() bypasses save(): no signals, no audit entries for mere use.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    client = token.client
    if _is_stale(token.last_used_at, now):
        ScimToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    if _is_stale(client.last_used_at, now):
        ScimClient.objects.filter(stale, pk=client.pk).update(last_used_at=now)
        client.last_used_at = now
