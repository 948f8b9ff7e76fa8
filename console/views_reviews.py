"""Console pages for flagged changes: the review queue, one change set's before and
after with what rolling it back would do, accepting it, and rollback.

Accepting is decided by ``provisioning.oversight.reviews`` (four eyes, legal
transitions); queue rows answer htmx with the row alone. Rolling back one change
set, or everything a client did in a time range, is previewed and confirmed here too.
"""

from __future__ import annotations

from django.db.models import Count, F, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from provisioning.audit.models import ChangeRecord
from provisioning.directory.selectors import KeysetPage
from provisioning.oversight import reviews
from provisioning.oversight.models import Review

from . import change_records, listing
from . import selectors as console_selectors
from .actions import Outcome, answer_row, decide
from .oversight_forms import ReviewFilter
from .permissions import has_role, require_role
from .signin.stepup import require_step_up
from .views_rollback import rollback_state

# A mass rollback preview lists this many steps; the rest are counted.
PREVIEW_LIMIT = 200


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

    def rows(page: KeysetPage) -> dict:
        _review_summaries(page.items)
        return {
            "rows": [_review_row(review, request.user) for review in page.items],
            "can_decide": has_role(request.user, "approver"),
            "here": request.get_full_path(),
        }

    return listing.render_listing(
        request,
        "console/reviews/list.html",
        filterset,
        key=F("created_at"),
        descending=not filterset.open_only,
        cursor=listing.int_cursor,
        extra=rows,
    )


def review_or_404(review_id: int) -> Review:
    """A review with its change set, the change set's client and operator, and who decided."""
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



@require_role("viewer")
@require_GET
def review_detail(request: HttpRequest, review_id: int) -> HttpResponse:
    """A flagged change set: why it was flagged, its before/after diff, and what rolling back does."""
    review = review_or_404(review_id)
    change_set = review.change_set
    records = console_selectors.change_set_records(change_set)
    context = {
        "review": review,
        "change_set": change_set,
        "records": change_records.record_rows(records),
        "own": change_set.operator_id is not None and change_set.operator_id == request.user.pk,
        "can_decide": has_role(request.user, "approver"),
        **rollback_state(change_set),
    }
    return render(request, "console/reviews/detail.html", context)


def _review_row_context(request: HttpRequest, review_id: int) -> dict:
    review = review_or_404(review_id)
    _review_summaries([review])
    return {
        "row": _review_row(review, request.user),
        "can_decide": has_role(request.user, "approver"),
    }


def _review_answer(request: HttpRequest, review_id: int, outcome: Outcome) -> HttpResponse:
    return answer_row(
        request,
        outcome,
        fragment="console/reviews/list.html#row",
        context=lambda: _review_row_context(request, review_id),
        listing_url=reverse("console:review_list"),
        detail_url=reverse("console:review_detail", args=[review_id]),
    )


@require_role("approver")
@require_step_up
@require_POST
def review_accept(request: HttpRequest, review_id: int) -> HttpResponse:
    review = review_or_404(review_id)
    _, refusal = decide(
        request,
        {"action": "review.accept", "review": review.pk, "change_set": review.change_set_id},
        lambda: reviews.review_accept(review_id=review.pk, operator=request.user),
    )
    outcome = refusal or Outcome(f"Change set {review.change_set_id} accepted.")
    return _review_answer(request, review.pk, outcome)
