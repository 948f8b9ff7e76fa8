"""Oversight endpoints of the management API beyond approve and reject: re-applying a
conflicted operation and bulk decisions; flagged reviews (accept, roll back) and mass
rollback with its preview and background jobs; quarantines (release, discard).

Each calls what the console's view calls (``console/views_pending.py``,
``views_reviews.py``, ``views_rollback.py``, ``views_quarantines.py``), so the services
decide with the same rules: four eyes, two approvers, legal transitions, conflicts and
force. Changing calls run in ``api_scope`` (audited, source "api"), take
``Idempotency-Key`` and, where the resource has an ETag, require ``If-Match``.
"""

from __future__ import annotations

import copy
import uuid

import django_filters
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers as drf_serializers
from rest_framework.request import Request
from rest_framework.response import Response

from console import change_records
from console import selectors as console_selectors
from console.oversight_forms import ReviewFilter
from console.oversight_selectors import held_by_kind, held_in_quarantine
from console.views_pending import _approval_message
from console.views_reviews import _review_summaries, review_or_404
from console.views_rollback import PREVIEW_LIMIT, _in_sequence, rollback_state
from provisioning.oversight import reviews, rollback_jobs, services
from provisioning.oversight.models import (
    PendingOperation,
    Quarantine,
    Review,
    Rollback,
    RollbackJob,
)

from .base import ApiView, api_scope, decide, require_fresh_session
from .errors import Conflict
from .idempotency import idempotent
from .preconditions import conditional_response, etag_of, if_match
from .schema import ErrorSerializer, path_id
from .serializers import PendingOperationDetailSerializer
from .serializers_oversight import (
    BulkDecisionSerializer,
    BulkResultSerializer,
    MassRollbackSerializer,
    QuarantineDetailSerializer,
    QuarantineReleaseResultSerializer,
    QuarantineReleaseSerializer,
    QuarantineSerializer,
    ReapplySerializer,
    ReviewDetailSerializer,
    ReviewSerializer,
    RollbackJobDetailSerializer,
    RollbackJobSerializer,
    RollbackPreviewSerializer,
    RollbackRangeSerializer,
    RollbackResultSerializer,
    RollbackSerializer,
)
from .views import (
    ETAG_HEADER,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    _detail_response,
    _pending_data,
    _pending_or_404,
    _username,
    pending_representation,
)

# The path matches digits only: a negative id is no route of the API (RFC 9110 §15.5.5).
REVIEW_ID = path_id("review_id", "A review's id.")
# A rollback job lists this many of its change sets once it has ended (as its console page).
JOB_ITEMS_SHOWN = 500
# A quarantine's detail lists this many decided operations (as its console page).
DECIDED_SHOWN = 200


def _client_ref(client) -> dict | None:
    return {"id": client.pk, "name": client.name} if client is not None else None


# --- Pending operations: re-apply, bulk decisions ------------------------------------------------


class PendingOperationReapply(ApiView):
    """Apply an operation that conflicted (its target changed after it was held) against
    the target's current state, deliberately: the console's "re-apply" with its
    confirmation. Four eyes as for approving; the result is reported, never merged."""

    required_role = "approver"
    serializer_class = ReapplySerializer

    @extend_schema(
        request=ReapplySerializer,
        responses=PendingOperationDetailSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="pending_operations_reapply",
        tags=["pending operations"],
    )
    def post(self, request: Request, pending_id: uuid.UUID) -> Response:
        return decide(
            self,
            request,
            load=lambda: _pending_or_404(pending_id),
            etag=lambda pending: pending_representation(pending)[1],
            summary=lambda pending, _data: {"action": "pending.reapply", "pending": str(pending.pk)},
            act=lambda pending, data: services.pending_reapply(
                pending_id=pending.pk, operator=request.user, reason=data.get("reason", "").strip()
            ),
            answer=lambda pending, _result: _detail_response(pending.pk),
        )


def _bulk_decide(request: Request, pending: PendingOperation, decision: str, reason: str) -> dict:
    """One operation of a bulk decision, decided in its own transaction and change set."""
    summary = {"action": f"pending.{decision}", "pending": str(pending.pk), "bulk": True}
    try:
        with transaction.atomic(), api_scope(request, summary):
            if decision == "approve":
                services.pending_approve(pending_id=pending.pk, operator=request.user)
            else:
                services.pending_reject(pending_id=pending.pk, operator=request.user, reason=reason)
    except PermissionDenied as error:
        return {"outcome": "refused", "http_status": 403, "detail": str(error) or "You may not decide this."}
    except ValidationError as error:
        return {"outcome": "refused", "http_status": 409, "detail": " ".join(error.messages)}
    except ObjectDoesNotExist:
        return {"outcome": "not_found", "http_status": 404, "detail": "It no longer exists."}
    if decision == "approve":
        # Re-read: with in-process tasks the operation was applied when the approval committed.
        message = _approval_message(PendingOperation.objects.get(pk=pending.pk))
        return {"outcome": "decided", "http_status": 200 if message.ok else 409, "detail": message.message}
    return {"outcome": "decided", "http_status": 200, "detail": "Rejected."}


class PendingOperationBulk(ApiView):
    """Approve or reject several operations at once, as the console's bulk form does: each
    is decided on its own (in the order they were held) by the same service, and each
    id's outcome is reported; one refusal does not stop the others. No If-Match: each
    decision is checked by the service (a decided operation is refused). Send an
    Idempotency-Key: a retry gets the first answer and decides nothing again."""

    required_role = "approver"
    serializer_class = BulkDecisionSerializer

    @extend_schema(
        request=BulkDecisionSerializer,
        responses=BulkResultSerializer,
        parameters=[IDEMPOTENCY_KEY],
        operation_id="pending_operations_bulk",
        tags=["pending operations"],
    )
    def post(self, request: Request) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            ids, decision = data["ids"], data["decision"]
            reason = (data.get("reason") or "").strip()
            operations = list(
                PendingOperation.objects.filter(pk__in=ids).order_by("created_at", "id")
            )
            outcomes = {
                pending.pk: _bulk_decide(request, pending, decision, reason) for pending in operations
            }
            statuses = dict(
                PendingOperation.objects.filter(pk__in=ids).values_list("pk", "status")
            )
            results = []
            for pk in ids:
                outcome = outcomes.get(pk) or {
                    "outcome": "not_found",
                    "http_status": 404,
                    "detail": "No such pending operation.",
                }
                results.append({"id": pk, **outcome, "operation_status": statuses.get(pk)})
            done = sum(1 for r in results if r["http_status"] == 200)
            missing = sum(1 for r in results if r["outcome"] == "not_found")
            body = {
                "decision": decision,
                "results": results,
                "done": done,
                "failed": len(results) - done - missing,
                "missing": missing,
            }
            return Response(BulkResultSerializer(body).data)

        return idempotent(handle, request)


# --- Flagged reviews ----------------------------------------------------------------------------


def _change_set_ref(change_set) -> dict:
    return {
        "id": change_set.pk,
        "created_at": change_set.created_at,
        "source": change_set.source,
        "client": _client_ref(change_set.scim_client),
        "operator": _username(change_set.operator),
        "actor": change_set.actor_repr,
    }


def _review_data(review: Review) -> dict:
    first = review.first_record
    return {
        "id": review.pk,
        "status": review.status,
        "reasons": [str(reason) for reason in review.reasons],
        "created_at": review.created_at,
        "decided_at": review.decided_at,
        "decided_by": _username(review.decided_by),
        "change_set": _change_set_ref(review.change_set),
        "record_count": review.record_count,
        "first_record": {
            "action": first.action,
            "resource_type": first.resource_type,
            "resource_id": first.resource_id,
            "resource_name": first.resource_name,
        }
        if first is not None
        else None,
    }


def _members(rows: list[dict]) -> list[dict]:
    return [{"id": row["value"], "type": row["type"], "display": row["display"]} for row in rows]


def _record_data(row: dict) -> dict:
    record = row["record"]
    return {
        "id": record.pk,
        "action": record.action,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "resource_name": record.resource_name,
        "diff": [
            {"attribute": c.name, "kind": c.kind, "before": c.before, "after": c.after}
            for c in row["diff"]
        ],
        "members_added": _members(row["added"]),
        "members_added_count": row["added_count"],
        "members_removed": _members(row["removed"]),
        "members_removed_count": row["removed_count"],
    }


def _steps(steps: list[reviews.InverseStep]) -> list[dict]:
    return [
        {
            "change_set": step.record.change_set_id,
            "record": step.record.pk,
            "description": step.description,
            "conflict": step.conflict,
            "blocked": step.blocked,
        }
        for step in steps
    ]


def _review_or_404(review_id: int) -> Review:
    review = review_or_404(review_id)
    _review_summaries([review])
    return review


def review_representation(review: Review) -> tuple[dict, str]:
    """The detail of a flagged change set, as its console page shows it, and its ETag:
    the records' diffs and what rolling it back would do now (so the ETag changes when
    a resource it touched changes)."""
    change_set = review.change_set
    rows = change_records.record_rows(console_selectors.change_set_records(change_set))
    state = rollback_state(change_set)
    done, rollback_of, job = state["rolled_back_by"], state["rollback_of"], state["running_job"]
    data = {
        **_review_data(review),
        "records": [_record_data(row) for row in rows],
        "rolled_back_by": {"rollback": done.rollback_id, "forced": done.forced} if done else None,
        "rollback_of": rollback_of.original_id if rollback_of else None,
        "rollback_job": job.pk if job else None,
        "rollback_steps": _steps(state["steps"]),
        "rollback_conflicts": len(state["conflicts"]),
        "rollback_blocked": len(state["blocked"]),
    }
    data = ReviewDetailSerializer(data).data
    return data, etag_of(data)


class ApiReviewFilter(ReviewFilter):
    """The console's review filters; ``client`` (a SCIM client's id) described as a UUID
    (the review has no client field the schema generator could read it from)."""


ApiReviewFilter.base_filters["client"] = extend_schema_field(OpenApiTypes.UUID)(
    copy.copy(ReviewFilter.base_filters["client"])
)


class ReviewList(ApiView):
    """Flagged change sets, with the console's filters. Without ``status`` only the open
    ones, oldest first; any other ``status`` (``status=`` for every one) newest first."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = ApiReviewFilter
    queryset = Review.objects.all()

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        waiting = request.query_params.get("status", Review.Status.OPEN) == Review.Status.OPEN
        return ("created_at", "id") if waiting else ("-created_at", "-id")

    @extend_schema(
        responses=ReviewSerializer(many=True), operation_id="reviews_list", tags=["reviews"]
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        _review_summaries(page)
        return self.get_paginated_response(
            ReviewSerializer([_review_data(review) for review in page], many=True).data
        )


class ReviewDetail(ApiView):
    """One flagged change set: why, the before/after diff of each resource it touched,
    and what rolling it back would do (conflicts need force; blocked steps refuse)."""

    @extend_schema(
        responses={200: ReviewDetailSerializer, 304: OpenApiResponse(description="Not modified (If-None-Match).")},
        parameters=[REVIEW_ID, ETAG_HEADER],
        operation_id="reviews_retrieve",
        tags=["reviews"],
    )
    def get(self, request: Request, review_id: int) -> Response:
        return conditional_response(request, *review_representation(_review_or_404(review_id)))


class ReviewAccept(ApiView):
    """Accept a flagged change set as it is (the console's Accept): four eyes."""

    required_role = "approver"

    @extend_schema(
        request=None,
        responses=ReviewDetailSerializer,
        parameters=[REVIEW_ID, IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="reviews_accept",
        tags=["reviews"],
    )
    def post(self, request: Request, review_id: int) -> Response:
        def answer(review: Review, _result) -> Response:
            data, etag = review_representation(_review_or_404(review.pk))
            return Response(data, headers={"ETag": etag})

        return decide(
            self,
            request,
            load=lambda: _review_or_404(review_id),
            etag=lambda review: review_representation(review)[1],
            summary=lambda review, _data: {
                "action": "review.accept", "review": review.pk, "change_set": review.change_set_id
            },
            act=lambda review, _data: reviews.review_accept(review_id=review.pk, operator=request.user),
            answer=answer,
        )


def _job_data(job: RollbackJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "operator": _username(job.operator),
        "force": job.force,
        "total": job.total,
        "done": job.done,
        "percent": job.percent,
        "error": job.error,
        "failed_change_set": job.failed_change_set_id,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _started(started: rollback_jobs.RollbackStart) -> Response:
    """200 with what was undone, or 202 with the job and its ``Location``."""
    if started.job is not None:
        job = rollback_jobs.rollback_job_get(started.job.pk)
        body = RollbackResultSerializer({"rolled_back": [], "job": _job_data(job)}).data
        location = reverse("api:rollback-job-detail", args=[job.pk])
        return Response(body, status=202, headers={"Location": location})
    links = {
        link.rollback_id: link
        for link in Rollback.objects.filter(rollback__in=[r.pk for r in started.rollbacks])
    }
    rolled = [
        {
            "change_set": links[rollback.pk].original_id,
            "rollback": rollback.pk,
            "forced": links[rollback.pk].forced,
            "held_operations": [pending.pk for pending in rollback.held_operations],
        }
        for rollback in started.rollbacks
    ]
    return Response(RollbackResultSerializer({"rolled_back": rolled, "job": None}).data)


class ReviewRollback(ApiView):
    """Roll back a flagged change set (the console's "Roll back…"): its inverse applied as
    a new change set. A conflict (a resource changed since) is refused (409) unless
    ``force``; a blocked step always is. Steps policy holds become pending operations
    for another approver. A change set with many records becomes a job (202)."""

    required_role = "approver"
    serializer_class = RollbackSerializer

    @extend_schema(
        request=RollbackSerializer,
        responses={200: RollbackResultSerializer, 202: RollbackResultSerializer},
        parameters=[REVIEW_ID, IF_MATCH, IDEMPOTENCY_KEY],
        operation_id="reviews_rollback",
        tags=["reviews"],
    )
    def post(self, request: Request, review_id: int) -> Response:
        return decide(
            self,
            request,
            load=lambda: _review_or_404(review_id),
            etag=lambda review: review_representation(review)[1],
            summary=lambda review, data: {
                "action": "change_set.rollback", "change_set": review.change_set_id, "force": data["force"]
            },
            act=lambda review, data: rollback_jobs.rollback_start(
                change_set_ids=[review.change_set_id], operator=request.user, force=data["force"]
            ),
            answer=lambda _review, started: _started(started),
        )


# --- Mass rollback and rollback jobs --------------------------------------------------------------


class RollbackPreview(ApiView):
    """What rolling back everything a SCIM client did in a time range would do: the change
    sets (newest first) and the steps of the first 200, each judged in the order the
    rollback runs them. Confirm with POST /api/v1/rollbacks and the listed change sets."""

    required_role = "approver"

    @extend_schema(
        parameters=[RollbackRangeSerializer],
        responses={
            200: RollbackPreviewSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The client or range is not valid (see fields)."),
        },
        operation_id="rollbacks_preview",
        tags=["rollbacks"],
    )
    def get(self, request: Request) -> Response:
        require_fresh_session(request)
        serializer = RollbackRangeSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ids = reviews.client_change_sets(client=data["client"], since=data["since"], until=data["until"])
        steps = _in_sequence(reviews.rollback_preview(ids[:PREVIEW_LIMIT])) if ids else []
        body = {
            "client": _client_ref(data["client"]),
            "since": data["since"],
            "until": data["until"],
            "change_sets": ids,
            "steps": _steps(steps[:PREVIEW_LIMIT]),
            "more_steps": len(ids) > PREVIEW_LIMIT,
            "conflicts": sum(1 for s in steps if s.conflict and not s.blocked),
            "blocked": sum(1 for s in steps if s.blocked),
            "runs_as_job": bool(ids) and not rollback_jobs.runs_inline(ids),
        }
        return Response(RollbackPreviewSerializer(body).data)


class MassRollback(ApiView):
    """Roll back everything a SCIM client did in a time range, as previewed: the body
    names the change sets the preview listed; if the range holds others now, 409 (preview
    again). Small ones are undone in one transaction (200); large ones become a job
    (202, ``Location`` of the job)."""

    required_role = "approver"
    serializer_class = MassRollbackSerializer

    @extend_schema(
        request=MassRollbackSerializer,
        responses={200: RollbackResultSerializer, 202: RollbackResultSerializer},
        parameters=[IDEMPOTENCY_KEY],
        operation_id="rollbacks_create",
        tags=["rollbacks"],
    )
    def post(self, request: Request) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            client, since, until = data["client"], data["since"], data["until"]
            ids = reviews.client_change_sets(client=client, since=since, until=until)
            if set(data["change_sets"]) != set(ids):
                raise Conflict(
                    "The client's change sets in this range changed since the preview. "
                    "Review the new preview and confirm again."
                )
            if not ids:
                raise drf_serializers.ValidationError(
                    {"change_sets": ["The client made no change set to roll back in this range."]}
                )
            summary = {
                "action": "change_sets.rollback",
                "client": str(client.pk),
                "since": since.isoformat(),
                "until": until.isoformat(),
                "count": len(ids),
                "force": data["force"],
            }
            with transaction.atomic(), api_scope(request, summary):
                started = rollback_jobs.rollback_start(
                    change_set_ids=ids, operator=request.user, force=data["force"]
                )
            return _started(started)

        return idempotent(handle, request)


class RollbackJobList(ApiView):
    """Rollback jobs, newest first, running ones included."""

    queryset = RollbackJob.objects.select_related("operator")

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-created_at", "-id")

    @extend_schema(
        responses=RollbackJobSerializer(many=True), operation_id="rollback_jobs_list", tags=["rollbacks"]
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            RollbackJobSerializer([_job_data(job) for job in page], many=True).data
        )


class RollbackJobDetail(ApiView):
    """A rollback job's status and progress; poll it until ``status`` is done or failed.
    Then ``items`` lists each change set with the one that undid it, or ``error`` and
    ``failed_change_set`` say where and why it stopped."""

    @extend_schema(
        responses=RollbackJobDetailSerializer, operation_id="rollback_jobs_retrieve", tags=["rollbacks"]
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = rollback_jobs.rollback_job_get(job_id)
        if job is None:
            raise Http404("No such rollback job.")
        items = [] if job.active else rollback_jobs.rollback_job_items(job, limit=JOB_ITEMS_SHOWN)
        data = {
            **_job_data(job),
            "items": [
                {
                    "position": item.position,
                    "change_set": item.change_set_id,
                    "rollback": item.rollback_id,
                    "held_operations": item.held_operations,
                }
                for item in items
            ],
        }
        return Response(RollbackJobDetailSerializer(data).data)


# --- Quarantines --------------------------------------------------------------------------------


class QuarantineFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Quarantine.Status.choices)

    class Meta:
        model = Quarantine
        fields: list[str] = []


def _quarantine_data(quarantine: Quarantine) -> dict:
    return {
        "id": quarantine.pk,
        "status": quarantine.status,
        "client": _client_ref(quarantine.client),
        "reason": quarantine.reason,
        "started_at": quarantine.started_at,
        "ended_at": quarantine.ended_at,
        "ended_by": _username(quarantine.ended_by),
        "held": quarantine.held,
    }


def _quarantine_or_404(quarantine_id: uuid.UUID) -> Quarantine:
    quarantine = (
        Quarantine.objects.select_related("client", "ended_by")
        .annotate(held=held_in_quarantine())
        .filter(pk=quarantine_id)
        .first()
    )
    if quarantine is None:
        raise Http404("No such quarantine.")
    return quarantine


def _operations(queryset) -> list[dict]:
    related = queryset.select_related("client", "operator", "decided_by").prefetch_related(
        "approvals__operator"
    )
    return [_pending_data(pending) for pending in related]


def _held(quarantine: Quarantine):
    return quarantine.operations.filter(status=PendingOperation.Status.PENDING).order_by(
        "created_at", "id"
    )


def quarantine_representation(quarantine: Quarantine) -> tuple[dict, str]:
    """A quarantine with every operation it holds, and its ETag: a release or discard
    that names it decides exactly the operations it lists (one held since is a 412)."""
    decided = quarantine.operations.exclude(status=PendingOperation.Status.PENDING).order_by(
        "created_at", "id"
    )[:DECIDED_SHOWN]
    data = {
        **_quarantine_data(quarantine),
        "held_operations": _operations(_held(quarantine)),
        "decided_operations": _operations(decided),
        "by_kind": [
            {"kind": group.kind, "label": group.label, "count": group.count}
            for group in held_by_kind(quarantine, samples=0)
        ],
    }
    data = QuarantineDetailSerializer(data).data
    return data, etag_of(data)


class QuarantineList(ApiView):
    """Quarantines, filtered by ``status``: the active ones oldest first; otherwise
    newest first. ``held`` counts what each still holds."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = QuarantineFilter
    queryset = Quarantine.objects.select_related("client", "ended_by").annotate(
        held=held_in_quarantine()
    )

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        if request.query_params.get("status") == Quarantine.Status.ACTIVE:
            return ("started_at", "id")
        return ("-started_at", "-id")

    @extend_schema(
        responses=QuarantineSerializer(many=True), operation_id="quarantines_list", tags=["quarantines"]
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            QuarantineSerializer([_quarantine_data(q) for q in page], many=True).data
        )


class QuarantineDetail(ApiView):
    """A quarantine: every operation it holds (in the order a release applies them), by
    kind, and the first decided ones. Its ETag is what a release or discard names."""

    @extend_schema(
        responses={200: QuarantineDetailSerializer, 304: OpenApiResponse(description="Not modified (If-None-Match).")},
        parameters=[ETAG_HEADER],
        operation_id="quarantines_retrieve",
        tags=["quarantines"],
    )
    def get(self, request: Request, quarantine_id: uuid.UUID) -> Response:
        return conditional_response(request, *quarantine_representation(_quarantine_or_404(quarantine_id)))


class QuarantineRelease(ApiView):
    """End a quarantine, applying all its held operations (``all``) or exactly those
    named (``pending``) and discarding the rest ("allow these deletions"). ``If-Match``
    names the quarantine as read: an operation held since is never decided unseen (412).
    Four eyes: an operation you requested refuses the release (403). An operation a rule
    held for two approvers takes the release as one approval and stays pending."""

    required_role = "approver"
    serializer_class = QuarantineReleaseSerializer

    @extend_schema(
        request=QuarantineReleaseSerializer,
        responses=QuarantineReleaseResultSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        operation_id="quarantines_release",
        tags=["quarantines"],
    )
    def post(self, request: Request, quarantine_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            quarantine = _quarantine_or_404(quarantine_id)
            if_match(request, quarantine_representation(quarantine)[1])
            if quarantine.status != Quarantine.Status.ACTIVE:
                raise Conflict("This quarantine has already ended.")
            held = list(_held(quarantine).values_list("pk", flat=True))
            chosen = held if serializer.validated_data["all"] else serializer.validated_data["pending"]
            if not chosen:
                raise drf_serializers.ValidationError(
                    {"pending": ["The release names no held operation; choose what to release."]}
                )
            strangers = [str(pk) for pk in chosen if pk not in set(held)]
            if strangers:
                raise drf_serializers.ValidationError(
                    {"pending": [f"Not held by this quarantine: {', '.join(strangers)}."]}
                )
            summary = {
                "action": "quarantine.release",
                "quarantine": str(quarantine.pk),
                "all": len(chosen) == len(held),
            }
            with transaction.atomic(), api_scope(request, summary):
                services.quarantine_release(
                    quarantine_id=quarantine.pk, operator=request.user, pending_ids=chosen
                )
            statuses = dict(PendingOperation.objects.filter(pk__in=held).values_list("pk", "status"))
            body = {
                "quarantine": quarantine_representation(_quarantine_or_404(quarantine.pk))[0],
                "approved": [pk for pk in held if pk in chosen and statuses[pk] != "pending"],
                "awaiting_second_approver": [
                    pk for pk in held if pk in chosen and statuses[pk] == "pending"
                ],
                "discarded": [pk for pk in held if pk not in chosen],
            }
            return Response(QuarantineReleaseResultSerializer(body).data)

        return idempotent(handle, request)


class QuarantineDiscard(ApiView):
    """End a quarantine and discard every operation it holds (the console's Discard)."""

    required_role = "approver"

    @extend_schema(
        request=None,
        responses=QuarantineDetailSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="quarantines_discard",
        tags=["quarantines"],
    )
    def post(self, request: Request, quarantine_id: uuid.UUID) -> Response:
        def answer(quarantine: Quarantine, _result) -> Response:
            data, etag = quarantine_representation(_quarantine_or_404(quarantine.pk))
            return Response(data, headers={"ETag": etag})

        return decide(
            self,
            request,
            load=lambda: _quarantine_or_404(quarantine_id),
            etag=lambda quarantine: quarantine_representation(quarantine)[1],
            summary=lambda quarantine, _data: {"action": "quarantine.discard", "quarantine": str(quarantine.pk)},
            act=lambda quarantine, _data: services.quarantine_discard(
                quarantine_id=quarantine.pk, operator=request.user
            ),
            answer=answer,
        )
