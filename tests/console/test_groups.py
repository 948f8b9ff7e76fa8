"""Groups list and detail: permissions, htmx partials, search, counts, member paging, nesting."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.access.clients import scim_client_create
from provisioning.directory.models import Group, Membership, User
from provisioning.oversight.models import PendingOperation, PolicyRule
from tests.factories import ProvisionedGroupFactory, ProvisionedUserFactory
from tests.scim.conftest import ScimApi

from .conftest import XSS

LIST = reverse("console:group_list")
HTMX = {"HTTP_HX_REQUEST": "true"}


def detail(group) -> str:
    return reverse("console:group_detail", args=[group.pk])


def names(response) -> list[str]:
    return [g.display_name for g in response.context["page"].items]


@pytest.mark.django_db
def test_anonymous_and_roleless_are_refused(client, django_user_model):
    group = ProvisionedGroupFactory(displayName="Team")
    for url in (LIST, detail(group)):
        assert client.get(url).status_code == 302
    client.force_login(django_user_model.objects.create_user(username="nobody"))
    for url in (LIST, detail(group)):
        assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_unknown_group_is_404(viewer_client):
    assert (
        viewer_client.get(reverse("console:group_detail", args=[uuid.uuid4()])).status_code == 404
    )


@pytest.mark.django_db
def test_list_full_page_and_partial_with_counts(viewer_client):
    a, b = (
        ProvisionedUserFactory(userName="a@example.com"),
        ProvisionedUserFactory(userName="b@example.com"),
    )
    inner = ProvisionedGroupFactory(displayName="Inner", members=[a])
    ProvisionedGroupFactory(displayName="Outer", members=[a, b, inner], client=None)
    page = viewer_client.get(LIST)
    assert b"<html" in page.content and "HX-Request" in page["Vary"]
    rows = {g.display_name: (g.user_count, g.group_count) for g in page.context["page"].items}
    assert rows == {"Inner": (1, 0), "Outer": (2, 1)}

    partial = viewer_client.get(LIST, {"q": "out"}, **HTMX)
    assert partial.content.lstrip().startswith(b'<section id="results"')
    assert names(partial) == ["Outer"]
    assert "HX-Request" in partial["Vary"]


@pytest.mark.django_db
def test_search_by_external_id_and_sorting(viewer_client):
    ProvisionedGroupFactory(displayName="beta")
    ProvisionedGroupFactory(displayName="Alpha")
    Group.objects.filter(display_name="beta").update(external_id="EXT-9")
    assert names(viewer_client.get(LIST, {"q": "ext-9"})) == ["beta"]
    assert names(viewer_client.get(LIST)) == ["Alpha", "beta"]
    assert names(viewer_client.get(LIST, {"sort": "-displayName"})) == ["beta", "Alpha"]
    assert names(viewer_client.get(LIST, {"sort": "members"})) == ["Alpha", "beta"]


@pytest.mark.django_db
def test_list_never_loads_members(viewer_client):
    users = User.objects.bulk_create(
        User(user_name=f"m{i}@example.com", created=timezone.now(), last_modified=timezone.now())
        for i in range(300)
    )
    group = ProvisionedGroupFactory(displayName="Big")
    Membership.objects.bulk_create(Membership(group=group, user=u) for u in users)
    with CaptureQueriesContext(connection) as ctx:
        response = viewer_client.get(LIST, **HTMX)
    assert names(response) == ["Big"] and response.context["page"].items[0].user_count == 300
    assert not any(
        "directory_membership" in q["sql"] and "COUNT" not in q["sql"].upper() for q in ctx
    )


@pytest.mark.django_db
def test_detail_pages_members_by_keyset(viewer_client):
    now = timezone.now()
    users = User.objects.bulk_create(
        User(user_name=f"m{i:03d}@example.com", created=now, last_modified=now) for i in range(120)
    )
    group = ProvisionedGroupFactory(displayName="Big")
    Membership.objects.bulk_create(Membership(group=group, user=u) for u in users)

    first = viewer_client.get(detail(group))
    members = first.context["page"].items
    assert [m.user.user_name for m in members[:2]] == ["m000@example.com", "m001@example.com"]
    assert len(members) == 50 and first.context["counts"] == {"users": 120, "groups": 0}

    after = first.context["page"].next_after
    with CaptureQueriesContext(connection) as ctx:
        second = viewer_client.get(detail(group), {"after": after}, **HTMX)
    assert second.content.lstrip().startswith(b'<section id="members"')
    assert "HX-Request" in second["Vary"]
    assert second.context["page"].items[0].user.user_name == "m050@example.com"
    # Members and their names in one query; no query per member, no OFFSET.
    member_queries = [q["sql"] for q in ctx.captured_queries if "directory_membership" in q["sql"]]
    assert not any("OFFSET" in sql.upper() for sql in member_queries)
    assert len(ctx.captured_queries) < 12

    last = viewer_client.get(detail(group), {"after": second.context["page"].next_after})
    assert len(last.context["page"].items) == 20 and last.context["page"].next_after is None
    back = viewer_client.get(detail(group), {"before": last.context["page"].previous_before})
    assert [m.pk for m in back.context["page"].items] == [
        m.pk for m in second.context["page"].items
    ]
    start = viewer_client.get(detail(group), {"before": back.context["page"].previous_before})
    assert start.context["page"].previous_before is None and len(start.context["page"].items) == 50
    assert viewer_client.get(detail(group), {"after": "junk"}).status_code == 200


@pytest.mark.django_db
def test_detail_shows_nested_and_parent_groups(viewer_client):
    ana = ProvisionedUserFactory(userName="ana@example.com", displayName="Ana")
    child = ProvisionedGroupFactory(displayName="Child", members=[ana])
    parent = ProvisionedGroupFactory(displayName="Parent", members=[child])
    html = viewer_client.get(detail(child)).content.decode()
    assert "Parent" in html and "Ana" in html
    html = viewer_client.get(detail(parent)).content.decode()
    assert f'href="{detail(child)}"' in html
    assert "1 nested group" in html


@pytest.mark.django_db
def test_group_names_are_escaped(viewer_client):
    user = ProvisionedUserFactory(userName="a@example.com", displayName=XSS)
    group = ProvisionedGroupFactory(displayName=XSS, members=[user])
    for response in (viewer_client.get(LIST), viewer_client.get(detail(group))):
        html = response.content.decode()
        assert XSS not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.django_db
def test_a_held_group_delete_shows_on_the_group_page_not_in_the_members_partial(viewer_client):
    _client, token = scim_client_create(name="okta-prod", role="provisioner")
    PolicyRule.objects.filter(name="Hold group deletions").update(enabled=True)
    scim = ScimApi(token)
    group = scim.create_group("Payroll")
    assert scim.delete(f"/Groups/{group['id']}").status_code == 202
    pending = PendingOperation.objects.get(resource_id=group["id"])
    url = reverse("console:group_detail", args=[group["id"]])

    page = viewer_client.get(url)
    assert page.context["held"].items == [pending]
    html = page.content.decode()
    assert "Waiting for approval" in html
    assert reverse("console:pending_detail", args=[pending.pk]) in html
    partial = viewer_client.get(url, **HTMX)
    assert "held" not in partial.context and "Waiting for approval" not in partial.content.decode()
