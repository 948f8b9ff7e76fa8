"""No secret a client sends is stored or logged, whatever its spelling or body shape.

Secrets are sent the ways real and hostile clients send them (RFC 7643 §4.1.1: a
``password`` is writeOnly and never returned; RFC 7644 §3.5.2 PATCH member names in
any case, schema-qualified paths, path-less values; §3.7 Bulk; bodies that are not
JSON at all), through writes that are applied, held for approval, approved and
flagged for review. Then every text column of every table and every log line
written meanwhile is searched for each of them.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from celery.app.task import Task
from django.apps import apps
from django.db import connection, models
from django.db.models.functions import Cast
from django.test import Client

from provisioning.audit.models import ChangeSet, RequestLog
from provisioning.oversight import services as oversight
from provisioning.oversight.models import PendingOperation, PolicyRule, Review, RollbackJob
from provisioning.oversight.rollback_jobs import rollback_job_create
from tests.factories import OperatorFactory
from tests.scim.conftest import PATCH_SCHEMA, USER_SCHEMA, ScimApi

pytestmark = pytest.mark.django_db

BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PASSWORD_URN = f"{USER_SCHEMA}:password"

# Distinctive values, one per way of sending a secret, so a failure names the way.
_RUN = uuid.uuid4().hex[:8]


def secret(name: str) -> str:
    return f"Zx{_RUN}-{name}-9q"


# A value that is not secret and must be stored: proves the scan sees what is there.
TITLE = f"Title-{_RUN}-kept"


class CapturedLogs(logging.Handler):
    """Every record at DEBUG and above, formatted, exceptions included."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs():
    """A DEBUG handler on the root logger, with every configured logger opened to DEBUG."""
    handler = CapturedLogs()
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    extra = [logger for logger in loggers if not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    root.addHandler(handler)
    for logger in extra:
        logger.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    for logger in extra:
        logger.removeHandler(handler)
    for logger, level in levels.items():
        logger.setLevel(level)


def _text_columns(model) -> list[models.Field]:
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, models.CharField | models.TextField | models.JSONField)
    ]


def stored_text() -> list[tuple[str, str]]:
    """(where, text) for every text, char and JSON column of every model's rows, cast to
    text by the database, and then every column of every table (models or not)."""
    found = []
    for model in apps.get_models(include_auto_created=True):
        columns = _text_columns(model)
        if not columns:
            continue
        casts = {f"c{i}": Cast(field.column, models.TextField()) for i, field in enumerate(columns)}
        for row in model._base_manager.annotate(**casts).values_list(*casts):
            for field, value in zip(columns, row, strict=True):
                if value:
                    found.append((f"{model._meta.label}.{field.name}", value))
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            for column in connection.introspection.get_table_description(cursor, table):
                name = connection.ops.quote_name(column.name)
                cursor.execute(f"SELECT CAST({name} AS TEXT) FROM {quoted}")  # noqa: S608
                found += [(f"{table}.{column.name}", v) for (v,) in cursor.fetchall() if v]
    return found


@pytest.fixture
def task_calls(monkeypatch):
    """(task name, args, kwargs) of every Celery task queued (run in-process in tests)."""
    calls = []
    original = Task.apply_async

    def recording(self, args=None, kwargs=None, **options):
        calls.append((self.name, args, kwargs))
        return original(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", recording)
    return calls


def test_no_secret_in_any_spelling_or_body_shape_is_stored_or_logged(
    all_logs, task_calls, mailoutbox, scim, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        secrets, sent = _traffic(scim)
    _assert_nothing_kept(secrets, sent, all_logs, task_calls, mailoutbox)


def _traffic(scim: ScimApi) -> tuple[dict[str, str], int]:
    """Every way of sending a secret; returns the secrets by name and the requests sent."""
    secrets: dict[str, str] = {}
    sent = 0

    def s(name: str) -> str:
        assert name not in secrets
        secrets[name] = secret(name)
        return secrets[name]

    def send(method, path, body=None, **kw):
        nonlocal sent
        sent += 1
        return scim.request(method, path, body, **kw)

    def ops(*operations):
        return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}

    # --- Users created and replaced with a password, under every key spelling ---------
    created = send(
        "POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "ana", "password": s("post")}
    )
    assert created.status_code == 201, created.content
    user = f"/Users/{json.loads(created.content)['id']}"
    assert (
        send(
            "PUT", user, {"schemas": [USER_SCHEMA], "userName": "ana", "PASSWORD": s("put")}
        ).status_code
        == 200
    )
    assert (
        send("POST", "/Users", {"userName": "bo", PASSWORD_URN: s("post-urn")}).status_code == 201
    )

    # --- PATCH: member names in any case, qualified paths, path-less values -----------
    patches = [
        {"op": "Replace", "Path": "password", "Value": s("patch-Path-Value")},
        {"OP": "replace", "PATH": "PASSWORD", "VALUE": s("patch-PATH-VALUE")},
        {"op": "replace", "path": "Password", "value": s("patch-path-value")},
        {"op": "add", "pAtH": PASSWORD_URN, "vAlUe": s("patch-urn")},
        {"op": "replace", "value": {"password": s("patch-pathless")}},
        {"op": "replace", "value": {"PassWord": s("patch-pathless-case"), "title": TITLE}},
        {"op": "replace", "value": {PASSWORD_URN: s("patch-pathless-urn")}},
    ]
    for operation in patches:
        assert send("PATCH", user, ops(operation)).status_code in (200, 204)
    # Paths the parser refuses are still requests that are logged.
    for operation in (
        {"op": "replace", "path": 'password[type eq "x"]', "Value": s("patch-filter")},
        {"op": "replace", "path": "password.value", "VALUE": s("patch-sub")},
        {"op": "replace", "path": "password1", "value": s("patch-password1")},
    ):
        assert send("PATCH", user, ops(operation)).status_code == 400
    # A title change in the same PATCH as a password: a change set is written.
    title_and_password = ops(
        {"op": "replace", "path": "title", "value": TITLE + "-2"},
        {"op": "Replace", "Path": "password", "Value": s("patch-with-title")},
    )
    assert send("PATCH", user, title_and_password).status_code in (200, 204)

    # --- Secret-like keys the directory does not know: refused, and logged --------------
    for key in (
        "password1",
        "passwd",
        "pwd",
        "client_secret",
        "privateKey",
        "private_key",
        "api_key",
        "access_token",
        "refresh_token",
        "credentials",
        "Authorization",
    ):
        body = {"schemas": [USER_SCHEMA], "userName": f"k-{key}", key: s(f"key-{key}")}
        assert send("POST", "/Users", body).status_code == 400

    # --- Bulk: member names in any case, nested PATCH operations -------------------------
    bulk = {
        "schemas": [BULK_SCHEMA],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "b1",
                "data": {
                    "schemas": [USER_SCHEMA],
                    "userName": "bulk-cy",
                    "Password": s("bulk-post"),
                },
            },
            {
                "method": "PATCH",
                "path": user,
                "data": ops(
                    {"op": "replace", "path": "password", "VALUE": s("bulk-VALUE")},
                    {"op": "replace", "path": "title", "value": TITLE + "-3"},
                ),
            },
            {
                "method": "PATCH",
                "path": user,
                "Data": ops({"Op": "replace", "Path": "password", "Value": s("bulk-Data")}),
            },
            {
                "method": "PUT",
                "path": user,
                "data": {
                    "schemas": [USER_SCHEMA],
                    "userName": "ana",
                    "title": TITLE,
                    "password": s("bulk-put"),
                },
            },
        ],
    }
    assert send("POST", "/Bulk", bulk).status_code == 200

    # --- Bodies that are not JSON, or not valid JSON ---------------------------------------
    raw_bodies = [
        (
            f"userName=dee&password={s('form')}&pwd={s('form-pwd')}",
            "application/x-www-form-urlencoded",
        ),
        (f"userName=dee&p%61ssword={s('form-escaped')}", "application/x-www-form-urlencoded"),
        (f"password: {s('text')}\nplease set it", "text/plain"),
        (f'{{"userName": "eve", "password": "{s("invalid-json")}",}}', "application/scim+json"),
        (
            f'{{"userName": "eve", "password1": "{s("invalid-json-password1")}"',
            "application/scim+json",
        ),
        (
            f'{{"Operations": [{{"op":"replace","Path":"password","Value":"{s("invalid-patch")}"}}]',
            "application/json",
        ),
        (f"just the secret {s('bare')} in text", "application/scim+json"),
        (b'\x80\xff{"password": "' + s("undecodable").encode() + b'"}', "application/scim+json"),
        ("[" * 3000 + f'{{"password": "{s("deep")}"}}' + "]" * 3000, "application/scim+json"),
    ]
    for raw, content_type in raw_bodies:
        assert send("POST", "/Users", raw=raw, content_type=content_type).status_code >= 400

    # --- Query strings, .search bodies and headers -----------------------------------------
    send("GET", "/Users", params={"password": s("query")})
    send("GET", "/Users", params={"access_token": s("query-token"), "Client_Secret": s("query-cs")})
    send("GET", "/Users", params={"filter": f'password eq "{s("filter")}"'})
    send(
        "POST", "/Users/.search", {"schemas": [SEARCH_SCHEMA], "count": 1, "password": s("search")}
    )
    fake_token = f"scg_AbCdEfGh_{s('bearer')}"
    anonymous = ScimApi(None)
    for header in (f"Bearer {fake_token}", f"Bearer {s('bearer-raw')}", f"Basic {s('basic')}"):
        sent += 1
        assert anonymous.get("/Users", HTTP_AUTHORIZATION=header).status_code == 401
    sent += 1
    assert (
        anonymous.post(
            "/Users",
            {"userName": "x", "password": s("anonymous")},
            HTTP_AUTHORIZATION=f"Bearer {fake_token}",
        ).status_code
        == 401
    )

    # --- Held for approval, approved and applied; flagged for review -----------------------
    PolicyRule.objects.create(
        name="hold titles",
        kind=PolicyRule.Kind.ATTRIBUTE_CHANGE,
        action="hold",
        attributes=["title"],
    )
    held = send(
        "PATCH",
        user,
        ops(
            {"op": "replace", "path": "title", "value": TITLE + "-held"},
            {"op": "Replace", "Path": "password", "Value": s("held-patch")},
            {"op": "replace", "value": {"PASSWORD": s("held-pathless")}},
        ),
    )
    assert held.status_code == 202, held.content
    put_held = send(
        "PUT",
        user,
        {
            "schemas": [USER_SCHEMA],
            "userName": "ana",
            "title": TITLE + "-put",
            "Password": s("held-put"),
        },
    )
    assert put_held.status_code == 202, put_held.content
    assert PendingOperation.objects.filter(status="pending").count() == 2

    approver = OperatorFactory(username="approver-scan", role="approver", email="a@ops.example")
    pending = PendingOperation.objects.get(pk=json.loads(held.content)["id"])
    oversight.pending_approve(pending_id=pending.pk, operator=approver)
    oversight.pending_apply(pending.pk)
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED, pending.result_detail
    assert json.loads(send("GET", user).content)["title"] == TITLE + "-held"

    PolicyRule.objects.create(
        name="flag names",
        kind=PolicyRule.Kind.ATTRIBUTE_CHANGE,
        action="flag",
        attributes=["displayName"],
    )
    flagged = send(
        "PATCH",
        user,
        ops(
            {"op": "replace", "path": "displayName", "value": "Ana " + TITLE},
            {"op": "replace", "PATH": PASSWORD_URN, "value": s("flagged")},
        ),
    )
    assert flagged.status_code in (200, 204)
    assert Review.objects.filter(status="open").exists()

    # --- The flagged change set undone by a rollback job ------------------------------------
    administrator = OperatorFactory(username="admin-scan", role="administrator")
    flagged_set = Review.objects.get(status="open").change_set
    rollback_job_create(change_set_ids=[flagged_set.pk], operator=administrator)

    # --- A console login with a wrong password (django-axes records failures) --------------
    Client().post("/login/", {"username": "approver-scan", "password": s("console-login")})
    return secrets, sent


def _assert_nothing_kept(secrets, sent, logs, task_calls, mailoutbox) -> None:
    stored = stored_text()
    leaks = sorted(
        {
            (where, name)
            for where, text in stored
            for name, value in secrets.items()
            if value in text
        }
    )
    assert leaks == []
    # And everything happened: each request was logged, the job ran, approvers were told,
    # and what is not secret was kept (the scan sees it).
    assert RequestLog.objects.count() == sent
    assert RollbackJob.objects.get().status == RollbackJob.Status.DONE
    assert {name.rsplit(".", 1)[-1] for name, _, _ in task_calls} >= {
        "notify_approvers",
        "run_rollback_job",
    }
    assert mailoutbox
    assert ChangeSet.objects.filter(request__isnull=False).count() > 5
    assert any(TITLE + "-held" in text for _, text in stored)
    assert len(secrets) > 50
    elsewhere = {
        "log output": "\n".join(logs.lines),
        "task arguments": repr(task_calls),
        "mail": "\n".join(f"{m.subject}\n{m.body}" for m in mailoutbox),
    }
    assert [
        (where, name)
        for where, text in elsewhere.items()
        for name, value in secrets.items()
        if value in text
    ] == []


# --- OAuth: client secrets, assertions and access tokens --------------------------------


@pytest.fixture
def key_server(settings):
    """A local HTTP server for an issuer's discovery document and JWKS."""
    from tests.access.oauth_helpers import KeyServer

    settings.SCIMGATE_OAUTH_ALLOW_HTTP = True
    server = KeyServer()
    yield server
    server.close()


def _oauth_traffic(settings, key_server) -> tuple[dict[str, str], int]:
    """Every way an OAuth credential reaches the server: the token endpoint (Basic, form,
    assertions, wrong secrets), SCIM requests with access tokens, and credentials sent
    where they do not belong (SCIM bodies, queries, filters). Returns the raw credentials
    by name and the SCIM requests sent."""
    from provisioning.access.oauth_credentials import (
        client_key_add,
        client_secret_issue,
        federation_add,
        scim_client_create_oauth,
    )
    from tests.access.oauth_helpers import (
        assertion,
        assertion_params,
        basic,
        client_assertion,
        jwks,
        rsa_key,
        token_request,
    )

    operator = OperatorFactory(username="admin-oauth", role="administrator")
    client, first = scim_client_create_oauth(name="entra", role="provisioner", operator=operator)
    _second, second = client_secret_issue(client=client, operator=operator)
    key = rsa_key("scan-key")
    client_key_add(client=client, jwks=jwks(key), operator=operator)
    idp_key = rsa_key("idp-key")
    issuer = key_server.publish_issuer("/tenant", jwks(idp_key))
    federation_add(client=client, issuer=issuer, subject="app-1", operator=operator)
    found: dict[str, str] = {"secret-1": first, "secret-2": second}

    def token_of(response) -> str:
        assert response.status_code == 200, response.content
        return response.json()["access_token"]

    grant = {"grant_type": "client_credentials"}
    found["token-basic"] = token_of(token_request(grant, auth=basic(client.pk, first)))
    found["token-post"] = token_of(
        token_request({**grant, "client_id": str(client.pk), "client_secret": second})
    )
    signed = client_assertion(client, key)
    found["assertion"] = signed
    found["token-jwt"] = token_of(token_request(assertion_params(signed)))
    # Replayed, and wrong secrets that look like right ones.
    assert token_request(assertion_params(signed)).status_code == 401
    found["wrong-secret"] = first[:-6] + "Zz9Zz9"
    assert token_request(grant, auth=basic(client.pk, found["wrong-secret"])).status_code == 401
    assert (
        token_request(
            {**grant, "client_id": str(client.pk), "client_secret": found["wrong-secret"] + "x"}
        ).status_code
        == 401
    )
    federated = assertion(idp_key, iss=issuer, sub="app-1")
    found["federated-assertion"] = federated
    found["token-federated"] = token_of(
        token_request(
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": federated}
        )
    )
    found["bad-assertion"] = client_assertion(client, rsa_key("scan-key"))
    assert token_request(assertion_params(found["bad-assertion"])).status_code == 401

    # SCIM with access tokens, and credentials where they do not belong.
    sent = 0
    for name in ("token-basic", "token-post", "token-jwt", "token-federated"):
        api = ScimApi(found[name])
        assert api.get("/Users").status_code == 200
        sent += 1
    api = ScimApi(found["token-basic"])
    # Directory attributes keep what the IdP sends; credentials under credential names
    # are refused (unknown attributes) and redacted wherever the request is kept.
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "oauth-leak",
        "client_secret": first,
        "access_token": found["token-post"],
        "client_assertion": found["assertion"],
    }
    assert api.post("/Users", body).status_code == 400
    api.get("/Users", params={"filter": f'title eq "{found["token-jwt"]}"'})
    api.get("/Users", params={"client_secret": second, "access_token": found["token-basic"]})
    api.request(
        "POST",
        "/Users",
        raw=f"client_secret={first}&client_assertion={signed}&access_token={found['token-post']}",
        content_type="application/x-www-form-urlencoded",
    )
    sent += 4
    assert ScimApi(found["wrong-secret"]).get("/Users").status_code == 401
    sent += 1
    return found, sent


def test_no_oauth_secret_assertion_or_access_token_is_stored_or_logged(
    all_logs, settings, key_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        found, sent = _oauth_traffic(settings, key_server)
    stored = stored_text()
    leaks = sorted(
        {(where, name) for where, text in stored for name, value in found.items() if value in text}
    )
    assert leaks == []
    # The JWT parts one by one too: a signature or payload alone is still the assertion.
    for name in ("assertion", "federated-assertion"):
        for part in found[name].split(".")[1:]:
            assert not any(part in text for _, text in stored), name
    logged = "\n".join(all_logs.lines)
    assert [name for name, value in found.items() if value in logged] == []
    # And the traffic happened: SCIM requests logged, failures counted, tokens named.
    assert RequestLog.objects.count() == sent
    assert RequestLog.objects.filter(token_prefix__startswith="oauth:").count() >= 4
    from provisioning.access.models import ScimClient

    assert ScimClient.objects.get(name="entra").oauth_failures >= 3
    assert "OAuth token request refused" in logged
