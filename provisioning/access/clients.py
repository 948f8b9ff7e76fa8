"""SCIM clients (one per IdP connection) and their bearer tokens: create, change
role, delete; issue, rotate, update and revoke tokens.

Every change takes the ``operator`` (a Django user, or None for a command-line
action) and runs inside one audited change set. The token format and the check
each request runs are in ``token_check``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import AuthMethod, Role, ScimClient, ScimToken
from .roles import role_get
from .token_check import TOKEN_SCHEME, credential_create
from .units import unit_of_change

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

_UNSET: Any = object()


@transaction.atomic
def scim_client_create(
    *,
    name: str,
    role: Role | str,
    static_token: bool = True,
    operator: AbstractBaseUser | None = None,
) -> tuple[ScimClient, str | None]:
    """Create a SCIM client holding ``role`` (a Role or its name) and its first token.
    Without ``static_token`` the client gets no token and allows no method yet (OAuth
    credentials are added by ``oauth_credentials``), and None stands for the token.

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
    try:
        role = role_get(role)
    except ValidationError as exc:
        errors.update({k: v[0] for k, v in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)

    with unit_of_change(operator=operator):
        try:
            # A savepoint, so a concurrent create of the same name leaves the outer
            # transaction usable and surfaces as a validation error, not a 500.
            with transaction.atomic():
                client = ScimClient.objects.create(
                    name=name,
                    role=role,
                    auth_methods=[AuthMethod.STATIC_TOKEN] if static_token else [],
                )
        except IntegrityError as exc:
            raise ValidationError(
                {"name": f"A SCIM client named “{name}” already exists."}
            ) from exc
        if not static_token:
            return client, None
        _token, raw = scim_token_issue(client=client, operator=operator)
    return client, raw


@transaction.atomic
def scim_client_set_role(
    *, client: ScimClient, role: Role | str, operator: AbstractBaseUser | None = None
) -> ScimClient:
    """Give ``client`` another role (audited); effective from its next request."""
    role = role_get(role)
    with unit_of_change(operator=operator):
        locked = ScimClient.objects.select_for_update().get(pk=client.pk)
        if locked.role_id != role.pk:
            locked.role = role
            locked.save(update_fields=["role"])
    client.role = role
    return client


def clean_networks(networks: Iterable[str] | None) -> list[str]:
    """CIDR strings, normalised (``10.0.0.1/8`` → ``10.0.0.0/8``); a bare address is a /32 or /128."""
    cleaned: list[str] = []
    for value in networks or []:
        try:
            network = str(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValidationError(
                {"allowed_networks": f"“{value}” is not a network in CIDR notation."}
            ) from None
        if network not in cleaned:
            cleaned.append(network)
    return cleaned


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and timezone.is_naive(expires_at):
        raise ValidationError({"expires_at": "The expiry needs a time zone."})
    return expires_at


@transaction.atomic
def scim_token_issue(
    *,
    client: ScimClient,
    expires_at: datetime | None = None,
    allowed_networks: Iterable[str] | None = None,
    operator: AbstractBaseUser | None = None,
) -> tuple[ScimToken, str]:
    """Issue a new token for ``client``; return it and the raw token (shown once).

    Existing tokens stay valid: rotate by issuing a new one, configuring it in
    the IdP, then revoking the old one (``scim_token_rotate`` does the first step).
    ``allowed_networks``: CIDR strings the token may be used from (empty: anywhere).
    """
    networks = clean_networks(allowed_networks)
    expires_at = _clean_expiry(expires_at)
    with unit_of_change(operator=operator):
        return credential_create(
            TOKEN_SCHEME,
            lambda prefix, digest: ScimToken.objects.create(
                client=client,
                prefix=prefix,
                digest=digest,
                expires_at=expires_at,
                allowed_networks=networks,
            ),
        )


def _active_tokens(client: ScimClient, now: datetime):
    return ScimToken.objects.filter(client=client, revoked_at__isnull=True).exclude(
        expires_at__lte=now
    )


@transaction.atomic
def scim_token_rotate(
    *,
    client: ScimClient,
    expire_old_in: timedelta | None = None,
    allowed_networks: Iterable[str] | None = None,
    operator: AbstractBaseUser | None = None,
) -> tuple[ScimToken, str]:
    """Issue a new token; the client's other tokens keep working until revoked.

    With ``expire_old_in``, every other active token expires that long from now
    (or keeps its earlier expiry), so the IdP has that long to switch. The new
    token inherits the allowed networks of the newest active token unless
    ``allowed_networks`` is given.
    """
    now = timezone.now()
    ScimClient.objects.select_for_update().get(pk=client.pk)  # one rotation at a time
    old = _active_tokens(client, now)
    if allowed_networks is None:
        newest = old.order_by("-created_at").first()
        allowed_networks = newest.allowed_networks if newest else []
    with unit_of_change(operator=operator):
        if expire_old_in is not None:
            if expire_old_in < timedelta(0):
                raise ValidationError({"expire_old_in": "The grace period cannot be negative."})
            deadline = now + expire_old_in
            for token in old.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=deadline)):
                token.expires_at = deadline
                token.save(update_fields=["expires_at"])
        return scim_token_issue(client=client, allowed_networks=allowed_networks, operator=operator)


@transaction.atomic
def scim_token_update(
    *,
    token: ScimToken,
    expires_at: datetime | None = _UNSET,
    allowed_networks: Iterable[str] | None = _UNSET,
    operator: AbstractBaseUser | None = None,
) -> ScimToken:
    """Change a token's expiry and/or allowed networks (arguments not given stay)."""
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    fields = []
    if expires_at is not _UNSET:
        locked.expires_at = _clean_expiry(expires_at)
        fields.append("expires_at")
    if allowed_networks is not _UNSET:
        locked.allowed_networks = clean_networks(allowed_networks)
        fields.append("allowed_networks")
    if fields:
        with unit_of_change(operator=operator):
            locked.save(update_fields=fields)
    return locked


@transaction.atomic
def scim_token_revoke(*, token: ScimToken, operator: AbstractBaseUser | None = None) -> None:
    """Revoke ``token``. Revoking a revoked token keeps its first revocation time."""
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is None:
        with unit_of_change(operator=operator):
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    token.revoked_at = locked.revoked_at
