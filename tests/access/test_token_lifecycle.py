"""Token expiry, networks, revocation and rotation as the SCIM endpoints see them;
the rotate/revoke commands; per-client rate limiting."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from provisioning.access.clients import (
    scim_client_create,
    scim_token_issue,
    scim_token_revoke,
    scim_token_rotate,
    scim_token_update,
)
from provisioning.access.models import ScimToken
from provisioning.access.token_check import token_prefix_of
from tests.scim.conftest import ScimApi

pytestmark = pytest.mark.django_db


def get_users(token: str, address: str = "127.0.0.1"):
    api = ScimApi(token)
    return api, api.get("/Users", REMOTE_ADDR=address)


def assert_rejected(token: str, detail: str, caplog, address: str = "127.0.0.1") -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="provisioning.scim.api"):
        api, response = get_users(token, address)
    body = api.assert_error(response, 401)
    assert body["detail"] == detail
    assert response["WWW-Authenticate"].startswith("Bearer")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "SCIM token rejected" in logged
    assert token not in logged


def test_expired_token_is_401_and_logged(okta, caplog):
    client, raw = okta
    token = client.tokens.get()
    scim_token_update(token=token, expires_at=timezone.now() - timedelta(seconds=1))
    assert_rejected(raw, "The bearer token has expired", caplog)
    scim_token_update(token=token, expires_at=timezone.now() + timedelta(hours=1))
    assert get_users(raw)[1].status_code == 200


def test_revoked_token_is_401_and_logged(okta, caplog):
    client, raw = okta
    scim_token_revoke(token=client.tokens.get())
    assert_rejected(raw, "The bearer token has been revoked", caplog)


def test_unknown_and_wrong_secret_tokens_look_alike(okta, caplog):
    _client, raw = okta
    assert_rejected(
        raw[:-1] + ("A" if raw[-1] != "A" else "B"), "The bearer token is not valid", caplog
    )
    assert_rejected("scg_abcdefgh_" + "a" * 43, "The bearer token is not valid", caplog)


@pytest.mark.parametrize(
    "address,allowed",
    [
        ("10.1.2.3", True),
        ("10.255.0.1", True),
        ("::ffff:10.1.2.3", True),
        ("2001:db8::5", True),
        ("11.0.0.1", False),
        ("2001:db9::1", False),
        ("", False),
    ],
)
def test_allowed_networks(okta, caplog, address, allowed):
    client, _raw = okta
    _token, raw = scim_token_issue(client=client, allowed_networks=["10.0.0.0/8", "2001:db8::/32"])
    if allowed:
        assert get_users(raw, address)[1].status_code == 200
    else:
        assert_rejected(
            raw, "The bearer token may not be used from this network address", caplog, address
        )


def test_networks_are_validated_and_normalised(okta):
    client, _raw = okta
    token, _ = scim_token_issue(client=client, allowed_networks=["10.1.2.3/8", "192.0.2.7"])
    assert token.allowed_networks == ["10.0.0.0/8", "192.0.2.7/32"]
    with pytest.raises(ValidationError) as exc:
        scim_token_issue(client=client, allowed_networks=["10.0.0.0/33"])
    assert "allowed_networks" in exc.value.message_dict


def test_last_used_time_and_address_are_recorded(okta):
    client, raw = okta
    get_users(raw, "192.0.2.10")
    token = client.tokens.get()
    assert token.last_used_address == "192.0.2.10"
    assert token.last_used_at is not None
    # A new address is recorded at once, even within the last-use resolution.
    get_users(raw, "192.0.2.11")
    token.refresh_from_db()
    assert token.last_used_address == "192.0.2.11"


def test_rotation_keeps_the_old_token_until_revoked(okta):
    client, old_raw = okta
    new_token, new_raw = scim_token_rotate(client=client)
    assert get_users(old_raw)[1].status_code == 200
    assert get_users(new_raw)[1].status_code == 200
    scim_token_revoke(token=ScimToken.objects.get(prefix=token_prefix_of(old_raw)))
    assert get_users(old_raw)[1].status_code == 401
    assert get_users(new_raw)[1].status_code == 200
    assert new_token.expires_at is None


def test_rotation_with_grace_period_expires_old_tokens(okta):
    client, old_raw = okta
    _new, new_raw = scim_token_rotate(client=client, expire_old_in=timedelta(hours=2))
    old = ScimToken.objects.get(prefix=token_prefix_of(old_raw))
    assert timezone.now() + timedelta(hours=1, minutes=59) < old.expires_at
    assert old.expires_at <= timezone.now() + timedelta(hours=2)
    assert get_users(old_raw)[1].status_code == 200  # still within the grace period
    scim_token_rotate(client=client, expire_old_in=timedelta(0))
    assert get_users(old_raw)[1].status_code == 401
    assert get_users(new_raw)[1].status_code == 401


def test_rotation_inherits_allowed_networks(okta):
    client, _raw = okta
    scim_token_issue(client=client, allowed_networks=["10.0.0.0/8"])
    new, _ = scim_token_rotate(client=client)
    assert new.allowed_networks == ["10.0.0.0/8"]


# --- commands ---------------------------------------------------------------


def run(command: str, *args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_rotate_and_revoke_commands(okta):
    client, old_raw = okta
    out, err = run("rotatescimtoken", "OKTA", "--expire-old-in", "24")
    new_raw = out.splitlines()[-1]
    assert new_raw.startswith("scg_") and new_raw not in err
    assert get_users(new_raw)[1].status_code == 200
    assert get_users(old_raw)[1].status_code == 200
    old = ScimToken.objects.get(prefix=token_prefix_of(old_raw))
    assert old.expires_at is not None
    assert old.prefix in err
    _out, err = run("revokescimtoken", old.prefix)
    assert "Revoked" in err
    assert get_users(old_raw)[1].status_code == 401
    assert get_users(new_raw)[1].status_code == 200


def test_rotate_unknown_client_and_revoke_unknown_prefix():
    with pytest.raises(CommandError, match="No SCIM client"):
        run("rotatescimtoken", "nobody")
    with pytest.raises(CommandError, match="No token"):
        run("revokescimtoken", "Zz999999")


# --- rate limiting ------------------------------------------------------------


def test_no_rate_limit_by_default(okta):
    _client, raw = okta
    cache.clear()
    api = ScimApi(raw)
    assert all(api.get("/Users").status_code == 200 for _ in range(20))


@override_settings(SCIM_RATE_LIMIT="3/min")
def test_rate_limit_is_per_client_with_retry_after(okta):
    cache.clear()
    _client, raw = okta
    _other, other_raw = scim_client_create(name="entra", role="read-only")
    api = ScimApi(raw)
    for _ in range(3):
        assert api.get("/Users").status_code == 200
    response = api.get("/Users")
    body = api.assert_error(response, 429)
    assert 0 < int(response["Retry-After"]) <= 61
    assert body["detail"]
    # Another client has its own budget.
    assert ScimApi(other_raw).get("/Users").status_code == 200


def test_the_token_lookup_loads_what_the_orm_loads(okta):
    """Authentication reads token, client and role with one hand-written query; every
    field comes back exactly as the ORM would load it (types and values)."""
    from provisioning.access.token_check import token_by_prefix

    client, raw = okta
    token = ScimToken.objects.get(client=client)
    scim_token_update(
        token=token,
        expires_at=timezone.now() + timedelta(days=3),
        allowed_networks=["10.0.0.0/8", "2001:db8::/32"],
    )
    loaded = token_by_prefix(token_prefix_of(raw))
    expected = ScimToken.objects.select_related("client", "client__role").get(pk=token.pk)
    for left, right in (
        (loaded, expected),
        (loaded.client, expected.client),
        (loaded.client.role, expected.client.role),
    ):
        for field in type(right)._meta.concrete_fields:
            assert getattr(left, field.attname) == getattr(right, field.attname), field.name
            assert type(getattr(left, field.attname)) is type(getattr(right, field.attname)), field.name
    assert loaded.expires_at.tzinfo is not None and loaded.client.role.permissions
    assert token_by_prefix("NoSuchPx") is None
