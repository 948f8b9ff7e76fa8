"""Audit log: search (every filter), htmx results, keyset pages, exports, change set diffs, history."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.access.clients import scim_client_create, scim_client_set_role
from provisioning.audit.context import change_set_scope
from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet
from provisioning.directory import services
from provisioning.scim.patch import PATCH_OP, parse_patch_request
from tests.factories import OperatorFactory, ProvisionedGroupFactory, ProvisionedUserFactory

from .conftest import XSS

pytestmark = pytest.mark.django_db

LIST = reverse("console:audit_list")
CSV = reverse("console:audit_export_csv")
JSONL = reverse("console:audit_export_jsonl")
HTMX = {"HTTP_HX_REQUEST": "true"}


def patch(user, client, **values):
    operations = parse_patch_request(
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": k, "value": v} for k, v in values.items()],
        }
    )
    return services.user_patch(user_id=user.pk, operations=operations, client=client)


def group_add(group, client, *members):
    operations = parse_patch_request(
        {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": str(m.pk)} for m in members]}
            ],
        }
    )
    return services.group_patch(group_id=group.pk, operations=operations, client=client)


def as_client(client):
    """What the SCIM middleware does for a request: one scope, attributed to the client."""
    return change_set_scope(client=client, source="scim")


def object_reprs(response) -> list[str]:
    return [row["object"] for row in response.context["rows"]]


# --- Permissions and the page ---------------------------------------------------------


def test_anonymous_and_roleless_are_refused(client, django_user_model):
    assert client.get(LIST).status_code == 302
    client.force_login(django_user_model.objects.create_user(username="nobody"))
    assert client.get(LIST).status_code == 403
    assert client.get(CSV).status_code == 403


def test_full_page_then_htmx_partial(viewer_client, idp):
    ProvisionedUserFactory(userName="ana@example.com", client=idp)
    ProvisionedUserFactory(userName="ben@example.com", client=idp)
    page = viewer_client.get(LIST)
    assert page.status_code == 200 and b"<html" in page.content
    assert b'id="filters"' in page.content and b'id="results"' in page.content
    assert "HX-Request" in page["Vary"]
    # The text box waits for a pause in typing; selects refresh on change.
    assert b'hx-trigger="input changed delay:400ms, search"' in page.content

    partial = viewer_client.get(LIST, {"q": "ana@"}, **HTMX)
    assert partial.status_code == 200 and "HX-Request" in partial["Vary"]
    assert partial.content.lstrip().startswith(b'<section id="results"')
    assert b"<html" not in partial.content and b'id="filters"' not in partial.content
    assert object_reprs(partial) == ["ana@example.com"]


# --- Filters -------------------------------------------------------------------------


def test_filters_by_client_resource_action_actor_and_text(viewer_client, idp):
    other, _ = scim_client_create(name="google", role="provisioner")
    with as_client(idp):
        ana = ProvisionedUserFactory(userName="ana@example.com", client=idp, title="Engineer")
    with as_client(other):
        ProvisionedUserFactory(userName="ben@example.com", client=other)
    with as_client(idp):
        patch(ana, idp, title="Principal Engineer")
    admin = OperatorFactory(role="administrator")
    scim_client_set_role(client=other, role="read-only", operator=admin)

    def reprs(**query):
        response = viewer_client.get(LIST, query)
        assert response.status_code == 200
        return object_reprs(response)

    assert reprs(client=other.pk) == ["ben@example.com"]
    assert reprs(resource_type="User", resource="ana@example.com") == ["ana@example.com"] * 2
    assert reprs(resource=str(ana.pk), action="update") == ["ana@example.com"]
    assert reprs(resource=str(ana.pk), action="create") == ["ana@example.com"]
    assert reprs(q="Principal") == ["ana@example.com"]
    assert reprs(actor=admin.username.upper()) == ["google"]
    assert reprs(actor="no-such-operator") == []
    assert reprs(resource_type="access.scimclient", resource="google") == ["google", "google"]


def test_time_range_and_invalid_values(viewer_client, idp):
    ProvisionedUserFactory(userName="ana@example.com", client=idp)
    assert object_reprs(viewer_client.get(LIST, {"since": "2000-01-01T00:00"})) != []
    assert object_reprs(viewer_client.get(LIST, {"until": "2000-01-01T00:00"})) == []
    response = viewer_client.get(LIST, {"since": "yesterday-ish", "action": "explode"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid date/time." in html and "Select a valid choice" in html


def test_keyset_pages_newest_first(viewer_client):
    for i in range(55):
        ProvisionedUserFactory(userName=f"u{i:02d}@example.com")
    first = viewer_client.get(LIST, {"resource_type": "User"})
    names = object_reprs(first)
    assert len(names) == 50 and names[0] == "u54@example.com"
    assert first.context["count"] == 55
    after = first.context["page"].next_after
    second = viewer_client.get(LIST, {"resource_type": "User", "after": after}, **HTMX)
    assert object_reprs(second) == [f"u{i:02d}@example.com" for i in range(4, -1, -1)]
    assert b'rel="prev"' in second.content


def test_escaping_of_untrusted_values(viewer_client, idp):
    ProvisionedUserFactory(userName="mallory@example.com", client=idp, displayName=XSS)
    ProvisionedUserFactory(userName=XSS, client=idp)
    html = viewer_client.get(LIST).content.decode()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    html = viewer_client.get(LIST, {"q": XSS}, **HTMX).content.decode()
    assert XSS not in html


# --- Export ---------------------------------------------------------------------------


def test_viewer_may_not_export(viewer_client):
    assert viewer_client.get(CSV).status_code == 403
    assert viewer_client.get(JSONL).status_code == 403
    assert b"Export CSV" not in viewer_client.get(LIST).content


def test_export_streams_the_current_filter(approver_client, idp):
    with as_client(idp):
        ProvisionedUserFactory(userName="ana@example.com", client=idp)
    with as_client(idp):
        ProvisionedUserFactory(userName="=cmd|calc@example.com", client=idp)
    with as_client(idp):
        ProvisionedGroupFactory(displayName="Team", client=idp)
    page = approver_client.get(LIST, {"resource_type": "User", "after": "1"}).content.decode()
    assert f'href="{CSV}?resource_type=User"' in page  # the cursor is not part of the filter

    response = approver_client.get(CSV, {"resource_type": "User"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["object_repr"] for r in rows) == ["'=cmd|calc@example.com", "ana@example.com"]
    assert {r["model"] for r in rows} == {"user"} and all(
        r["scim_client"] == "okta-prod" for r in rows
    )

    response = approver_client.get(JSONL, {"q": "ana@"})
    assert isinstance(response, StreamingHttpResponse)
    lines = [
        json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
    ]
    assert [line["object_repr"] for line in lines] == ["ana@example.com"]
    # A directory change is exported once, as its change record.
    record = ChangeRecord.objects.get(resource_name="ana@example.com")
    assert (lines[0]["kind"], lines[0]["id"]) == ("change_record", record.pk)
    assert lines[0]["changes"]["userName"] == [None, "ana@example.com"]
    assert not AuditEntry.objects.filter(object_repr="ana@example.com").exists()


def test_export_refuses_an_invalid_filter(approver_client):
    response = approver_client.get(CSV, {"since": "not a date"})
    assert response.status_code == 400 and not isinstance(response, StreamingHttpResponse)


# --- Change set detail ------------------------------------------------------------------


def test_change_set_shows_who_the_request_and_an_attribute_diff(viewer_client, idp):
    ana = ProvisionedUserFactory(
        userName="ana@example.com", client=idp, title="Engineer", displayName="Ana"
    )
    patch(ana, idp, title="Principal", displayName=XSS)
    record = ChangeRecord.objects.filter(resource_id=ana.pk, action="patch").get()
    url = reverse("console:change_set_detail", args=[record.change_set_id])
    response = viewer_client.get(url)
    assert response.status_code == 200
    [item] = response.context["records"]
    diff = {row.name: (row.kind, row.before, row.after) for row in item["diff"]}
    assert diff["title"] == ("changed", "Engineer", "Principal")
    assert diff["displayName"] == ("changed", "Ana", XSS)
    assert diff["meta.version"] == ("changed", "1", "2")
    html = response.content.decode()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert reverse("console:user_detail", args=[ana.pk]) in html
    assert "okta-prod" in html and str(record.change_set.correlation_id) in html


def test_change_set_membership_delta_links_members(viewer_client, idp):
    ana = ProvisionedUserFactory(userName="ana@example.com", client=idp)
    ben = ProvisionedUserFactory(userName="ben@example.com", client=idp)
    team = ProvisionedGroupFactory(displayName="Team", client=idp)
    group_add(team, idp, ana, ben)
    record = ChangeRecord.objects.get(resource_id=team.pk, action="patch")
    response = viewer_client.get(reverse("console:change_set_detail", args=[record.change_set_id]))
    [item] = response.context["records"]
    assert {m["value"] for m in item["added"]} == {str(ana.pk), str(ben.pk)}
    assert all(m["href"] for m in item["added"]) and item["removed"] == []
    html = response.content.decode()
    assert "Members added" in html
    assert reverse("console:user_detail", args=[ben.pk]) in html
    assert reverse("console:group_detail", args=[team.pk]) in html


def test_member_deltas_list_the_first_members_and_count_them_all(viewer_client, idp, monkeypatch):
    from console import change_records

    monkeypatch.setattr(change_records, "MEMBER_LIMIT", 2)
    people = [ProvisionedUserFactory(userName=f"m{i}@example.com", client=idp) for i in range(3)]
    team = ProvisionedGroupFactory(displayName="Team", client=idp)
    group_add(team, idp, *people)
    record = ChangeRecord.objects.get(resource_id=team.pk, action="patch")
    response = viewer_client.get(reverse("console:change_set_detail", args=[record.change_set_id]))
    [item] = response.context["records"]
    assert len(item["added"]) == 2 and item["added_count"] == 3
    # Membership deltas often carry no display: the current userName is shown.
    assert {m["display"] for m in item["added"]} <= {p.user_name for p in people}
    assert "2 of 3 shown" in response.content.decode()


def test_deleted_resources_are_not_links(viewer_client, idp):
    gone = ProvisionedUserFactory(userName="gone@example.com", client=idp)
    services.user_delete(user_id=gone.pk, client=idp)
    record = ChangeRecord.objects.get(resource_id=gone.pk, action="delete")
    response = viewer_client.get(reverse("console:change_set_detail", args=[record.change_set_id]))
    [item] = response.context["records"]
    assert item["href"] is None
    assert {row.kind for row in item["diff"]} == {"removed"}
    assert reverse("console:user_detail", args=[gone.pk]) not in response.content.decode()


def test_console_change_set_shows_the_entry_diff(viewer_client):
    admin = OperatorFactory(role="administrator")
    client, _ = scim_client_create(name="idp", role="provisioner", operator=admin)
    change_set = ChangeSet.objects.get(operator=admin)
    response = viewer_client.get(reverse("console:change_set_detail", args=[change_set.pk]))
    html = response.content.decode()
    assert admin.username in html and "Console action" in html
    models = {item["entry"].content_type.model for item in response.context["entries"]}
    assert models == {"scimclient", "scimtoken"}
    token_entry = next(
        i for i in response.context["entries"] if i["entry"].content_type.model == "scimtoken"
    )
    assert "digest" not in {row.name for row in token_entry["diff"]}
    assert reverse("console:client_detail", args=[client.pk]) in html


def test_unknown_change_set_is_404(viewer_client):
    assert viewer_client.get(reverse("console:change_set_detail", args=[999999])).status_code == 404


# --- History on user and group pages -------------------------------------------------------


def test_user_and_group_detail_show_their_history(viewer_client, idp):
    ana = ProvisionedUserFactory(userName="ana@example.com", client=idp, title="Engineer")
    patch(ana, idp, title="Principal")
    team = ProvisionedGroupFactory(displayName="Team", members=[ana], client=idp)
    response = viewer_client.get(reverse("console:user_detail", args=[ana.pk]))
    history = response.context["history"]
    assert [r.action for r in history] == ["patch", "create"]
    html = response.content.decode()
    assert reverse("console:change_set_detail", args=[history[0].change_set_id]) in html
    assert f"{LIST}?resource_type=User&amp;resource={ana.pk}" in html

    response = viewer_client.get(reverse("console:group_detail", args=[team.pk]))
    assert [r.action for r in response.context["history"]] == ["create"]
    assert "+1 member" in response.content.decode()
    # The members partial (htmx) does not carry the history.
    partial = viewer_client.get(reverse("console:group_detail", args=[team.pk]), **HTMX)
    assert b"history-heading" not in partial.content


def test_history_link_finds_the_resource_in_the_audit_log(viewer_client, idp):
    ana = ProvisionedUserFactory(userName="ana@example.com", client=idp)
    ProvisionedUserFactory(userName="ben@example.com", client=idp)
    response = viewer_client.get(LIST, {"resource_type": "User", "resource": str(ana.pk)})
    assert object_reprs(response) == ["ana@example.com"]
    assert response.context["rows"][0]["link"] == reverse("console:user_detail", args=[ana.pk])


def test_the_page_costs_the_same_queries_for_more_rows(viewer_client, idp):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(LIST, {"resource_type": "User"}).status_code == 200
        return len(captured)

    with as_client(idp):
        ProvisionedUserFactory(userName="first@example.com", client=idp)
    few = queries()
    for i in range(15):
        with as_client(idp):
            ProvisionedUserFactory(userName=f"u{i}@example.com", client=idp)
    assert queries() == few
