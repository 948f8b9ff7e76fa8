"""Console pages for quarantines: SCIM clients whose destructive operations the
circuit breaker holds, and releasing (applying) or discarding what they hold.

Administrators decide; ``provisioning.oversight.services`` ends the quarantine
and approves or discards each held operation.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from provisioning.oversight import services
from provisioning.oversight.models import HeldKind, PendingOperation, Quarantine, held_kind_q

from .actions import decide, selected_ids
from .oversight_selectors import held_by_kind, held_in_quarantine
from .permissions import has_role, require_role
from .signin.stepup import require_step_up


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
        "by_kind": held_by_kind(quarantine),
        "can_release": has_role(request.user, "approver"),
    }
    return render(request, "console/quarantines/detail.html", context)


def _release_choice(request: HttpRequest, quarantine: Quarantine) -> tuple[list, list, dict]:
    """(to apply, to discard, what was chosen) shown by the confirmation (GET) for the
    operator's choice: the operations of the kinds named (``kind``) and/or the ids selected
    (``pending``); none chosen means all. Unknown kinds choose nothing."""
    data = request.GET
    held = _held(quarantine)
    kinds = [kind for kind in data.getlist("kind") if kind in HeldKind.values]
    chosen_ids = {str(value) for value in selected_ids(data.getlist("pending"))}
    if data.get("scope") == "all" or not (data.getlist("kind") or chosen_ids):
        return list(held), [], {"everything": True}
    choice: dict = {}
    if data.getlist("kind"):
        condition = Q(pk__in=[])
        for kind in kinds:
            condition |= held_kind_q(kind)
        held = held.filter(condition)
        choice = {"kinds": kinds, "kind_labels": [HeldKind(k).label.lower() for k in kinds]}
    apply_ids = {op.pk for op in held if not chosen_ids or str(op.pk) in chosen_ids}
    held = list(_held(quarantine))
    apply = [op for op in held if op.pk in apply_ids]
    discard = [op for op in held if op.pk not in apply_ids]
    return apply, discard, choice


def _posted_choice(request: HttpRequest, quarantine: Quarantine) -> tuple[list, list, str]:
    """(to apply, to discard, refusal) for a confirmed release. The confirmation posts the
    ids it showed, applied (``pending``) and all (``shown``): only those are applied, and
    an operation held since the page was shown is never decided unseen."""
    chosen = set(selected_ids(request.POST.getlist("pending")))
    shown = set(selected_ids(request.POST.getlist("shown"))) | chosen
    held = list(_held(quarantine))
    apply = [op for op in held if op.pk in chosen]
    discard = [op for op in held if op.pk not in chosen]
    if not chosen:
        return apply, discard, "The release names no held operation; choose what to release."
    # Every operation held now was shown (applied or discarded), else the release is
    # refused: one held since would otherwise be discarded unseen.
    unseen = [op for op in held if op.pk not in shown]
    if unseen:
        if request.POST.get("scope") == "all":
            apply, discard = held, []  # shown again: all of them, the new ones too
        return (
            apply,
            discard,
            f"{len(unseen)} operation{'s were' if len(unseen) != 1 else ' was'} held since "
            "this page was shown; review the release again.",
        )
    if not apply:
        return apply, discard, "Nothing chosen is held any more."
    return apply, discard, ""


def _awaiting_second(apply: list) -> list:
    """The operations a rule held for two approvers that nobody approved yet: a release
    is one approval for them, and they stay pending until a second approver agrees."""
    return [op for op in apply if op.two_approvers and not op.approvals.exists()]


@require_role("approver")
@require_step_up
@require_http_methods(["GET", "POST"])
def quarantine_release(request: HttpRequest, quarantine_id: uuid.UUID) -> HttpResponse:
    """Release: all, one kind, or the selected operations ("allow these deletions").
    GET confirms what is applied and what discarded; POST does it, for exactly the
    operations the confirmation showed."""
    quarantine = _quarantine_or_404(quarantine_id)
    if request.method == "POST":
        apply, discard, error = _posted_choice(request, quarantine)
        choice = {"everything": request.POST.get("scope") == "all" and not discard}
        kinds = [kind for kind in request.POST.getlist("kind") if kind in HeldKind.values]
        if kinds:
            choice |= {"kinds": kinds, "kind_labels": [HeldKind(k).label.lower() for k in kinds]}
    else:
        apply, discard, choice = _release_choice(request, quarantine)
        error = ""
    everything = bool(choice.get("everything"))
    context = {
        "quarantine": quarantine,
        "apply": apply,
        "discard": discard,
        "everything": everything,
        "kinds": choice.get("kinds", []),
        "kind_labels": choice.get("kind_labels", []),
        "second_approver": _awaiting_second(apply),
        "error": "",
    }
    if request.method == "POST":
        if quarantine.status != Quarantine.Status.ACTIVE:
            context["error"] = "This quarantine has already ended."
            return render(request, "console/quarantines/release_confirm.html", context, status=400)
        if request.POST.get("confirm") != "yes":
            context["error"] = "Confirm the release first."
            return render(request, "console/quarantines/release_confirm.html", context, status=400)
        if error:
            context["error"] = error
            return render(request, "console/quarantines/release_confirm.html", context, status=400)
        summary = {
            "action": "quarantine.release",
            "quarantine": str(quarantine.pk),
            "all": everything,
        }
        if context["kinds"]:
            summary["kinds"] = context["kinds"]
        _, refusal = decide(
            request,
            summary,
            lambda: services.quarantine_release(
                quarantine_id=quarantine.pk,
                operator=request.user,
                pending_ids=[op.pk for op in apply],
            ),
        )
        if refusal is None:
            # An operation a rule held for two approvers took this release as one approval.
            awaiting = PendingOperation.objects.filter(
                pk__in=[op.pk for op in apply], status=PendingOperation.Status.PENDING
            ).count()
            approved = len(apply) - awaiting
            messages.success(
                request,
                f"Quarantine of {quarantine.client.name} released: {approved} operation"
                f"{'s' if approved != 1 else ''} approved"
                + (f", {awaiting} awaiting a second approver" if awaiting else "")
                + (f", {len(discard)} discarded." if discard else "."),
            )
            return redirect("console:quarantine_detail", quarantine_id=quarantine.pk)
        context["error"] = refusal.message
        return render(
            request, "console/quarantines/release_confirm.html", context, status=refusal.status
        )
    return render(request, "console/quarantines/release_confirm.html", context)


@require_role("approver")
@require_step_up
@require_http_methods(["GET", "POST"])
def quarantine_discard(request: HttpRequest, quarantine_id: uuid.UUID) -> HttpResponse:
    """Discard (GET: confirm; POST: end the quarantine and drop every held operation)."""
    quarantine = _quarantine_or_404(quarantine_id)
    context = {"quarantine": quarantine, "held": list(_held(quarantine)), "error": ""}
    if request.method == "POST":
        _, refusal = decide(
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
