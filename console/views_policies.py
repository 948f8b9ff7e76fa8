"""Console pages for the policy rules and the mass-change circuit breaker.

Every operator reads them; administrators change them through
``provisioning.oversight.rules``, whose validation errors land on the form's fields.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.directory import selectors as directory_selectors
from provisioning.oversight import rules
from provisioning.oversight.models import CircuitBreaker, PolicyRule

from . import oversight_selectors
from .actions import add_service_errors, console_scope
from .oversight_forms import CircuitBreakerForm, PolicyRuleForm
from .permissions import has_role, require_role
from .signin.stepup import require_step_up
from .views_oauth import client_or_404


def _rule_or_404(rule_id: int) -> PolicyRule:
    rule = PolicyRule.objects.prefetch_related("clients").filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such policy rule")
    return rule


def _breaker() -> CircuitBreaker | None:
    """The default settings' row."""
    return CircuitBreaker.objects.filter(client__isnull=True).order_by("pk").first()


@require_role("viewer")
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    """Every rule (enabled first) and the circuit breaker's thresholds."""
    context = {
        "rules": PolicyRule.objects.prefetch_related("clients").order_by("-enabled", Lower("name")),
        "breaker": _breaker(),
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/policies/list.html", context)


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def policy_create(request: HttpRequest) -> HttpResponse:
    form = PolicyRuleForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            with console_scope(request, {"action": "policy.create"}):
                rule = rules.policy_rule_create(**form.service_fields(), operator=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request, f"Rule “{rule.name}” created{'' if rule.enabled else ' (disabled)'}."
            )
            return redirect("console:policy_list")
    status = 400 if form.is_bound else 200
    return render(
        request, "console/policies/form.html", {"form": form, "rule": None}, status=status
    )


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_or_404(rule_id)
    form = PolicyRuleForm(
        request.POST if request.method == "POST" else None,
        initial=PolicyRuleForm.initial_for(rule),
    )
    if request.method == "POST" and form.is_valid():
        try:
            with console_scope(request, {"action": "policy.edit", "rule": rule.pk}):
                rule = rules.policy_rule_update(
                    rule=rule, **form.service_fields(), operator=request.user
                )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Rule “{rule.name}” saved.")
            return redirect("console:policy_list")
    status = 400 if form.is_bound else 200
    return render(
        request, "console/policies/form.html", {"form": form, "rule": rule}, status=status
    )


@require_role("administrator")
@require_step_up
@require_POST
def policy_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    """Enable or disable a rule; the form says which, so a double submit does not flip it back."""
    rule = _rule_or_404(rule_id)
    wanted = request.POST.get("enabled")
    if wanted not in ("yes", "no"):
        messages.error(request, "Choose to enable or disable the rule.")
        return redirect("console:policy_list")
    enabled = wanted == "yes"
    summary = {"action": "policy.enable" if enabled else "policy.disable", "rule": rule.pk}
    with console_scope(request, summary):
        rules.policy_rule_set_enabled(rule=rule, enabled=enabled, operator=request.user)
    messages.success(request, f"Rule “{rule.name}” {'enabled' if enabled else 'disabled'}.")
    return redirect("console:policy_list")


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def policy_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    """Delete a rule (GET: confirm). Operations it already held stay held."""
    rule = _rule_or_404(rule_id)
    if request.method == "POST":
        with console_scope(request, {"action": "policy.delete", "rule": rule.pk}):
            rules.policy_rule_delete(rule=rule, operator=request.user)
        messages.success(request, f"Rule “{rule.name}” deleted.")
        return redirect("console:policy_list")
    return render(request, "console/policies/delete_confirm.html", {"rule": rule})


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def circuit_breaker_edit(request: HttpRequest) -> HttpResponse:
    """The default deletion-safety settings, and every client's standing against its own."""
    breaker = _breaker() or CircuitBreaker()
    form = CircuitBreakerForm(
        request.POST if request.method == "POST" else None,
        initial=CircuitBreakerForm.initial_for(breaker),
    )
    if request.method == "POST" and form.is_valid():
        try:
            with console_scope(request, {"action": "circuit_breaker.edit"}):
                breaker = rules.circuit_breaker_update(**form.cleaned_data, operator=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request, f"Circuit breaker saved: {breaker}{'' if breaker.enabled else ' (off)'}."
            )
            return redirect("console:policy_list")
    status = 400 if form.is_bound else 200
    context = {
        "form": form,
        "breaker": breaker,
        "standings": oversight_selectors.breaker_standings(),
        "retired": directory_selectors.retired_users().order_by("deletion_due", "id")[:50],
    }
    return render(request, "console/policies/breaker.html", context, status=status)


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def client_breaker_edit(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    """One client's own settings (they replace the defaults), or back to the defaults."""
    client = client_or_404(client_id)
    own = CircuitBreaker.objects.filter(client=client).first()
    breaker = own or _breaker() or CircuitBreaker()
    form = CircuitBreakerForm(
        request.POST if request.method == "POST" else None,
        initial=CircuitBreakerForm.initial_for(breaker),
    )
    if request.method == "POST" and request.POST.get("use_defaults") == "yes":
        with console_scope(request, {"action": "circuit_breaker.client_defaults", "client": str(client.pk)}):
            rules.client_breaker_clear(client=client, operator=request.user)
        messages.success(request, f"{client.name} uses the default settings again.")
        return redirect("console:circuit_breaker_edit")
    if request.method == "POST" and form.is_valid():
        try:
            summary = {"action": "circuit_breaker.client_edit", "client": str(client.pk)}
            with console_scope(request, summary):
                breaker = rules.client_breaker_update(
                    client=client, **form.cleaned_data, operator=request.user
                )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Settings of {client.name} saved: {breaker}.")
            return redirect("console:circuit_breaker_edit")
    status = 400 if form.is_bound else 200
    context = {"form": form, "breaker": breaker, "client": client, "own": own is not None}
    return render(request, "console/policies/client_breaker.html", context, status=status)
