"""The password backend for console operators: Django's model backend (which also
answers permission checks and loads the user of every session), refusing local
passwords when they are turned off, except for the named break-glass accounts."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from .session import local_password_allowed


class OperatorPasswordBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        # Refused after the password check, so a wrong and a right password of a
        # non-break-glass account look the same (and both count towards the lockout).
        if user is not None and not local_password_allowed(user.get_username()):
            return None
        return user
