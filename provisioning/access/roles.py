"""SCIM roles: which resource types and operations a SCIM client may use, and the
narrowing that applies (forbidden attributes, own resources only, protected groups).

Every change takes the ``operator`` (a Django user, or None for a command-line
action) and runs inside one audited change set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from provisioning.scim.errors import InvalidPath
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA, refresh_extensions

from .builtin import BUILTIN_ROLES
from .models import ALL_PERMISSIONS, Role
from .units import unit_of_change

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def ensure_builtin_roles() -> None:
    """Create missing built-in roles (the data migration does; a flushed test database does not)."""
    for name, definition in BUILTIN_ROLES.items():
        if not Role.objects.filter(name=name).exists():
            Role.objects.create(name=name, built_in=True, **definition)


def role_get(role: Role | str) -> Role:
    """The role itself, or the role of that name (case-insensitive); ValidationError if none."""
    if isinstance(role, Role):
        return role
    name = (role or "").strip() if isinstance(role, str) else ""
    found = Role.objects.filter(name__iexact=name).first() if name else None
    if found is None and name.lower() in BUILTIN_ROLES:
        ensure_builtin_roles()
        found = Role.objects.filter(name__iexact=name).first()
    if found is None:
        names = ", ".join(Role.objects.values_list("name", flat=True))
        raise ValidationError({"role": f"Unknown role “{role}”; choose one of: {names}."})
    return found


def _clean_permissions(values: Iterable[str]) -> list[str]:
    values = list(values)
    unknown = [v for v in values if v not in ALL_PERMISSIONS]
    if unknown:
        raise ValidationError(
            {
                "permissions": f"Unknown permissions: {', '.join(map(str, unknown))}; "
                f"use {', '.join(ALL_PERMISSIONS)}."
            }
        )
    return [p for p in ALL_PERMISSIONS if p in values]


def _canonical_attribute(path: str) -> str:
    """``active`` → ``active``; ``URN:...:user:Manager`` → ``urn:...:User:manager``."""
    errors = []
    for schema in (USER_SCHEMA, GROUP_SCHEMA):
        try:
            urn, rest = schema.split_urn(path)
            if not rest and urn != schema.core:
                return urn  # a whole extension
            resolved = schema.resolve(path)
        except InvalidPath as exc:
            errors.append(exc.detail)
            continue
        if resolved.sub_attribute is not None:
            raise ValidationError(
                {
                    "forbidden_attributes": f"“{path}”: name a top-level attribute "
                    f"(“{resolved.attribute.name}”), not a sub-attribute."
                }
            )
        if resolved.attribute.mutability == "readOnly":
            raise ValidationError({"forbidden_attributes": f"“{path}” is read-only anyway."})
        name = resolved.attribute.name
        return name if resolved.urn == schema.core else f"{resolved.urn}:{name}"
    raise ValidationError({"forbidden_attributes": f"Unknown attribute “{path}”."})


def _clean_role_fields(fields: dict) -> dict:
    cleaned = dict(fields)
    if "name" in cleaned:
        name = (cleaned["name"] or "").strip()
        max_length = Role._meta.get_field("name").max_length
        if not name or len(name) > max_length:
            raise ValidationError({"name": f"A role needs a name of 1 to {max_length} characters."})
        cleaned["name"] = name
    if "permissions" in cleaned:
        cleaned["permissions"] = _clean_permissions(cleaned["permissions"] or [])
    if "forbidden_attributes" in cleaned:
        # Attributes of registered extension schemas are named by their full URN path.
        refresh_extensions()
        seen: list[str] = []
        for path in cleaned["forbidden_attributes"] or []:
            if not isinstance(path, str) or not path.strip():
                raise ValidationError({"forbidden_attributes": "Attribute names must be strings."})
            canonical = _canonical_attribute(path.strip())
            if canonical not in seen:
                seen.append(canonical)
        cleaned["forbidden_attributes"] = seen
    if "protected_group_names" in cleaned:
        names = []
        for pattern in cleaned["protected_group_names"] or []:
            if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 255:
                raise ValidationError(
                    {
                        "protected_group_names": "Group names and patterns must be 1 to 255 characters."
                    }
                )
            if pattern.strip() not in names:
                names.append(pattern.strip())
        cleaned["protected_group_names"] = names
    for flag in ("own_resources_only", "protect_privileged_groups"):
        if flag in cleaned:
            cleaned[flag] = bool(cleaned[flag])
    if "description" in cleaned:
        cleaned["description"] = (cleaned["description"] or "").strip()
    return cleaned


def _ensure_role_name_free(name: str, exclude: int | None = None) -> None:
    if Role.objects.filter(name__iexact=name).exclude(pk=exclude).exists():
        raise ValidationError({"name": f"A role named “{name}” already exists."})


@transaction.atomic
def scim_role_create(
    *,
    name: str,
    permissions: Iterable[str],
    description: str = "",
    forbidden_attributes: Iterable[str] = (),
    own_resources_only: bool = False,
    protected_group_names: Iterable[str] = (),
    protect_privileged_groups: bool = False,
    operator: AbstractBaseUser | None = None,
) -> Role:
    """Create a custom SCIM role. Raises ValidationError (keyed by field) for bad values.

    ``permissions`` are "User:read"-style entries; ``forbidden_attributes`` are
    attribute names (stored canonically, e.g. ``active`` or the enterprise
    ``urn:...:User:manager``); ``protected_group_names`` are names or glob patterns.
    """
    fields = _clean_role_fields(
        {
            "name": name,
            "description": description,
            "permissions": permissions,
            "forbidden_attributes": forbidden_attributes,
            "own_resources_only": own_resources_only,
            "protected_group_names": protected_group_names,
            "protect_privileged_groups": protect_privileged_groups,
        }
    )
    _ensure_role_name_free(fields["name"])
    with unit_of_change(operator=operator):
        try:
            with transaction.atomic():
                return Role.objects.create(**fields)
        except IntegrityError as exc:
            raise ValidationError(
                {"name": f"A role named “{fields['name']}” already exists."}
            ) from exc


_ROLE_FIELDS = (
    "name",
    "description",
    "permissions",
    "forbidden_attributes",
    "own_resources_only",
    "protected_group_names",
    "protect_privileged_groups",
)


@transaction.atomic
def scim_role_update(
    *, role: Role, operator: AbstractBaseUser | None = None, **changes: Any
) -> Role:
    """Change a custom role's fields (any of ``name``, ``description``, ``permissions``,
    ``forbidden_attributes``, ``own_resources_only``, ``protected_group_names``,
    ``protect_privileged_groups``).

    Built-in roles keep their meaning: only their description may change.
    Clients holding the role are affected from their next request.
    """
    unknown = set(changes) - set(_ROLE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown role fields: {', '.join(sorted(unknown))}")
    role = Role.objects.select_for_update().get(pk=role.pk)
    fields = _clean_role_fields(changes)
    if role.built_in and set(fields) - {"description"}:
        raise ValidationError(
            {"__all__": f"“{role.name}” is a built-in role; create a custom role instead."}
        )
    if "name" in fields:
        _ensure_role_name_free(fields["name"], exclude=role.pk)
    with unit_of_change(operator=operator):
        for name, value in fields.items():
            setattr(role, name, value)
        role.save()
    return role


@transaction.atomic
def scim_role_delete(*, role: Role, operator: AbstractBaseUser | None = None) -> None:
    """Delete a custom role no client holds; built-in roles cannot be deleted."""
    role = Role.objects.select_for_update().get(pk=role.pk)
    if role.built_in:
        raise ValidationError(
            {"__all__": f"“{role.name}” is a built-in role and cannot be deleted."}
        )
    holders = list(role.clients.values_list("name", flat=True)[:5])
    if holders:
        raise ValidationError(
            {
                "__all__": f"Role “{role.name}” is held by: {', '.join(holders)}; change their role first."
            }
        )
    with unit_of_change(operator=operator):
        role.delete()
