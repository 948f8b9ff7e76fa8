"""Console pages for quarantines: SCIM clients whose destructive operations the
circuit breaker holds, and releasing (applying) or discarding what they hold.

Administrators decide; ``provisioning.oversight.services`` ends the quarantine
and approves or discards each held operation.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation, Quarantine

from .actions import decide, selected_ids
from .oversight_selectors import held_in_quarantine
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
        "can_release": has_role(request.user, "administrator"),
    }
    return render(request, "console/quarantines/detail.html", context)


def _release_choice(request: HttpRequest, quarantine: Quarantine) -> tuple[list, list, bool]:
    """(to apply, to discard, everything) for the ids the operator chose; none chosen means all."""
    data = request.POST if request.method == "POST" else request.GET
    held = list(_held(quarantine))
    chosen = {str(value) for value in selected_ids(data.getlist("pending"))}
    if not chosen or data.get("scope") == "all":
        return held, [], True
    apply = [op for op in held if str(op.pk) in chosen]
    discard = [op for op in held if str(op.pk) not in chosen]
    return apply, discard, False


@require_role("administrator")
@require_step_up
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
        _, refusal = decide(
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
