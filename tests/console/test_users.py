"""Users list and detail: permissions, htmx partials, filters, sorting, paging, escaping, actions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from console.oversight_selectors import held_idp_changes
from provisioning.access.clients import scim_client_create
from provisioning.directory.models import User
from provisioning.oversight import services as oversight
from provisioning.oversight.models import PendingOperation, PolicyRule
from tests.factories import OperatorFactory, ProvisionedGroupFactory, ProvisionedUserFactory
from tests.scim.conftest import ScimApi

from .conftest import XSS, csrf_token, full_user

LIST = reverse("console:user_list")
HTMX = {"HTTP_HX_REQUEST": "true"}


def detail(user) -> str:
    return reverse("console:user_detail", args=[user.pk])


def names(response) -> list[str]:
    return [u.user_name for u in response.context["page"].items]


# --- Permissions -------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client):
    user = ProvisionedUserFactory(userName="x@example.com")
    for url in (LIST, detail(user)):
        response = client.get(url)
        assert response.status_code == 302
        assert "login" in response["Location"]


@pytest.mark.django_db
def test_operator_without_role_is_refused(client, django_user_model):
    nobody = django_user_model.objects.create_user(username="nobody")
    client.force_login(nobody)
    assert client.get(LIST).status_code == 403


@pytest.mark.django_db
def test_viewer_reads_list_and_detail(viewer_client):
    user = full_user()
    assert viewer_client.get(LIST).status_code == 200
    assert viewer_client.get(detail(user)).status_code == 200


@pytest.mark.django_db
def test_unknown_user_is_404(viewer_client):
    assert viewer_client.get(reverse("console:user_detail", args=[uuid.uuid4()])).status_code == 404


# --- Full page and htmx partial ----------------------------------------------------


@pytest.mark.django_db
def test_full_page_then_htmx_partial(viewer_client):
    ProvisionedUserFactory(userName="ana@example.com")
    page = viewer_client.get(LIST)
    assert b"<html" in page.content and b'id="filters"' in page.content
    assert b'id="results"' in page.content
    assert "HX-Request" in page["Vary"]

    partial = viewer_client.get(LIST, {"q": "ana"}, **HTMX)
    assert partial.status_code == 200
    assert b"<html" not in partial.content and b'id="filters"' not in partial.content
    assert partial.content.lstrip().startswith(b'<section id="results"')
    assert b"ana@example.com" in partial.content
    assert "HX-Request" in partial["Vary"]


@pytest.mark.django_db
def test_history_restore_gets_the_full_page(viewer_client):
    response = viewer_client.get(
        LIST, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert b"<html" in response.content


@pytest.mark.django_db
def test_search_box_is_live_and_debounced(viewer_client):
    html = viewer_client.get(LIST).content.decode()
    assert 'hx-trigger="input changed delay:300ms, search"' in html
    assert 'hx-push-url="true"' in html


# --- Search and filters ------------------------------------------------------------


@pytest.mark.django_db
def test_search_matches_each_searchable_attribute(viewer_client):
    ProvisionedUserFactory(userName="alpha@example.com", displayName="Zed Quux")
    ProvisionedUserFactory(
        userName="bravo@example.com", name={"givenName": "Wilhelmina", "familyName": "Okonkwo"}
    )
    ProvisionedUserFactory(
        userName="charlie@example.com", emails=[{"value": "c.primary@corp.test", "primary": True}]
    )
    ProvisionedUserFactory(userName="delta@example.com", externalId="EXT-777")
    for term, expected in [
        ("ALPHA", "alpha@example.com"),
        ("quux", "alpha@example.com"),
        ("wilhel", "bravo@example.com"),
        ("okonkwo", "bravo@example.com"),
        ("corp.test", "charlie@example.com"),
        ("ext-777", "delta@example.com"),
    ]:
        assert names(viewer_client.get(LIST, {"q": term})) == [expected], term


@pytest.mark.django_db
def test_search_treats_like_wildcards_literally(viewer_client):
    ProvisionedUserFactory(userName="a_b@example.com")
    ProvisionedUserFactory(userName="axb@example.com")
    assert names(viewer_client.get(LIST, {"q": "a_b"})) == ["a_b@example.com"]
    assert names(viewer_client.get(LIST, {"q": "%"})) == []


@pytest.mark.django_db
def test_filters_active_source_and_group(viewer_client, idp):
    on = ProvisionedUserFactory(userName="on@example.com", active=True, client=idp)
    ProvisionedUserFactory(userName="off@example.com", active=False)
    unset = ProvisionedUserFactory(userName="unset@example.com")
    group = ProvisionedGroupFactory(displayName="Team", members=[on, unset])

    assert names(viewer_client.get(LIST, {"active": "no"})) == ["off@example.com"]
    # An absent ``active`` counts as active, as on the dashboard.
    assert names(viewer_client.get(LIST, {"active": "yes"})) == [
        "on@example.com",
        "unset@example.com",
    ]
    assert len(names(viewer_client.get(LIST, {"active": ""}))) == 3
    assert names(viewer_client.get(LIST, {"source": str(idp.pk)})) == ["on@example.com"]
    assert names(viewer_client.get(LIST, {"group": str(group.pk)})) == [
        "on@example.com",
        "unset@example.com",
    ]
    combined = viewer_client.get(LIST, {"group": str(group.pk), "active": "yes", "q": "on@"})
    assert names(combined) == ["on@example.com"]
    # A group can also be named by its displayName, in any case.
    assert names(viewer_client.get(LIST, {"group": "team"})) == ["on@example.com", "unset@example.com"]
    unknown = viewer_client.get(LIST, {"group": "No Such Team"})
    assert "No group with this id or displayName." in unknown.content.decode()


@pytest.mark.django_db
def test_invalid_filter_values_are_reported_not_fatal(viewer_client):
    ProvisionedUserFactory(userName="a@example.com")
    response = viewer_client.get(LIST, {"active": "maybe", "group": "not-a-uuid"})
    assert response.status_code == 200
    assert names(response) == ["a@example.com"]
    assert response.context["filter"].form.errors.keys() == {"active", "group"}


# --- Sorting ----------------------------------------------------------------------


@pytest.mark.django_db
def test_sortable_columns_and_direction(viewer_client):
    ProvisionedUserFactory(userName="b@example.com", displayName="Alpha")
    ProvisionedUserFactory(userName="a@example.com", displayName="Charlie")
    ProvisionedUserFactory(userName="c@example.com", displayName="bravo")
    assert names(viewer_client.get(LIST)) == ["a@example.com", "b@example.com", "c@example.com"]
    assert names(viewer_client.get(LIST, {"sort": "-userName"})) == [
        "c@example.com",
        "b@example.com",
        "a@example.com",
    ]
    # Display names sort case-insensitively.
    assert names(viewer_client.get(LIST, {"sort": "displayName"})) == [
        "b@example.com",
        "c@example.com",
        "a@example.com",
    ]
    html = viewer_client.get(LIST, {"sort": "displayName"}).content.decode()
    assert 'aria-sort="ascending"' in html
    assert "sort=-displayName" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sort", ["password", "-attributes", "user_name; DROP TABLE x", "__class__"]
)
def test_unknown_sort_keys_fall_back_to_the_default(viewer_client, sort):
    ProvisionedUserFactory(userName="b@example.com")
    ProvisionedUserFactory(userName="a@example.com")
    response = viewer_client.get(LIST, {"sort": sort})
    assert response.status_code == 200
    assert names(response) == ["a@example.com", "b@example.com"]
    assert response.context["sort"].param == "userName"


# --- Pagination --------------------------------------------------------------------


def bulk_users(n: int, prefix: str = "u") -> None:
    now = timezone.now()
    User.objects.bulk_create(
        User(user_name=f"{prefix}{i:04d}@example.com", created=now, last_modified=now)
        for i in range(n)
    )


@pytest.mark.django_db
def test_keyset_pages_walk_forward_and_back(viewer_client):
    bulk_users(120)
    first = viewer_client.get(LIST)
    assert names(first)[0] == "u0000@example.com" and len(names(first)) == 50
    assert first.context["count"] == 120
    after = first.context["page"].next_after
    second = viewer_client.get(LIST, {"after": str(after)}, **HTMX)
    assert names(second)[0] == "u0050@example.com"
    third = viewer_client.get(LIST, {"after": str(second.context["page"].next_after)})
    assert names(third) == [f"u{i:04d}@example.com" for i in range(100, 120)]
    assert third.context["page"].next_after is None
    back = viewer_client.get(LIST, {"before": str(third.context["page"].previous_before)})
    assert names(back) == names(second)
    back_to_start = viewer_client.get(LIST, {"before": str(back.context["page"].previous_before)})
    assert names(back_to_start) == names(first)
    assert back_to_start.context["page"].previous_before is None


@pytest.mark.django_db
def test_descending_pages_and_bad_cursors(viewer_client):
    bulk_users(60)
    first = viewer_client.get(LIST, {"sort": "-userName"})
    assert names(first)[0] == "u0059@example.com"
    second = viewer_client.get(
        LIST, {"sort": "-userName", "after": str(first.context["page"].next_after)}
    )
    assert names(second) == [f"u{i:04d}@example.com" for i in range(9, -1, -1)]
    for bad in ("nope", str(uuid.uuid4())):
        response = viewer_client.get(LIST, {"after": bad})
        assert response.status_code == 200 and names(response)[0] == "u0000@example.com"


@pytest.mark.django_db
def test_page_cost_is_constant_and_count_is_capped(viewer_client, settings, monkeypatch):
    from console import listing

    monkeypatch.setattr(listing, "COUNT_CAP", 100)
    monkeypatch.setattr(listing, "SEARCH_COUNT_CAP", 60)
    bulk_users(150)
    # Unfiltered: the exact total, from the users counter.
    everyone = viewer_client.get(LIST)
    assert not everyone.context["capped"] and everyone.context["count"] == 150
    assert b"150 users" in everyone.content
    # A filter counts up to COUNT_CAP, a substring search up to SEARCH_COUNT_CAP.
    filtered = viewer_client.get(LIST, {"active": "yes"})
    assert filtered.context["capped"] and filtered.context["count"] == 100
    searched = viewer_client.get(LIST, {"q": "example"})
    assert searched.context["capped"] and searched.context["count"] == 60
    assert "More than 60 users matching" in searched.content.decode()
    # Another field's error does not change how the applied search is counted.
    with_error = viewer_client.get(LIST, {"q": "example", "group": "No Such Team"})
    assert with_error.context["capped"] and with_error.context["count"] == 60
    first = everyone
    cursor = first.context["page"].next_after
    with CaptureQueriesContext(connection) as deep:
        viewer_client.get(LIST, {"after": str(cursor)}, **HTMX)
    sql = " ".join(q["sql"] for q in deep.captured_queries).upper()
    assert "OFFSET" not in sql
    with CaptureQueriesContext(connection) as shallow:
        viewer_client.get(LIST, **HTMX)
    # The cursor costs one primary-key lookup; nothing grows with the page number.
    assert len(deep.captured_queries) == len(shallow.captured_queries) + 1


# --- Detail ------------------------------------------------------------------------


@pytest.mark.django_db
def test_detail_shows_attributes_extension_groups_and_json(viewer_client, idp):
    user = full_user(client=idp)
    team = ProvisionedGroupFactory(displayName="Platform", members=[user])
    ProvisionedGroupFactory(displayName="Engineering", members=[team])
    html = viewer_client.get(detail(user)).content.decode()
    for text in (
        "ana.silva@example.com",
        "ext-1001",
        "Staff engineer",
        "Ana",
        "+1 555 0100",
        "Springfield",
        "Engineering",  # enterprise department and the parent group
        "1001",
        "okta-prod",
        "Platform",
        "indirect (nested)",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "&quot;userName&quot;: &quot;ana.silva@example.com&quot;",
    ):
        assert text in html, text


@pytest.mark.django_db
def test_untrusted_strings_are_escaped_everywhere(viewer_client):
    user = ProvisionedUserFactory(
        userName="xss@example.com",
        displayName=XSS,
        title=XSS,
        emails=[{"value": "xss@example.com", "type": XSS}],
    )
    ProvisionedGroupFactory(displayName=XSS, members=[user])
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    for response in (
        viewer_client.get(LIST),
        viewer_client.get(LIST, {"q": XSS}, **HTMX),
        viewer_client.get(detail(user)),
    ):
        html = response.content.decode()
        assert XSS not in html
        assert escaped in html


# --- Actions -----------------------------------------------------------------------


@pytest.mark.django_db
def test_viewer_sees_no_actions_and_cannot_post(viewer_client):
    user = ProvisionedUserFactory(userName="a@example.com", active=True)
    html = viewer_client.get(detail(user)).content.decode()
    assert "Deactivate" not in html and "Reactivate" not in html
    for name in ("user_deactivate", "user_reactivate", "user_deactivate_confirm"):
        url = reverse(f"console:{name}", args=[user.pk])
        assert viewer_client.post(url, {"version": user.version}).status_code == 403
    user.refresh_from_db()
    assert user.active is True


@pytest.mark.django_db
def test_approver_deactivates_after_confirming_then_reactivates(approver_client):
    user = ProvisionedUserFactory(userName="a@example.com", active=True)
    html = approver_client.get(detail(user)).content.decode()
    confirm_url = reverse("console:user_deactivate_confirm", args=[user.pk])
    assert f'href="{confirm_url}"' in html

    token = csrf_token(approver_client, confirm_url)
    confirm = approver_client.get(confirm_url).content.decode()
    assert 'method="post"' in confirm and "csrfmiddlewaretoken" in confirm

    response = approver_client.post(
        reverse("console:user_deactivate", args=[user.pk]),
        {"version": user.version, "csrfmiddlewaretoken": token},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == detail(user)
    assert "a@example.com deactivated." in response.content.decode()
    user.refresh_from_db()
    assert user.active is False and user.version == 2

    response = approver_client.post(
        reverse("console:user_reactivate", args=[user.pk]),
        {"version": user.version, "csrfmiddlewaretoken": token},
        follow=True,
    )
    assert "a@example.com reactivated." in response.content.decode()
    user.refresh_from_db()
    assert user.active is True


@pytest.mark.django_db
def test_actions_need_csrf_and_post(approver_client):
    user = ProvisionedUserFactory(userName="a@example.com", active=True)
    url = reverse("console:user_deactivate", args=[user.pk])
    assert approver_client.post(url, {"version": user.version}).status_code == 403
    assert approver_client.get(url).status_code == 405
    assert (
        approver_client.get(reverse("console:user_reactivate", args=[user.pk])).status_code == 405
    )
    user.refresh_from_db()
    assert user.active is True


@pytest.mark.django_db
def test_stale_version_is_refused_with_a_message(approver_client):
    user = ProvisionedUserFactory(userName="a@example.com", active=True)
    token = csrf_token(approver_client, detail(user))
    response = approver_client.post(
        reverse("console:user_deactivate", args=[user.pk]),
        {"version": user.version + 5, "csrfmiddlewaretoken": token},
        follow=True,
    )
    assert "changed while you were looking at it" in response.content.decode()
    user.refresh_from_db()
    assert user.active is True


@pytest.mark.django_db
def test_action_on_missing_user_is_404(approver_client):
    token = csrf_token(approver_client, LIST)
    url = reverse("console:user_reactivate", args=[uuid.uuid4()])
    assert approver_client.post(url, {"csrfmiddlewaretoken": token}).status_code == 404


def test_anonymous_post_goes_to_login():
    response = Client().post(reverse("console:user_deactivate", args=[uuid.uuid4()]))
    assert response.status_code == 302


# --- Held identity provider changes ----------------------------------------------------


@pytest.fixture
def scim(db) -> ScimApi:
    _client, token = scim_client_create(name="entra-prod", role="provisioner")
    PolicyRule.objects.update_or_create(
        name="Hold user deletions",
        defaults={"kind": "delete_user", "action": "hold", "enabled": True},
    )
    return ScimApi(token)


def held_delete(scim, user_name: str) -> tuple[User, PendingOperation]:
    user = scim.create_user(user_name)
    assert scim.delete(f"/Users/{user['id']}").status_code == 202
    return User.objects.get(pk=user["id"]), PendingOperation.objects.get(resource_id=user["id"])


def held_section(response) -> str:
    html = response.content.decode()
    start = html.find('id="held-changes"')
    return html[start : html.index("</section>", start)] if start >= 0 else ""


@pytest.mark.django_db
def test_a_held_delete_shows_on_the_user_page_as_waiting(scim, viewer_client):
    user, pending = held_delete(scim, "held@example.com")
    response = viewer_client.get(detail(user))
    assert response.context["held"].items == [pending]
    section = held_section(response)
    assert "Waiting for approval" in section
    assert f'href="{reverse("console:pending_detail", args=[pending.pk])}"' in section
    assert "believes this was applied" not in section


@pytest.mark.django_db
def test_a_rejected_delete_shows_the_drift_and_the_decision(scim, viewer_client):
    user, pending = held_delete(scim, "kept@example.com")
    approver = OperatorFactory(role="approver")
    oversight.pending_reject(pending_id=pending.pk, operator=approver, reason="Still employed")
    section = held_section(viewer_client.get(detail(user)))
    assert "The identity provider believes this was applied." in section
    assert "Waiting for approval" not in section
    assert f'href="{reverse("console:pending_detail", args=[pending.pk])}"' in section
    assert "See the decision" in section and approver.username in section
    assert "Still employed" in section and "never applied" in section


@pytest.mark.django_db
def test_an_expired_delete_shows_the_drift(scim, viewer_client):
    user, pending = held_delete(scim, "stale@example.com")
    assert oversight.pending_expire_stale(now=pending.expires_at + timedelta(seconds=1)) == 1
    section = held_section(viewer_client.get(detail(user)))
    assert "Expired" in section
    assert "The identity provider believes this was applied." in section
    assert reverse("console:pending_detail", args=[pending.pk]) in section


@pytest.mark.django_db
def test_another_users_held_change_is_not_shown(scim, viewer_client):
    held_delete(scim, "other@example.com")
    bystander = ProvisionedUserFactory(userName="bystander@example.com")
    response = viewer_client.get(detail(bystander))
    assert response.context["held"].count == 0
    assert held_section(response) == ""


@pytest.mark.django_db
def test_the_held_resource_label_is_escaped(scim, viewer_client):
    user, _ = held_delete(scim, XSS)
    response = viewer_client.get(detail(user))
    assert XSS not in response.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in held_section(response)


@pytest.mark.django_db
def test_held_changes_are_newest_first_and_counted_past_the_limit(scim):
    user, first = held_delete(scim, "many@example.com")
    later = [
        PendingOperation.objects.create(
            **{
                field: getattr(first, field)
                for field in ("client", "resource_type", "resource_id", "action", "base_version")
            },
            created_at=first.created_at + timedelta(minutes=i),
            expires_at=first.expires_at,
        )
        for i in (1, 2)
    ]
    held = held_idp_changes("User", user.pk, limit=2)
    assert held.items == [later[1], later[0]] and held.count == 3
    assert held_idp_changes("User", user.pk).count == 3
