"""Console pages for oversight: pending operations, flagged changes, quarantines,
and the policy rules with the circuit breaker (rollback: ``views_rollback``).

Every decision is a POST checked by role here and decided by the oversight
services (``provisioning.oversight.services`` / ``reviews``), which refuse
illegal transitions (``ValidationError``, shown with 400) and an operator
deciding their own change (``PermissionDenied``, shown with 403). Each action
runs in a console change set scope, so whatever it changes is attributed to
the operator. Queue rows answer htmx with the row alone; without JavaScript the
same forms post and redirect back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.audit.context import change_set_scope
from provisioning.audit.models import ChangeRecord, ChangeSet
from provisioning.directory import selectors as directory_selectors
from provisioning.oversight import reviews, services
from provisioning.oversight.models import (
    CircuitBreaker,
    PendingOperation,
    PolicyRule,
    Quarantine,
    Review,
)
from provisioning.scim import resources

from . import listing
from . import selectors as console_selectors
from .diff import record_diff
from .oversight_forms import (
    BulkDecisionForm,
    CircuitBreakerForm,
    PendingFilter,
    PolicyRuleForm,
    RejectForm,
    ReviewFilter,
)
from .oversight_selectors import held_in_quarantine
from .permissions import has_role, require_role

# Bulk decisions take at most this many operations at once (one page of the queue and more).
BULK_LIMIT = 200


# --- shared helpers --------------------------------------------------------------------


@dataclass
class Outcome:
    """What a decision came to: a message for the operator and the status to answer."""

    message: str
    status: int = 200

    @property
    def ok(self) -> bool:
        return self.status < 400


def _decide(
    request: HttpRequest, summary: dict, action: Callable[[], Any]
) -> tuple[Any, Outcome | None]:
    """Run one console action in its change set scope; a refusal becomes an Outcome.

    ``summary`` describes the action for the change set's ``request`` column.
    """
    document = {"console": summary, "path": request.path}
    try:
        with change_set_scope(
            operator=request.user, source=ChangeSet.Source.CONSOLE, request=document
        ):
            return action(), None
    except PermissionDenied as error:
        return None, Outcome(str(error) or "You may not decide this.", 403)
    except ValidationError as error:
        return None, Outcome(" ".join(error.messages), 400)
    except ObjectDoesNotExist:
        return None, Outcome("It no longer exists.", 404)


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _flash(request: HttpRequest, outcome: Outcome) -> None:
    (messages.success if outcome.ok else messages.error)(request, outcome.message)


def _listing_response(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    name = f"{template}#results" if listing.wants_partial(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _uuids(values) -> list[uuid.UUID]:
    result = []
    for value in values:
        try:
            result.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return result


def _existing(ids: dict[str, set]) -> set[str]:
    """Which of these user and group ids still exist (two queries), as strings."""
    users = (
        directory_selectors.users()
        .filter(pk__in=_uuids(ids.get("User", ())))
        .values_list("pk", flat=True)
    )
    groups = (
        directory_selectors.groups()
        .filter(pk__in=_uuids(ids.get("Group", ())))
        .values_list("pk", flat=True)
    )
    return {str(pk) for pk in users} | {str(pk) for pk in groups}


def _resource_href(resource_type: str, resource_id, exists: set[str]) -> str | None:
    if str(resource_id) not in exists:
        return None
    name = "console:user_detail" if resource_type == "User" else "console:group_detail"
    return reverse(name, args=[resource_id])


def _member_rows(members: list[dict], exists: set[str]) -> list[dict]:
    """Member references (a pending operation's ``{id, is_group}`` or a record's
    ``{value, type}``) as rows for ``console/audit/members.html``."""
    rows = []
    for member in members or []:
        value = str(member.get("value") or member.get("id") or "")
        kind = member.get("type") or ("Group" if member.get("is_group") else "User")
        rows.append(
            {
                "value": value,
                "type": kind,
                "display": member.get("display") or "",
                "href": _resource_href(kind, value, exists),
            }
        )
    return rows


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) if value else ""


# --- Pending operations ----------------------------------------------------------------


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
    operations = filterset.qs
    page = directory_selectors.keyset_page(
        operations,
        key=F("created_at"),
        descending=not filterset.waiting_only,
        after=listing.cursor(request, "after"),
        before=listing.cursor(request, "before"),
        size=listing.PAGE_SIZE,
    )
    count, capped = listing.total(operations, page)
    context = {
        "filter": filterset,
        "page": page,
        "rows": [_pending_row(op, request.user) for op in page.items],
        "count": count,
        "capped": capped,
        "can_decide": has_role(request.user, "approver"),
        "here": request.get_full_path(),
    }
    return _listing_response(request, "console/pending/list.html", context)


def _target(pending: PendingOperation):
    if pending.resource_type == "User":
        return directory_selectors.user_get(pending.resource_id)
    return directory_selectors.group_get(pending.resource_id)


def _editable(resource, resource_type: str) -> dict | None:
    if resource is None:
        return None
    if resource_type == "User":
        return resources.user_editable_document(resource)
    return resources.group_editable_document(resource)


@require_role("viewer")
@require_GET
def pending_detail(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    """The target as it is now next to what the operation would make of it."""
    pending = _pending_or_404(pending_id)
    target = _target(pending)
    current = _editable(target, pending.resource_type)
    # For a delete the proposal is "nothing"; compare what exists (or existed) against it.
    shown = current if current is not None else pending.before
    proposed = None if pending.action == "delete" else pending.proposed
    diff = record_diff(
        {"document": shown} if shown is not None else None,
        {"document": proposed} if proposed is not None else None,
    )
    drift = []
    if current is not None and pending.before is not None and current != pending.before:
        drift = record_diff({"document": pending.before}, {"document": current})
    ids: dict[str, set] = {"User": set(), "Group": set()}
    for member in (*pending.members_added, *pending.members_removed):
        ids["Group" if member.get("is_group") else "User"].add(str(member.get("id")))
    exists = _existing(ids)
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
        "diff": diff,
        "drift": drift,
        "version_changed": target is not None and target.version != pending.base_version,
        "added": _member_rows(pending.members_added, exists),
        "removed": _member_rows(pending.members_removed, exists),
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
    """htmx: the queue row, re-read, with the outcome in it; otherwise a redirect with a message."""
    if request.htmx:
        pending = _pending_or_404(pending_id)
        context = {
            **{"row": _pending_row(pending, request.user)},
            "outcome": outcome,
            "can_decide": has_role(request.user, "approver"),
            "here": _next_url(request, reverse("console:pending_list")),
        }
        response = render(request, "console/pending/list.html#row", context, status=outcome.status)
        # Error rows are swapped too (see the list's hx-on::before-swap).
        response["X-Console-Fragment"] = "row"
        return response
    _flash(request, outcome)
    return redirect(_next_url(request, reverse("console:pending_detail", args=[pending_id])))


@require_role("approver")
@require_POST
def pending_approve(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    pending = _pending_or_404(pending_id)
    result, refusal = _decide(
        request,
        {"action": "pending.approve", "pending": str(pending.pk)},
        lambda: services.pending_approve(pending_id=pending.pk, operator=request.user),
    )
    if refusal is None:
        # Re-read: with in-process tasks the operation was applied when the approval committed.
        refusal = _approval_message(PendingOperation.objects.get(pk=pending.pk))
    return _pending_answer(request, pending.pk, refusal)


@require_role("approver")
@require_POST
def pending_reject(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    pending = _pending_or_404(pending_id)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _pending_answer(request, pending.pk, Outcome(" ".join(form.errors["reason"]), 400))
    _, refusal = _decide(
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
@require_POST
def pending_reapply(request: HttpRequest, pending_id: uuid.UUID) -> HttpResponse:
    """Apply a conflicted operation against the current state: only with an explicit confirmation."""
    pending = _pending_or_404(pending_id)
    if request.POST.get("confirm") != "yes":
        outcome = Outcome("Tick the box to confirm you reviewed the current state first.", 400)
        return _pending_answer(request, pending.pk, outcome)
    _, refusal = _decide(
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
@require_http_methods(["GET", "POST"])
def pending_bulk(request: HttpRequest) -> HttpResponse:
    """Approve or reject a selection: a confirmation page (GET), then each one decided (POST)."""
    data = request.POST if request.method == "POST" else request.GET
    ids = list(dict.fromkeys(_uuids(data.getlist("ids"))))
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
        "back": _next_url(request, reverse("console:pending_list")),
    }
    if request.method == "GET" or problems:
        return render(
            request, "console/pending/bulk.html", context, status=400 if problems else 200
        )
    decision, reason = form.cleaned_data["decision"], form.cleaned_data.get("reason", "").strip()
    results = []
    for pending in operations:
        if decision == "approve":
            _, refusal = _decide(
                request,
                {"action": "pending.approve", "pending": str(pending.pk), "bulk": True},
                lambda pending=pending: services.pending_approve(
                    pending_id=pending.pk, operator=request.user
                ),
            )
            outcome = refusal or _approval_message(PendingOperation.objects.get(pk=pending.pk))
        else:
            _, refusal = _decide(
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


# --- Flagged changes ---------------------------------------------------------------------


def _review_summaries(reviews_page: list[Review]) -> None:
    """Attach each review's record count and first record (two queries for the page)."""
    set_ids = [review.change_set_id for review in reviews_page]
    stats = {
        row["change_set_id"]: row
        for row in ChangeRecord.objects.filter(change_set_id__in=set_ids)
        .values("change_set_id")
        .annotate(first=Min("id"), n=Count("id"))
        .order_by()
    }
    firsts = {
        record.change_set_id: record
        for record in ChangeRecord.objects.filter(
            pk__in=[row["first"] for row in stats.values()]
        ).only(
            "id",
            "change_set_id",
            "action",
            "resource_type",
            "resource_id",
            "resource_name",
            "changed_attributes",
        )
    }
    for review in reviews_page:
        review.record_count = stats.get(review.change_set_id, {}).get("n", 0)
        review.first_record = firsts.get(review.change_set_id)


def _review_row(review: Review, user) -> dict:
    change_set = review.change_set
    return {
        "review": review,
        "own": change_set.operator_id is not None and change_set.operator_id == user.pk,
    }


@require_role("viewer")
@require_GET
def review_list(request: HttpRequest) -> HttpResponse:
    """Flagged change sets waiting for review (oldest first) or already decided (newest first)."""
    filterset = ReviewFilter(request.GET)
    queryset = filterset.qs
    page = directory_selectors.keyset_page(
        queryset,
        key=F("created_at"),
        descending=not filterset.open_only,
        after=listing.int_cursor(request, "after"),
        before=listing.int_cursor(request, "before"),
        size=listing.PAGE_SIZE,
    )
    _review_summaries(page.items)
    count, capped = listing.total(queryset, page)
    context = {
        "filter": filterset,
        "page": page,
        "rows": [_review_row(review, request.user) for review in page.items],
        "count": count,
        "capped": capped,
        "can_decide": has_role(request.user, "approver"),
        "here": request.get_full_path(),
    }
    return _listing_response(request, "console/reviews/list.html", context)


def _review_or_404(review_id: int) -> Review:
    review = (
        Review.objects.select_related(
            "change_set", "change_set__scim_client", "change_set__operator", "decided_by"
        )
        .filter(pk=review_id)
        .first()
    )
    if review is None:
        raise Http404("No such review")
    return review


def _record_rows(records: list[ChangeRecord]) -> list[dict]:
    ids: dict[str, set] = {"User": set(), "Group": set()}
    for record in records:
        ids.setdefault(record.resource_type, set()).add(str(record.resource_id))
        for member in (*record.members_added, *record.members_removed):
            ids.setdefault(member.get("type", "User"), set()).add(str(member.get("value")))
    exists = _existing(ids)
    return [
        {
            "record": record,
            "href": _resource_href(record.resource_type, record.resource_id, exists),
            "diff": record_diff(record.before, record.after),
            "added": _member_rows(record.members_added, exists),
            "removed": _member_rows(record.members_removed, exists),
        }
        for record in records
    ]


@require_role("viewer")
@require_GET
def review_detail(request: HttpRequest, review_id: int) -> HttpResponse:
    """A flagged change set: why it was flagged, its before/after diff, and what rolling back does."""
    from .views_rollback import rollback_state  # that module builds on this one's helpers

    review = _review_or_404(review_id)
    change_set = review.change_set
    records = console_selectors.change_set_records(change_set)
    context = {
        "review": review,
        "change_set": change_set,
        "records": _record_rows(records),
        "own": change_set.operator_id is not None and change_set.operator_id == request.user.pk,
        "can_decide": has_role(request.user, "approver"),
        **rollback_state(change_set),
    }
    return render(request, "console/reviews/detail.html", context)


def _review_answer(request: HttpRequest, review_id: int, outcome: Outcome) -> HttpResponse:
    if request.htmx:
        review = _review_or_404(review_id)
        _review_summaries([review])
        context = {
            "row": _review_row(review, request.user),
            "outcome": outcome,
            "can_decide": has_role(request.user, "approver"),
            "here": _next_url(request, reverse("console:review_list")),
        }
        response = render(request, "console/reviews/list.html#row", context, status=outcome.status)
        response["X-Console-Fragment"] = "row"
        return response
    _flash(request, outcome)
    return redirect(_next_url(request, reverse("console:review_detail", args=[review_id])))


@require_role("approver")
@require_POST
def review_accept(request: HttpRequest, review_id: int) -> HttpResponse:
    review = _review_or_404(review_id)
    _, refusal = _decide(
        request,
        {"action": "review.accept", "review": review.pk, "change_set": review.change_set_id},
        lambda: reviews.review_accept(review_id=review.pk, operator=request.user),
    )
    outcome = refusal or Outcome(f"Change set {review.change_set_id} accepted.")
    return _review_answer(request, review.pk, outcome)


# --- Quarantines ---------------------------------------------------------------------------


def _quarantine_or_404(quarantine_id: uuid.UUID) -> Quarantine:
    quarantine = (
        Quarantine.objects.select_related("client", "ended_by").filter(pk=quarantine_id).first()
    )
    if quarantine is None:
        raise Http404("No such quarantine")
    return quarantine


@require_role("viewer")
@require_GET
def quarantine_list(request: HttpRequest) -> HttpResponse:
    """Clients whose destructive operations are held by the circuit breaker, and past quarantines."""
    base = Quarantine.objects.select_related("client", "ended_by").annotate(
        held=held_in_quarantine()
    )
    context = {
        "active": list(base.filter(status=Quarantine.Status.ACTIVE).order_by("started_at")),
        "ended": list(base.exclude(status=Quarantine.Status.ACTIVE).order_by("-started_at")[:50]),
    }
    return render(request, "console/quarantines/list.html", context)


def _held(quarantine: Quarantine):
    return quarantine.operations.filter(status=PendingOperation.Status.PENDING).order_by(
        "created_at", "id"
    )


@require_role("viewer")
@require_GET
def quarantine_detail(request: HttpRequest, quarantine_id: uuid.UUID) -> HttpResponse:
    quarantine = _quarantine_or_404(quarantine_id)
    context = {
        "quarantine": quarantine,
        "held": list(_held(quarantine)),
        "decided": list(
            quarantine.operations.exclude(status=PendingOperation.Status.PENDING).order_by(
                "created_at", "id"
            )[:200]
        ),
        "can_release": has_role(request.user, "administrator"),
    }
    return render(request, "console/quarantines/detail.html", context)


def _release_choice(request: HttpRequest, quarantine: Quarantine) -> tuple[list, list, bool]:
    """(to apply, to discard, everything) for the ids the operator chose; none chosen means all."""
    data = request.POST if request.method == "POST" else request.GET
    held = list(_held(quarantine))
    chosen = {str(value) for value in _uuids(data.getlist("pending"))}
    if not chosen or data.get("scope") == "all":
        return held, [], True
    apply = [op for op in held if str(op.pk) in chosen]
    discard = [op for op in held if str(op.pk) not in chosen]
    return apply, discard, False


@require_role("administrator")
@require_http_methods(["GET", "POST"])
def quarantine_release(request: HttpRequest, quarantine_id: uuid.UUID) -> HttpResponse:
    """Release (GET: confirm what is applied and what discarded; POST: do it)."""
    quarantine = _quarantine_or_404(quarantine_id)
    apply, discard, everything = _release_choice(request, quarantine)
    context = {
        "quarantine": quarantine,
        "apply": apply,
        "discard": discard,
        "everything": everything,
        "error": "",
    }
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            context["error"] = "Confirm the release first."
            return render(request, "console/quarantines/release_confirm.html", context, status=400)
        _, refusal = _decide(
            request,
            {"action": "quarantine.release", "quarantine": str(quarantine.pk), "all": everything},
            lambda: services.quarantine_release(
                quarantine_id=quarantine.pk,
                operator=request.user,
                pending_ids=None if everything else [op.pk for op in apply],
            ),
        )
        if refusal is None:
            messages.success(
                request,
                f"Quarantine of {quarantine.client.name} released: {len(apply)} operation"
                f"{'s' if len(apply) != 1 else ''} approved"
                + (f", {len(discard)} discarded." if discard else "."),
            )
            return redirect("console:quarantine_detail", quarantine_id=quarantine.pk)
        context["error"] = refusal.message
        return render(
            request, "console/quarantines/release_confirm.html", context, status=refusal.status
        )
    return render(request, "console/quarantines/release_confirm.html", context)


@require_role("administrator")
@require_http_methods(["GET", "POST"])
def quarantine_discard(request: HttpRequest, quarantine_id: uuid.UUID) -> HttpResponse:
    """Discard (GET: confirm; POST: end the quarantine and drop every held operation)."""
    quarantine = _quarantine_or_404(quarantine_id)
    context = {"quarantine": quarantine, "held": list(_held(quarantine)), "error": ""}
    if request.method == "POST":
        _, refusal = _decide(
            request,
            {"action": "quarantine.discard", "quarantine": str(quarantine.pk)},
            lambda: services.quarantine_discard(quarantine_id=quarantine.pk, operator=request.user),
        )
        if refusal is None:
            messages.success(
                request,
                f"Quarantine of {quarantine.client.name} ended; {len(context['held'])} held "
                f"operation{'s' if len(context['held']) != 1 else ''} discarded.",
            )
            return redirect("console:quarantine_detail", quarantine_id=quarantine.pk)
        context["error"] = refusal.message
        return render(
            request, "console/quarantines/discard_confirm.html", context, status=refusal.status
        )
    return render(request, "console/quarantines/discard_confirm.html", context)


# --- Policies ---------------------------------------------------------------------------


def _rule_or_404(rule_id: int) -> PolicyRule:
    rule = PolicyRule.objects.prefetch_related("clients").filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such policy rule")
    return rule


def _breaker() -> CircuitBreaker | None:
    return CircuitBreaker.objects.order_by("pk").first()


def _policy_scope(request: HttpRequest, summary: dict):
    """Policy rows have no service of their own: the form saves them in one audited console unit."""
    return change_set_scope(
        operator=request.user,
        source=ChangeSet.Source.CONSOLE,
        request={"console": summary, "path": request.path},
    )


@require_role("viewer")
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    """Every rule (enabled first) and the circuit breaker's thresholds."""
    context = {
        "rules": PolicyRule.objects.prefetch_related("clients").order_by("-enabled", "name"),
        "breaker": _breaker(),
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/policies/list.html", context)


@require_role("administrator")
@require_http_methods(["GET", "POST"])
def policy_create(request: HttpRequest) -> HttpResponse:
    form = PolicyRuleForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic(), _policy_scope(request, {"action": "policy.create"}):
            rule = form.save()
        messages.success(
            request, f"Rule “{rule.name}” created{'' if rule.enabled else ' (disabled)'}."
        )
        return redirect("console:policy_list")
    status = 400 if form.is_bound else 200
    return render(
        request, "console/policies/form.html", {"form": form, "rule": None}, status=status
    )


@require_role("administrator")
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_or_404(rule_id)
    form = PolicyRuleForm(request.POST if request.method == "POST" else None, instance=rule)
    if request.method == "POST" and form.is_valid():
        with (
            transaction.atomic(),
            _policy_scope(request, {"action": "policy.edit", "rule": rule.pk}),
        ):
            rule = form.save()
        messages.success(request, f"Rule “{rule.name}” saved.")
        return redirect("console:policy_list")
    status = 400 if form.is_bound else 200
    return render(
        request, "console/policies/form.html", {"form": form, "rule": rule}, status=status
    )


@require_role("administrator")
@require_POST
def policy_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    """Enable or disable a rule; the form says which, so a double submit does not flip it back."""
    rule = _rule_or_404(rule_id)
    wanted = request.POST.get("enabled")
    if wanted not in ("yes", "no"):
        messages.error(request, "Choose to enable or disable the rule.")
        return redirect("console:policy_list")
    enabled = wanted == "yes"
    if rule.enabled != enabled:
        with (
            transaction.atomic(),
            _policy_scope(
                request,
                {"action": "policy.enable" if enabled else "policy.disable", "rule": rule.pk},
            ),
        ):
            rule.enabled = enabled
            rule.save(update_fields=["enabled", "updated_at"])
    messages.success(request, f"Rule “{rule.name}” {'enabled' if enabled else 'disabled'}.")
    return redirect("console:policy_list")


@require_role("administrator")
@require_http_methods(["GET", "POST"])
def policy_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    """Delete a rule (GET: confirm). Operations it already held stay held."""
    rule = _rule_or_404(rule_id)
    if request.method == "POST":
        name = rule.name
        with (
            transaction.atomic(),
            _policy_scope(request, {"action": "policy.delete", "rule": rule.pk}),
        ):
            rule.delete()
        messages.success(request, f"Rule “{name}” deleted.")
        return redirect("console:policy_list")
    return render(request, "console/policies/delete_confirm.html", {"rule": rule})


@require_role("administrator")
@require_http_methods(["GET", "POST"])
def circuit_breaker_edit(request: HttpRequest) -> HttpResponse:
    breaker = _breaker() or CircuitBreaker()
    form = CircuitBreakerForm(request.POST if request.method == "POST" else None, instance=breaker)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic(), _policy_scope(request, {"action": "circuit_breaker.edit"}):
            breaker = form.save()
        messages.success(
            request, f"Circuit breaker saved: {breaker}{'' if breaker.enabled else ' (off)'}."
        )
        return redirect("console:policy_list")
    status = 400 if form.is_bound else 200
    return render(
        request, "console/policies/breaker.html", {"form": form, "breaker": breaker}, status=status
    )
