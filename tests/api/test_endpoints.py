"""The management API's first endpoints end to end: authentication (token, session with
CSRF), roles, the error body, cursor pagination, ETag and If-Match, Idempotency-Key,
four eyes, audit "via API", rate limits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from provisioning.access.models import OperatorToken
from provisioning.audit.models import ChangeSet
from provisioning.oversight.models import PendingOperation
from tests.factories import OperatorFactory
from tests.signin.conftest import age_session

from .conftest import hold, token_client

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
LIST = "/api/v1/pending-operations"


def detail(pending) -> str:
    return f"{LIST}/{pending.pk}"


def decide(client, pending, decision: str = "approve", body=None, *, etag=None, key=None):
    headers = {}
    if etag is not None:
        headers["HTTP_IF_MATCH"] = etag
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(f"{detail(pending)}/{decision}", body or {}, format="json", **headers)


def etag_of(client, pending) -> str:
    response = client.get(detail(pending))
    assert response.status_code == 200
    return response["ETag"]


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == code
    return body


# --- Authentication ----------------------------------------------------------------------


def test_me_names_the_operator_role_and_token(viewer_api):
    response = viewer_api.get(ME)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == viewer_api.user.username
    assert body["role"] == "viewer" and body["authentication"] == "token"
    assert body["token"]["name"] == "script"
    assert viewer_api.raw_token.split("_")[1] == body["token"]["prefix"]
    assert body["token"]["last_used_at"] is not None


@pytest.mark.parametrize("path", [ME, LIST, f"{LIST}/00000000-0000-4000-8000-000000000000"])
def test_anonymous_is_401_with_a_bearer_challenge(path):
    response = APIClient().get(path)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer realm=")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer scgop_AAAAAAAA_" + "x" * 43,  # unknown
        "Bearer nonsense",
        "Bearer",
        "Bearer a b",
    ],
)
def test_a_bad_token_is_401_invalid_token(header):
    response = APIClient().get(ME, HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "invalid_token")
    # RFC 6750 §3.1: the challenge names the error.
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_revoked_and_expired_tokens_are_401(viewer_api):
    token = OperatorToken.objects.get(operator=viewer_api.user)
    token.revoked_at = timezone.now()
    token.save()
    assert "revoked" in assert_error(viewer_api.get(ME), 401, "invalid_token")["detail"]
    token.revoked_at = None
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    assert "expired" in assert_error(viewer_api.get(ME), 401, "invalid_token")["detail"]


def test_a_token_acts_with_its_operators_current_role(viewer_api):
    operator = viewer_api.user
    operator.groups.clear()
    assert_error(viewer_api.get(ME), 403, "permission_denied")
    operator.is_active = False
    operator.save()
    assert_error(viewer_api.get(ME), 401, "invalid_token")


def test_the_session_works_and_csrf_is_enforced_on_changes(held):
    operator = OperatorFactory(role="approver")
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(operator)
    me = session.get(ME).json()
    assert me["authentication"] == "session" and me["token"] is None

    response = session.get(detail(held))
    refused = session.post(
        f"{detail(held)}/approve", {}, format="json", HTTP_IF_MATCH=response["ETag"]
    )
    assert_error(refused, 403, "permission_denied")
    assert "CSRF" in refused.json()["detail"]
    held.refresh_from_db()
    assert held.status == PendingOperation.Status.PENDING


@override_settings(SCIMGATE_STEP_UP_MINUTES=15)
def test_a_session_decision_needs_the_consoles_step_up(held):
    operator = OperatorFactory(role="approver")
    session = APIClient()
    session.force_login(operator)
    age_session(session, authenticated=20 * 60)
    etag = session.get(detail(held))["ETag"]
    refused = session.post(f"{detail(held)}/approve", {}, format="json", HTTP_IF_MATCH=etag)
    assert "step-up" in assert_error(refused, 403, "permission_denied")["detail"]


# --- Roles -------------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_decide(viewer_api, held):
    assert viewer_api.get(LIST).status_code == 200
    etag = etag_of(viewer_api, held)
    body = assert_error(decide(viewer_api, held, etag=etag), 403, "permission_denied")
    assert "approver" in body["detail"]
    assert_error(
        decide(viewer_api, held, "reject", {"reason": "no"}, etag=etag), 403, "permission_denied"
    )


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_anonymous_cannot_decide(held, decision):
    assert_error(
        APIClient().post(f"{detail(held)}/{decision}", {}, format="json"), 401, "not_authenticated"
    )


# --- Listing -----------------------------------------------------------------------------


def test_the_list_filters_like_the_console_and_pages_by_cursor(approver_api, scim):
    hold("delete_user")
    ids = []
    for n in range(3):
        user = scim.create_user(f"u{n}@example.com")
        scim.delete(f"/Users/{user['id']}")
        ids.append(PendingOperation.objects.get(resource_id=user["id"]).pk)

    first = approver_api.get(LIST, {"page_size": 2}).json()
    assert [row["id"] for row in first["results"]] == [str(i) for i in ids[:2]]  # oldest first
    assert first["previous"] is None and first["next"]
    second = approver_api.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [str(ids[2])]

    assert approver_api.get(LIST, {"resource_type": "Group"}).json()["results"] == []
    assert len(approver_api.get(LIST, {"action": "delete"}).json()["results"]) == 3
    PendingOperation.objects.filter(pk=ids[0]).update(status="rejected")
    assert len(approver_api.get(LIST).json()["results"]) == 2
    everything = approver_api.get(LIST, {"status": ""}).json()["results"]
    assert [row["id"] for row in everything] == [str(i) for i in reversed(ids)]  # newest first


def test_an_invalid_filter_is_a_400_with_fields(viewer_api):
    body = assert_error(viewer_api.get(LIST, {"status": "nope", "client": "x"}), 400, "invalid")
    assert set(body["fields"]) == {"status", "client"}


def test_a_bad_cursor_is_400_not_500(viewer_api):
    body = assert_error(viewer_api.get(LIST, {"cursor": "garbage"}), 400, "invalid")
    assert set(body["fields"]) == {"cursor"}


# --- Detail and ETag ---------------------------------------------------------------------


def test_detail_shows_the_diff_and_an_etag(viewer_api, held):
    response = viewer_api.get(detail(held))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(held.pk) and body["status"] == "pending"
    assert body["action"] == "delete" and body["client"]["name"] == "entra-prod"
    assert {"attribute": "userName", "kind": "removed", "before": "held@example.com", "after": None} in body["diff"]
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    # RFC 9110 §13.1.2: If-None-Match with the current tag is 304.
    assert viewer_api.get(detail(held), HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_an_unknown_operation_is_404(viewer_api):
    assert_error(viewer_api.get(f"{LIST}/{uuid.uuid4()}"), 404, "not_found")


# --- Decisions ---------------------------------------------------------------------------


def test_approving_applies_the_operation_and_is_audited_via_api(
    approver_api, held, scim, django_capture_on_commit_callbacks
):
    etag = etag_of(approver_api, held)
    with django_capture_on_commit_callbacks(execute=True):
        response = decide(approver_api, held, etag=etag)
    assert response.status_code == 200, response.content
    assert response.json()["status"] in ("approved", "applied")
    assert response["ETag"] != etag
    held.refresh_from_db()
    assert held.status == PendingOperation.Status.APPLIED
    assert held.decided_by == approver_api.user
    assert scim.get(f"/Users/{held.resource_id}").status_code == 404
    change_set = ChangeSet.objects.get(source="api", request__api__isnull=False)
    assert change_set.operator == approver_api.user
    # The change set that applied it (run after the commit, as a worker runs it) says the
    # approval came by the API too, not the console.
    applied = ChangeSet.objects.get(request__pending_operation=str(held.pk))
    assert applied.source == "api" and applied.operator == approver_api.user
    assert applied.records.get().action == "delete"
    token = OperatorToken.objects.get(operator=approver_api.user)
    assert change_set.request["api"] == {"action": "pending.approve", "pending": str(held.pk)}
    assert change_set.request["authenticated_by"] == f"token:{token.prefix}"


def test_rejecting_needs_a_reason_and_records_it(approver_api, held):
    etag = etag_of(approver_api, held)
    body = assert_error(decide(approver_api, held, "reject", {"reason": "  "}, etag=etag), 400, "invalid")
    assert "reason" in body["fields"]
    response = decide(approver_api, held, "reject", {"reason": "Not planned"}, etag=etag)
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert response.json()["decision_reason"] == "Not planned"
    assert ChangeSet.objects.filter(source="api", request__api__action="pending.reject").exists()


def test_a_decision_needs_if_match_428_and_a_stale_one_is_412(approver_api, held):
    assert_error(decide(approver_api, held), 428, "precondition_required")
    assert_error(decide(approver_api, held, etag='"stale"'), 412, "precondition_failed")
    # RFC 9110 §13.1.1: If-Match uses the strong comparison; a weak tag never matches.
    etag = etag_of(approver_api, held)
    assert_error(decide(approver_api, held, etag=f"W/{etag}"), 412, "precondition_failed")
    held.refresh_from_db()
    assert held.status == PendingOperation.Status.PENDING
    assert decide(approver_api, held, etag=f'"other", {etag}').status_code == 200


def test_four_eyes_is_enforced_by_the_service(approver_api, held):
    held.operator = approver_api.user
    held.save(update_fields=["operator"])
    body = assert_error(decide(approver_api, held, etag=etag_of(approver_api, held)), 403, "permission_denied")
    assert "another approver" in body["detail"]


def test_a_decided_operation_is_a_409(approver_api, held):
    etag = etag_of(approver_api, held)
    assert decide(approver_api, held, "reject", {"reason": "no"}, etag=etag).status_code == 200
    fresh = etag_of(approver_api, held)
    assert_error(decide(approver_api, held, etag=fresh), 409, "conflict")


def test_two_approvers_where_the_rule_asks(approver_api, second_approver_api, scim):
    hold("delete_user", two_approvers=True)
    user = scim.create_user("two@example.com")
    scim.delete(f"/Users/{user['id']}")
    pending = PendingOperation.objects.get(resource_id=user["id"])
    first = decide(approver_api, pending, etag=etag_of(approver_api, pending)).json()
    assert first["status"] == "pending" and len(first["approvals"]) == 1
    second = decide(second_approver_api, pending, etag=etag_of(second_approver_api, pending))
    assert second.json()["status"] in ("approved", "applied")


# --- Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) ------------------------------


def test_a_retried_approval_gets_the_first_answer(approver_api, held):
    etag = etag_of(approver_api, held)
    key = str(uuid.uuid4())
    first = decide(approver_api, held, etag=etag, key=key)
    assert first.status_code == 200
    # The retry carries the same (now stale) If-Match: still the first answer, not 412.
    retry = decide(approver_api, held, etag=etag, key=key)
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert retry["ETag"] == first["ETag"]
    assert held.approvals.count() == 1
    assert ChangeSet.objects.filter(source="api", request__api__action="pending.approve").count() == 1


def test_the_same_key_with_another_request_is_422(approver_api, held):
    key = '"k-1"'  # the draft's Structured Field form
    etag = etag_of(approver_api, held)
    assert decide(approver_api, held, "reject", {"reason": "a"}, etag=etag, key=key).status_code == 200
    assert_error(
        decide(approver_api, held, "reject", {"reason": "b"}, etag=etag, key=key),
        422,
        "idempotency_key_reused",
    )


def test_a_key_in_progress_is_409(approver_api, held):
    from console.api.models import IdempotencyRecord

    etag = etag_of(approver_api, held)
    body = b"{}"
    import hashlib

    digest = hashlib.sha256()
    for part in ("POST", f"{detail(held)}/approve", ""):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    now = timezone.now()
    IdempotencyRecord.objects.create(
        operator=approver_api.user, key="busy", method="POST", path=f"{detail(held)}/approve",
        request_hash=digest.hexdigest(), created_at=now, expires_at=now + timedelta(hours=1),
    )
    response = approver_api.post(
        f"{detail(held)}/approve", body, content_type="application/json",
        HTTP_IF_MATCH=etag, HTTP_IDEMPOTENCY_KEY="busy",
    )
    assert_error(response, 409, "idempotency_key_in_use")


def test_a_refused_request_frees_its_key(viewer_api, approver_api, held):
    key = "again"
    assert decide(approver_api, held, key=key).status_code == 428
    assert decide(approver_api, held, etag=etag_of(approver_api, held), key=key).status_code == 200


def test_an_invalid_key_is_400(approver_api, held):
    body = assert_error(decide(approver_api, held, key="x" * 300), 400, "invalid")
    assert "Idempotency-Key" in body["fields"]


# --- Conventions -------------------------------------------------------------------------


def test_errors_share_one_body(approver_api, held):
    assert_error(approver_api.delete(ME), 405, "method_not_allowed")
    response = approver_api.post(
        f"{detail(held)}/approve", "reason=x", content_type="application/x-www-form-urlencoded",
        HTTP_IF_MATCH=etag_of(approver_api, held),
    )
    assert_error(response, 415, "unsupported_media_type")
    assert_error(approver_api.get(ME, HTTP_ACCEPT="text/csv"), 406, "not_acceptable")
    malformed = approver_api.post(
        f"{detail(held)}/reject", "{", content_type="application/json",
        HTTP_IF_MATCH=etag_of(approver_api, held),
    )
    assert_error(malformed, 400, "parse_error")


@override_settings(SCIMGATE_API_RATE_LIMIT="3/min")
def test_rate_limits_are_per_token_with_retry_after(db):
    operator = OperatorFactory(role="viewer")
    first, second = token_client(operator, "one"), token_client(operator, "two")
    for _ in range(3):
        assert first.get(ME).status_code == 200
    response = first.get(ME)
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert second.get(ME).status_code == 200  # each token has its own budget
