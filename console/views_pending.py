"""Console pages for operations policy held: the queue, one operation's proposed change
against the current state, approve, reject, re-apply after a conflict, bulk decisions.

Each decision is a POST checked by role here and decided by
``provisioning.oversight.services``, which refuses illegal transitions
(``ValidationError``, answered 400) and an operator deciding their own change
(``PermissionDenied``, 403). Queue rows answer htmx with the row alone; without
JavaScript the same forms post and redirect back.
"""

from __future__ import annotations

import json
import uuid

from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation

from . import change_records, listing
from .actions import Outcome, answer_row, decide, next_url, selected_ids
from .oversight_forms import BulkDecisionForm, PendingFilter, RejectForm
from .oversight_selectors import pending_comparison
from .permissions import has_role, require_role
from .signin.stepup import require_step_up

# Bulk decisions take at most this many operations at once (one page of the queue and more).
BULK_LIMIT = 200


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) if value else ""


def _pending_or_404(pending_id: uuid.UUID) -> PendingOperation:
    pending = (
        PendingOperation.objects.select_related("client", "operator", "decided_by", "quarantine")
        .prefetch_related("approvals__operator")
        .filter(pk=pending_id)
        .first()
    )
    if pending is None:
        raise Http404("No such pending operation")
    return pending


def _pending_row(pending: PendingOperation, user) -> dict:
    approvals = list(pending.approvals.all())
    return {
        "op": pending,
        "approvals": approvals,
        "needed": 2 if pending.two_approvers else 1,
        "own": pending.operator_id is not None and pending.operator_id == user.pk,
        "approved_by_me": any(a.operator_id == user.pk for a in approvals),
    }


@require_role("viewer")
@require_GET
def pending_list(request: HttpRequest) -> HttpResponse:
    """The queue of held operations: oldest first while waiting, newest first otherwise."""
    filterset = PendingFilter(request.GET)
    return listing.render_listing(
        request,
        "console/pending/list.html",
        filterset,
        key=F("created_at"),
        descending=not filterset.waiting_only,
        extra=lambda page: {
            "rows": [_pending_row(op, request.user) for op in page.items],
            "can_decide": has_role(request.user, "approver"),
            "here": request.get_full_path(),
        },
    )


@require_role("viewer")
@require_GET
def pending_detail(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    """The target as it is now next to what the operation would make of it."""
    pending = _pending_or_404(pending_id)
    comparison = pending_comparison(pending)
    target = comparison.target
    names = change_records.existing_names(
        change_records.shown_members(pending.members_added, pending.members_removed)
    )
    row = _pending_row(pending, request.user)
    context = {
        **row,
        "pending": pending,
        "target": target,
        "target_href": reverse(
            "console:user_detail" if pending.resource_type == "User" else "console:group_detail",
            args=[pending.resource_id],
        )
        if target is not None
        else None,
        "diff": comparison.diff,
        "drift": comparison.drift,
        "version_changed": comparison.version_changed,
        "added": change_records.member_rows(pending.members_added, names),
        "added_count": len(pending.members_added),
        "removed": change_records.member_rows(pending.members_removed, names),
        "removed_count": len(pending.members_removed),
        "request_json": _pretty(pending.request),
        "can_decide": has_role(request.user, "approver"),
        "reject_form": RejectForm(auto_id="reject_%s"),
    }
    return render(request, "console/pending/detail.html", context)


def _approval_message(pending: PendingOperation) -> Outcome:
    label = (
        f"{pending.action} {pending.resource_type} {pending.resource_label or pending.resource_id}"
    )
    status = pending.status
    if status == PendingOperation.Status.PENDING:
        return Outcome(
            f"Your approval of {label} is recorded; a second approver must approve it too."
        )
    if status == PendingOperation.Status.APPLIED:
        return Outcome(f"Approved and applied: {label}.")
    if status == PendingOperation.Status.APPROVED:
        return Outcome(f"Approved: {label} is being applied.")
    if status == PendingOperation.Status.CONFLICT:
        return Outcome(f"Approved, but {label} was not applied: {pending.result_detail}", 409)
    return Outcome(f"Approved, but applying {label} failed: {pending.result_detail}", 409)


def _pending_answer(request: HttpRequest, pending_id: uuid.UUID, outcome: Outcome) -> HttpResponse:
    return answer_row(
        request,
        outcome,
        fragment="console/pending/list.html#row",
        context=lambda: {
            "row": _pending_row(_pending_or_404(pending_id), request.user),
            "can_decide": has_role(request.user, "approver"),
        },
        listing_url=reverse("console:pending_list"),
        detail_url=reverse("console:pending_detail", args=[pending_id]),
    )


@require_role("approver")
@require_step_up
@require_POST
def pending_approve(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    pending = _pending_or_404(pending_id)
    _, refusal = decide(
        request,
        {"action": "pending.approve", "pending": str(pending.pk)},
        lambda: services.pending_approve(pending_id=pending.pk, operator=request.user),
    )
    if refusal is None:
        # Re-read: with in-process tasks the operation was applied when the approval committed.
        refusal = _approval_message(PendingOperation.objects.get(pk=pending.pk))
    return _pending_answer(request, pending.pk, refusal)


@require_role("approver")
@require_step_up
@require_POST
def pending_reject(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    pending = _pending_or_404(pending_id)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _pending_answer(request, pending.pk, Outcome(" ".join(form.errors["reason"]), 400))
    _, refusal = decide(
        request,
        {"action": "pending.reject", "pending": str(pending.pk)},
        lambda: services.pending_reject(
            pending_id=pending.pk, operator=request.user, reason=form.cleaned_data["reason"]
        ),
    )
    label = pending.resource_label or pending.resource_id
    outcome = refusal or Outcome(f"Rejected: {pending.action} {pending.resource_type} {label}.")
    return _pending_answer(request, pending.pk, outcome)


@require_role("approver")
@require_step_up
@require_POST
def pending_reapply(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    """Apply a conflicted operation against the current state: only with an explicit confirmation."""
    pending = _pending_or_404(pending_id)
    if request.POST.get("confirm") != "yes":
        outcome = Outcome("Tick the box to confirm you reviewed the current state first.", 400)
        return _pending_answer(request, pending.pk, outcome)
    _, refusal = decide(
        request,
        {"action": "pending.reapply", "pending": str(pending.pk)},
        lambda: services.pending_reapply(
            pending_id=pending.pk,
            operator=request.user,
            reason=(request.POST.get("reason") or "").strip(),
        ),
    )
    outcome = refusal or _approval_message(PendingOperation.objects.get(pk=pending.pk))
    return _pending_answer(request, pending.pk, outcome)


@require_role("approver")
@require_step_up
@require_http_methods(["GET", "POST"])
def pending_bulk(request: HttpRequest) -> HttpResponse:
    """Approve or reject a selection: a confirmation page (GET), then each one decided (POST)."""
    data = request.POST if request.method == "POST" else request.GET
    ids = selected_ids(data.getlist("ids"))
    form = BulkDecisionForm(data)
    valid = form.is_valid()
    problems = []
    if len(ids) > BULK_LIMIT:
        problems.append(f"Decide at most {BULK_LIMIT} operations at once.")
    operations = list(
        PendingOperation.objects.select_related("client")
        .filter(pk__in=ids[:BULK_LIMIT])
        .order_by("created_at", "id")
    )
    if request.method == "GET":
        # The confirmation page asks for the reason; only the selection must be right here.
        problems += [e for name in ("ids", "decision") for e in form.errors.get(name, [])]
    elif not valid:
        problems += [e for errors in form.errors.values() for e in errors]
    context = {
        "operations": operations,
        "decision": data.get("decision") if data.get("decision") in ("approve", "reject") else "",
        "reason": data.get("reason", ""),
        "problems": problems,
        "back": next_url(request, reverse("console:pending_list")),
    }
    if request.method == "GET" or problems:
        return render(
            request, "console/pending/bulk.html", context, status=400 if problems else 200
        )
    decision, reason = form.cleaned_data["decision"], form.cleaned_data.get("reason", "").strip()
    results = []
    for pending in operations:
        if decision == "approve":
            _, refusal = decide(
                request,
                {"action": "pending.approve", "pending": str(pending.pk), "bulk": True},
                lambda pending=pending: services.pending_approve(
                    pending_id=pending.pk, operator=request.user
                ),
            )
            outcome = refusal or _approval_message(PendingOperation.objects.get(pk=pending.pk))
        else:
            _, refusal = decide(
                request,
                {"action": "pending.reject", "pending": str(pending.pk), "bulk": True},
                lambda pending=pending: services.pending_reject(
                    pending_id=pending.pk, operator=request.user, reason=reason
                ),
            )
            outcome = refusal or Outcome("Rejected.")
        results.append({"op": pending, "outcome": outcome})
    missing = len(ids) - len(operations)
    done = sum(1 for r in results if r["outcome"].ok)
    context.update(
        {"results": results, "done": done, "failed": len(results) - done, "missing": missing}
    )
    return render(request, "console/pending/bulk_result.html", context)
