"""The console role an endpoint needs, checked on the server for every request.

A view names its role in ``required_role`` (viewer, approver or administrator); the
check is the console's own (``console.permissions.has_role``), so a token acts exactly
with its operator's role as it is now.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from console.permissions import has_role


class HasConsoleRole(BasePermission):
    """Authenticated (else 401) and holding the view's ``required_role`` (else 403)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        role = view.required_role
        if not has_role(user, role):
            self.message = f"This needs the {role} role."
            return False
        return True
