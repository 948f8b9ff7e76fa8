"""Console pages for rollback: one change set, a client's change sets in a time
range, and the jobs that run large rollbacks off the request.

A small rollback runs in the request, as one transaction. A large one (more
change sets or change records than ``rollback_jobs.runs_inline`` allows) becomes
a rollback job that a Celery task runs (in-process when no broker is
configured); the operator is sent to the job's page, which polls its progress
with htmx until it ends and then links the change sets that undid each one.
Starting rollbacks needs the approver role; the job pages are read-only and
open to viewers, like the change sets they link.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_GET, require_http_methods

from provisioning.audit import deltas
from provisioning.audit.models import ChangeSet
from provisioning.oversight import reviews, rollback_jobs
from provisioning.oversight.models import Review, Rollback, RollbackJob

from . import selectors as console_selectors
from .actions import decide
from .change_records import record_rows
from .oversight_forms import MassRollbackForm
from .permissions import require_role
from .signin.stepup import require_step_up

# A mass rollback preview lists this many steps; the rest are counted.
PREVIEW_LIMIT = 200
# A job page lists this many of its change sets; the rest are counted.
JOB_ITEMS_SHOWN = 500
# Jobs on the job list.
RECENT_JOBS = 50


def rollback_state(change_set: ChangeSet) -> dict:
    """What rolling back ``change_set`` would do, and whether it can."""
    done = Rollback.objects.filter(original=change_set).select_related("rollback").first()
    is_rollback = Rollback.objects.filter(rollback=change_set).select_related("original").first()
    running_job = None if done or is_rollback else rollback_jobs.active_job_for(change_set.pk)
    steps = [] if done or is_rollback else reviews.rollback_preview([change_set.pk])
    return {
        "rolled_back_by": done,
        "rollback_of": is_rollback,
        "running_job": running_job,
        "steps": steps,
        "conflicts": [s for s in steps if s.conflict and not s.blocked],
        "blocked": [s for s in steps if s.blocked],
    }


def _tell_held(request: HttpRequest, rollbacks: list[ChangeSet]) -> None:
    """Say which rollback steps policy held: they wait for another approver."""
    held = [pending for rollback in rollbacks for pending in rollback.held_operations]
    if not held:
        return
    links = format_html_join(
        ", ",
        '<a href="{}">{} {}</a>',
        (
            (reverse("console:pending_detail", args=[p.pk]), p.action, p.resource_label)
            for p in held
        ),
    )
    messages.warning(
        request,
        format_html(
            "Policy held {} step{} of the rollback; another approver decides: {}",
            len(held),
            "" if len(held) == 1 else "s",
            links,
        ),
    )


def _job_started(request: HttpRequest, job: RollbackJob) -> HttpResponse:
    if job.active:
        messages.info(
            request,
            f"Rolling back {job.total} change set{'s' if job.total != 1 else ''} as a background job.",
        )
    return redirect("console:rollback_job_detail", job_id=job.pk)


@require_role("approver")
@require_step_up
@require_http_methods(["GET", "POST"])
def change_set_rollback(request: HttpRequest, change_set_id: int) -> HttpResponse:
    """Roll back one change set: the preview with its conflicts (GET), then the rollback (POST).

    A conflict (the resource changed since) refuses unless the operator ticks "force".
    A change set with many records is rolled back by a job.
    """
    change_set = console_selectors.change_set_get(change_set_id)
    if change_set is None:
        raise Http404("No such change set")
    review = Review.objects.filter(change_set=change_set).first()
    status, error = 200, ""
    if request.method == "POST":
        force = request.POST.get("force") == "yes"
        started, refusal = decide(
            request,
            {"action": "change_set.rollback", "change_set": change_set.pk, "force": force},
            lambda: rollback_jobs.rollback_start(
                change_set_ids=[change_set.pk], operator=request.user, force=force
            ),
        )
        if refusal is None and started.job is not None:
            return _job_started(request, started.job)
        if refusal is None:
            rollback = started.rollbacks[0]
            messages.success(
                request,
                f"Change set {change_set.pk} rolled back as change set {rollback.pk}"
                + (" (forced over later changes)." if force else "."),
            )
            _tell_held(request, started.rollbacks)
            if review is not None:
                return redirect("console:review_detail", review_id=review.pk)
            return redirect("console:change_set_detail", change_set_id=rollback.pk)
        status, error = refusal.status, refusal.message
    context = {
        "change_set": change_set,
        "review": review,
        "error": error,
        "records": record_rows(console_selectors.change_set_records(change_set)),
        "own": change_set.operator_id is not None and change_set.operator_id == request.user.pk,
        **rollback_state(change_set),
    }
    return render(request, "console/reviews/rollback.html", context, status=status)


def _in_sequence(steps: list[reviews.InverseStep]) -> list[reviews.InverseStep]:
    """Re-judge the steps of a multi-change-set preview in the order a rollback runs them.

    ``reviews.rollback_preview`` compares every step with the current state, but a
    rollback undoes the newest change first: an older step on a resource that a newer
    step also undoes meets the state that newer step restores, not the current one.
    """
    newer: dict[tuple, reviews.InverseStep] = {}
    for step in steps:  # newest first
        record = step.record
        key = (record.resource_type, str(record.resource_id))
        later = newer.get(key)
        newer[key] = step
        if later is None:
            continue
        state = deltas.state(later.record.before)  # None for a create: nothing before it
        if record.action == "delete":
            step.blocked = state is not None
            step.conflict = "A resource with this id exists again." if step.blocked else ""
        elif state is None:
            step.blocked, step.conflict = True, "It no longer exists at this point."
        else:
            step.blocked = False
            left = deltas.state(record.after)
            step.conflict = "" if state == left else "It changed between these change sets."
    return steps


@require_role("approver")
@require_step_up
@require_http_methods(["GET", "POST"])
def mass_rollback(request: HttpRequest) -> HttpResponse:
    """Roll back everything one SCIM client did in a time range: choose, preview, confirm."""
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = MassRollbackForm(data, initial=MassRollbackForm.initial_range())
    context: dict[str, Any] = {
        "form": form,
        "error": "",
        "time_zone": timezone.get_current_timezone_name(),
    }
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    elif form.is_bound:
        ids = reviews.client_change_sets(
            client=form.cleaned_data["client"],
            since=form.cleaned_data["since"],
            until=form.cleaned_data["until"],
        )
        if request.method == "POST":
            seen = {value for value in request.POST.getlist("change_sets") if value.isdecimal()}
            force = request.POST.get("force") == "yes"
            if seen != {str(pk) for pk in ids}:
                status = 409
                context["error"] = (
                    "The client's change sets in this range changed since the preview. "
                    "Review the new preview and confirm again."
                )
            elif ids:
                started, refusal = decide(
                    request,
                    {
                        "action": "change_sets.rollback",
                        "client": str(form.cleaned_data["client"].pk),
                        "since": form.cleaned_data["since"].isoformat(),
                        "until": form.cleaned_data["until"].isoformat(),
                        "count": len(ids),
                        "force": force,
                    },
                    lambda: rollback_jobs.rollback_start(
                        change_set_ids=ids, operator=request.user, force=force
                    ),
                )
                if refusal is None and started.job is not None:
                    return _job_started(request, started.job)
                if refusal is None:
                    rolled = started.rollbacks
                    messages.success(
                        request,
                        f"Rolled back {len(rolled)} change set{'s' if len(rolled) != 1 else ''} "
                        f"of {form.cleaned_data['client'].name}.",
                    )
                    _tell_held(request, rolled)
                    return redirect(reverse("console:audit_list") + "?source=console")
                status, context["error"] = refusal.status, refusal.message
        steps = _in_sequence(reviews.rollback_preview(ids[:PREVIEW_LIMIT])) if ids else []
        context.update(
            {
                "change_set_ids": ids,
                "steps": steps[:PREVIEW_LIMIT],
                "more_steps": len(ids) > PREVIEW_LIMIT,
                "conflicts": [s for s in steps if s.conflict and not s.blocked],
                "blocked": [s for s in steps if s.blocked],
                "runs_as_job": bool(ids) and not rollback_jobs.runs_inline(ids),
                "preview": True,
            }
        )
    return render(request, "console/reviews/mass_rollback.html", context, status=status)


# --- Rollback jobs ------------------------------------------------------------------------


@require_role("viewer")
@require_GET
def rollback_job_list(request: HttpRequest) -> HttpResponse:
    """The latest rollback jobs, running ones included."""
    context = {"jobs": rollback_jobs.rollback_jobs_recent(limit=RECENT_JOBS)}
    return render(request, "console/reviews/rollback_jobs.html", context)


@require_role("viewer")
@require_GET
def rollback_job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """A rollback job's status and progress; htmx polls the status section while it runs.

    Once it has ended, the section lists each change set with the one that undid it
    (or says where and why it stopped) and carries no trigger, so polling stops.
    """
    job = rollback_jobs.rollback_job_get(job_id)
    if job is None:
        raise Http404("No such rollback job")
    context = {
        "job": job,
        "items": [] if job.active else rollback_jobs.rollback_job_items(job, limit=JOB_ITEMS_SHOWN),
    }
    template = "console/reviews/rollback_job.html"
    response = render(request, f"{template}#status" if request.htmx else template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
