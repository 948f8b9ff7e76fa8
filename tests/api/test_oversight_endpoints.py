"""The management API's oversight endpoints: re-applying a conflicted operation, bulk
decisions, flagged reviews (accept, roll back with force), mass rollback with its preview
and background jobs, quarantines (release, discard). Each decides through the service
the console calls: four eyes, two approvers, conflicts and force as the console has them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from provisioning.audit.models import ChangeSet
from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.oversight import services
from provisioning.oversight.models import (
    CircuitBreaker,
    PendingOperation,
    PolicyRule,
    Quarantine,
    Review,
    RollbackJob,
)
from provisioning.scim.patch import PatchOperation
from tests.factories import OperatorFactory, ProvisionedUserFactory, ScimClientFactory
from tests.scim.conftest import PATCH_SCHEMA, ScimApi
from tests.signin.conftest import age_session

from .conftest import hold

pytestmark = pytest.mark.django_db

PENDING = "/api/v1/pending-operations"
BULK = f"{PENDING}/bulk"
REVIEWS = "/api/v1/reviews"
PREVIEW = "/api/v1/rollbacks/preview"
ROLLBACKS = "/api/v1/rollbacks"
JOBS = "/api/v1/rollback-jobs"
QUARANTINES = "/api/v1/quarantines"
DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


def rename(value: str) -> dict:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "displayName", "value": value}],
    }


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == code
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


# --- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def conflicted(scim) -> PendingOperation:
    """A held deletion, approved, that met a changed user: status conflict."""
    PolicyRule.objects.create(name="hold deletions", kind="delete_user", action="hold")
    user = scim.create_user("conflict@example.com")
    assert scim.delete(f"/Users/{user['id']}").status_code == 202
    assert scim.patch(f"/Users/{user['id']}", rename("Changed since")).status_code == 200
    pending = PendingOperation.objects.get(resource_id=user["id"])
    services.pending_approve(pending_id=pending.pk, operator=OperatorFactory(role="approver"))
    services.pending_apply(pending.pk)
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.CONFLICT
    return pending


@pytest.fixture
def flagged(scim):
    """A flagged SCIM deactivation: (user document, review)."""
    PolicyRule.objects.create(name="Review deactivations", kind="deactivate_user", action="flag")
    user = scim.create_user("flagged@example.com", active=True, displayName="Flo")
    assert scim.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 200
    return user, Review.objects.get()


@pytest.fixture
def quarantine(db):
    """A burst of 5 deactivations against a limit of 2: 2 applied, 3 held in quarantine."""
    CircuitBreaker.objects.update_or_create(
        pk=CircuitBreaker.objects.values_list("pk", flat=True).first() or 1,
        defaults={"max_operations": 2, "window_minutes": 10, "enabled": True},
    )
    scim = ScimApi(ScimClientFactory(name="burst-idp").raw_token)
    users = [scim.create_user(f"b{i}@example.com", active=True) for i in range(5)]
    # Established users: deactivating what the client created moments ago is churn.
    User.objects.update(created=timezone.now() - timedelta(days=1))
    statuses = [scim.patch(f"/Users/{u['id']}", DEACTIVATE).status_code for u in users]
    assert statuses == [200, 200, 202, 202, 202]
    return Quarantine.objects.get(status=Quarantine.Status.ACTIVE)


@pytest.fixture
def idp(db):
    return ScimClientFactory(name="okta-prod")


def deactivate(user, client) -> int:
    directory.user_patch(
        user_id=user.pk,
        operations=[PatchOperation(op="replace", path="active", value=False)],
        client=client,
    )
    return ChangeSet.objects.order_by("-id").first().pk


def provision(idp, count: int) -> list:
    users = [
        ProvisionedUserFactory(userName=f"u{i}@example.com", client=idp, active=True)
        for i in range(count)
    ]
    for user in users:
        deactivate(user, idp)
    return users


def time_range(idp) -> dict:
    now = timezone.now()
    return {
        "client": str(idp.pk),
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=5)).isoformat(),
    }


# --- Roles: every endpoint, every role -------------------------------------------------------------

READS = [
    (REVIEWS, None),
    (f"{REVIEWS}/{{review}}", None),
    (JOBS, None),
    (f"{JOBS}/00000000-0000-4000-8000-000000000404", 404),  # no such job
    (QUARANTINES, None),
    (f"{QUARANTINES}/{{quarantine}}", None),
]
CHANGES = [
    f"{PENDING}/{{pending}}/reapply",
    BULK,
    f"{REVIEWS}/{{review}}/accept",
    f"{REVIEWS}/{{review}}/rollback",
    ROLLBACKS,
    f"{QUARANTINES}/{{quarantine}}/release",
    f"{QUARANTINES}/{{quarantine}}/discard",
]


@pytest.fixture
def ids(flagged, quarantine, held) -> dict:
    return {"review": flagged[1].pk, "quarantine": quarantine.pk, "pending": held.pk}


@pytest.mark.parametrize("path,missing", READS)
def test_reads_need_a_signed_in_viewer(viewer_api, ids, path, missing):
    path = path.format(**ids)
    assert_error(APIClient().get(path), 401, "not_authenticated")
    assert viewer_api.get(path).status_code == (missing or 200)


@pytest.mark.parametrize("path", CHANGES)
def test_decisions_need_an_approver(viewer_api, ids, path):
    path = path.format(**ids)
    assert_error(post(APIClient(), path), 401, "not_authenticated")
    body = assert_error(post(viewer_api, path, etag="*"), 403, "permission_denied")
    assert "approver" in body["detail"]


def test_the_preview_needs_an_approver(viewer_api, approver_api, idp):
    assert_error(APIClient().get(PREVIEW, time_range(idp)), 401, "not_authenticated")
    assert_error(viewer_api.get(PREVIEW, time_range(idp)), 403, "permission_denied")
    assert approver_api.get(PREVIEW, time_range(idp)).status_code == 200


@override_settings(SCIMGATE_STEP_UP_MINUTES=15)
def test_session_decisions_need_the_consoles_step_up(held):
    session = APIClient()
    session.force_login(OperatorFactory(role="approver"))
    age_session(session, authenticated=20 * 60)
    response = post(session, BULK, {"decision": "approve", "ids": [str(held.pk)]})
    assert "step-up" in assert_error(response, 403, "permission_denied")["detail"]
    held.refresh_from_db()
    assert held.status == PendingOperation.Status.PENDING


# --- Re-apply after a conflict -----------------------------------------------------------------------


def test_reapply_applies_a_conflicted_operation_deliberately(approver_api, conflicted, scim):
    path = f"{PENDING}/{conflicted.pk}"
    detail = approver_api.get(path).json()
    assert detail["status"] == "conflict" and detail["version_changed"]
    tag = etag(approver_api, path)
    body = assert_error(post(approver_api, f"{path}/reapply", {"confirm": False}, etag=tag), 400, "invalid")
    assert "confirm" in body["fields"]
    assert_error(post(approver_api, f"{path}/reapply", {"confirm": True}), 428, "precondition_required")
    assert_error(
        post(approver_api, f"{path}/reapply", {"confirm": True}, etag='"stale"'), 412, "precondition_failed"
    )
    response = post(approver_api, f"{path}/reapply", {"confirm": True, "reason": "checked"}, etag=tag)
    assert response.status_code == 200, response.content
    assert response.json()["status"] in ("approved", "applied")
    conflicted.refresh_from_db()
    assert conflicted.force and conflicted.decided_by == approver_api.user
    assert conflicted.decision_reason == "checked"
    assert api_change_sets("pending.reapply").count() == 1


def test_reapply_keeps_four_eyes_and_needs_a_conflict(approver_api, conflicted, held):
    conflicted.operator = approver_api.user
    conflicted.save(update_fields=["operator"])
    path = f"{PENDING}/{conflicted.pk}"
    response = post(approver_api, f"{path}/reapply", {"confirm": True}, etag=etag(approver_api, path))
    assert "another approver" in assert_error(response, 403, "permission_denied")["detail"]
    waiting = f"{PENDING}/{held.pk}"
    response = post(approver_api, f"{waiting}/reapply", {"confirm": True}, etag=etag(approver_api, waiting))
    assert_error(response, 409, "conflict")


# --- Bulk decisions ------------------------------------------------------------------------------


def held_deletions(scim, count: int) -> list[PendingOperation]:
    hold("delete_user")
    operations = []
    for n in range(count):
        user = scim.create_user(f"bulk{n}@example.com")
        scim.delete(f"/Users/{user['id']}")
        operations.append(PendingOperation.objects.get(resource_id=user["id"]))
    return operations


def test_bulk_approval_reports_each_id_and_replays_on_retry(approver_api, scim):
    first, second, own = held_deletions(scim, 3)
    own.operator = approver_api.user
    own.save(update_fields=["operator"])
    unknown = uuid.uuid4()
    body = {"decision": "approve", "ids": [str(second.pk), str(unknown), str(first.pk), str(own.pk)]}
    response = post(approver_api, BULK, body, key="bulk-1")
    assert response.status_code == 200, response.content
    result = response.json()
    by_id = {row["id"]: row for row in result["results"]}
    assert [row["id"] for row in result["results"]] == body["ids"]  # the order sent
    assert by_id[str(first.pk)]["outcome"] == "decided"
    assert by_id[str(first.pk)]["operation_status"] in ("approved", "applied")
    assert by_id[str(unknown)] == {
        "id": str(unknown), "outcome": "not_found", "http_status": 404,
        "detail": "No such pending operation.", "operation_status": None,
    }
    assert by_id[str(own.pk)]["outcome"] == "refused" and by_id[str(own.pk)]["http_status"] == 403
    assert (result["done"], result["failed"], result["missing"]) == (2, 1, 1)
    # Each decision is its own audited change set, marked as part of a bulk call.
    assert api_change_sets("pending.approve").filter(request__api__bulk=True).count() == 2

    retry = post(approver_api, BULK, body, key="bulk-1")
    assert retry.json() == result and retry["Idempotent-Replayed"] == "true"
    assert api_change_sets("pending.approve").count() == 2
    own.refresh_from_db()
    assert own.status == PendingOperation.Status.PENDING


def test_bulk_rejection_needs_a_reason_and_an_approved_one_is_refused(approver_api, scim):
    first, second = held_deletions(scim, 2)
    ids = [str(first.pk), str(second.pk)]
    body = assert_error(post(approver_api, BULK, {"decision": "reject", "ids": ids}), 400, "invalid")
    assert "reason" in body["fields"]
    services.pending_reject(pending_id=first.pk, operator=OperatorFactory(role="approver"), reason="x")
    result = post(approver_api, BULK, {"decision": "reject", "ids": ids, "reason": "no"}).json()
    assert [row["http_status"] for row in result["results"]] == [409, 200]
    second.refresh_from_db()
    assert second.status == "rejected" and second.decision_reason == "no"


def test_bulk_takes_at_most_the_consoles_limit(approver_api):
    ids = [str(uuid.uuid4()) for _ in range(201)]
    body = assert_error(post(approver_api, BULK, {"decision": "approve", "ids": ids}), 400, "invalid")
    assert "ids" in body["fields"]
    assert_error(post(approver_api, BULK, {"decision": "approve", "ids": []}), 400, "invalid")


# --- Reviews --------------------------------------------------------------------------------------


def test_the_review_list_filters_like_the_console_and_pages(viewer_api, flagged, scim):
    user, review = flagged
    other = scim.create_user("second@example.com", active=True)
    scim.patch(f"/Users/{other['id']}", DEACTIVATE)
    later = Review.objects.exclude(pk=review.pk).get()

    first = viewer_api.get(REVIEWS, {"page_size": 1}).json()
    assert [row["id"] for row in first["results"]] == [review.pk]  # open: oldest first
    row = first["results"][0]
    assert row["record_count"] == 1 and row["first_record"]["resource_name"] == "flagged@example.com"
    assert row["change_set"]["client"]["name"] == "entra-prod"
    assert [r["id"] for r in viewer_api.get(first["next"]).json()["results"]] == [later.pk]

    assert viewer_api.get(REVIEWS, {"resource_type": "Group"}).json()["results"] == []
    client_id = row["change_set"]["client"]["id"]
    assert len(viewer_api.get(REVIEWS, {"client": client_id}).json()["results"]) == 2
    Review.objects.filter(pk=review.pk).update(status="accepted")
    assert [r["id"] for r in viewer_api.get(REVIEWS).json()["results"]] == [later.pk]
    assert [r["id"] for r in viewer_api.get(REVIEWS, {"status": "accepted"}).json()["results"]] == [review.pk]
    everything = viewer_api.get(REVIEWS, {"status": ""}).json()["results"]
    assert [r["id"] for r in everything] == [later.pk, review.pk]  # newest first
    body = assert_error(viewer_api.get(REVIEWS, {"status": "nope"}), 400, "invalid")
    assert set(body["fields"]) == {"status"}


def test_the_review_detail_shows_the_diff_and_the_rollback(viewer_api, flagged):
    user, review = flagged
    response = viewer_api.get(f"{REVIEWS}/{review.pk}")
    body = response.json()
    assert body["reasons"] and body["status"] == "open"
    [record] = body["records"]
    assert record["resource_id"] == user["id"] and record["action"] == "patch"
    assert {"attribute": "active", "kind": "changed", "before": "true", "after": "false"} in record["diff"]
    assert len(body["rollback_steps"]) == 1 and body["rollback_conflicts"] == 0
    assert body["rolled_back_by"] is None
    # RFC 9110 §13.1.2: If-None-Match with the current tag is 304.
    assert viewer_api.get(f"{REVIEWS}/{review.pk}", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert_error(viewer_api.get(f"{REVIEWS}/999999"), 404, "not_found")


def test_accepting_a_review(approver_api, flagged):
    _user, review = flagged
    path = f"{REVIEWS}/{review.pk}"
    assert_error(post(approver_api, f"{path}/accept"), 428, "precondition_required")
    assert_error(post(approver_api, f"{path}/accept", etag='"old"'), 412, "precondition_failed")
    tag = etag(approver_api, path)
    response = post(approver_api, f"{path}/accept", etag=tag, key="accept-1")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    assert response.json()["decided_by"] == approver_api.user.username
    retry = post(approver_api, f"{path}/accept", etag=tag, key="accept-1")
    assert retry.status_code == 200 and retry["Idempotent-Replayed"] == "true"
    assert api_change_sets("review.accept").count() == 1
    # Without the key, the same request meets a decided review.
    assert_error(post(approver_api, f"{path}/accept", etag=etag(approver_api, path)), 409, "conflict")


def test_a_review_of_your_own_change_is_for_another_approver(approver_api, flagged):
    _user, review = flagged
    ChangeSet.objects.filter(pk=review.change_set_id).update(operator=approver_api.user)
    path = f"{REVIEWS}/{review.pk}"
    for action in ("accept", "rollback"):
        response = post(approver_api, f"{path}/{action}", etag=etag(approver_api, path))
        assert_error(response, 403, "permission_denied")
    review.refresh_from_db()
    assert review.status == Review.Status.OPEN


def test_rolling_back_a_review_refuses_a_conflict_unless_forced(approver_api, flagged, scim):
    user, review = flagged
    assert scim.patch(f"/Users/{user['id']}", rename("Later")).status_code == 200
    path = f"{REVIEWS}/{review.pk}"
    detail = approver_api.get(path)
    assert detail.json()["rollback_conflicts"] == 1
    refused = post(approver_api, f"{path}/rollback", {"force": False}, etag=detail["ETag"])
    assert "force" in assert_error(refused, 409, "conflict")["detail"]
    assert User.objects.get(pk=user["id"]).active is False

    response = post(approver_api, f"{path}/rollback", {"force": True}, etag=detail["ETag"])
    assert response.status_code == 200, response.content
    [done] = response.json()["rolled_back"]
    assert response.json()["job"] is None
    assert done["change_set"] == review.change_set_id and done["forced"] is True
    assert User.objects.get(pk=user["id"]).active is True
    review.refresh_from_db()
    assert review.status == Review.Status.ROLLED_BACK
    after = approver_api.get(path).json()
    assert after["rolled_back_by"] == {"rollback": done["rollback"], "forced": True}
    assert api_change_sets("change_set.rollback").get().request["api"]["force"] is True


# --- Mass rollback and its jobs -------------------------------------------------------------------


def test_a_small_mass_rollback_previews_then_runs_in_the_request(approver_api, idp):
    users = provision(idp, 1)
    preview = approver_api.get(PREVIEW, time_range(idp))
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert len(body["change_sets"]) == 2 and body["runs_as_job"] is False  # create, deactivate
    assert body["client"]["name"] == "okta-prod" and body["conflicts"] == 0
    response = post(approver_api, ROLLBACKS, {**time_range(idp), "change_sets": body["change_sets"]})
    assert response.status_code == 200, response.content
    assert [row["change_set"] for row in response.json()["rolled_back"]] == body["change_sets"]
    assert not User.objects.filter(pk=users[0].pk).exists()  # its creation undone
    assert api_change_sets("change_sets.rollback").get().request["api"]["count"] == 2


def test_a_mass_rollback_confirms_exactly_what_was_previewed(approver_api, idp):
    provision(idp, 1)
    listed = approver_api.get(PREVIEW, time_range(idp)).json()["change_sets"]
    deactivate(ProvisionedUserFactory(userName="late@example.com", client=idp), idp)
    response = post(approver_api, ROLLBACKS, {**time_range(idp), "change_sets": listed})
    assert "preview" in assert_error(response, 409, "conflict")["detail"]
    assert not ChangeSet.objects.filter(request__rollback_of__isnull=False).exists()


def test_an_invalid_range_is_a_400_with_fields(approver_api, idp):
    now = timezone.now().isoformat()
    body = assert_error(approver_api.get(PREVIEW, {"client": str(idp.pk), "since": now, "until": now}), 400, "invalid")
    assert "until" in body["fields"]
    body = assert_error(approver_api.get(PREVIEW, {**time_range(idp), "client": str(uuid.uuid4())}), 400, "invalid")
    assert "client" in body["fields"]


def test_a_large_mass_rollback_becomes_a_job_whose_status_can_be_read(
    approver_api, viewer_api, idp, django_capture_on_commit_callbacks
):
    users = provision(idp, 4)  # 8 change sets: more than a request undoes
    listed = approver_api.get(PREVIEW, time_range(idp)).json()
    assert listed["runs_as_job"] is True
    confirm = {**time_range(idp), "change_sets": listed["change_sets"]}
    with django_capture_on_commit_callbacks(execute=True):  # the task runs in-process
        response = post(approver_api, ROLLBACKS, confirm, key="m-1")
    assert response.status_code == 202, response.content
    job = RollbackJob.objects.get()
    assert response["Location"] == f"{JOBS}/{job.pk}"
    assert response.json()["rolled_back"] == [] and response.json()["job"]["total"] == 8
    retry = post(approver_api, ROLLBACKS, confirm, key="m-1")
    assert retry.status_code == 202 and RollbackJob.objects.count() == 1

    status = viewer_api.get(response["Location"]).json()
    assert status["status"] == "done" and status["percent"] == 100
    assert [item["change_set"] for item in status["items"]] == listed["change_sets"]
    assert all(item["rollback"] for item in status["items"])
    assert not User.objects.filter(pk__in=[u.pk for u in users]).exists()
    assert [row["id"] for row in viewer_api.get(JOBS).json()["results"]] == [str(job.pk)]


# --- Quarantines ----------------------------------------------------------------------------------


def test_quarantines_list_and_detail(viewer_api, quarantine):
    rows = viewer_api.get(QUARANTINES, {"status": "active"}).json()["results"]
    assert [(row["id"], row["held"]) for row in rows] == [(str(quarantine.pk), 3)]
    assert viewer_api.get(QUARANTINES, {"status": "released"}).json()["results"] == []
    assert_error(viewer_api.get(QUARANTINES, {"status": "x"}), 400, "invalid")
    body = viewer_api.get(f"{QUARANTINES}/{quarantine.pk}").json()
    assert body["client"]["name"] == "burst-idp" and len(body["held_operations"]) == 3
    assert body["by_kind"] == [{"kind": "deactivation", "label": "Deactivations", "count": 3}]


def test_releasing_selected_operations_discards_the_rest(approver_api, quarantine):
    path = f"{QUARANTINES}/{quarantine.pk}"
    held = [op["id"] for op in approver_api.get(path).json()["held_operations"]]
    tag = etag(approver_api, path)
    assert_error(post(approver_api, f"{path}/release", {"pending": held[:1]}), 428, "precondition_required")
    body = assert_error(post(approver_api, f"{path}/release", {}, etag=tag), 400, "invalid")
    assert "pending" in body["fields"]
    stranger = str(uuid.uuid4())
    body = assert_error(post(approver_api, f"{path}/release", {"pending": [stranger]}, etag=tag), 400, "invalid")
    assert stranger in body["fields"]["pending"][0]

    response = post(approver_api, f"{path}/release", {"pending": held[:1]}, etag=tag, key="r-1")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["approved"] == held[:1] and result["discarded"] == held[1:]
    assert result["awaiting_second_approver"] == []
    assert result["quarantine"]["status"] == "released"
    assert post(approver_api, f"{path}/release", {"pending": held[:1]}, etag=tag, key="r-1").json() == result
    assert api_change_sets("quarantine.release").count() == 1
    assert_error(post(approver_api, f"{path}/release", {"all": True}, etag="*"), 409, "conflict")


def test_an_operation_held_since_the_read_is_never_released_unseen(approver_api, quarantine):
    path = f"{QUARANTINES}/{quarantine.pk}"
    tag = etag(approver_api, path)
    late = quarantine.operations.first()
    late.pk, late.created_at, late.fingerprint = uuid.uuid4(), timezone.now(), "late"
    late.save(force_insert=True)  # held after the read
    assert_error(post(approver_api, f"{path}/release", {"all": True}, etag=tag), 412, "precondition_failed")
    quarantine.refresh_from_db()
    assert quarantine.status == Quarantine.Status.ACTIVE


def test_release_keeps_four_eyes_and_the_two_approver_rule(approver_api, second_approver_api, quarantine):
    path = f"{QUARANTINES}/{quarantine.pk}"
    own = quarantine.operations.first()
    own.operator = approver_api.user
    own.save(update_fields=["operator"])
    response = post(approver_api, f"{path}/release", {"all": True}, etag=etag(approver_api, path))
    assert_error(response, 403, "permission_denied")
    quarantine.refresh_from_db()
    assert quarantine.status == Quarantine.Status.ACTIVE

    own.operator = None
    own.save(update_fields=["operator"])
    quarantine.operations.update(two_approvers=True)  # held by a rule that asks for two
    result = post(approver_api, f"{path}/release", {"all": True}, etag=etag(approver_api, path)).json()
    assert result["approved"] == [] and len(result["awaiting_second_approver"]) == 3
    assert result["quarantine"]["status"] == "released"
    waiting = result["awaiting_second_approver"][0]
    again = post(approver_api, f"{PENDING}/{waiting}/approve", etag=etag(approver_api, f"{PENDING}/{waiting}"))
    assert_error(again, 409, "conflict")  # already approved by this operator
    second = post(
        second_approver_api, f"{PENDING}/{waiting}/approve", etag=etag(second_approver_api, f"{PENDING}/{waiting}")
    )
    assert second.json()["status"] in ("approved", "applied")


def test_discarding_a_quarantine(approver_api, quarantine):
    path = f"{QUARANTINES}/{quarantine.pk}"
    assert_error(post(approver_api, f"{path}/discard", etag='"old"'), 412, "precondition_failed")
    response = post(approver_api, f"{path}/discard", etag=etag(approver_api, path))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "discarded" and body["held_operations"] == []
    assert {op["status"] for op in body["decided_operations"]} == {"discarded"}
    assert api_change_sets("quarantine.discard").count() == 1
    assert_error(post(approver_api, f"{path}/discard", etag=response["ETag"]), 409, "conflict")
