"""Dashboard: permissions, totals, clients, and the activity chart's numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.directory import selectors
from provisioning.directory.models import User
from tests.factories import ProvisionedGroupFactory, ProvisionedUserFactory

from .conftest import XSS

HOME = reverse("console:home")


@pytest.mark.django_db
def test_anonymous_goes_to_login_roleless_is_refused(client, django_user_model):
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(django_user_model.objects.create_user(username="nobody"))
    assert client.get(HOME).status_code == 403


@pytest.mark.django_db
def test_totals_and_clients(viewer_client, idp):
    ProvisionedUserFactory(userName="on@example.com", active=True, client=idp)
    ProvisionedUserFactory(userName="unset@example.com", client=idp)
    ProvisionedUserFactory(userName="off@example.com", active=False)
    ProvisionedGroupFactory(displayName="Team")
    idp.name = XSS
    idp.last_used_at = timezone.now() - dt.timedelta(hours=2)
    idp.save()

    response = viewer_client.get(HOME)
    assert response.context["totals"] == {"users": 3, "active": 2, "inactive": 1, "groups": 1}
    [row] = response.context["clients"]
    assert row["users"] == 2 and response.context["unsourced_users"] == 1
    html = response.content.decode()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "2\xa0hours ago" in html
    assert '<svg viewBox="0 0 1000 240" role="img"' in html


@pytest.mark.django_db
def test_navigation_marks_the_current_page_and_shows_the_operator(viewer_client, viewer):
    html = viewer_client.get(HOME).content.decode()
    assert '<a href="/" aria-current="page">' in html
    assert viewer.username in html and ">viewer<" in html
    assert 'action="/logout/"' in html and "csrfmiddlewaretoken" in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "/static/vendor/htmx/htmx-2.0.11.min.js" in html
    html = viewer_client.get(reverse("console:user_list")).content.decode()
    assert '<a href="/users/" aria-current="page">' in html


@pytest.mark.django_db
def test_activity_counts_created_and_modified_per_day_in_one_query():
    now = dt.datetime(2026, 3, 14, 12, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)

    def user(name, created, modified, version):
        return User(user_name=name, created=created, last_modified=modified, version=version)

    User.objects.bulk_create(
        [
            user("today", now, now, 1),
            user("today-2", now - dt.timedelta(hours=11), now - dt.timedelta(hours=11), 1),
            user("old-modified-today", now - 30 * day, now, 3),
            user("yesterday-modified-twice", now - day, now - day, 2),
            user("thirteen-days", now - 13 * day, now - 13 * day, 1),
            user("too-old", now - 14 * day, now - 14 * day, 1),
        ]
    )
    with CaptureQueriesContext(connection) as ctx:
        activity = selectors.user_activity(days=14, now=now)
    assert len(ctx.captured_queries) == 1
    assert len(activity) == 14
    assert activity[0]["day"] == dt.date(2026, 3, 1) and activity[-1]["day"] == dt.date(2026, 3, 14)
    assert activity[-1] == {"day": dt.date(2026, 3, 14), "created": 2, "modified": 1}
    assert activity[-2] == {"day": dt.date(2026, 3, 13), "created": 1, "modified": 1}
    assert activity[0]["created"] == 1
    assert sum(d["created"] for d in activity) == 4


@pytest.mark.django_db
def test_chart_is_drawn_from_the_counts(viewer_client):
    ProvisionedUserFactory(userName="a@example.com")
    ProvisionedUserFactory(userName="b@example.com")
    response = viewer_client.get(HOME)
    chart = response.context["chart"]
    today = chart["groups"][-1]
    created = next(bar for bar in today["bars"] if bar.series == "created")
    assert created.value == 2
    # The tallest bar reaches the top of the scale, which is a round number.
    assert chart["grid"][-1]["value"] == 2 and created.y == 10
    assert "<title>" in response.content.decode()


def test_no_template_comment_leaks_into_any_listing(client, django_user_model):
    """Multi-line ``{# #}`` is not a Django comment; it would render as page text."""
    from provisioning.access.operators import operator_create

    operator, _ = operator_create(username="reader-comments", role="administrator")
    client.force_login(operator)
    for url in ("/users/", "/groups/", "/pending/", "/reviews/", "/audit/", "/requests/"):
        body = client.get(url).content.decode()
        assert "{#" not in body and "#}" not in body, url
