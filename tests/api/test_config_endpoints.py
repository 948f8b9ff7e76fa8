"""The management API's configuration endpoints: SCIM clients and their tokens, SCIM
roles. Reading needs a viewer, changing an administrator (and, through the console
session, a recent sign-in where the console asks for one); a raw token is in the one
answer that issues it and nowhere else; changes are audited with source "api"."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
import schemathesis
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient

from console.api.models import IdempotencyRecord
from provisioning.access.models import Role, ScimClient, ScimToken
from provisioning.access.oauth_credentials import (
    client_key_add,
    client_secret_issue,
    federation_add,
)
from provisioning.access.operator_tokens import operator_token_create
from provisioning.audit.models import ChangeSet
from provisioning.oversight.models import CircuitBreaker, PolicyRule
from tests.access.oauth_helpers import jwks, rsa_key
from tests.factories import OperatorFactory, ScimClientFactory
from tests.scim.conftest import ScimApi
from tests.signin.conftest import age_session

from .test_schema import CHECKS, EXAMPLES, settings_rate, wsgi_app  # noqa: F401

pytestmark = pytest.mark.django_db

CLIENTS = "/api/v1/scim-clients"
ROLES = "/api/v1/scim-roles"
RULES = "/api/v1/policy-rules"
BREAKER = "/api/v1/circuit-breaker"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "fields"} and body["error"] == code
    return body


def post(client, path: str, body=None, *, etag=None, key=None):
    headers = {}
    if etag is not None:
        headers["HTTP_IF_MATCH"] = etag
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(path, body if body is not None else {}, format="json", **headers)


def etag(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response["ETag"]


def api_change_sets(action: str):
    return ChangeSet.objects.filter(source="api", request__api__action=action)


def role_id(name: str) -> int:
    return Role.objects.get(name=name).pk


@pytest.fixture
def idp(db) -> ScimClient:
    return ScimClientFactory(name="okta-prod")


@pytest.fixture
def rule(db) -> PolicyRule:
    return PolicyRule.objects.create(
        name="flag deactivations", kind="deactivate_user", action="flag"
    )


@pytest.fixture
def custom_role(db) -> Role:
    from provisioning.access.roles import scim_role_create

    return scim_role_create(name="hr-sync", permissions=["User:read", "User:create"])


# --- Roles of the callers, every endpoint ---------------------------------------------------------


def oauth_credentials(idp: ScimClient):
    """One client secret, one key set and one federated issuer of ``idp`` (made once)."""
    if not idp.secrets.exists():
        client_secret_issue(client=idp)
        client_key_add(client=idp, jwks=jwks(rsa_key("walk")))
        federation_add(client=idp, issuer="https://idp.example.com/t", subject="app")
    return idp.secrets.get(), idp.keys.get(), idp.federations.get()


def endpoints(idp: ScimClient, role: Role, rule: PolicyRule) -> list[tuple[str, str, dict]]:
    token = idp.tokens.get()
    secret, key, federation = oauth_credentials(idp)
    oauth = f"{CLIENTS}/{idp.pk}/oauth"
    return [
        ("post", CLIENTS, {"name": "new-idp", "role": role_id("read-only")}),
        ("post", f"{CLIENTS}/{idp.pk}/role", {"role": role_id("read-only")}),
        ("post", f"{CLIENTS}/{idp.pk}/tokens", {}),
        ("post", f"{CLIENTS}/{idp.pk}/tokens/rotate", {}),
        ("post", f"{CLIENTS}/{idp.pk}/tokens/{token.pk}/revoke", {}),
        ("post", ROLES, {"name": "auditors", "permissions": ["User:read"]}),
        ("post", f"{ROLES}/{role.pk}/change", {"description": "x"}),
        ("post", f"{ROLES}/{role.pk}/delete", {}),
        ("post", RULES, {"name": "hold deletions", "kind": "delete_user", "action": "hold"}),
        ("post", f"{RULES}/{rule.pk}/change", {"action": "hold"}),
        ("post", f"{RULES}/{rule.pk}/enable", {}),
        ("post", f"{RULES}/{rule.pk}/disable", {}),
        ("post", f"{RULES}/{rule.pk}/delete", {}),
        ("post", f"{BREAKER}/change", {"max_operations": 5}),
        ("post", f"{CLIENTS}/{idp.pk}/circuit-breaker/change", {"max_operations": 5}),
        ("post", f"{CLIENTS}/{idp.pk}/circuit-breaker/clear", {}),
        ("post", f"{oauth}/secrets", {"lifetime": 365}),
        ("post", f"{oauth}/secrets/{secret.pk}/revoke", {}),
        ("post", f"{oauth}/keys", {"jwks": jwks(rsa_key("other"))}),
        ("post", f"{oauth}/keys/{key.pk}/revoke", {}),
        ("post", f"{oauth}/federations", {"issuer": "https://idp.example.com/u", "subject": "s"}),
        ("post", f"{oauth}/federations/{federation.pk}/revoke", {}),
        ("post", f"{oauth}/settings/change", {"access_token_lifetime": 7200}),
        ("post", f"{oauth}/access-tokens/revoke", {}),
    ]


def test_reading_needs_a_viewer(viewer_api, idp, custom_role, rule):
    for path in (
        CLIENTS,
        f"{CLIENTS}/{idp.pk}",
        ROLES,
        f"{ROLES}/{custom_role.pk}",
        RULES,
        f"{RULES}/{rule.pk}",
        BREAKER,
        f"{CLIENTS}/{idp.pk}/oauth",
        f"{CLIENTS}/{idp.pk}/oauth/settings",
    ):
        assert_error(APIClient().get(path), 401, "not_authenticated")
        assert viewer_api.get(path).status_code == 200, path


def test_changing_needs_an_administrator(viewer_api, approver_api, idp, custom_role, rule):
    for _method, path, body in endpoints(idp, custom_role, rule):
        assert_error(post(APIClient(), path, body), 401, "not_authenticated")
        for lower in (viewer_api, approver_api):
            body_403 = assert_error(post(lower, path, body, etag="*"), 403, "permission_denied")
            assert "administrator" in body_403["detail"]
    assert not ScimClient.objects.filter(name="new-idp").exists()
    assert idp.tokens.count() == 1 and not Role.objects.filter(name="auditors").exists()
    assert PolicyRule.objects.get(pk=rule.pk).enabled and not CircuitBreaker.objects.filter(
        max_operations=5
    )
    # The OAuth credentials are as they were: one of each, none revoked, settings kept.
    idp.refresh_from_db()
    assert idp.access_token_lifetime == 3600
    for credentials in (idp.secrets, idp.keys, idp.federations):
        assert credentials.filter(revoked_at__isnull=True).count() == credentials.count() == 1
    assert not ChangeSet.objects.filter(source="api").exists()


def test_the_schema_names_the_role_of_each_method(viewer_api):
    document = viewer_api.get("/api/schema/?format=json").json()
    assert document["paths"]["/api/v1/scim-clients"]["get"]["x-required-role"] == "viewer"
    assert document["paths"]["/api/v1/scim-clients"]["post"]["x-required-role"] == "administrator"
    assert document["paths"]["/api/v1/scim-roles"]["post"]["x-required-role"] == "administrator"
    oauth = "/api/v1/scim-clients/{client_id}/oauth"
    assert document["paths"][oauth]["get"]["x-required-role"] == "viewer"
    assert document["paths"][f"{oauth}/settings"]["get"]["x-required-role"] == "viewer"
    below = [path for path in document["paths"] if path.startswith(f"{oauth}/")]
    assert len(below) == 9
    for path in below:
        if "post" in document["paths"][path]:
            assert document["paths"][path]["post"]["x-required-role"] == "administrator", path


@override_settings(SCIMGATE_STEP_UP_MINUTES=15)
def test_session_changes_need_the_consoles_step_up(idp, custom_role, rule):
    session = APIClient()
    session.force_login(OperatorFactory(role="administrator"))
    age_session(session, authenticated=20 * 60)
    stepped = [
        path for _m, path, _b in endpoints(idp, custom_role, rule) if not path.endswith("/revoke")
    ]
    for _method, path, body in endpoints(idp, custom_role, rule):
        if path in stepped:
            response = post(session, path, body, etag="*")
            assert "step-up" in assert_error(response, 403, "permission_denied")["detail"], path
    assert idp.tokens.count() == 1 and idp.role.name == "provisioner"
    # Revoking only takes access away: the console asks no step-up for it either.
    token = idp.tokens.get()
    assert post(session, f"{CLIENTS}/{idp.pk}/tokens/{token.pk}/revoke").status_code == 200


# --- SCIM clients -----------------------------------------------------------------------------------


def test_the_client_list_shows_role_tokens_and_health_never_a_secret(viewer_api, idp):
    ScimClientFactory(name="azure-test", role="read-only")
    ScimApi(idp.raw_token).get("/Users")
    response = viewer_api.get(CLIENTS, {"page_size": 1})
    body = response.json()
    assert [row["name"] for row in body["results"]] == ["azure-test"]
    second = viewer_api.get(body["next"]).json()
    row = second["results"][0]
    assert row["name"] == "okta-prod" and row["role"]["name"] == "provisioner"
    assert row["active_tokens"] == 1 and row["health"]["requests"] == 1
    assert idp.raw_token not in response.content.decode()
    assert "digest" not in response.content.decode() and "raw_token" not in row


def test_the_client_detail_lists_tokens_by_prefix_with_an_etag(viewer_api, idp):
    token = idp.tokens.get()
    response = viewer_api.get(f"{CLIENTS}/{idp.pk}")
    body = response.json()
    assert [t["prefix"] for t in body["tokens"]] == [token.prefix]
    assert body["tokens"][0]["state"] == "active"
    assert (
        idp.raw_token not in response.content.decode()
        and token.digest not in response.content.decode()
    )
    again = viewer_api.get(f"{CLIENTS}/{idp.pk}", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert_error(
        viewer_api.get(f"{CLIENTS}/00000000-0000-0000-0000-000000000000"), 404, "not_found"
    )


def test_creating_a_client_shows_its_token_once(admin_api, caplog):
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    with caplog.at_level(logging.DEBUG):
        response = post(
            admin_api,
            CLIENTS,
            {
                "name": "okta-new",
                "role": role_id("no-delete"),
                "expires_at": expires,
                "allowed_networks": ["10.0.0.1/8"],
            },
        )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    raw = body["raw_token"]
    client = ScimClient.objects.get(name="okta-new")
    assert body["client"]["id"] == str(client.pk) and body["client"]["role"]["name"] == "no-delete"
    assert body["token"]["allowed_networks"] == ["10.0.0.0/8"] and body["token"]["expires_at"]
    assert ScimToken.objects.get(client=client).prefix in raw
    # Never again: not in the detail, the list, the audit trail or the logs.
    assert raw not in admin_api.get(f"{CLIENTS}/{client.pk}").content.decode()
    assert raw not in admin_api.get(CLIENTS).content.decode()
    change_set = api_change_sets("scim_client.create").get()
    assert change_set.operator == admin_api.user
    assert raw not in str(change_set.request) and raw not in caplog.text
    assert not IdempotencyRecord.objects.exists()


def test_a_created_clients_token_works_for_scim(admin_api):
    response = post(admin_api, CLIENTS, {"name": "okta-live", "role": role_id("read-only")})
    scim = ScimApi(response.json()["raw_token"])
    assert scim.get("/Users").status_code == 200


def test_client_creation_is_validated_as_in_the_console(admin_api, idp):
    body = assert_error(
        post(admin_api, CLIENTS, {"name": "OKTA-PROD", "role": role_id("read-only")}),
        400,
        "invalid",
    )
    assert "name" in body["fields"]
    assert (
        "role"
        in assert_error(post(admin_api, CLIENTS, {"name": "x", "role": 999999}), 400, "invalid")[
            "fields"
        ]
    )
    bad = post(
        admin_api,
        CLIENTS,
        {"name": "y", "role": role_id("read-only"), "allowed_networks": ["nope"]},
    )
    assert "allowed_networks" in assert_error(bad, 400, "invalid")["fields"]
    assert not ScimClient.objects.filter(name__in=["x", "y"]).exists()


def test_setting_a_clients_role_is_audited_and_idempotent(admin_api, idp):
    path = f"{CLIENTS}/{idp.pk}/role"
    response = post(admin_api, path, {"role": role_id("read-only")}, key="k1")
    assert response.status_code == 200 and response.json()["role"]["name"] == "read-only"
    replay = post(admin_api, path, {"role": role_id("read-only")}, key="k1")
    assert replay["Idempotent-Replayed"] == "true"
    assert api_change_sets("scim_client.set_role").count() == 1
    idp.refresh_from_db()
    assert idp.role.name == "read-only"
    assert "role" in assert_error(post(admin_api, path, {"role": 0}), 400, "invalid")["fields"]


def test_issuing_a_token_keeps_the_others(admin_api, idp):
    first = idp.tokens.get()
    response = post(admin_api, f"{CLIENTS}/{idp.pk}/tokens", {"allowed_networks": ["192.0.2.0/24"]})
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token"]["allowed_networks"] == ["192.0.2.0/24"]
    assert {t["state"] for t in body["client"]["tokens"]} == {"active"}
    assert len(body["client"]["tokens"]) == 2
    # Bound to 192.0.2.0/24: refused from the test client's address.
    assert ScimApi(body["raw_token"]).get("/Users").status_code == 401
    first.refresh_from_db()
    assert first.revoked_at is None and first.expires_at is None
    assert api_change_sets("scim_token.issue").count() == 1
    assert body["raw_token"] not in admin_api.get(f"{CLIENTS}/{idp.pk}").content.decode()


def test_rotating_lets_the_old_tokens_expire_after_the_grace_period(admin_api, idp):
    first = idp.tokens.get()
    response = post(admin_api, f"{CLIENTS}/{idp.pk}/tokens/rotate", {"expire_old_in": 86400})
    assert response.status_code == 201
    first.refresh_from_db()
    assert timedelta(hours=23) < first.expires_at - timezone.now() <= timedelta(hours=24)
    assert ScimApi(response.json()["raw_token"]).get("/Users").status_code == 200
    bad = post(admin_api, f"{CLIENTS}/{idp.pk}/tokens/rotate", {"expire_old_in": 5})
    assert "expire_old_in" in assert_error(bad, 400, "invalid")["fields"]
    assert api_change_sets("scim_token.rotate").count() == 1


def test_revoking_a_token_refuses_it_from_then_on(admin_api, idp):
    token = idp.tokens.get()
    path = f"{CLIENTS}/{idp.pk}/tokens/{token.pk}/revoke"
    response = post(admin_api, path)
    assert response.status_code == 200 and response.json()["tokens"][0]["state"] == "revoked"
    assert ScimApi(idp.raw_token).get("/Users").status_code == 401
    token.refresh_from_db()
    first_revocation = token.revoked_at
    assert post(admin_api, path).status_code == 200
    token.refresh_from_db()
    assert token.revoked_at == first_revocation
    assert api_change_sets("scim_token.revoke").count() == 1
    other = ScimClientFactory(name="other")
    assert_error(
        post(admin_api, f"{CLIENTS}/{other.pk}/tokens/{token.pk}/revoke"), 404, "not_found"
    )


# --- SCIM roles -------------------------------------------------------------------------------------


def test_the_role_list_and_detail(viewer_api, custom_role, idp):
    body = viewer_api.get(ROLES, {"page_size": 200}).json()
    names = [row["name"] for row in body["results"]]
    assert "hr-sync" in names and "provisioner" in names
    provisioner = next(r for r in body["results"] if r["name"] == "provisioner")
    assert provisioner["built_in"] and provisioner["client_count"] == 1
    detail = viewer_api.get(f"{ROLES}/{role_id('provisioner')}")
    assert detail.json()["clients"] == [{"id": str(idp.pk), "name": "okta-prod"}]
    assert detail["ETag"]
    assert_error(viewer_api.get(f"{ROLES}/999999"), 404, "not_found")


def walk(client, path: str) -> list[str]:
    """Every name of a list, one row per page, following the ``next`` links."""
    names, url, params = [], path, {"page_size": 1}
    while url:
        body = client.get(url, params).json()
        names += [row["name"] for row in body["results"]]
        url, params = body["next"], None
    return names


def test_lists_are_in_the_consoles_order_across_pages(viewer_api, idp, rule):
    """Clients by name whatever its case; roles built-in first; rules enabled first."""
    ScimClientFactory(name="alpha-idp")
    ScimClientFactory(name="Zulu-idp")
    ScimClientFactory(name="beta-idp")
    assert walk(viewer_api, CLIENTS) == sorted(ScimClient.objects.values_list("name", flat=True), key=str.lower)
    Role.objects.create(name="Auditors")
    Role.objects.create(name="archivists")
    roles = walk(viewer_api, ROLES)
    built_in = sorted(Role.objects.filter(built_in=True).values_list("name", flat=True), key=str.lower)
    custom = sorted(Role.objects.filter(built_in=False).values_list("name", flat=True), key=str.lower)
    assert roles == built_in + custom
    PolicyRule.objects.create(name="Zz enabled", kind="delete_user", action="hold")
    PolicyRule.objects.create(name="aa disabled", kind="delete_user", action="flag", enabled=False)
    by_state = {
        state: sorted(PolicyRule.objects.filter(enabled=state).values_list("name", flat=True), key=str.lower)
        for state in (True, False)
    }
    assert walk(viewer_api, RULES) == by_state[True] + by_state[False]
    assert "Zz enabled" in by_state[True] and "aa disabled" in by_state[False]


def test_creating_a_role_is_validated_audited_and_idempotent(admin_api):
    role = {
        "name": "auditors",
        "permissions": ["User:read"],
        "forbidden_attributes": ["active"],
        "protected_group_names": ["admin-*"],
    }
    response = post(admin_api, ROLES, role, key="r1")
    assert response.status_code == 201, response.content
    assert response.json()["protected_group_names"] == ["admin-*"] and response["ETag"]
    assert post(admin_api, ROLES, role, key="r1")["Idempotent-Replayed"] == "true"
    assert Role.objects.filter(name="auditors").count() == 1
    assert api_change_sets("scim_role.create").count() == 1
    assert "name" in assert_error(post(admin_api, ROLES, role), 400, "invalid")["fields"]
    bad = post(admin_api, ROLES, {"name": "x", "permissions": ["User:fly"]})
    assert "permissions" in assert_error(bad, 400, "invalid")["fields"]


def test_changing_a_role_needs_its_current_etag(admin_api, custom_role):
    path = f"{ROLES}/{custom_role.pk}"
    tag = etag(admin_api, path)
    assert_error(
        post(admin_api, f"{path}/change", {"description": "x"}), 428, "precondition_required"
    )
    response = post(admin_api, f"{path}/change", {"permissions": ["User:read"]}, etag=tag)
    assert response.status_code == 200 and response.json()["permissions"] == ["User:read"]
    assert response.json()["name"] == "hr-sync"  # fields not sent stay
    stale = post(admin_api, f"{path}/change", {"description": "late"}, etag=tag)
    assert_error(stale, 412, "precondition_failed")
    custom_role.refresh_from_db()
    assert custom_role.description == "" and custom_role.permissions == ["User:read"]
    assert api_change_sets("scim_role.change").count() == 1


def test_a_built_in_role_changes_only_its_description(admin_api):
    path = f"{ROLES}/{role_id('provisioner')}"
    refused = post(admin_api, f"{path}/change", {"permissions": []}, etag=etag(admin_api, path))
    assert "built-in" in assert_error(refused, 400, "invalid")["detail"]
    ok = post(
        admin_api, f"{path}/change", {"description": "All of it."}, etag=etag(admin_api, path)
    )
    assert ok.status_code == 200 and ok.json()["description"] == "All of it."


def test_deleting_a_role(admin_api, custom_role):
    held = ScimClientFactory(name="hr", role=custom_role)
    path = f"{ROLES}/{custom_role.pk}"
    in_use = post(admin_api, f"{path}/delete", etag=etag(admin_api, path))
    assert "hr" in assert_error(in_use, 409, "conflict")["detail"]
    builtin = f"{ROLES}/{role_id('provisioner')}"
    assert_error(
        post(admin_api, f"{builtin}/delete", etag=etag(admin_api, builtin)), 409, "conflict"
    )
    from provisioning.access.clients import scim_client_set_role

    scim_client_set_role(client=held, role="read-only")
    assert_error(post(admin_api, f"{path}/delete", etag='"stale"'), 412, "precondition_failed")
    assert post(admin_api, f"{path}/delete", etag=etag(admin_api, path)).status_code == 204
    assert not Role.objects.filter(pk=custom_role.pk).exists()
    assert api_change_sets("scim_role.delete").count() == 1


# --- Generated requests as an administrator -----------------------------------------------------------


def test_the_configuration_operations_answer_as_documented_for_an_administrator(
    db,
    settings_rate,  # noqa: F811
    wsgi_app,  # noqa: F811
):
    """The schema test sends its requests as an approver (403 here); this one sends them
    as an administrator, so the changes themselves meet generated input."""
    ScimClientFactory(name="okta-prod")
    operator = OperatorFactory(role="administrator")
    _token, raw = operator_token_create(user=operator, name="schemathesis")
    headers = {"Authorization": f"Bearer {raw}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=headers)
    parts = (
        "/scim-clients",
        "/scim-roles",
        "/policy-rules",
        "/circuit-breaker",
        "/event-streams",
        "/event-deliveries",
    )
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if any(part in result.ok().path for part in parts)
    ]
    assert len(operations) == 47
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def answers_as_documented(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        answers_as_documented()


# --- Policy rules ---------------------------------------------------------------------------------


def test_the_rule_list_and_detail(viewer_api, rule, idp):
    PolicyRule.objects.create(name="A first", kind="delete_user", action="hold").clients.set([idp])
    body = viewer_api.get(RULES, {"page_size": 1}).json()
    assert [r["name"] for r in body["results"]] == ["A first"]
    assert body["results"][0]["clients"] == [{"id": str(idp.pk), "name": "okta-prod"}]
    second = viewer_api.get(body["next"]).json()["results"]
    assert len(second) == 1 and second[0]["name"] > "A first"  # by name, no repeat
    detail = viewer_api.get(f"{RULES}/{rule.pk}")
    assert detail.json()["kind"] == "deactivate_user" and detail["ETag"]
    assert (
        viewer_api.get(f"{RULES}/{rule.pk}", HTTP_IF_NONE_MATCH=detail["ETag"]).status_code == 304
    )
    assert_error(viewer_api.get(f"{RULES}/999999"), 404, "not_found")


def test_creating_a_rule_holds_what_it_matches(admin_api, idp):
    body = {
        "name": "hold deletions",
        "kind": "delete_user",
        "action": "hold",
        "two_approvers": True,
        "clients": [str(idp.pk)],
    }
    response = post(admin_api, RULES, body, key="p1")
    assert response.status_code == 201, response.content
    assert response.json()["clients"] == [{"id": str(idp.pk), "name": "okta-prod"}]
    assert post(admin_api, RULES, body, key="p1")["Idempotent-Replayed"] == "true"
    assert api_change_sets("policy.create").count() == 1
    scim = ScimApi(idp.raw_token)
    user = scim.create_user("rule@example.com")
    assert scim.delete(f"/Users/{user['id']}").status_code == 202  # held by the new rule


def test_rules_are_validated_by_the_service(admin_api, rule):
    flag_two = {"name": "x", "kind": "delete_user", "action": "flag", "two_approvers": True}
    assert (
        "two_approvers" in assert_error(post(admin_api, RULES, flag_two), 400, "invalid")["fields"]
    )
    no_attrs = {"name": "y", "kind": "attribute_change"}
    assert "attributes" in assert_error(post(admin_api, RULES, no_attrs), 400, "invalid")["fields"]
    dup = {"name": rule.name, "kind": "delete_user"}
    assert "name" in assert_error(post(admin_api, RULES, dup), 400, "invalid")["fields"]
    unknown = {"name": "z", "kind": "delete_user", "clients": [str(uuid.uuid4())]}
    assert "clients" in assert_error(post(admin_api, RULES, unknown), 400, "invalid")["fields"]
    assert not PolicyRule.objects.filter(name__in=["x", "y", "z"]).exists()


def test_changing_a_rule_needs_its_current_etag(admin_api, rule):
    path = f"{RULES}/{rule.pk}"
    tag = etag(admin_api, path)
    assert_error(
        post(admin_api, f"{path}/change", {"action": "hold"}), 428, "precondition_required"
    )
    response = post(
        admin_api, f"{path}/change", {"action": "hold", "two_approvers": True}, etag=tag
    )
    assert response.status_code == 200 and response.json()["two_approvers"]
    assert response.json()["kind"] == "deactivate_user"  # fields not sent stay
    assert_error(
        post(admin_api, f"{path}/change", {"action": "flag"}, etag=tag), 412, "precondition_failed"
    )
    # Validated as a whole: a rule that flags cannot keep two approvers.
    refused = post(admin_api, f"{path}/change", {"action": "flag"}, etag=etag(admin_api, path))
    assert "two_approvers" in assert_error(refused, 400, "invalid")["fields"]
    assert api_change_sets("policy.edit").count() == 1


def test_enable_and_disable_name_the_state_they_want(admin_api, rule):
    path = f"{RULES}/{rule.pk}"
    assert post(admin_api, f"{path}/disable").json()["enabled"] is False
    assert post(admin_api, f"{path}/disable").json()["enabled"] is False  # not flipped back
    assert api_change_sets("policy.disable").count() == 1  # the second changed nothing
    rule.refresh_from_db()
    assert not rule.enabled
    assert_error(post(admin_api, f"{path}/enable", etag='"stale"'), 412, "precondition_failed")
    assert post(admin_api, f"{path}/enable", etag=etag(admin_api, path)).json()["enabled"] is True


def test_deleting_a_rule(admin_api, rule):
    path = f"{RULES}/{rule.pk}"
    assert_error(post(admin_api, f"{path}/delete"), 428, "precondition_required")
    assert post(admin_api, f"{path}/delete", etag=etag(admin_api, path)).status_code == 204
    assert not PolicyRule.objects.filter(pk=rule.pk).exists()
    assert api_change_sets("policy.delete").count() == 1
    assert_error(post(admin_api, f"{path}/delete", etag="*"), 404, "not_found")


# --- Circuit breaker ------------------------------------------------------------------------------


def test_the_default_breaker_settings_change_with_if_match(viewer_api, admin_api):
    assert viewer_api.get(BREAKER).status_code == 200
    tag = etag(admin_api, BREAKER)
    response = post(
        admin_api, f"{BREAKER}/change", {"max_operations": 7, "max_percent": 12.5}, etag=tag
    )
    assert response.status_code == 200, response.content
    assert response.json()["max_operations"] == 7 and response.json()["max_percent"] == 12.5
    defaults = CircuitBreaker.objects.get(client__isnull=True)
    assert defaults.max_operations == 7
    assert_error(
        post(admin_api, f"{BREAKER}/change", {"max_operations": 8}, etag=tag),
        412,
        "precondition_failed",
    )
    bad = post(admin_api, f"{BREAKER}/change", {"window_minutes": 0}, etag=etag(admin_api, BREAKER))
    assert "window_minutes" in assert_error(bad, 400, "invalid")["fields"]
    assert api_change_sets("circuit_breaker.edit").count() == 1


def test_a_retried_breaker_change_replays_its_decimal_answer(admin_api):
    """The stored answer is the JSON the client received: ``max_percent`` (a decimal) is a
    number in it, as in the first answer (found by Schemathesis: a 500 storing it)."""
    tag = etag(admin_api, BREAKER)
    change = {"max_operations": 9, "max_percent": 33.25}
    first = post(admin_api, f"{BREAKER}/change", change, etag=tag, key="breaker-1")
    assert first.status_code == 200, first.content
    retry = post(admin_api, f"{BREAKER}/change", change, etag=tag, key="breaker-1")
    assert retry.status_code == 200 and retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json() and retry.json()["max_percent"] == 33.25
    assert api_change_sets("circuit_breaker.edit").count() == 1


def test_a_clients_own_breaker_settings(viewer_api, admin_api, idp):
    path = f"{CLIENTS}/{idp.pk}/circuit-breaker"
    assert_error(viewer_api.get(path), 403, "permission_denied")  # the console's admin page
    before = admin_api.get(path)
    assert before.json()["own"] is False and before.json()["client"]["name"] == "okta-prod"
    changed = post(admin_api, f"{path}/change", {"max_operations": 3}, etag=before["ETag"])
    assert changed.json()["own"] is True and changed.json()["max_operations"] == 3
    assert CircuitBreaker.objects.get(client=idp).max_operations == 3
    cleared = post(admin_api, f"{path}/clear", etag=changed["ETag"])
    assert cleared.status_code == 200 and cleared.json()["own"] is False
    assert not CircuitBreaker.objects.filter(client=idp).exists()
    assert api_change_sets("circuit_breaker.client_edit").count() == 1
    assert api_change_sets("circuit_breaker.client_defaults").count() == 1
