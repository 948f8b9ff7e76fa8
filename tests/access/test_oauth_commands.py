"""The OAuth forms of the management commands, in the exact forms other tools rely on."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from provisioning.access.models import AuthMethod, ClientKey, FederatedIssuer, ScimClient
from tests.access.oauth_helpers import (
    assertion_params,
    client_assertion,
    jwks,
    obtain_token,
    rsa_key,
    token_request,
)

pytestmark = pytest.mark.django_db


def run(name, *args):
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createscimclient_oauth_prints_client_id_and_secret_that_obtain_a_token():
    out, err = run("createscimclient", "entra", "--oauth", "--role", "read-only")
    last = out.splitlines()[-1]
    client_id, secret = last.split(" ")
    client = ScimClient.objects.get(pk=client_id)
    assert client.name == "entra"
    assert client.role.name == "read-only"
    assert client.auth_methods == [AuthMethod.CLIENT_SECRET]
    assert not client.tokens.exists()
    assert obtain_token(client_id, secret)
    assert secret not in err
    assert "only this once" in err


def test_createscimclient_without_oauth_still_prints_a_token():
    out, _err = run("createscimclient", "okta")
    assert out.splitlines()[-1].startswith("scg_")
    assert ScimClient.objects.get(name="okta").auth_methods == [AuthMethod.STATIC_TOKEN]


def test_addscimclientkey_registers_a_jwks_file(tmp_path):
    run("createscimclient", "entra", "--oauth")
    client = ScimClient.objects.get(name="entra")
    key = rsa_key("cmd-key")
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(jwks(key)))
    out, _err = run("addscimclientkey", "entra", str(path))
    assert "cmd-key" in out
    assert ClientKey.objects.get(client=client).key_ids == ["cmd-key"]
    client.refresh_from_db()
    assert AuthMethod.PRIVATE_KEY_JWT in client.auth_methods
    response = token_request(assertion_params(client_assertion(client, key)))
    assert response.status_code == 200, response.content


def test_addscimclientkey_refuses_private_keys_and_unknown_clients(tmp_path):
    run("createscimclient", "entra", "--oauth")
    path = tmp_path / "private.json"
    path.write_text(json.dumps({"keys": [rsa_key().as_dict(private=True)]}))
    with pytest.raises(CommandError, match="private"):
        run("addscimclientkey", "entra", str(path))
    with pytest.raises(CommandError, match="No SCIM client"):
        run("addscimclientkey", "nobody", str(path))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CommandError, match="not JSON"):
        run("addscimclientkey", "entra", str(tmp_path / "bad.json"))
    assert not ClientKey.objects.exists()


def test_addscimclientfederation(settings):
    run("createscimclient", "entra", "--oauth")
    out, _err = run(
        "addscimclientfederation",
        "entra",
        "--issuer",
        "https://login.example.com/tenant/v2.0",
        "--subject",
        "app-123",
        "--audience",
        "api://scimgate",
    )
    federation = FederatedIssuer.objects.get()
    assert (federation.issuer, federation.subject, federation.audience) == (
        "https://login.example.com/tenant/v2.0",
        "app-123",
        "api://scimgate",
    )
    assert "app-123" in out
    with pytest.raises(CommandError, match="https"):
        run("addscimclientfederation", "entra", "--issuer", "http://x.example", "--subject", "s")
