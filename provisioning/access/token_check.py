"""The check every SCIM request runs on its bearer token, and what it records.

A token looks like ``scg_<prefix>_<secret>``:

- ``prefix`` is 8 random alphanumeric characters, unique, stored in clear. It
  identifies the token in lookups, logs and the console; it is not a secret.
- ``secret`` is ``secrets.token_urlsafe(32)`` (32 random bytes, 43 characters).

An OAuth access token (issued by the token endpoint, ``oauth``) looks like
``scgat_<prefix>_<secret>`` and is checked by the same code: one query for the
token, its client and the settings revision (the role comes from the process's copy of
the roles, ``config_cache``); digest, revocation, expiry, network.
In logs it is named ``oauth:<prefix>``. Either kind is refused when its client no
longer allows the method (``ScimClient.auth_methods``).

Only the SHA-256 digest of the whole raw token is stored. A slow password hash
is not needed: the token carries 256 bits of randomness, so the digest cannot be
brute-forced, and hashing must stay cheap because it runs on every SCIM request.

Recording last use and refused requests are plain UPDATEs: no signals, no audit
entries, no change set. Issuing and revoking tokens is in ``clients``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import string
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from provisioning.scim.resources import copy_json

from . import config_cache
from .models import AccessToken, AuthMethod, Role, ScimClient, ScimToken

TOKEN_SCHEME = "scg"
ACCESS_TOKEN_SCHEME = "scgat"
# How an access token is named in logs (the request log's token column).
ACCESS_TOKEN_LABEL = "oauth:"
PREFIX_LENGTH = 8
# Raw tokens longer than this are rejected before any hashing or lookup.
MAX_TOKEN_LENGTH = 256
# last_used_at is recorded with this resolution, so busy clients cost no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_TOKEN_RE = re.compile(
    rf"(?P<scheme>{TOKEN_SCHEME}|{ACCESS_TOKEN_SCHEME})_"
    rf"(?P<prefix>[A-Za-z0-9]{{{PREFIX_LENGTH}}})_(?P<secret>[A-Za-z0-9_-]{{43,}})"
)


# Every kind of credential the server issues: ``<scheme>_<prefix>_<secret>``.
SECRET_BYTES = 32
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_PREFIX_ATTEMPTS = 5

_Credential = TypeVar("_Credential")


def token_digest(raw: str) -> str:
    """The stored form of a raw token: its SHA-256 digest, hex-encoded."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_prefix() -> str:
    """A credential's public prefix: PREFIX_LENGTH random letters and digits."""
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def new_raw_token(scheme: str) -> tuple[str, str]:
    """(raw credential ``<scheme>_<prefix>_<secret>``, its public prefix)."""
    prefix = new_prefix()
    return f"{scheme}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}", prefix


def credential_create(
    scheme: str, create: Callable[[str, str], _Credential]
) -> tuple[_Credential, str]:
    """Store a new credential of ``scheme``: ``create(prefix, digest)`` inserts the row
    (whose prefix column is unique). Returns the row and the raw credential, which is not
    stored and cannot be shown again. A prefix collision (about one in 62**8 per existing
    credential) draws again, in a savepoint so the caller's transaction stays usable."""
    for attempt in range(_PREFIX_ATTEMPTS):
        raw, prefix = new_raw_token(scheme)
        try:
            with transaction.atomic():
                return create(prefix, token_digest(raw)), raw
        except IntegrityError:
            if attempt == _PREFIX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _parse(raw: str | None) -> tuple[str, str] | None:
    """(scheme, prefix) of a well-formed raw token, else None."""
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_LENGTH:
        return None
    match = _TOKEN_RE.fullmatch(raw)
    return (match["scheme"], match["prefix"]) if match else None


def token_prefix_of(raw: str | None) -> str | None:
    """The public name of a well-formed raw token, else None: a static token's prefix,
    ``oauth:<prefix>`` for an access token.

    Safe to log: the prefix is public, and nothing of the secret is returned.
    """
    parsed = _parse(raw)
    if parsed is None:
        return None
    scheme, prefix = parsed
    return prefix if scheme == TOKEN_SCHEME else ACCESS_TOKEN_LABEL + prefix


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


# Per (backend, token model): the statement, and for each model its attribute names and,
# per column, the converters that turn a database value into the field's Python value.
_token_queries: dict[tuple[str, type], tuple[str, list[tuple[type, list[str], list[tuple]]]]] = {}


def _loaders(connection, models) -> list[tuple[type, list[str], list[tuple]]]:
    loaders = []
    for model, alias in models:
        columns = []
        for field in model._meta.concrete_fields:
            column = field.get_col(alias)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            columns.append((column, converters))
        loaders.append((model, [f.attname for f in model._meta.concrete_fields], columns))
    return loaders


def _load_row(connection, loaders, values) -> dict[type, Any]:
    """Model instances from a row (in ``loaders`` order), each column through its converters."""
    instances = {}
    values = iter(values)
    for model, attnames, columns in loaders:
        loaded = []
        for (column, converters), value in zip(columns, values, strict=False):
            for convert in converters:
                value = convert(value, column, connection)
            loaded.append(value)
        instances[model] = model.from_db(connection.alias, attnames, loaded)
    return instances


def _token_query(connection, token_model: type = ScimToken):
    """SELECT every column of token and client for one prefix, and the settings revision
    (built once per backend and token model: static tokens and access tokens)."""
    key = (connection.vendor, token_model)
    if key not in _token_queries:
        models = ((token_model, "t"), (ScimClient, "c"))
        quote = connection.ops.quote_name
        select = ", ".join(
            f"{alias}.{quote(field.column)}"
            for model, alias in models
            for field in model._meta.concrete_fields
        )
        client_fk = token_model._meta.get_field("client").column
        prefix = token_model._meta.get_field("prefix").column
        sql = (
            f"SELECT {select}, {config_cache.REVISION_SUBQUERY} "  # noqa: S608 - model names
            f"FROM {quote(token_model._meta.db_table)} t "
            f"JOIN {quote(ScimClient._meta.db_table)} c ON c.{quote(ScimClient._meta.pk.column)} = t.{quote(client_fk)} "
            f"WHERE t.{quote(prefix)} = %s"
        )
        _token_queries[key] = (sql, _loaders(connection, models))
    return _token_queries[key]


# Role values as loaded, per role id: a tuple of attribute values per role.
_RoleRows = dict[int, tuple]


def _role_rows() -> _RoleRows:
    attnames = [f.attname for f in Role._meta.concrete_fields]
    return {
        role.pk: tuple(getattr(role, name) for name in attnames) for role in Role.objects.all()
    }


def role_at(role_id: int, revision: str | None, alias: str = "default") -> Role:
    """The role with this id as of ``revision``, from this process's copy of every role
    (loaded again only when the revision changed). A fresh instance each call: the
    caller may change it without touching the copy."""
    rows = config_cache.cached("roles", revision, _role_rows)
    values = rows.get(role_id)
    if values is None:  # created after the copy's revision was read: read it alone
        return Role.objects.get(pk=role_id)
    attnames = [f.attname for f in Role._meta.concrete_fields]
    # The JSON values (lists of names) are the copy's only mutable ones.
    return Role.from_db(alias, attnames, [copy_json(value) for value in values])


def token_by_prefix(prefix: str, token_model: type = ScimToken):
    """The token with this prefix, its client and the client's role, from one query.

    Every SCIM request runs this, so the statement is written once from the models'
    columns and its row is turned into model instances with each field's own database
    converters (what the ORM does, without compiling a query per request). The same
    statement reads the settings revision: the role comes from this process's copy of
    the roles at that revision, and the client records it (``config_cache``) for the
    policy rules and breakers its writes read. The prefix is a parameter.
    """
    connection = transaction.get_connection()
    sql, loaders = _token_query(connection, token_model)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    instances = _load_row(connection, loaders, row[:-1])
    revision = config_cache.revision_from_db(row[-1])
    token, client = instances[token_model], instances[ScimClient]
    setattr(client, config_cache.SEEN_ATTRIBUTE, revision)
    config_cache.note_request_revision(revision)
    client.role = role_at(client.role_id, revision, connection.alias)
    token.client = client
    return token


def scim_token_verify(raw: str | None, *, address: str | None = None) -> ScimToken | AccessToken:
    """The valid token for a raw bearer token, or raise ``TokenRejected``.

    ``raw`` is the token itself, without the ``Bearer`` scheme: a static token or an
    OAuth access token; ``address`` is the caller's IP address, checked against the
    token's allowed networks. The returned token has its client and role loaded.
    A token whose client no longer allows the method it stands for is "invalid". Digests are compared in
    constant time; revocation, expiry and network are only told apart once the
    secret matched, so they reveal nothing to someone without the token. Last
    use (time and address) is recorded at most once per LAST_USED_RESOLUTION
    unless the address changed, so most requests cost one SELECT and no write.
    """
    parsed = _parse(raw)
    if parsed is None:
        raise TokenRejected("invalid")
    scheme, prefix = parsed
    if scheme == TOKEN_SCHEME:
        model, method = ScimToken, AuthMethod.STATIC_TOKEN
    else:
        model, method = AccessToken, None
        prefix = ACCESS_TOKEN_LABEL + prefix
    token = token_by_prefix(parsed[1], model)
    if token is None or not hmac.compare_digest(token.digest, token_digest(raw)):
        raise TokenRejected("invalid", prefix)
    if method is None:
        method = access_token_method(token)
    if not token.client.allows_method(method):
        raise TokenRejected("invalid", prefix)
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRejected("revoked", prefix)
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRejected("expired", prefix)
    # An access token is bound to its client's networks as they are now (narrowing them
    # applies at once to tokens already issued); a static token has its own.
    networks = (
        token.client.oauth_allowed_networks if model is AccessToken else token.allowed_networks
    )
    if not address_allowed(networks, address):
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


def access_token_method(token: AccessToken) -> str:
    """The client method (AuthMethod) an access token was obtained with."""
    if token.auth_method.startswith("client_secret"):
        return AuthMethod.CLIENT_SECRET
    if token.auth_method == "private_key_jwt":
        return AuthMethod.PRIVATE_KEY_JWT
    return AuthMethod.FEDERATION


def scim_token_authenticate(
    raw: str | None, *, address: str | None = None
) -> ScimToken | AccessToken | None:
    """Like ``scim_token_verify``, but None instead of an exception for any rejection."""
    try:
        return scim_token_verify(raw, address=address)
    except TokenRejected:
        return None


def _is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or last_used_at <= now - LAST_USED_RESOLUTION


@transaction.atomic
def _record_use(*, token: ScimToken | AccessToken, now: datetime, address: str | None) -> None:
    # The staleness test is repeated in SQL, so concurrent requests write once;
    # .update() bypasses save(): no signals, no audit entries for mere use.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    client = token.client
    if _is_stale(token.last_used_at, now) or address != token.last_used_address:
        moved = ~Q(last_used_address=address) if address else Q(pk__in=[])
        type(token).objects.filter(stale | moved, pk=token.pk).update(
            last_used_at=now, last_used_address=address or F("last_used_address")
        )
        token.last_used_at = now
        token.last_used_address = address or token.last_used_address
    if _is_stale(client.last_used_at, now):
        ScimClient.objects.filter(stale, pk=client.pk).update(last_used_at=now)
        client.last_used_at = now


def scim_client_record_denied(*, client: ScimClient) -> None:
    """Count one refused (403) request or Bulk operation; an UPDATE without signals or audit."""
    ScimClient.objects.filter(pk=client.pk).update(denied_requests=F("denied_requests") + 1)
