"""The createscimclient management command."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from provisioning.access.models import ScimClient
from provisioning.access.token_check import scim_token_authenticate

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("createscimclient", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_last_stdout_line_is_a_working_token():
    out, err = run("okta")
    lines = out.splitlines()
    assert lines, "nothing on standard output"
    token = scim_token_authenticate(lines[-1])
    assert token is not None
    assert token.client.name == "okta"
    assert token.client.role.name == "provisioner"
    # Human messages go to standard error, and never contain the token.
    assert "okta" in err
    assert "only this once" in err
    assert lines[-1] not in err


def test_stdout_holds_only_the_token():
    out, _err = run("okta")
    assert out.count("\n") == 1
    assert out.startswith("scg_")


def test_role_option():
    out, _err = run("auditor", "--role", "read-only")
    token = scim_token_authenticate(out.splitlines()[-1])
    assert token.client.role.name == "read-only"


def test_unknown_role_is_refused():
    with pytest.raises(CommandError, match="Unknown role"):
        run("okta", "--role", "root")
    assert not ScimClient.objects.exists()


def test_duplicate_name_is_a_clear_command_error():
    run("okta")
    with pytest.raises(CommandError, match="already exists"):
        run("OKTA")
    assert ScimClient.objects.count() == 1


def test_empty_name_is_a_command_error():
    with pytest.raises(CommandError, match="needs a name"):
        run("  ")
