"""Console pages. Views parse the request, call a directory selector or service and render.

Every view is decorated with ``require_role``; listings answer htmx requests
with their results fragment alone (``template#results``) and full pages
otherwise, so every page reads the same without JavaScript.
"""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from provisioning.directory import selectors, services
from provisioning.directory.pipeline import OperationHeld
from provisioning.directory.selectors import KeysetPage
from provisioning.oversight import deletions
from provisioning.scim import resources
from provisioning.scim.errors import NotFound, PreconditionFailed, ScimError
from provisioning.scim.patch import PATCH_OP, parse_patch_request
from provisioning.scim.resources import scim_base_url
from provisioning.scim.schema import refresh_extensions

from . import charts, listing, oversight_selectors
from . import selectors as console_selectors
from .actions import console_scope
from .attributes import user_sections
from .filters import GroupFilter, UserFilter
from .permissions import require_role
from .signin.stepup import require_step_up

ACTIVITY_DAYS = 14

USER_LISTING = listing.Sortable(
    columns=[
        listing.Column("userName", sort="userName"),
        listing.Column("Display name", sort="displayName"),
        listing.Column("Email", sort="email"),
        listing.Column("Status"),
        listing.Column("Source"),
        listing.Column("Last modified", sort="lastModified"),
    ],
    keys=selectors.USER_SORT_KEYS,
    default="userName",
)
GROUP_LISTING = listing.Sortable(
    columns=[
        listing.Column("Display name", sort="displayName"),
        listing.Column("externalId"),
        listing.Column("Users", numeric=True),
        listing.Column("Nested groups", numeric=True),
        listing.Column("Source"),
        listing.Column("Last modified", sort="lastModified"),
    ],
    keys=selectors.GROUP_SORT_KEYS,
    default="displayName",
)


@require_GET
@require_role("viewer")
def home(request: HttpRequest) -> HttpResponse:
    """Dashboard: directory totals, SCIM clients and provisioning activity."""
    activity = selectors.user_activity(days=ACTIVITY_DAYS)
    rows = [
        {
            "label": day["day"].strftime("%d %b"),
            "created": day["created"],
            "modified": day["modified"],
        }
        for day in activity
    ]
    per_source = selectors.users_per_source()
    clients = [
        {"client": client, "users": per_source.get(client.pk, 0)}
        for client in console_selectors.clients_with_health()
    ]
    context = {
        "totals": selectors.directory_totals(),
        "clients": clients,
        "unsourced_users": per_source.get(None, 0),
        "activity": activity,
        "activity_days": ACTIVITY_DAYS,
        "activity_totals": {
            "created": sum(day["created"] for day in activity),
            "modified": sum(day["modified"] for day in activity),
        },
        "chart": charts.grouped_bars(rows, ["created", "modified"]),
        "scim_base": scim_base_url(request) + "/",
    }
    return render(request, "console/home.html", context)


# --- Users --------------------------------------------------------------------


@require_GET
@require_role("viewer")
def user_list(request: HttpRequest) -> HttpResponse:
    return listing.render_listing(
        request,
        "console/users/list.html",
        UserFilter(request.GET),
        sortable=USER_LISTING,
        search="q",
    )


def _user_or_404(user_id: uuid.UUID, *, retired: bool = False):
    user = selectors.user_get(user_id, retired=retired)
    if user is None:
        raise Http404("No such user")
    return user


@require_GET
@require_role("viewer")
def user_detail(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    refresh_extensions()  # registered extension schemas decide which values are shown
    # A user awaiting its scheduled deletion is shown too: it can be restored from here.
    user = _user_or_404(user_id, retired=True)
    base = scim_base_url(request)
    memberships = selectors.groups_of_users([user.pk]).get(user.pk, [])
    group_entries = [
        {"value": str(gid), "$ref": f"{base}/Groups/{gid}", "display": name, "type": kind}
        for gid, name, kind in memberships
    ]
    document = resources.user_document(user, base, group_entries)
    context = {
        "user_obj": user,
        "sections": user_sections(document),
        "groups": [{"id": gid, "name": name, "kind": kind} for gid, name, kind in memberships],
        "scim_json": json.dumps(document, indent=2, ensure_ascii=False),
        "manager_user": None,
        "history": console_selectors.resource_history("User", user.pk),
        "held": oversight_selectors.held_idp_changes("User", user.pk),
    }
    manager = context["sections"]["manager"]
    if manager:
        manager_id = _uuid_or_none(manager["value"])
        context["manager_user"] = selectors.user_get(manager_id) if manager_id else None
    return render(request, "console/users/detail.html", context)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@require_role("approver")
@require_GET
def user_deactivate_confirm(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """The confirmation step before deactivating; it works without JavaScript."""
    user = _user_or_404(user_id)
    return render(request, "console/users/deactivate_confirm.html", {"user_obj": user})


@require_role("approver")
@require_POST
def user_deactivate(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    return _set_active(request, user_id, active=False)


@require_role("approver")
@require_step_up
@require_POST
def user_reactivate(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    return _set_active(request, user_id, active=True)


def _set_active(request: HttpRequest, user_id: uuid.UUID, *, active: bool) -> HttpResponse:
    """Deactivate or reactivate through the same PATCH service SCIM clients use.

    The form carries the version the operator saw: if the user changed since,
    the service refuses (If-Match) and the operator looks again.
    """
    user = _user_or_404(user_id)
    version = request.POST.get("version", "")
    if_match = f'W/"{version}"' if version.isdecimal() else None
    operations = parse_patch_request(
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": active}],
        }
    )
    verb = "reactivation" if active else "deactivation"
    try:
        # No transaction around it: a held write stores its pending operation and raises.
        with console_scope(request, {"action": f"user.{verb}", "user": str(user.pk)}):
            services.user_patch(
                user_id=user.pk,
                operations=operations,
                client=None,
                if_match=if_match,
                operator=request.user,
            )
    except NotFound:
        raise Http404("No such user") from None
    except OperationHeld as held:
        link = reverse("console:pending_detail", args=[held.pending.pk])
        messages.warning(
            request,
            format_html(
                "Policy held the {} of {}: it waits for another approver as "
                '<a href="{}">pending operation {}</a>.',
                verb,
                user.user_name,
                link,
                str(held.pending.pk)[:8],
            ),
        )
    except PreconditionFailed:
        messages.error(
            request,
            f"{user.user_name} changed while you were looking at it. Review it and try again.",
        )
    except ScimError as error:
        messages.error(request, f"{user.user_name} was not changed: {error.detail}")
    else:
        verb = "reactivated" if active else "deactivated"
        messages.success(request, f"{user.user_name} {verb}.")
    return redirect("console:user_detail", user_id=user.pk)


@require_role("approver")
@require_step_up
@require_POST
def user_restore(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Cancel a scheduled deletion (deactivate before delete): the user rejoins the directory."""
    user = _user_or_404(user_id, retired=True)
    if not user.retired:
        messages.info(request, f"{user.user_name} is not scheduled for deletion.")
        return redirect("console:user_detail", user_id=user.pk)
    try:
        with console_scope(request, {"action": "user.restore", "user": str(user.pk)}):
            deletions.user_restore(user_id=user.pk, operator=request.user)
    except NotFound:
        messages.error(request, f"{user.user_name} is no longer scheduled for deletion.")
    except ScimError as error:
        messages.error(request, f"{user.user_name} was not restored: {error.detail}")
    else:
        messages.success(
            request, f"{user.user_name} restored; it stays deactivated until reactivated."
        )
    return redirect("console:user_detail", user_id=user.pk)


# --- Groups -------------------------------------------------------------------


def _group_counts(page: KeysetPage) -> dict:
    for group in page.items:
        group.user_count = group.member_count - group.group_count
    return {}


@require_GET
@require_role("viewer")
def group_list(request: HttpRequest) -> HttpResponse:
    return listing.render_listing(
        request,
        "console/groups/list.html",
        GroupFilter(request.GET),
        sortable=GROUP_LISTING,
        search="q",
        extra=_group_counts,
    )


@require_GET
@require_role("viewer")
def group_detail(request: HttpRequest, group_id: uuid.UUID) -> HttpResponse:
    group = selectors.group_get(group_id)
    if group is None:
        raise Http404("No such group")
    page = selectors.group_member_page(
        group.pk,
        after=listing.int_cursor(request, "after"),
        before=listing.int_cursor(request, "before"),
        size=listing.PAGE_SIZE,
    )
    context = {
        "group": group,
        "page": page,
        "counts": selectors.group_member_counts(group.pk),
        "member_groups": selectors.group_member_groups(group.pk),
        "parent_groups": selectors.group_parent_groups(group.pk),
    }
    if not listing.wants_partial(request):
        context["history"] = console_selectors.resource_history("Group", group.pk)
        context["held"] = oversight_selectors.held_idp_changes("Group", group.pk)
    return listing.respond(request, "console/groups/detail.html", context, partial="members")
