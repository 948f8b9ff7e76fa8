"""The first endpoints of the management API: who am I, and the pending-operations queue
with its decisions (the services the console's buttons call, with the same rules)."""

from __future__ import annotations

import uuid

from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from console.oversight_forms import PendingFilter
from console.oversight_selectors import pending_comparison
from console.permissions import operator_role
from provisioning.access.models import OperatorToken
from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation

from .base import ApiView, decide
from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .preconditions import conditional_response, etag_of
from .serializers import (
    ApproveSerializer,
    MeSerializer,
    PendingOperationDetailSerializer,
    PendingOperationSerializer,
    RejectSerializer,
)

ETAG_HEADER = OpenApiParameter(
    "ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True, required=False
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="The ETag of the operation as you read it (RFC 9110 §13.1.1); stale: 412.",
)
IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="A unique key (a UUID); a retry with the same key and body gets the first "
    "answer, marked Idempotent-Replayed: true.",
)


class MeView(ApiView):
    """The operator the request acts as, their console role and the token in use."""

    @extend_schema(responses=MeSerializer, operation_id="me", tags=["operator"])
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, OperatorToken) else None
        data = {
            "username": request.user.get_username(),
            "role": operator_role(request.user),
            "authentication": "token" if token is not None else "session",
            "token": None,
        }
        if token is not None:
            data["token"] = {
                "name": token.name,
                "prefix": token.prefix,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "last_used_at": token.last_used_at,
            }
        return Response(MeSerializer(data).data)


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def _pending_data(pending: PendingOperation) -> dict:
    return {
        "id": pending.pk,
        "status": pending.status,
        "action": pending.action,
        "resource_type": pending.resource_type,
        "resource_id": pending.resource_id,
        "resource_label": pending.resource_label,
        "client": {"id": pending.client.pk, "name": pending.client.name} if pending.client else None,
        "requested_by": _username(pending.operator),
        "reasons": [str(reason) for reason in pending.reasons],
        "two_approvers": pending.two_approvers,
        "approvals": [
            {"operator": _username(a.operator), "at": a.at} for a in pending.approvals.all()
        ],
        "members_added_count": len(pending.members_added),
        "members_removed_count": len(pending.members_removed),
        "created_at": pending.created_at,
        "expires_at": pending.expires_at,
        "decided_at": pending.decided_at,
        "decided_by": _username(pending.decided_by),
        "decision_reason": pending.decision_reason,
        "result_detail": pending.result_detail,
    }


def _changes(rows) -> list[dict]:
    return [
        {"attribute": r.name, "kind": r.kind, "before": r.before, "after": r.after} for r in rows
    ]


def _members(members: list[dict]) -> list[dict]:
    return [
        {"id": str(m.get("id", "")), "is_group": bool(m.get("is_group")), "display": m.get("display")}
        for m in members
    ]


def _pending_or_404(pending_id: uuid.UUID) -> PendingOperation:
    pending = (
        PendingOperation.objects.select_related("client", "operator", "decided_by")
        .prefetch_related("approvals__operator")
        .filter(pk=pending_id)
        .first()
    )
    if pending is None:
        raise Http404("No such pending operation.")
    return pending


def pending_representation(pending: PendingOperation) -> tuple[dict, str]:
    """The detail representation of ``pending`` and its ETag."""
    comparison = pending_comparison(pending)
    data = {
        **_pending_data(pending),
        "base_version": pending.base_version,
        "current_version": comparison.target.version if comparison.target is not None else None,
        "version_changed": comparison.version_changed,
        "diff": _changes(comparison.diff),
        "drift": _changes(comparison.drift),
        "members_added": _members(pending.members_added),
        "members_removed": _members(pending.members_removed),
    }
    data = PendingOperationDetailSerializer(data).data
    return data, etag_of(data)


def _detail_response(pending_id: uuid.UUID, status: int = 200) -> Response:
    data, etag = pending_representation(_pending_or_404(pending_id))
    return Response(data, status=status, headers={"ETag": etag})


class PendingOperationList(ApiView):
    """Operations policy held, with the console's filters. Without ``status`` only the
    waiting ones, oldest first; ``status=`` (empty) lists every status, newest first."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = PendingFilter
    queryset = PendingOperation.objects.all()

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        waiting = request.query_params.get("status", PendingOperation.Status.PENDING) == "pending"
        return ("created_at", "id") if waiting else ("-created_at", "-id")

    @extend_schema(
        responses=PendingOperationSerializer(many=True),
        operation_id="pending_operations_list",
        tags=["pending operations"],
    )
    def get(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = PendingOperationSerializer([_pending_data(p) for p in page], many=True).data
        return self.get_paginated_response(rows)


class PendingOperationDetail(ApiView):
    """One held operation: what approving it would change, attribute by attribute, and
    what changed in its target since it was held. Its ETag is what ``If-Match`` names."""

    @extend_schema(
        responses={200: PendingOperationDetailSerializer, 304: OpenApiResponse(description="Not modified (If-None-Match).")},
        parameters=[ETAG_HEADER],
        operation_id="pending_operations_retrieve",
        tags=["pending operations"],
    )
    def get(self, request: Request, pending_id: uuid.UUID) -> Response:
        return conditional_response(request, *pending_representation(_pending_or_404(pending_id)))


class _Decision(ApiView):
    required_role = "approver"
    action_name: str

    def decide(self, request: Request, pending: PendingOperation, data: dict) -> None:
        raise NotImplementedError

    def post(self, request: Request, pending_id: uuid.UUID) -> Response:
        return decide(
            self,
            request,
            load=lambda: _pending_or_404(pending_id),
            etag=lambda pending: pending_representation(pending)[1],
            summary=lambda pending, _data: {"action": self.action_name, "pending": str(pending.pk)},
            act=lambda pending, data: self.decide(request, pending, data),
            answer=lambda pending, _result: _detail_response(pending.pk),
        )


class PendingOperationApprove(_Decision):
    """Approve a held operation, as the console's Approve button does: four eyes (not
    your own request), two approvers where its rule asks, then applied against the
    current state (a conflict is reported, never merged)."""

    serializer_class = ApproveSerializer
    action_name = "pending.approve"

    def decide(self, request, pending, data) -> None:
        services.pending_approve(
            pending_id=pending.pk, operator=request.user, reason=data.get("reason", "").strip()
        )

    @extend_schema(
        request=ApproveSerializer,
        responses=PendingOperationDetailSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="pending_operations_approve",
        tags=["pending operations"],
    )
    def post(self, request: Request, pending_id: uuid.UUID) -> Response:
        return super().post(request, pending_id)


class PendingOperationReject(_Decision):
    """Reject a held operation with a reason, as the console's Reject button does."""

    serializer_class = RejectSerializer
    action_name = "pending.reject"

    def decide(self, request, pending, data) -> None:
        services.pending_reject(pending_id=pending.pk, operator=request.user, reason=data["reason"])

    @extend_schema(
        request=RejectSerializer,
        responses=PendingOperationDetailSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="pending_operations_reject",
        tags=["pending operations"],
    )
    def post(self, request: Request, pending_id: uuid.UUID) -> Response:
        return super().post(request, pending_id)
