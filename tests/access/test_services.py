"""Token issue, authentication, revocation and last-use recording."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from provisioning.access import token_check
from provisioning.access.clients import scim_client_create, scim_token_issue, scim_token_revoke
from provisioning.access.models import ScimClient, ScimToken
from provisioning.access.token_check import scim_token_authenticate, token_prefix_of

pytestmark = pytest.mark.django_db

TOKEN_SHAPE = re.compile(r"scg_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43,}")


# --- creating clients -------------------------------------------------------


def test_create_client_issues_one_token(okta):
    client, raw = okta
    assert client.name == "okta"
    assert client.role.name == "provisioner"
    assert TOKEN_SHAPE.fullmatch(raw)
    token = client.tokens.get()
    assert raw.startswith(f"scg_{token.prefix}_")


def test_create_client_strips_the_name():
    client, _raw = scim_client_create(name="  Entra ID ", role="read-only")
    assert client.name == "Entra ID"
    assert client.role.name == "read-only"


@pytest.mark.parametrize("name", ["", "   ", None])
def test_create_client_rejects_empty_name(name):
    with pytest.raises(ValidationError) as exc:
        scim_client_create(name=name, role="provisioner")
    assert "name" in exc.value.message_dict
    assert not ScimClient.objects.exists()


def test_create_client_rejects_too_long_name():
    with pytest.raises(ValidationError) as exc:
        scim_client_create(name="x" * 101, role="provisioner")
    assert "at most 100" in exc.value.message_dict["name"][0]


@pytest.mark.parametrize("name", ["okta", "OKTA", " Okta "])
def test_create_client_rejects_duplicate_name_case_insensitively(okta, name):
    with pytest.raises(ValidationError) as exc:
        scim_client_create(name=name, role="provisioner")
    assert "already exists" in exc.value.message_dict["name"][0]
    assert ScimClient.objects.count() == 1
    assert ScimToken.objects.count() == 1


@pytest.mark.parametrize("role", ["admin", "", "provisioner2", None])
def test_create_client_rejects_unknown_role(role):
    with pytest.raises(ValidationError) as exc:
        scim_client_create(name="okta", role=role)
    assert "role" in exc.value.message_dict
    assert not ScimClient.objects.exists()


# --- issuing and storing tokens ---------------------------------------------


def test_only_the_digest_is_stored(okta):
    client, raw = okta
    token = client.tokens.get()
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    secret = raw[len(f"scg_{token.prefix}_") :]
    stored = [str(v) for v in ScimToken.objects.values_list().get(pk=token.pk)]
    for value in stored:
        assert raw not in value
        assert secret not in value


def test_issued_tokens_are_distinct(okta):
    client, raw1 = okta
    token2, raw2 = scim_token_issue(client=client)
    token3, raw3 = scim_token_issue(client=client)
    assert len({raw1, raw2, raw3}) == 3
    assert len(set(client.tokens.values_list("prefix", flat=True))) == 3
    assert scim_token_authenticate(raw2) == token2
    assert scim_token_authenticate(raw3) == token3


def test_issue_retries_on_prefix_collision(okta, monkeypatch):
    client, _raw = okta
    taken = client.tokens.get().prefix
    prefixes = iter([taken, "Fresh123"])
    monkeypatch.setattr(token_check, "new_prefix", lambda: next(prefixes))
    token, raw = scim_token_issue(client=client)
    assert token.prefix == "Fresh123"
    assert scim_token_authenticate(raw) == token


# --- authenticating ---------------------------------------------------------


def test_round_trip(okta):
    client, raw = okta
    token = scim_token_authenticate(raw)
    assert token is not None
    assert token.client == client
    assert token_prefix_of(raw) == token.prefix


def test_wrong_secret_is_rejected(okta):
    _client, raw = okta
    last = raw[-1]
    tampered = raw[:-1] + ("A" if last != "A" else "B")
    assert scim_token_authenticate(tampered) is None


def test_wrong_prefix_is_rejected(okta):
    _client, raw = okta
    prefix = token_prefix_of(raw)
    other = "Zz999999" if prefix != "Zz999999" else "Yy888888"
    assert scim_token_authenticate(raw.replace(prefix, other, 1)) is None


def test_secret_of_one_token_does_not_open_another(okta):
    client, raw1 = okta
    _token2, raw2 = scim_token_issue(client=client)
    mixed = f"scg_{token_prefix_of(raw1)}_{raw2.split('_', 2)[2]}"
    assert scim_token_authenticate(mixed) is None


def test_revoked_token_is_rejected(okta):
    client, raw = okta
    token = client.tokens.get()
    scim_token_revoke(token=token)
    assert token.revoked_at is not None
    assert ScimToken.objects.get(pk=token.pk).is_revoked
    assert scim_token_authenticate(raw) is None


def test_revoking_twice_keeps_the_first_time(okta):
    client, _raw = okta
    token = client.tokens.get()
    scim_token_revoke(token=token)
    first = ScimToken.objects.get(pk=token.pk).revoked_at
    scim_token_revoke(token=ScimToken.objects.get(pk=token.pk))
    assert ScimToken.objects.get(pk=token.pk).revoked_at == first


def test_revoking_one_token_leaves_the_others(okta):
    client, raw1 = okta
    token2, raw2 = scim_token_issue(client=client)
    scim_token_revoke(token=token2)
    assert scim_token_authenticate(raw1) is not None
    assert scim_token_authenticate(raw2) is None


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "scg_",
        "scg__",
        "Bearer x",
        "x",
        "scg_abcdefgh",
        "scg_abcdefgh_",
        "scg_abcdefgh_short",
        "scg_abc_defgh_" + "a" * 43,
        "SCG_abcdefgh_" + "a" * 43,
        "scg_abcdefgh_" + "a" * 43 + "\n",
        "scg_abcdefgh_" + "a" * 42 + "é",
        "scg_abcdefgh_" + "a" * 43 + " ",
        "scg_abcdefgh_" + "a" * 10_000,
        "a" * 1_000_000,
        b"scg_abcdefgh_" + b"a" * 43,
        12345,
    ],
    ids=lambda v: repr(v)[:30],
)
def test_malformed_tokens_are_rejected_without_a_query(raw, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert scim_token_authenticate(raw) is None
    assert token_prefix_of(raw) is None


def test_bearer_header_value_is_not_a_token(okta):
    _client, raw = okta
    assert scim_token_authenticate(f"Bearer {raw}") is None
    assert scim_token_authenticate(f" {raw}") is None


def test_well_formed_unknown_token_is_rejected():
    assert scim_token_authenticate("scg_abcdefgh_" + "a" * 43) is None


def test_token_prefix_of_never_returns_the_secret(okta):
    _client, raw = okta
    _scheme, prefix, secret = raw.split("_", 2)
    assert token_prefix_of(raw) == prefix
    assert len(prefix) == 8
    assert secret[:8] not in token_prefix_of(raw)


# --- last use ---------------------------------------------------------------


def test_first_use_is_recorded_on_token_and_client(okta):
    client, raw = okta
    before = timezone.now()
    scim_token_authenticate(raw)
    token = ScimToken.objects.get(client=client)
    client.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at >= before
    assert client.last_used_at == token.last_used_at


def test_last_use_is_written_at_most_once_a_minute(okta, django_assert_num_queries):
    client, raw = okta
    scim_token_authenticate(raw)
    recorded = ScimToken.objects.get(client=client).last_used_at

    # Within the minute: one SELECT, no write.
    with django_assert_num_queries(1):
        token = scim_token_authenticate(raw)
    assert token is not None
    assert ScimToken.objects.get(client=client).last_used_at == recorded

    # A minute later: recorded again on both.
    old = recorded - timedelta(minutes=1, seconds=1)
    ScimToken.objects.filter(client=client).update(last_used_at=old)
    ScimClient.objects.filter(pk=client.pk).update(last_used_at=old)
    token = scim_token_authenticate(raw)
    assert token.last_used_at > recorded
    assert ScimToken.objects.get(client=client).last_used_at == token.last_used_at
    client.refresh_from_db()
    assert client.last_used_at == token.last_used_at


def test_client_last_use_follows_any_of_its_tokens(okta):
    client, raw1 = okta
    _token2, raw2 = scim_token_issue(client=client)
    scim_token_authenticate(raw1)
    old = timezone.now() - timedelta(hours=1)
    ScimClient.objects.filter(pk=client.pk).update(last_used_at=old)
    token2 = scim_token_authenticate(raw2)
    client.refresh_from_db()
    assert client.last_used_at > old
    assert token2.last_used_at == client.last_used_at


def test_failed_authentication_records_nothing(okta):
    client, raw = okta
    scim_token_authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B"))
    scim_token_revoke(token=client.tokens.get())
    scim_token_authenticate(raw)
    client.refresh_from_db()
    assert client.last_used_at is None
    assert client.tokens.get().last_used_at is None
