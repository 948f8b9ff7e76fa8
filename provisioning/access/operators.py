"""Console operators: Django users in exactly one of the groups viewer, approver
or administrator, which carry the operator permissions.

Every change takes the acting ``operator`` (a Django user, or None for a
command-line action) and runs inside one audited change set.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from .builtin import OPERATOR_PERMISSIONS, OPERATOR_ROLES
from .units import unit_of_change

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def ensure_operator_groups() -> dict[str, AuthGroup]:
    """The groups viewer, approver, administrator with their permissions (created if missing)."""
    permissions = {
        p.codename: p
        for p in Permission.objects.filter(
            content_type__app_label="access",
            codename__in={c for codes in OPERATOR_PERMISSIONS.values() for c in codes},
        )
    }
    groups = {}
    for name in OPERATOR_ROLES:
        group, created = AuthGroup.objects.get_or_create(name=name)
        if created:
            group.permissions.add(*(permissions[c] for c in OPERATOR_PERMISSIONS[name]))
        groups[name] = group
    return groups


def _check_operator_role(role: str) -> None:
    if role not in OPERATOR_ROLES:
        raise ValidationError(
            {"role": f"Unknown operator role “{role}”; choose one of: {', '.join(OPERATOR_ROLES)}."}
        )


@transaction.atomic
def operator_create(
    *,
    username: str,
    role: str,
    password: str | None = None,
    email: str = "",
    operator: AbstractBaseUser | None = None,
) -> tuple[AbstractBaseUser, str]:
    """Create a console operator with one role; return the user and the password.

    Without ``password`` a random one is generated (returned so it can be shown
    once). A given password must pass the configured password validators.
    """
    _check_operator_role(role)
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": "An operator needs a username."})
    if User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).exists():
        raise ValidationError({"username": f"An operator named “{username}” already exists."})
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(18)
    candidate = User(**{User.USERNAME_FIELD: username}, email=email)
    if not generated:
        validate_password(password, user=candidate)
    groups = ensure_operator_groups()
    with unit_of_change(operator=operator):
        candidate.set_password(password)
        candidate.save()
        candidate.groups.add(groups[role])
    return candidate, password


@transaction.atomic
def operator_set_role(
    *, user: AbstractBaseUser, role: str, operator: AbstractBaseUser | None = None
) -> None:
    """Give an operator exactly one operator role (their other operator groups are removed)."""
    _check_operator_role(role)
    groups = ensure_operator_groups()
    with unit_of_change(operator=operator):
        user.groups.remove(*(g for name, g in groups.items() if name != role))
        user.groups.add(groups[role])
