"""Request log: filters, htmx results, keyset pages, detail with pretty-printed redacted bodies."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.access.clients import scim_client_create
from provisioning.audit.models import ChangeSet, RequestLog
from provisioning.audit.request_log import request_log_write
from tests.factories import ScimClientFactory

pytestmark = pytest.mark.django_db

LIST = reverse("console:request_list")
HTMX = {"HTTP_HX_REQUEST": "true"}
FAKE_TOKEN = "scg_AbCdEfGh_" + "x" * 43
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def detail(row) -> str:
    return reverse("console:request_detail", args=[row.pk])


def scim(token: str | None, method: str, path: str, body=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().generic(
        method,
        f"/scim/v2{path}",
        data=json.dumps(body) if body is not None else "",
        content_type="application/scim+json",
        **headers,
    )


def paths(response) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in response.context["page"].items]


@pytest.fixture
def traffic(db):
    """Real SCIM requests through the middleware: a create, a read, a conflict, a bad token."""
    client = ScimClientFactory(name="okta")
    token = client.raw_token
    body = {"schemas": [USER_SCHEMA], "userName": "ana@example.com", "password": "Hunter2-Secret"}
    assert scim(token, "POST", "/Users", body).status_code == 201
    assert scim(token, "GET", "/Users").status_code == 200
    assert scim(token, "POST", "/Users", body).status_code == 409
    assert scim(FAKE_TOKEN, "GET", "/Groups").status_code == 401
    return client


def test_anonymous_and_roleless_are_refused(client, django_user_model, traffic):
    row = RequestLog.objects.first()
    assert client.get(LIST).status_code == 302 and client.get(detail(row)).status_code == 302
    client.force_login(django_user_model.objects.create_user(username="nobody"))
    assert client.get(LIST).status_code == 403 and client.get(detail(row)).status_code == 403


def test_list_newest_first_then_filters(viewer_client, traffic):
    response = viewer_client.get(LIST)
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    assert paths(response) == [
        ("GET", "/scim/v2/Groups", 401),
        ("POST", "/scim/v2/Users", 409),
        ("GET", "/scim/v2/Users", 200),
        ("POST", "/scim/v2/Users", 201),
    ]
    assert paths(viewer_client.get(LIST, {"status": "4"})) == [
        ("GET", "/scim/v2/Groups", 401),
        ("POST", "/scim/v2/Users", 409),
    ]
    assert paths(viewer_client.get(LIST, {"status": "2", "method": "POST"})) == [
        ("POST", "/scim/v2/Users", 201)
    ]
    assert [p for _, p, _ in paths(viewer_client.get(LIST, {"path": "group"}))] == [
        "/scim/v2/Groups"
    ]
    assert len(paths(viewer_client.get(LIST, {"client": traffic.pk}))) == 3
    assert paths(viewer_client.get(LIST, {"until": "2000-01-01T00:00"})) == []
    html = viewer_client.get(LIST).content.decode()
    assert "AbCdEfGh…" in html  # the failed credential's prefix, never the token
    assert FAKE_TOKEN not in html


def test_htmx_partial(viewer_client, traffic):
    partial = viewer_client.get(LIST, {"status": "2"}, **HTMX)
    assert partial.content.lstrip().startswith(b'<section id="results"')
    assert b"<html" not in partial.content and "HX-Request" in partial["Vary"]
    assert len(paths(partial)) == 2
    page = viewer_client.get(LIST).content.decode()
    assert 'hx-trigger="input changed delay:400ms, search"' in page  # the path box


def test_detail_pretty_prints_redacted_bodies(viewer_client, traffic):
    row = RequestLog.objects.get(method="POST", status=201)
    response = viewer_client.get(detail(row))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Hunter2-Secret" not in html and "[REDACTED]" in html
    assert "\n  &quot;userName&quot;: &quot;ana@example.com&quot;" in html  # indented JSON, escaped
    assert response.context["response_body"].startswith("{\n")
    assert "okta" in html and str(row.correlation_id) in html
    # The change set that request made is linked.
    change_set = ChangeSet.objects.get(correlation_id=row.correlation_id)
    assert reverse("console:change_set_detail", args=[change_set.pk]) in html


def test_failed_authentication_shows_the_token_prefix(viewer_client, traffic):
    row = RequestLog.objects.get(status=401)
    html = viewer_client.get(detail(row)).content.decode()
    assert "Rejected token" in html and "AbCdEfGh…" in html and "not authenticated" in html


def test_untrusted_paths_and_bodies_are_escaped(viewer_client):
    row = request_log_write(
        correlation_id=uuid.uuid4(),
        method="GET",
        path='/scim/v2/Users/<script>alert("p")</script>',
        query="filter=<b>x</b>",
        status=404,
        latency_ms=1.0,
        request_body="<img src=x onerror=alert(1)> not json",
        response_body='{"detail": "<svg onload=alert(2)>"}',
    )
    for url in (LIST, detail(row)):
        html = viewer_client.get(url).content.decode()
        assert (
            "<script>alert" not in html
            and "&lt;script&gt;alert(&quot;p&quot;)&lt;/script&gt;" in html
        )
        assert "<b>x</b>" not in html
    html = viewer_client.get(detail(row)).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; not json" in html
    assert "<svg onload" not in html and "&lt;svg onload=alert(2)&gt;" in html


def test_keyset_pages(viewer_client):
    now = timezone.now()
    for i in range(60):
        request_log_write(
            timestamp=now - timedelta(seconds=i),
            correlation_id=uuid.uuid4(),
            method="GET",
            path=f"/scim/v2/Users/{i}",
            status=200,
            latency_ms=1.0,
        )
    first = viewer_client.get(LIST)
    assert len(first.context["page"].items) == 50 and first.context["count"] == 60
    assert first.context["page"].items[0].path == "/scim/v2/Users/0"
    second = viewer_client.get(LIST, {"after": first.context["page"].next_after}, **HTMX)
    assert [r.path for r in second.context["page"].items] == [
        f"/scim/v2/Users/{i}" for i in range(50, 60)
    ]
    back = viewer_client.get(LIST, {"before": second.context["page"].previous_before})
    assert back.context["page"].items[0].path == "/scim/v2/Users/0"


def test_unknown_request_is_404(viewer_client):
    assert viewer_client.get(reverse("console:request_detail", args=[999999])).status_code == 404


def test_the_page_costs_the_same_queries_for_more_rows(viewer_client, traffic):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(LIST).status_code == 200
        return len(captured)

    few = queries()
    other, token = scim_client_create(name="google", role="provisioner")
    for _ in range(10):
        scim(token, "GET", "/Groups")
    assert queries() == few
