"""Operator API tokens: format, stored digest only, verification reasons, last use at
most once a minute, limits, the createoperatortoken command, redaction."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from provisioning.access import operator_tokens
from provisioning.access.models import OperatorToken
from provisioning.access.operator_tokens import (
    operator_token_create,
    operator_token_revoke,
    operator_token_verify,
)
from provisioning.access.token_check import TokenRejected
from provisioning.audit.models import ChangeSet
from provisioning.audit.redaction import REDACTED, redact_text
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return OperatorFactory(role="approver")


def test_a_token_is_shown_once_and_stored_as_its_digest(operator):
    token, raw = operator_token_create(user=operator, name="ci")
    assert re.fullmatch(r"scgop_([A-Za-z0-9]{8})_[A-Za-z0-9_-]{43}", raw)
    assert raw.split("_")[1] == token.prefix
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(OperatorToken.objects.values().get())
    assert operator_token_verify(raw) == token


@pytest.mark.parametrize("raw", [None, "", "scgop_short", "scg_AAAAAAAA_" + "x" * 43, "x" * 300])
def test_malformed_tokens_are_invalid(raw):
    with pytest.raises(TokenRejected) as rejected:
        operator_token_verify(raw)
    assert rejected.value.reason == "invalid"


def test_a_wrong_secret_is_invalid_not_revoked(operator):
    token, raw = operator_token_create(user=operator, name="ci")
    operator_token_revoke(token=token)
    with pytest.raises(TokenRejected) as rejected:
        operator_token_verify(raw[:-1] + ("A" if raw[-1] != "A" else "B"))
    assert rejected.value.reason == "invalid"
    with pytest.raises(TokenRejected) as rejected:
        operator_token_verify(raw)
    assert rejected.value.reason == "revoked"


def test_expired_and_inactive(operator):
    token, raw = operator_token_create(
        user=operator, name="ci", expires_at=timezone.now() + timedelta(days=1)
    )
    OperatorToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    with pytest.raises(TokenRejected, match="expired"):
        operator_token_verify(raw)
    OperatorToken.objects.filter(pk=token.pk).update(expires_at=None)
    operator.is_active = False
    operator.save()
    with pytest.raises(TokenRejected, match="inactive"):
        operator_token_verify(raw)


def test_last_use_is_written_at_most_once_a_minute(operator, django_assert_num_queries):
    _token, raw = operator_token_create(user=operator, name="ci")
    with django_assert_num_queries(2):  # the lookup and the first use
        first = operator_token_verify(raw).last_used_at
    with django_assert_num_queries(1):  # the lookup only
        assert operator_token_verify(raw).last_used_at == first


def test_names_expiry_and_count_are_checked(operator, monkeypatch):
    with pytest.raises(ValidationError, match="Name the token"):
        operator_token_create(user=operator, name=" ")
    with pytest.raises(ValidationError, match="future"):
        operator_token_create(user=operator, name="x", expires_at=timezone.now())
    with pytest.raises(ValidationError, match="three years"):
        operator_token_create(user=operator, name="x", expires_at=timezone.now() + timedelta(days=2000))
    monkeypatch.setattr(operator_tokens, "MAX_TOKENS_PER_OPERATOR", 1)
    operator_token_create(user=operator, name="one")
    with pytest.raises(ValidationError, match="at most 1"):
        operator_token_create(user=operator, name="two")


def test_creating_and_revoking_are_audited_as_the_operator(operator):
    token, _raw = operator_token_create(user=operator, name="ci", operator=operator)
    operator_token_revoke(token=token, operator=operator)
    change_sets = ChangeSet.objects.filter(operator=operator)
    assert change_sets.count() == 2
    for change_set in change_sets:
        for entry in change_set.entries.all():
            assert "digest" not in entry.changes


def test_the_command_prints_the_token_last(operator):
    out, err = StringIO(), StringIO()
    call_command(
        "createoperatortoken", operator.username.upper(), "--name", "deploy", "--expires-days", "30",
        stdout=out, stderr=err,
    )
    raw = out.getvalue().strip().splitlines()[-1]
    token = operator_token_verify(raw)
    assert token.operator == operator and token.name == "deploy"
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert raw not in err.getvalue()


def test_the_command_refuses_unknown_operators_and_bad_expiry(operator):
    with pytest.raises(CommandError, match="No operator"):
        call_command("createoperatortoken", "nobody", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="at least 1"):
        call_command(
            "createoperatortoken", operator.username, "--expires-days", "0",
            stdout=StringIO(), stderr=StringIO(),
        )


def test_redaction_knows_operator_tokens():
    raw = "scgop_Ab12Cd34_" + "s" * 43
    assert redact_text(f"Authorization: Bearer {raw}") == f"Authorization: Bearer scgop_Ab12Cd34_{REDACTED}"
