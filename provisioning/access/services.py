"""Services for SCIM clients, their bearer tokens and roles, and console operators.

A token looks like ``scg_<prefix>_<secret>``:

- ``prefix`` is 8 random alphanumeric characters, unique, stored in clear. It
  identifies the token in lookups, logs and the console; it is not a secret.
- ``secret`` is ``secrets.token_urlsafe(32)`` (32 random bytes, 43 characters).

Only the SHA-256 digest of the whole raw token is stored. A slow password hash
is not needed: the token carries 256 bits of randomness, so the digest cannot be
brute-forced, and hashing must stay cheap because it runs on every SCIM request.

Every management service takes the ``operator`` (a Django user, or None for a
command-line action) and runs inside one audited change set.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import string
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from provisioning.audit.context import change_set_scope
from provisioning.scim.errors import InvalidPath
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA

from .builtin import BUILTIN_ROLES, OPERATOR_PERMISSIONS, OPERATOR_ROLES
from .models import ALL_PERMISSIONS, Role, ScimClient, ScimToken

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

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
_UNSET: Any = object()


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_prefix() -> str:
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def _audited(operator: AbstractBaseUser | None):
    return change_set_scope(operator=operator, source="console")


def token_prefix_of(raw: str | None) -> str | None:
    """Return the prefix of a well-formed raw token, else None.

    Safe to log: the prefix is public, and nothing of the secret is returned.
    """
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_LENGTH:
        return None
    match = _TOKEN_RE.fullmatch(raw)
    return match["prefix"] if match else None


# --- Roles ------------------------------------------------------------------


def ensure_builtin_roles() -> None:
    """Create missing built-in roles (the data migration does; a flushed test database does not)."""
    for name, definition in BUILTIN_ROLES.items():
        if not Role.objects.filter(name=name).exists():
            Role.objects.create(name=name, built_in=True, **definition)


def role_get(role: Role | str) -> Role:
    """The role itself, or the role of that name (case-insensitive); ValidationError if none."""
    if isinstance(role, Role):
        return role
    name = (role or "").strip() if isinstance(role, str) else ""
    found = Role.objects.filter(name__iexact=name).first() if name else None
    if found is None and name.lower() in BUILTIN_ROLES:
        ensure_builtin_roles()
        found = Role.objects.filter(name__iexact=name).first()
    if found is None:
        names = ", ".join(Role.objects.values_list("name", flat=True))
        raise ValidationError({"role": f"Unknown role “{role}”; choose one of: {names}."})
    return found


def _clean_permissions(values: Iterable[str]) -> list[str]:
    values = list(values)
    unknown = [v for v in values if v not in ALL_PERMISSIONS]
    if unknown:
        raise ValidationError(
            {
                "permissions": f"Unknown permissions: {', '.join(map(str, unknown))}; "
                f"use {', '.join(ALL_PERMISSIONS)}."
            }
        )
    return [p for p in ALL_PERMISSIONS if p in values]


def _canonical_attribute(path: str) -> str:
    """``active`` → ``active``; ``URN:...:user:Manager`` → ``urn:...:User:manager``."""
    errors = []
    for schema in (USER_SCHEMA, GROUP_SCHEMA):
        try:
            urn, rest = schema.split_urn(path)
            if not rest and urn != schema.core:
                return urn  # a whole extension
            resolved = schema.resolve(path)
        except InvalidPath as exc:
            errors.append(exc.detail)
            continue
        if resolved.sub_attribute is not None:
            raise ValidationError(
                {
                    "forbidden_attributes": f"“{path}”: name a top-level attribute "
                    f"(“{resolved.attribute.name}”), not a sub-attribute."
                }
            )
        if resolved.attribute.mutability == "readOnly":
            raise ValidationError({"forbidden_attributes": f"“{path}” is read-only anyway."})
        name = resolved.attribute.name
        return name if resolved.urn == schema.core else f"{resolved.urn}:{name}"
    raise ValidationError({"forbidden_attributes": f"Unknown attribute “{path}”."})


def _clean_role_fields(fields: dict) -> dict:
    cleaned = dict(fields)
    if "name" in cleaned:
        name = (cleaned["name"] or "").strip()
        max_length = Role._meta.get_field("name").max_length
        if not name or len(name) > max_length:
            raise ValidationError({"name": f"A role needs a name of 1 to {max_length} characters."})
        cleaned["name"] = name
    if "permissions" in cleaned:
        cleaned["permissions"] = _clean_permissions(cleaned["permissions"] or [])
    if "forbidden_attributes" in cleaned:
        seen: list[str] = []
        for path in cleaned["forbidden_attributes"] or []:
            if not isinstance(path, str) or not path.strip():
                raise ValidationError({"forbidden_attributes": "Attribute names must be strings."})
            canonical = _canonical_attribute(path.strip())
            if canonical not in seen:
                seen.append(canonical)
        cleaned["forbidden_attributes"] = seen
    if "protected_group_names" in cleaned:
        names = []
        for pattern in cleaned["protected_group_names"] or []:
            if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 255:
                raise ValidationError(
                    {
                        "protected_group_names": "Group names and patterns must be 1 to 255 characters."
                    }
                )
            if pattern.strip() not in names:
                names.append(pattern.strip())
        cleaned["protected_group_names"] = names
    for flag in ("own_resources_only", "protect_privileged_groups"):
        if flag in cleaned:
            cleaned[flag] = bool(cleaned[flag])
    if "description" in cleaned:
        cleaned["description"] = (cleaned["description"] or "").strip()
    return cleaned


def _ensure_role_name_free(name: str, exclude: int | None = None) -> None:
    if Role.objects.filter(name__iexact=name).exclude(pk=exclude).exists():
        raise ValidationError({"name": f"A role named “{name}” already exists."})


@transaction.atomic
def scim_role_create(
    *,
    name: str,
    permissions: Iterable[str],
    description: str = "",
    forbidden_attributes: Iterable[str] = (),
    own_resources_only: bool = False,
    protected_group_names: Iterable[str] = (),
    protect_privileged_groups: bool = False,
    operator: AbstractBaseUser | None = None,
) -> Role:
    """Create a custom SCIM role. Raises ValidationError (keyed by field) for bad values.

    ``permissions`` are "User:read"-style entries; ``forbidden_attributes`` are
    attribute names (stored canonically, e.g. ``active`` or the enterprise
    ``urn:...:User:manager``); ``protected_group_names`` are names or glob patterns.
    """
    fields = _clean_role_fields(
        {
            "name": name,
            "description": description,
            "permissions": permissions,
            "forbidden_attributes": forbidden_attributes,
            "own_resources_only": own_resources_only,
            "protected_group_names": protected_group_names,
            "protect_privileged_groups": protect_privileged_groups,
        }
    )
    _ensure_role_name_free(fields["name"])
    with _audited(operator):
        try:
            with transaction.atomic():
                return Role.objects.create(**fields)
        except IntegrityError as exc:
            raise ValidationError(
                {"name": f"A role named “{fields['name']}” already exists."}
            ) from exc


_ROLE_FIELDS = (
    "name",
    "description",
    "permissions",
    "forbidden_attributes",
    "own_resources_only",
    "protected_group_names",
    "protect_privileged_groups",
)


@transaction.atomic
def scim_role_update(
    *, role: Role, operator: AbstractBaseUser | None = None, **changes: Any
) -> Role:
    """Change a custom role's fields (any of ``name``, ``description``, ``permissions``,
    ``forbidden_attributes``, ``own_resources_only``, ``protected_group_names``,
    ``protect_privileged_groups``).

    Built-in roles keep their meaning: only their description may change.
    Clients holding the role are affected from their next request.
    """
    unknown = set(changes) - set(_ROLE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown role fields: {', '.join(sorted(unknown))}")
    role = Role.objects.select_for_update().get(pk=role.pk)
    fields = _clean_role_fields(changes)
    if role.built_in and set(fields) - {"description"}:
        raise ValidationError(
            {"__all__": f"“{role.name}” is a built-in role; create a custom role instead."}
        )
    if "name" in fields:
        _ensure_role_name_free(fields["name"], exclude=role.pk)
    with _audited(operator):
        for name, value in fields.items():
            setattr(role, name, value)
        role.save()
    return role


@transaction.atomic
def scim_role_delete(*, role: Role, operator: AbstractBaseUser | None = None) -> None:
    """Delete a custom role no client holds; built-in roles cannot be deleted."""
    role = Role.objects.select_for_update().get(pk=role.pk)
    if role.built_in:
        raise ValidationError(
            {"__all__": f"“{role.name}” is a built-in role and cannot be deleted."}
        )
    holders = list(role.clients.values_list("name", flat=True)[:5])
    if holders:
        raise ValidationError(
            {
                "__all__": f"Role “{role.name}” is held by: {', '.join(holders)}; change their role first."
            }
        )
    with _audited(operator):
        role.delete()


# --- Clients ----------------------------------------------------------------


@transaction.atomic
def scim_client_create(
    *, name: str, role: Role | str, operator: AbstractBaseUser | None = None
) -> tuple[ScimClient, str]:
    """Create a SCIM client holding ``role`` (a Role or its name) and its first token.

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

    with _audited(operator):
        try:
            # A savepoint, so a concurrent create of the same name leaves the outer
            # transaction usable and surfaces as a validation error, not a 500.
            with transaction.atomic():
                client = ScimClient.objects.create(name=name, role=role)
        except IntegrityError as exc:
            raise ValidationError(
                {"name": f"A SCIM client named “{name}” already exists."}
            ) from exc
        _token, raw = scim_token_issue(client=client, operator=operator)
    return client, raw


@transaction.atomic
def scim_client_set_role(
    *, client: ScimClient, role: Role | str, operator: AbstractBaseUser | None = None
) -> ScimClient:
    """Give ``client`` another role (audited); effective from its next request."""
    role = role_get(role)
    with _audited(operator):
        locked = ScimClient.objects.select_for_update().get(pk=client.pk)
        if locked.role_id != role.pk:
            locked.role = role
            locked.save(update_fields=["role"])
    client.role = role
    return client


@transaction.atomic
def scim_client_delete(*, client: ScimClient, operator: AbstractBaseUser | None = None) -> None:
    """Delete a client and its tokens; resources it created stay, without a source."""
    with _audited(operator):
        client.delete()


def scim_client_record_denied(*, client: ScimClient) -> None:
    """Count one refused (403) request or Bulk operation; an UPDATE without signals or audit."""
    ScimClient.objects.filter(pk=client.pk).update(denied_requests=F("denied_requests") + 1)


# --- Tokens -----------------------------------------------------------------


def _clean_networks(networks: Iterable[str] | None) -> list[str]:
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
    networks = _clean_networks(allowed_networks)
    expires_at = _clean_expiry(expires_at)
    attempts = 0
    with _audited(operator):
        while True:
            prefix = _new_prefix()
            raw = f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
            try:
                with transaction.atomic():
                    token = ScimToken.objects.create(
                        client=client,
                        prefix=prefix,
                        digest=_digest(raw),
                        expires_at=expires_at,
                        allowed_networks=networks,
                    )
                return token, raw
            except IntegrityError:
                # A prefix collision (about one in 62**8 per existing token): draw again.
                attempts += 1
                if attempts >= _PREFIX_ATTEMPTS:
                    raise


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
    with _audited(operator):
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
        locked.allowed_networks = _clean_networks(allowed_networks)
        fields.append("allowed_networks")
    if fields:
        with _audited(operator):
            locked.save(update_fields=fields)
    return locked


@transaction.atomic
def scim_token_revoke(*, token: ScimToken, operator: AbstractBaseUser | None = None) -> None:
    """Revoke ``token``. Revoking a revoked token keeps its first revocation time."""
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is None:
        with _audited(operator):
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    token.revoked_at = locked.revoked_at


class TokenRejected(Exception):
    """A bearer token that does not authenticate. ``reason`` is safe to show the caller:

    "invalid" (malformed, unknown or wrong secret: indistinguishable on purpose),
    and, only for a token whose secret matched, "revoked", "expired" or "network".
    """

    def __init__(self, reason: str, prefix: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.prefix = prefix


def _parse_address(address: str | None):
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_allowed(networks: list[str], address: str | None) -> bool:
    """Whether ``address`` lies in one of ``networks``; no networks: any address."""
    if not networks:
        return True
    ip = _parse_address(address)
    if ip is None:
        return False
    for network in networks:
        try:
            if ip in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


_TOKEN_MODELS = ((ScimToken, "t"), (ScimClient, "c"), (Role, "r"))
# Per backend: the statement, and for each model its attribute names and, per column,
# the converters that turn a database value into the field's Python value.
_token_queries: dict[str, tuple[str, list[tuple[type, list[str], list[tuple]]]]] = {}


def _token_query(connection) -> tuple[str, list[tuple[type, list[str], list[tuple]]]]:
    """SELECT every column of token, client and role for one prefix (built once per backend)."""
    if connection.vendor not in _token_queries:
        quote = connection.ops.quote_name
        select = ", ".join(
            f"{alias}.{quote(field.column)}"
            for model, alias in _TOKEN_MODELS
            for field in model._meta.concrete_fields
        )
        client_fk = ScimToken._meta.get_field("client").column
        role_fk = ScimClient._meta.get_field("role").column
        prefix = ScimToken._meta.get_field("prefix").column
        sql = (
            f"SELECT {select} FROM {quote(ScimToken._meta.db_table)} t "  # noqa: S608 - model names
            f"JOIN {quote(ScimClient._meta.db_table)} c ON c.{quote(ScimClient._meta.pk.column)} = t.{quote(client_fk)} "
            f"JOIN {quote(Role._meta.db_table)} r ON r.{quote(Role._meta.pk.column)} = c.{quote(role_fk)} "
            f"WHERE t.{quote(prefix)} = %s"
        )
        loaders = []
        for model, alias in _TOKEN_MODELS:
            columns = []
            for field in model._meta.concrete_fields:
                column = field.get_col(alias)
                converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                columns.append((column, converters))
            loaders.append((model, [f.attname for f in model._meta.concrete_fields], columns))
        _token_queries[connection.vendor] = (sql, loaders)
    return _token_queries[connection.vendor]


def _token_by_prefix(prefix: str) -> ScimToken | None:
    """The token with this prefix, its client and the client's role, from one query.

    Every SCIM request runs this, so the statement is written once from the models'
    columns and its row is turned into model instances with each field's own database
    converters (what the ORM does, without compiling a three-table query per request).
    The prefix is a parameter.
    """
    connection = transaction.get_connection()
    sql, loaders = _token_query(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    instances = {}
    for model, attnames, columns in loaders:
        loaded = []
        for (column, converters), value in zip(columns, values, strict=False):
            for convert in converters:
                value = convert(value, column, connection)
            loaded.append(value)
        instances[model] = model.from_db(connection.alias, attnames, loaded)
    token, client = instances[ScimToken], instances[ScimClient]
    client.role = instances[Role]
    token.client = client
    return token


def scim_token_verify(raw: str | None, *, address: str | None = None) -> ScimToken:
    """The valid token for a raw bearer token, or raise ``TokenRejected``.

    ``raw`` is the token itself, without the ``Bearer`` scheme; ``address`` is
    the caller's IP address, checked against the token's allowed networks. The
    returned token has its client and role loaded. Digests are compared in
    constant time; revocation, expiry and network are only told apart once the
    secret matched, so they reveal nothing to someone without the token. Last
    use (time and address) is recorded at most once per LAST_USED_RESOLUTION
    unless the address changed, so most requests cost one SELECT and no write.
    """
    prefix = token_prefix_of(raw)
    if prefix is None:
        raise TokenRejected("invalid")
    token = _token_by_prefix(prefix)
    if token is None or not hmac.compare_digest(token.digest, _digest(raw)):
        raise TokenRejected("invalid", prefix)
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRejected("revoked", prefix)
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRejected("expired", prefix)
    if not address_allowed(token.allowed_networks, address):
        raise TokenRejected("network", prefix)
    ip = _parse_address(address)
    address = str(ip) if ip is not None else None
    if (
        _is_stale(token.last_used_at, now)
        or _is_stale(token.client.last_used_at, now)
        or (address is not None and address != token.last_used_address)
    ):
        _record_use(token=token, now=now, address=address)
    return token


def scim_token_authenticate(raw: str | None, *, address: str | None = None) -> ScimToken | None:
    """Like ``scim_token_verify``, but None instead of an exception for any rejection."""
    try:
        return scim_token_verify(raw, address=address)
    except TokenRejected:
        return None


def _is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or last_used_at <= now - LAST_USED_RESOLUTION


@transaction.atomic
def _record_use(*, token: ScimToken, now: datetime, address: str | None) -> None:
    # The staleness test is repeated in SQL, so concurrent requests write once;
    # .update() bypasses save(): no signals, no audit entries for mere use.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    client = token.client
    if _is_stale(token.last_used_at, now) or address != token.last_used_address:
        moved = ~Q(last_used_address=address) if address else Q(pk__in=[])
        ScimToken.objects.filter(stale | moved, pk=token.pk).update(
            last_used_at=now, last_used_address=address or F("last_used_address")
        )
        token.last_used_at = now
        token.last_used_address = address or token.last_used_address
    if _is_stale(client.last_used_at, now):
        ScimClient.objects.filter(stale, pk=client.pk).update(last_used_at=now)
        client.last_used_at = now


# --- Console operators ------------------------------------------------------


def ensure_operator_groups() -> dict[str, AuthGroup]:
    """The groups viewer, approver, administrator with their permissions (created if missing)."""
    permissions = {
        p.codename: p
        for p in Permission.objects.filter(
            content_type__app_label="access",
            codename__in={c for codes in OPERATOR_PERMISSIONS.values() for c in codes},
        )
    }
    groups = {}
    for name in OPERATOR_ROLES:
        group, created = AuthGroup.objects.get_or_create(name=name)
        if created:
            group.permissions.add(*(permissions[c] for c in OPERATOR_PERMISSIONS[name]))
        groups[name] = group
    return groups


def _check_operator_role(role: str) -> None:
    if role not in OPERATOR_ROLES:
        raise ValidationError(
            {"role": f"Unknown operator role “{role}”; choose one of: {', '.join(OPERATOR_ROLES)}."}
        )


@transaction.atomic
def operator_create(
    *,
    username: str,
    role: str,
    password: str | None = None,
    email: str = "",
    operator: AbstractBaseUser | None = None,
) -> tuple[AbstractBaseUser, str]:
    """Create a console operator with one role; return the user and the password.

    Without ``password`` a random one is generated (returned so it can be shown
    once). A given password must pass the configured password validators.
    """
    _check_operator_role(role)
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": "An operator needs a username."})
    if User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).exists():
        raise ValidationError({"username": f"An operator named “{username}” already exists."})
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(18)
    candidate = User(**{User.USERNAME_FIELD: username}, email=email)
    if not generated:
        validate_password(password, user=candidate)
    groups = ensure_operator_groups()
    with _audited(operator):
        candidate.set_password(password)
        candidate.save()
        candidate.groups.add(groups[role])
    return candidate, password


@transaction.atomic
def operator_set_role(
    *, user: AbstractBaseUser, role: str, operator: AbstractBaseUser | None = None
) -> None:
    """Give an operator exactly one operator role (their other operator groups are removed)."""
    _check_operator_role(role)
    groups = ensure_operator_groups()
    with _audited(operator):
        user.groups.remove(*(g for name, g in groups.items() if name != role))
        user.groups.add(groups[role])
