"""Console pages for SCIM clients, their tokens, and SCIM roles.

Reading needs the viewer role; every change needs administrator and is a POST
through the ``provisioning.access`` services with ``operator=request.user``, so it
is audited in a change set like any other change. A raw token exists only in
the response that creates it: it is never stored, logged or shown again.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.access import clients, roles
from provisioning.audit.context import change_set_scope
from provisioning.scim.resources import scim_base_url

from . import selectors
from .access_forms import (
    ClientCreateForm,
    RoleAssignForm,
    RoleForm,
    TokenRotateForm,
    permission_matrix,
)
from .actions import add_service_errors
from .permissions import has_role, require_role
from .signin.stepup import require_step_up
from .views_oauth import client_or_404, oauth_context


def _role_or_404(role_id: int):
    role = selectors.role_get(role_id)
    if role is None:
        raise Http404("No such role")
    return role


def _token_page(request: HttpRequest, *, client, token, raw: str, created: bool) -> HttpResponse:
    """The only page that ever shows a raw token; no cache may keep it."""
    response = render(
        request,
        "console/clients/token.html",
        {
            "client": client,
            "token": token,
            "raw_token": raw,
            "created": created,
            "scim_base": scim_base_url(request),
        },
    )
    add_never_cache_headers(response)
    return response


# --- SCIM clients ----------------------------------------------------------------


@require_role("viewer")
@require_GET
def client_list(request: HttpRequest) -> HttpResponse:
    """Every client with its role, tokens, denied requests and 24-hour request health."""
    return render(
        request,
        "console/clients/list.html",
        {"clients": selectors.clients_with_health(), "scim_base": scim_base_url(request) + "/"},
    )


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def client_create(request: HttpRequest) -> HttpResponse:
    """Create a client and its first token (optionally expiring, optionally network-bound)."""
    form = ClientCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            # One console action, one change set: the client, its token and the token's limits.
            with transaction.atomic(), change_set_scope(operator=request.user, source="console"):
                client, raw = clients.scim_client_create(
                    name=data["name"], role=data["role"], operator=request.user
                )
                token = client.tokens.get()
                if data["expires_at"] or data["allowed_networks"]:
                    token = clients.scim_token_update(
                        token=token,
                        expires_at=data["expires_at"],
                        allowed_networks=data["allowed_networks"],
                        operator=request.user,
                    )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            return _token_page(request, client=client, token=token, raw=raw, created=True)
    status = 400 if form.is_bound else 200
    return render(request, "console/clients/new.html", {"form": form}, status=status)


@require_role("viewer")
@require_GET
def client_detail(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    client = client_or_404(client_id)
    context = {
        "client": client,
        "tokens": selectors.client_tokens(client),
        "requests": selectors.client_requests(client),
        "can_administer": has_role(request.user, "administrator"),
        "role_form": RoleAssignForm(initial={"role": client.role_id}, auto_id="role_%s"),
        "rotate_form": TokenRotateForm(auto_id="rotate_%s"),
        "scim_base": scim_base_url(request) + "/",
        **oauth_context(request, client),
    }
    return render(request, "console/clients/detail.html", context)


@require_role("administrator")
@require_step_up
@require_POST
def client_set_role(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    client = client_or_404(client_id)
    form = RoleAssignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("console:client_detail", client_id=client.pk)
    previous = client.role.name
    role = form.cleaned_data["role"]
    clients.scim_client_set_role(client=client, role=role, operator=request.user)
    if role.name != previous:
        messages.success(request, f"{client.name} now has the role {role.name} (was {previous}).")
    return redirect("console:client_detail", client_id=client.pk)


@require_role("administrator")
@require_step_up
@require_POST
def token_rotate(request: HttpRequest, client_id: uuid.UUID) -> HttpResponse:
    """Issue a new token; the others keep working (until revoked, or the chosen grace period)."""
    client = client_or_404(client_id)
    form = TokenRotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how long the other tokens keep working.")
        return redirect("console:client_detail", client_id=client.pk)
    try:
        token, raw = clients.scim_token_rotate(
            client=client, expire_old_in=form.cleaned_data["expire_old_in"], operator=request.user
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("console:client_detail", client_id=client.pk)
    return _token_page(request, client=client, token=token, raw=raw, created=False)


@require_role("administrator")
@require_GET
def token_revoke_confirm(request: HttpRequest, client_id: uuid.UUID, token_id: int) -> HttpResponse:
    client = client_or_404(client_id)
    token = selectors.client_token_get(client, token_id)
    if token is None:
        raise Http404("No such token")
    return render(
        request, "console/clients/revoke_confirm.html", {"client": client, "token": token}
    )


@require_role("administrator")
@require_POST
def token_revoke(request: HttpRequest, client_id: uuid.UUID, token_id: int) -> HttpResponse:
    client = client_or_404(client_id)
    token = selectors.client_token_get(client, token_id)
    if token is None:
        raise Http404("No such token")
    if token.is_revoked:
        messages.warning(request, f"Token {token.prefix}… was already revoked.")
    else:
        clients.scim_token_revoke(token=token, operator=request.user)
        messages.success(request, f"Token {token.prefix}… revoked; requests using it now get 401.")
    return redirect("console:client_detail", client_id=client.pk)


# --- Roles -----------------------------------------------------------------------


@require_role("viewer")
@require_GET
def role_list(request: HttpRequest) -> HttpResponse:
    roles = [
        {"role": role, "matrix": permission_matrix(role)} for role in selectors.roles_with_usage()
    ]
    return render(request, "console/roles/list.html", {"roles": roles})


@require_role("viewer")
@require_GET
def role_detail(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _role_or_404(role_id)
    context = {
        "role_obj": role,
        "matrix": permission_matrix(role),
        "clients": selectors.role_clients(role),
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/roles/detail.html", context)


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def role_create(request: HttpRequest) -> HttpResponse:
    form = RoleForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            role = roles.scim_role_create(**form.service_fields(), operator=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Role {role.name} created.")
            return redirect("console:role_detail", role_id=role.pk)
    status = 400 if form.is_bound else 200
    return render(
        request, "console/roles/form.html", {"form": form, "role_obj": None}, status=status
    )


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def role_edit(request: HttpRequest, role_id: int) -> HttpResponse:
    """Edit a role; a built-in role's matrix and options are shown but only its description changes."""
    role = _role_or_404(role_id)
    initial = RoleForm.initial_for(role)
    data = request.POST if request.method == "POST" else None
    form = RoleForm(data, initial=initial, built_in=role.built_in)
    if request.method == "POST" and form.is_valid():
        try:
            role = roles.scim_role_update(
                role=role, operator=request.user, **form.service_fields()
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Role {role.name} saved.")
            return redirect("console:role_detail", role_id=role.pk)
    status = 400 if form.is_bound else 200
    return render(
        request, "console/roles/form.html", {"form": form, "role_obj": role}, status=status
    )


@require_role("administrator")
@require_GET
def role_delete_confirm(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _role_or_404(role_id)
    context = {"role_obj": role, "clients": selectors.role_clients(role, limit=20)}
    return render(request, "console/roles/delete_confirm.html", context)


@require_role("administrator")
@require_step_up
@require_POST
def role_delete(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _role_or_404(role_id)
    try:
        roles.scim_role_delete(role=role, operator=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("console:role_detail", role_id=role.pk)
    messages.success(request, f"Role {role.name} deleted.")
    return redirect("console:role_list")
