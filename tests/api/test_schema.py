"""The OpenAPI 3.1 schema: generated without a warning, served to operators, and true to
the API: Schemathesis sends generated requests to every operation (a bounded number of
examples, derandomized) and checks that none is a 5xx and every response conforms."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from provisioning.access.operator_tokens import operator_token_create
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db

# Generated requests per operation: enough to meet every parameter and error path the
# generator reaches, few enough for the whole run to take seconds.
EXAMPLES = 25
# No 5xx; the status, media type, headers and body are ones the schema documents. (An
# unknown client id in a filter is a 400, as in the console: no check that every
# schema-valid value is accepted.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any generator warning (an unresolved type, a missing
    # extension) into an error; --validate checks the document against the OAS schema.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )
    text = (tmp_path / "schema.yaml").read_text()
    assert text.startswith("openapi: 3.1.0")
    assert "/scim/v2/" not in text


def test_the_schema_is_for_operators_and_names_each_role(db):
    assert APIClient().get("/api/schema/").status_code == 401
    operator = OperatorFactory(role="viewer")
    _token, raw = operator_token_create(user=operator, name="schema")
    response = APIClient().get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert {op["x-required-role"] for op in operations} == {"viewer", "approver", "administrator"}
    assert all("401" in op["responses"] and "429" in op["responses"] for op in operations)


def test_the_docs_page_needs_sign_in_and_loads_its_assets_locally(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(OperatorFactory(role="viewer"))
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "<script>" not in page and "<style>" not in page  # nothing the CSP would block
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()


@pytest.fixture
def settings_rate(settings):
    settings.SCIMGATE_API_RATE_LIMIT = "100000/min"


@pytest.fixture
def wsgi_app():
    """The project's WSGI application, keeping the test's database connection: Django
    closes connections when a request ends, as the test client does not."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_every_operation_answers_as_its_schema_says(db, settings_rate, wsgi_app):
    operator = OperatorFactory(role="approver")
    _token, raw = operator_token_create(user=operator, name="schemathesis")
    headers = {"Authorization": f"Bearer {raw}"}
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", wsgi_app, headers=headers
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 77

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
