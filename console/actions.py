"""Running an operator's action and answering it.

An action runs in a console change set scope, so whatever it changes is
attributed to the operator; a service's refusal becomes an ``Outcome`` (a
message and a status) rather than an error page. A service's ``ValidationError``
keyed by field lands on the form's fields instead. A row's action answers htmx
with the row alone and, without JavaScript, redirects back to where the form
was posted from, the outcome as a flash message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from provisioning.audit.context import change_set_scope
from provisioning.audit.models import ChangeSet

from .signin.redirects import safe_next


@dataclass
class Outcome:
    """What an action came to: a message for the operator and the status to answer."""

    message: str
    status: int = 200

    @property
    def ok(self) -> bool:
        return self.status < 400


def console_scope(request: HttpRequest, summary: dict):
    """The change set scope of one console action; ``summary`` describes the action
    for the change set's ``request`` column."""
    return change_set_scope(
        operator=request.user,
        source=ChangeSet.Source.CONSOLE,
        request={"console": summary, "path": request.path},
    )


def decide(
    request: HttpRequest, summary: dict, action: Callable[[], Any]
) -> tuple[Any, Outcome | None]:
    """Run ``action`` in the action's change set scope: ``(result, None)``, or
    ``(None, refusal)`` when a service refused it (403, 400 or 404)."""
    try:
        with console_scope(request, summary):
            return action(), None
    except PermissionDenied as error:
        return None, Outcome(str(error) or "You may not decide this.", 403)
    except ValidationError as error:
        return None, Outcome(" ".join(error.messages), 400)
    except ObjectDoesNotExist:
        return None, Outcome("It no longer exists.", 404)


def next_url(request: HttpRequest, default: str) -> str:
    """The ``next`` the form carried, if it points at this site; else ``default``."""
    return safe_next(request, request.POST.get("next") or request.GET.get("next"), default)


def selected_ids(values: Iterable) -> list[uuid.UUID]:
    """The UUIDs among the values of a selection, in order and once each; anything
    else (a hand-edited form) is skipped."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return list(dict.fromkeys(ids))


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Attach a service's ValidationError to the form fields it names (others to the form)."""
    by_field = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    for name, texts in by_field.items():
        for text in texts:
            form.add_error(name if name in form.fields else None, text)


def flash(request: HttpRequest, outcome: Outcome) -> None:
    (messages.success if outcome.ok else messages.error)(request, outcome.message)


def answer_row(
    request: HttpRequest,
    outcome: Outcome,
    *,
    fragment: str,
    context: Callable[[], dict],
    listing_url: str,
    detail_url: str,
) -> HttpResponse:
    """Answer an action taken on a queue row.

    htmx gets ``fragment`` (``template#row``) rendered with ``context()`` (read
    after the action), the outcome and ``here``, the listing page the row's forms
    return to; the status is the outcome's, and ``X-Console-Fragment: row`` lets the
    listing swap an error row too. Without JavaScript: the outcome as a flash
    message and a redirect to the form's safe ``next``, else ``detail_url``.
    """
    if request.htmx:
        response = render(
            request,
            fragment,
            {**context(), "outcome": outcome, "here": next_url(request, listing_url)},
            status=outcome.status,
        )
        response["X-Console-Fragment"] = "row"
        return response
    flash(request, outcome)
    return redirect(next_url(request, detail_url))
