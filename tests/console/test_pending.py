"""Pending operations: the queue, the detail diff, approve/reject inline (htmx and plain),
re-apply after a conflict, bulk decisions, four eyes, and the held console deactivation."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.audit.models import ChangeSet
from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.directory.pipeline import OperationHeld
from provisioning.oversight.models import PendingOperation, PolicyRule
from provisioning.scim.patch import parse_patch_request
from tests.factories import (
    OperatorFactory,
    ProvisionedGroupFactory,
    ProvisionedUserFactory,
    ScimClientFactory,
)
from tests.scim.conftest import PATCH_SCHEMA, ScimApi

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db

LIST = reverse("console:pending_list")
HTMX = {"HTTP_HX_REQUEST": "true"}
DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


@pytest.fixture
def scim(db) -> ScimApi:
    return ScimApi(ScimClientFactory(name="entra-prod").raw_token)


def rule(kind: str, action: str = "hold", **extra) -> PolicyRule:
    return PolicyRule.objects.create(name=f"{action} {kind}", kind=kind, action=action, **extra)


def held_delete(scim, user_name: str = "held@example.com") -> tuple[dict, PendingOperation]:
    user = scim.create_user(user_name)
    response = scim.delete(f"/Users/{user['id']}")
    assert response.status_code == 202
    return user, PendingOperation.objects.get(resource_id=user["id"])


def url(name: str, pending) -> str:
    return reverse(f"console:{name}", args=[pending.pk])


@pytest.fixture
def second_approver_client(db) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(OperatorFactory(role="approver"))
    return client


def post(client: Client, path: str, data: dict | None = None, *, htmx: bool = False, page=LIST):
    token = csrf_token(client, page)
    headers = {**HTMX} if htmx else {}
    return client.post(path, {"csrfmiddlewaretoken": token, **(data or {})}, **headers)


# --- Queue -------------------------------------------------------------------------------


def test_the_queue_lists_held_operations_for_a_viewer_without_actions(scim, viewer_client):
    rule("delete_user")
    _, pending = held_delete(scim)

    response = viewer_client.get(LIST)

    assert response.status_code == 200
    assert [row["op"] for row in response.context["rows"]] == [pending]
    body = response.content.decode()
    assert "held@example.com" in body and url("pending_detail", pending) in body
    assert url("pending_approve", pending) not in body
    assert url("pending_reject", pending) not in body
    assert 'id="bulk"' not in body


def test_the_queue_offers_inline_decisions_to_an_approver(scim, approver_client):
    rule("delete_user")
    _, pending = held_delete(scim)

    body = approver_client.get(LIST).content.decode()

    assert f'hx-post="{url("pending_approve", pending)}"' in body
    assert f'action="{url("pending_reject", pending)}"' in body
    assert 'name="ids"' in body and 'form="bulk"' in body


def test_the_queue_filters_and_answers_htmx_with_the_results_only(scim, viewer_client):
    rule("delete_user")
    rule("deactivate_user")
    _, delete = held_delete(scim)
    user = scim.create_user("deact@example.com", active=True)
    assert scim.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 202
    patch = PendingOperation.objects.get(action="patch")

    def ops(**params):
        return [row["op"] for row in viewer_client.get(LIST, params).context["rows"]]

    assert ops() == [delete, patch]  # oldest first
    assert ops(action="delete") == [delete]
    assert ops(action="patch") == [patch]
    assert ops(resource_type="Group") == []
    assert ops(client=str(delete.client_id)) == [delete, patch]
    assert ops(status="rejected") == []

    partial = viewer_client.get(LIST, {"action": "patch"}, **HTMX)
    assert partial.status_code == 200
    assert partial.content.lstrip().startswith(b'<section id="results"')
    assert b"<html" not in partial.content
    assert "HX-Request" in partial["Vary"]


def test_an_invalid_filter_is_shown_not_a_500(viewer_client):
    response = viewer_client.get(LIST, {"status": "bogus", "client": "nope"})
    assert response.status_code == 200
    assert response.context["filter"].errors


def test_the_queue_pages_by_keyset(scim, viewer_client, monkeypatch):
    from console import listing

    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    rule("delete_user")
    held = [held_delete(scim, f"p{i}@example.com")[1] for i in range(5)]
    first = viewer_client.get(LIST).context
    assert [r["op"] for r in first["rows"]] == held[:2]
    second = viewer_client.get(LIST, {"after": str(first["page"].next_after)}).context
    assert [r["op"] for r in second["rows"]] == held[2:4]
    assert second["count"] == 5


def test_untrusted_strings_are_escaped(scim, viewer_client):
    rule("delete_user")
    user = scim.create_user(f"x{uuid.uuid4().hex[:4]}@example.com", displayName=XSS)
    scim.delete(f"/Users/{user['id']}")
    pending = PendingOperation.objects.get()
    PendingOperation.objects.filter(pk=pending.pk).update(resource_label=XSS)
    for page in (LIST, url("pending_detail", pending)):
        body = viewer_client.get(page).content.decode()
        assert XSS not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


# --- Detail ------------------------------------------------------------------------------


def test_detail_shows_current_state_next_to_the_proposed_change(scim, viewer_client):
    rule("attribute_change", attributes=["title"])
    user = scim.create_user("diff@example.com", title="Engineer", displayName="Dee")
    change = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "title", "value": "Director"}],
    }
    assert scim.patch(f"/Users/{user['id']}", change).status_code == 202
    pending = PendingOperation.objects.get()

    response = viewer_client.get(url("pending_detail", pending))

    assert response.status_code == 200
    rows = {row.name: row for row in response.context["diff"]}
    assert set(rows) == {"title"}
    assert (rows["title"].kind, rows["title"].before, rows["title"].after) == (
        "changed",
        "Engineer",
        "Director",
    )
    body = response.content.decode()
    assert "Director" in body and "hold attribute_change" in body
    assert response.context["drift"] == []


def test_detail_shows_drift_since_the_hold(scim, viewer_client):
    rule("delete_user")
    user, pending = held_delete(scim)
    scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Later"}],
        },
    )
    response = viewer_client.get(url("pending_detail", pending))
    assert response.context["version_changed"] is True
    assert [row.name for row in response.context["drift"]] == ["displayName"]
    # A delete proposes nothing: every current attribute is shown as removed.
    assert {row.kind for row in response.context["diff"]} == {"removed"}


def test_detail_shows_membership_additions_and_removals(scim, viewer_client):
    rule("attribute_change", attributes=["members"])
    a, b = (
        ProvisionedUserFactory(userName="a@example.com"),
        ProvisionedUserFactory(userName="b@example.com"),
    )
    group = scim.create_group("Admins", members=[{"value": str(a.pk)}])
    body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": str(b.pk)}]},
            {"op": "remove", "path": f'members[value eq "{a.pk}"]'},
        ],
    }
    assert scim.patch(f"/Groups/{group['id']}", body).status_code == 202
    pending = PendingOperation.objects.get()

    response = viewer_client.get(url("pending_detail", pending))

    assert [m["value"] for m in response.context["added"]] == [str(b.pk)]
    assert [m["value"] for m in response.context["removed"]] == [str(a.pk)]
    assert response.context["added"][0]["href"] == reverse("console:user_detail", args=[b.pk])
    assert b"Members added" in response.content and b"Members removed" in response.content


def test_unknown_operation_is_404(viewer_client):
    assert (
        viewer_client.get(reverse("console:pending_detail", args=[uuid.uuid4()])).status_code == 404
    )


# --- Approve and reject ------------------------------------------------------------------


def test_approving_inline_swaps_the_row_and_deletes_the_user(
    scim, approver_client, approver, django_capture_on_commit_callbacks
):
    rule("delete_user")
    user, pending = held_delete(scim)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(approver_client, url("pending_approve", pending), htmx=True)

    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith(f'<tr id="pending-{pending.pk}"')
    # Tests run in one transaction: the apply task runs after the response, not inside it.
    assert "Approved" in body and "<html" not in body
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    assert pending.decided_by == approver
    assert scim.get(f"/Users/{user['id']}").status_code == 404
    # The console action is its own change set, attributed to the approver; applying
    # the operation is another, attributed to the approver and the client that asked.
    console = ChangeSet.objects.filter(source="console")
    decision = console.get(request__console__action="pending.approve")
    applied = console.get(request__pending_operation=str(pending.pk))
    assert decision.operator == approver
    assert decision.request["console"] == {"action": "pending.approve", "pending": str(pending.pk)}
    assert applied.operator == approver and applied.scim_client == pending.client
    assert applied.request == {"pending_operation": str(pending.pk)}
    assert applied.records.get().action == "delete"


def test_approving_without_javascript_redirects_back_with_a_message(
    scim, approver_client, django_capture_on_commit_callbacks
):
    rule("delete_user")
    _, pending = held_delete(scim)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(approver_client, url("pending_approve", pending), {"next": LIST})
    assert response.status_code == 302 and response["Location"] == LIST
    page = approver_client.get(LIST)
    assert "Approved" in page.content.decode()
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED


def test_an_offsite_next_is_ignored(scim, approver_client):
    rule("delete_user")
    _, pending = held_delete(scim)
    response = post(
        approver_client,
        url("pending_reject", pending),
        {"reason": "no", "next": "https://evil.example/"},
    )
    assert response["Location"] == url("pending_detail", pending)


def test_rejecting_needs_a_reason(scim, approver_client, approver):
    rule("delete_user")
    user, pending = held_delete(scim)

    refused = post(approver_client, url("pending_reject", pending), {"reason": "  "}, htmx=True)
    assert refused.status_code == 400
    assert refused["X-Console-Fragment"] == "row"
    assert "Give a reason" in refused.content.decode()
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.PENDING

    done = post(
        approver_client, url("pending_reject", pending), {"reason": "HR says no"}, htmx=True
    )
    assert done.status_code == 200 and "Rejected" in done.content.decode()
    pending.refresh_from_db()
    assert (pending.status, pending.decision_reason, pending.decided_by) == (
        "rejected",
        "HR says no",
        approver,
    )
    assert scim.get(f"/Users/{user['id']}").status_code == 200


def test_an_illegal_transition_is_a_400_not_a_500(scim, approver_client):
    rule("delete_user")
    _, pending = held_delete(scim)
    post(approver_client, url("pending_reject", pending), {"reason": "no"})
    response = post(approver_client, url("pending_approve", pending), htmx=True)
    assert response.status_code == 400
    assert "rejected" in response.content.decode().lower()


def test_the_viewer_cannot_decide(scim, viewer_client):
    rule("delete_user")
    _, pending = held_delete(scim)
    for name in ("pending_approve", "pending_reject", "pending_reapply"):
        assert viewer_client.post(url(name, pending), {"reason": "x"}).status_code == 403
    assert viewer_client.get(reverse("console:pending_bulk")).status_code == 403
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.PENDING


def test_two_approvers(
    scim, approver_client, second_approver_client, django_capture_on_commit_callbacks
):
    rule("delete_user", two_approvers=True)
    user, pending = held_delete(scim)

    first = post(approver_client, url("pending_approve", pending), htmx=True)
    assert first.status_code == 200 and "second approver" in first.content.decode()
    assert "1 of 2 approvals" in first.content.decode()
    again = post(approver_client, url("pending_approve", pending), htmx=True)
    assert again.status_code == 400  # the same approver twice
    with django_capture_on_commit_callbacks(execute=True):
        second = post(second_approver_client, url("pending_approve", pending), htmx=True)
    assert second.status_code == 200 and "applied" in second.content.decode()
    assert not User.objects.filter(pk=user["id"]).exists()


def test_a_conflict_is_reported_and_reapplied_only_deliberately(
    scim, approver_client, django_capture_on_commit_callbacks
):
    rule("deactivate_user")
    user = scim.create_user("conflict@example.com", active=True)
    assert scim.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 202
    pending = PendingOperation.objects.get()
    scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "displayName", "value": "New"}],
        },
    )

    with django_capture_on_commit_callbacks(execute=True):
        post(approver_client, url("pending_approve", pending), htmx=True)
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.CONFLICT
    # Approving again is refused; the row says why and links the conflict.
    response = post(approver_client, url("pending_approve", pending), htmx=True)
    assert response.status_code == 400
    assert response["X-Console-Fragment"] == "row"
    assert "Review conflict" in response.content.decode()

    detail = approver_client.get(url("pending_detail", pending)).content.decode()
    assert "Re-apply anyway" in detail and "Conflict" in detail

    unconfirmed = post(approver_client, url("pending_reapply", pending))
    assert unconfirmed.status_code == 302
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.CONFLICT

    with django_capture_on_commit_callbacks(execute=True):
        post(approver_client, url("pending_reapply", pending), {"confirm": "yes"})
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED and pending.force
    assert scim.read(f"/Users/{user['id']}")["active"] is False


def test_reapplying_without_confirmation_is_a_400_for_htmx(scim, approver_client):
    rule("delete_user")
    _, pending = held_delete(scim)
    response = post(approver_client, url("pending_reapply", pending), htmx=True)
    assert response.status_code == 400


# --- Four eyes and the console's own held changes -----------------------------------------


def test_a_held_console_deactivation_links_the_pending_operation(
    approver_client, approver, second_approver_client, django_capture_on_commit_callbacks
):
    rule("deactivate_user", applies_to_console=True)
    user = ProvisionedUserFactory(userName="ops@example.com", active=True)
    detail = reverse("console:user_detail", args=[user.pk])

    response = post(
        approver_client,
        reverse("console:user_deactivate", args=[user.pk]),
        {"version": str(user.version)},
        page=detail,
    )

    assert response.status_code == 302
    pending = PendingOperation.objects.get()
    assert pending.operator == approver and pending.client is None
    page = approver_client.get(detail).content.decode()
    assert f'<a href="{url("pending_detail", pending)}">pending operation' in page
    user.refresh_from_db()
    assert user.active is True

    # Four eyes: the operator who asked cannot approve; the page says so and offers no button.
    assert (
        "You initiated this" in approver_client.get(url("pending_detail", pending)).content.decode()
    )
    refused = post(approver_client, url("pending_approve", pending), htmx=True)
    assert refused.status_code == 403
    assert "another approver" in refused.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        post(second_approver_client, url("pending_approve", pending))
    user.refresh_from_db()
    assert user.active is False


def test_a_console_deactivation_is_audited_as_the_operator(approver_client, approver):
    user = ProvisionedUserFactory(userName="plain@example.com", active=True)
    detail = reverse("console:user_detail", args=[user.pk])
    post(
        approver_client,
        reverse("console:user_deactivate", args=[user.pk]),
        {"version": str(user.version)},
        page=detail,
    )
    user.refresh_from_db()
    assert user.active is False
    change_set = ChangeSet.objects.latest("id")
    assert (change_set.source, change_set.operator) == ("console", approver)
    assert change_set.request["console"]["action"] == "user.deactivation"


# --- Bulk --------------------------------------------------------------------------------


def test_bulk_approve_confirms_then_decides_each(
    scim, approver_client, approver, django_capture_on_commit_callbacks
):
    rule("delete_user")
    rule("deactivate_user", applies_to_console=True)
    (u1, p1), (u2, p2) = held_delete(scim, "b1@example.com"), held_delete(scim, "b2@example.com")
    mine = ProvisionedUserFactory(userName="mine@example.com", active=True)
    with pytest.raises(OperationHeld):
        directory.user_patch(
            user_id=mine.pk,
            operations=parse_patch_request(DEACTIVATE),
            client=None,
            operator=approver,
        )
    own = PendingOperation.objects.get(resource_id=mine.pk)
    ids = [str(p1.pk), str(p2.pk), str(own.pk)]

    confirm = approver_client.get(
        reverse("console:pending_bulk"), {"decision": "approve", "ids": ids}
    )
    assert confirm.status_code == 200
    assert [op.pk for op in confirm.context["operations"]] == [p1.pk, p2.pk, own.pk]
    assert "Approve 3 operations" in confirm.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        done = post(
            approver_client,
            reverse("console:pending_bulk"),
            {"decision": "approve", "ids": ids, "next": LIST},
        )
    assert done.status_code == 200
    assert (done.context["done"], done.context["failed"]) == (2, 1)
    outcomes = {item["op"].pk: item["outcome"] for item in done.context["results"]}
    assert outcomes[own.pk].status == 403
    assert not User.objects.filter(pk__in=[u1["id"], u2["id"]]).exists()
    own.refresh_from_db()
    assert own.status == PendingOperation.Status.PENDING


def test_bulk_reject_needs_a_reason_and_a_selection(scim, approver_client):
    rule("delete_user")
    _, pending = held_delete(scim)
    bulk = reverse("console:pending_bulk")

    assert approver_client.get(bulk, {"decision": "reject"}).status_code == 400
    assert (
        approver_client.get(bulk, {"decision": "reject", "ids": [str(pending.pk)]}).status_code
        == 200
    )
    refused = post(approver_client, bulk, {"decision": "reject", "ids": [str(pending.pk)]})
    assert refused.status_code == 400
    assert "Give a reason" in refused.content.decode()

    done = post(
        approver_client, bulk, {"decision": "reject", "ids": [str(pending.pk)], "reason": "no"}
    )
    assert done.status_code == 200 and done.context["done"] == 1
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.REJECTED


# --- Navigation and dashboard --------------------------------------------------------------


def test_navigation_and_dashboard_count_what_waits(scim, viewer_client, hold_and_flag):
    page = viewer_client.get(reverse("console:home")).content.decode()
    assert 'aria-label="1 waiting"' in page
    assert "Pending operations" in page and "Flagged changes" in page and "Quarantines" in page
    assert f'href="{LIST}">1</a>' in page
    assert f'href="{reverse("console:review_list")}">1</a>' in page


@pytest.fixture
def hold_and_flag(scim):
    rule("delete_user")
    rule("identity_change", action="flag")
    held_delete(scim)
    user = scim.create_user("rename@example.com")
    scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "userName", "value": "renamed@example.com"}],
        },
    )


def test_the_navigation_counts_cost_a_constant_number_of_queries(scim, viewer_client):
    rule("delete_user")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(reverse("console:group_list")).status_code == 200
        return len(captured)

    held_delete(scim, "q1@example.com")
    one = queries()
    for i in range(5):
        held_delete(scim, f"q{i + 2}@example.com")
    assert queries() == one


def test_group_list_still_renders_with_groups(viewer_client):
    ProvisionedGroupFactory(
        displayName="Team", members=[ProvisionedUserFactory(userName="t@example.com")]
    )
    assert viewer_client.get(reverse("console:group_list")).status_code == 200
