"""Console operator roles, checked on the server in every view.

Roles are ordered viewer < approver < administrator; each is a Django group
holding the ``access.console_*`` permissions, so the check reads permissions
(a superuser has them all and counts as administrator). Every console view is
wrapped in ``require_role``, which marks it with ``required_role`` so the
URL-walk test can prove no view was left unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseClientRedirect

from provisioning.access.builtin import OPERATOR_ROLES

# The permission that grants each role, highest role first.
_ROLE_PERMISSIONS = (
    ("administrator", "access.console_administer"),
    ("approver", "access.console_approve"),
    ("viewer", "access.console_view"),
)


def operator_role(user: Any) -> str | None:
    """The highest console role of ``user``, or None (anonymous, inactive or no role)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    for role, permission in _ROLE_PERMISSIONS:
        if user.has_perm(permission):
            return role
    return None


def has_role(user: Any, role: str) -> bool:
    """Whether ``user`` holds ``role`` or a higher one (for templates hiding buttons; not a check)."""
    if role not in OPERATOR_ROLES:
        raise ValueError(f"Unknown operator role {role!r}")
    held = operator_role(user)
    return held is not None and OPERATOR_ROLES.index(held) >= OPERATOR_ROLES.index(role)


def _refuse(request: HttpRequest, role: str) -> HttpResponse | None:
    """The response refusing ``request`` below ``role``, or None when it may proceed."""
    user = request.user
    if not getattr(user, "is_authenticated", False):
        login = redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if getattr(request, "htmx", False):
            # A redirect inside an htmx swap would paste the login page into the
            # fragment; send the whole browser there instead. 401, so nothing
            # treats the empty answer as success.
            response = HttpResponseClientRedirect(login["Location"])
            response.status_code = 401
            return response
        return login
    if not has_role(user, role):
        raise PermissionDenied(f"This needs the {role} role.")
    return None


def require_role(role: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a function view: anonymous users go to the login page (302, or an
    htmx client redirect), operators below ``role`` get 403.

    Put it outermost, so the check runs before method checks and the view.
    """
    if role not in OPERATOR_ROLES:
        raise ValueError(f"Unknown operator role {role!r}; use one of {OPERATOR_ROLES}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refusal = _refuse(request, role)
            return refusal if refusal is not None else view(request, *args, **kwargs)

        checked.required_role = role  # type: ignore[attr-defined]
        return checked

    return decorator
