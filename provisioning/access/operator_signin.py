"""Operators who sign in through the organisation's identity provider, and the audit
trail of sign-in events.

The console role of a single sign-on operator is not kept here: it is read from a
claim of every sign-in (``role_from_claims``) and written with ``operator_sync_role``,
which also ends every open session of an operator the claim no longer grants a role.

Sign-in events (sign-ins with their method and IdP subject, failures, MFA enrolment and
removal, step-ups, roles from claims) are audit entries of the ``access`` kind on the
operator's user row: no model changes, so ``operator_event_record`` writes the entry
itself, stamped (actor, correlation id, address) like every other entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from .builtin import OPERATOR_ROLES
from .operators import ensure_operator_groups, operator_set_role
from .units import unit_of_change

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class SignInEvent:
    """The ``event`` value of a sign-in audit entry."""

    SIGNED_IN = "signed in"
    SIGN_IN_FAILED = "sign-in failed"
    SIGN_IN_REFUSED = "sign-in refused"
    MFA_FAILED = "MFA code refused"
    MFA_ADDED = "MFA authenticator added"
    MFA_REMOVED = "MFA authenticator removed"
    MFA_RESET = "MFA recovery codes regenerated"
    STEPPED_UP = "stepped up"
    STEP_UP_FAILED = "step-up failed"
    ROLE_FROM_CLAIMS = "role from identity provider"
    ROLE_REMOVED = "role removed by identity provider"
    SESSION_ENDED = "session ended"


def _claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """The string values of a claim; ``a.b`` reads a nested member (Keycloak's
    ``realm_access.roles``). A claim name containing dots is tried whole first."""
    value: Any = claims.get(path) if path in claims else claims
    if path not in claims:
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        return [item for item in value if isinstance(item, str)]
    return []


def role_from_claims(
    claims: Mapping[str, Any], *, claim: str, values: Mapping[str, Iterable[str]]
) -> str | None:
    """The highest console role that ``claim`` grants under ``values`` (role -> claim
    values), or None. Values compare exactly: group ids and role names are case-sensitive
    at every identity provider that issues them."""
    held = set(_claim_values(claims, claim))
    for role in reversed(OPERATOR_ROLES):
        if held.intersection(values.get(role, ())):
            return role
    return None


def current_operator_role(user: AbstractBaseUser) -> str | None:
    """The highest operator role group ``user`` is in (None: no role)."""
    names = set(user.groups.filter(name__in=OPERATOR_ROLES).values_list("name", flat=True))
    for role in reversed(OPERATOR_ROLES):
        if role in names:
            return role
    return None


def operator_event_record(
    *,
    event: str,
    user: AbstractBaseUser | None = None,
    username: str = "",
    **details: Any,
) -> None:
    """Write one sign-in audit entry (action ``access``) about ``user``, or about the
    name a failed attempt gave when no operator has it. ``details`` (method,
    idp_subject, reason, ...) are stored as the entry's values; secrets never go here."""
    from auditlog import get_logentry_model

    entry_model = get_logentry_model()
    values = {"event": [None, event]}
    values.update({k: [None, str(v)] for k, v in details.items() if v not in (None, "")})
    User = get_user_model()
    entry_model.objects.create(
        content_type=ContentType.objects.get_for_model(User),
        object_pk=str(user.pk) if user is not None else "",
        object_id=user.pk if user is not None else None,
        object_repr=(user.get_username() if user is not None else username)[:200],
        action=entry_model.Action.ACCESS,
        changes=values,
        actor=user if user is not None and user.pk else None,
    )


@transaction.atomic
def operator_sync_role(*, user: AbstractBaseUser, role: str | None, subject: str) -> str | None:
    """Make a single sign-on operator's console role the one their claims grant now.

    ``role`` None: every operator role is taken away and every open session of the
    operator ends at its next request (their session hash changes: a new unusable
    password). Returns the role held before. Role changes are audited with the subject.
    """
    before = current_operator_role(user)
    if role == before:
        return before
    if role is None:
        groups = ensure_operator_groups()
        with unit_of_change(operator=user, source="signin"):
            user.groups.remove(*groups.values())
            # Single sign-on operators have no password; a new unusable one changes the
            # session auth hash, which logs out every session of this user.
            user.set_unusable_password()
            user.save(update_fields=["password"])
            operator_event_record(
                event=SignInEvent.ROLE_REMOVED, user=user, role=before, idp_subject=subject
            )
        return before
    with unit_of_change(operator=user, source="signin"):
        operator_set_role(user=user, role=role, operator=user)
        operator_event_record(
            event=SignInEvent.ROLE_FROM_CLAIMS,
            user=user,
            role=role,
            previous_role=before,
            idp_subject=subject,
        )
    return before
