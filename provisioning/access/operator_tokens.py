"""Console operators' API tokens for the management API: create, list, revoke, verify.

A token looks like ``scgop_<prefix>_<secret>`` (the format of every credential the server
issues, ``token_check``): the prefix is public and names the token in the console and
in logs; only the SHA-256 digest of the whole token is stored, and the raw token is
returned once, at creation. A token acts with its operator's console role as it is at
each request (a demoted operator's tokens are demoted with them). An operator may hold
several, each named (the script or machine it is for), optionally expiring.

Creating and revoking run in one audited change set attributed to the acting
``operator`` (None for a command-line action). Use is recorded as ``last_used_at`` at
most once per ``LAST_USED_RESOLUTION``, by a plain UPDATE: no signal, no audit entry.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import OperatorToken
from .token_check import (
    LAST_USED_RESOLUTION,
    MAX_TOKEN_LENGTH,
    PREFIX_LENGTH,
    TokenRejected,
    credential_create,
    token_digest,
)
from .units import unit_of_change

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

OPERATOR_TOKEN_SCHEME = "scgop"
# The longest lifetime an operator may choose; no expiry at all is allowed too.
MAX_LIFETIME = timedelta(days=3 * 365 + 1)
# Live (not revoked) tokens one operator may hold at once.
MAX_TOKENS_PER_OPERATOR = 50

_TOKEN_RE = re.compile(
    rf"{OPERATOR_TOKEN_SCHEME}_(?P<prefix>[A-Za-z0-9]{{{PREFIX_LENGTH}}})_[A-Za-z0-9_-]{{43,}}"
)


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    max_length = OperatorToken._meta.get_field("name").max_length
    if not name:
        raise ValidationError({"name": "Name the token after the script or machine that uses it."})
    if len(name) > max_length:
        raise ValidationError({"name": f"The name must be at most {max_length} characters long."})
    return name


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if timezone.is_naive(expires_at):
        raise ValidationError({"expires_at": "The expiry needs a time zone."})
    now = timezone.now()
    if expires_at <= now:
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    if expires_at > now + MAX_LIFETIME:
        raise ValidationError({"expires_at": "An API token expires within three years, or never."})
    return expires_at


@transaction.atomic
def operator_token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    expires_at: datetime | None = None,
    operator: AbstractBaseUser | None = None,
) -> tuple[OperatorToken, str]:
    """Create an API token for ``user``; return it and the raw token (shown once).

    ``operator`` is who acts (the user themself in the console, None from the command
    line). Raises ValidationError (keyed by field) for an empty or too long name, an
    expiry in the past or beyond MAX_LIFETIME, or more than MAX_TOKENS_PER_OPERATOR
    live tokens.
    """
    name = _clean_name(name)
    expires_at = _clean_expiry(expires_at)
    live = operator_tokens_live(user).select_for_update()
    if len(live) >= MAX_TOKENS_PER_OPERATOR:
        raise ValidationError(
            {"name": f"An operator holds at most {MAX_TOKENS_PER_OPERATOR} API tokens; revoke one first."}
        )
    with unit_of_change(operator=operator):
        return credential_create(
            OPERATOR_TOKEN_SCHEME,
            lambda prefix, digest: OperatorToken.objects.create(
                operator=user, name=name, prefix=prefix, digest=digest, expires_at=expires_at
            ),
        )


@transaction.atomic
def operator_token_revoke(
    *, token: OperatorToken, operator: AbstractBaseUser | None = None
) -> OperatorToken:
    """Revoke ``token``; requests using it get 401 from now on. Revoking a revoked
    token keeps its first revocation time."""
    locked = OperatorToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is None:
        with unit_of_change(operator=operator):
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    token.revoked_at = locked.revoked_at
    return locked


def operator_tokens_of(user: AbstractBaseUser) -> QuerySet[OperatorToken]:
    """Every API token of ``user``, newest first (revoked and expired ones included)."""
    return OperatorToken.objects.filter(operator=user).order_by("-created_at", "-pk")


def operator_tokens_live(user: AbstractBaseUser) -> QuerySet[OperatorToken]:
    """The tokens of ``user`` not revoked (expired ones count: they still hold a name)."""
    return OperatorToken.objects.filter(operator=user, revoked_at__isnull=True)


def operator_token_get(user: AbstractBaseUser, token_id: int) -> OperatorToken | None:
    """One token of ``user`` by id, or None (another operator's token is None too)."""
    return operator_tokens_of(user).filter(pk=token_id).first()


def operator_token_prefix_of(raw: str | None) -> str | None:
    """The public prefix of a well-formed raw operator token, else None (safe to log)."""
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_LENGTH:
        return None
    match = _TOKEN_RE.fullmatch(raw)
    return match["prefix"] if match else None


def operator_token_verify(raw: str | None) -> OperatorToken:
    """The valid token for a raw ``scgop_`` token, with its operator loaded; else raise
    ``TokenRejected``.

    As for SCIM tokens (``token_check.scim_token_verify``): malformed, unknown and wrong
    secret are one reason, "invalid"; "revoked", "expired" and "inactive" (the operator's
    account is disabled) are told apart only once the secret matched. Digests are
    compared in constant time. Last use is written at most once per LAST_USED_RESOLUTION.
    """
    prefix = operator_token_prefix_of(raw)
    if prefix is None:
        raise TokenRejected("invalid")
    token = OperatorToken.objects.select_related("operator").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.digest, token_digest(raw)):
        raise TokenRejected("invalid", prefix)
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRejected("revoked", prefix)
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRejected("expired", prefix)
    if not token.operator.is_active:
        raise TokenRejected("inactive", prefix)
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        # The staleness test is repeated in SQL, so concurrent requests write once.
        OperatorToken.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION),
            pk=token.pk,
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
