"""Registered extension schemas: registering, changing and removing them, and the source
from which ``provisioning.scim.schema`` loads them.

A schema is validated by ``scim.schema.parse_extension_document`` (the protocol's
rules) and here against what the directory stores: a change that would strand stored
values (an attribute removed, its type or multiValued changed, the schema removed or
moved to another resource type while resources hold values) is refused, naming how
many resources hold them. Each change runs in an audited unit of change attributed to
the operator and replaces the revision token, so every process reloads from its next
request (``scim.schema.refresh_extensions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.fields.json import KeyTransform

from provisioning.access import config_cache
from provisioning.access.models import ConfigRevision
from provisioning.access.units import unit_of_change
from provisioning.scim import schema as scim_schema

from .models import ExtensionSchema, Group, User

_MODELS = {"User": User, "Group": Group}


# --- The source every process loads from -------------------------------------------------


def extension_revision() -> Any:
    """The settings revision (``access.config_cache``), which every change to an extension
    schema replaces: in a SCIM request the one its token lookup read (no query of its
    own), elsewhere one primary-key read."""
    return config_cache.request_revision()


def extension_definitions() -> list[scim_schema.RegisteredExtension]:
    return [
        scim_schema.RegisteredExtension(row.urn, row.resource_type, row.document)
        for row in ExtensionSchema.objects.order_by("resource_type", "urn")
    ]


def _bump_revision() -> None:
    ConfigRevision.bump()
    # This process reloads at its next refresh even before the transaction commits.
    scim_schema.forget_extensions()


# --- Reading ------------------------------------------------------------------------------


def extension_schemas() -> list[ExtensionSchema]:
    return list(ExtensionSchema.objects.order_by("resource_type", "urn"))


def extension_schema_get(pk: int) -> ExtensionSchema | None:
    return ExtensionSchema.objects.filter(pk=pk).first()


def extension_holders(resource_type: str, urn: str, attribute: str | None = None) -> int:
    """How many users (or groups) hold a value of the extension ``urn`` (or of one of its
    attributes). Stored keys are canonical, as the schema spelled them."""
    model = _MODELS[resource_type]
    if attribute is None:
        return model.objects.filter(attributes__has_key=urn).count()
    return (
        model.objects.annotate(_extension=KeyTransform(urn, "attributes"))
        .filter(_extension__has_key=attribute)
        .count()
    )


def _shape(definition: dict) -> tuple:
    """What stored values depend on: type, multiValued, and the sub-attributes' shapes."""
    subs = tuple(
        sorted((s["name"], s["type"]) for s in definition.get("subAttributes", []))
    )
    return definition["type"], definition["multiValued"], subs


def _stranded(row: ExtensionSchema, new: scim_schema.RegisteredExtension) -> list[str]:
    """The changes from ``row`` to ``new`` that stored values forbid, as problems."""
    problems = []
    if row.resource_type != new.resource_type or row.urn != new.urn:
        held = extension_holders(row.resource_type, row.urn)
        if held:
            what = "resource type" if row.resource_type != new.resource_type else "URN spelling"
            problems.append(
                f"{held} {row.resource_type.lower()}(s) hold values of “{row.urn}”; its "
                f"{what} cannot change while they do."
            )
        return problems
    new_attributes = {a["name"]: a for a in new.document["attributes"]}
    for old in row.attributes:
        name = old["name"]
        current = new_attributes.get(name)
        if current is not None and _shape(current) == _shape(old):
            continue
        held = extension_holders(row.resource_type, row.urn, name)
        if not held:
            continue
        change = "be removed" if current is None else "change its type, multiValued or sub-attributes"
        problems.append(
            f"Attribute “{name}” cannot {change}: {held} {row.resource_type.lower()}(s) hold a "
            f"value of it. Clear those values first (PATCH remove "
            f"'{row.urn}:{name}')."
        )
    return problems


# --- Changing -------------------------------------------------------------------------------


def _parse(document: Any, resource_type: str | None, *, exclude: int | None):
    taken = ExtensionSchema.objects.exclude(pk=exclude).values_list("urn", flat=True)
    try:
        return scim_schema.parse_extension_document(document, resource_type, taken=list(taken))
    except scim_schema.InvalidSchemaDocument as error:
        raise ValidationError({"document": error.problems}) from None


def _same_urn(document: Any) -> ExtensionSchema | None:
    urn = document.get("id") if isinstance(document, dict) else None
    if not isinstance(urn, str) or not urn:
        return None
    return ExtensionSchema.objects.select_for_update().filter(urn__iexact=urn).first()


@transaction.atomic
def extension_schema_save(
    *,
    document: Any,
    resource_type: str | None = None,
    operator=None,
    schema: ExtensionSchema | None = None,
    update_existing: bool = True,
) -> tuple[ExtensionSchema, str]:
    """Register an extension schema from an RFC 7643 §7 document, or change the one
    registered under its URN (or ``schema``, when given: the one an operator edits).
    With ``update_existing`` False a schema already registered under the URN is a
    problem instead (a form for new schemas).

    Idempotent: saving what is registered changes nothing. Returns the row and what
    happened: ``"created"``, ``"updated"`` or ``"unchanged"``. Raises ValidationError
    (key ``document``) listing every problem.
    """
    if schema is not None:
        row = ExtensionSchema.objects.select_for_update().filter(pk=schema.pk).first()
        if row is None:
            raise ValidationError({"document": ["The extension schema no longer exists."]})
    else:
        row = _same_urn(document) if update_existing else None
    if row is not None and resource_type is None:
        resource_type = row.resource_type
    new = _parse(document, resource_type, exclude=row.pk if row else None)
    if row is not None:
        problems = _stranded(row, new)
        if problems:
            raise ValidationError({"document": problems})
        if (row.urn, row.resource_type, row.document) == (
            new.urn,
            new.resource_type,
            new.document,
        ):
            return row, "unchanged"
    row = row or ExtensionSchema()
    created = row.pk is None
    row.urn = new.urn
    row.resource_type = new.resource_type
    row.name = new.document["name"]
    row.description = new.document["description"]
    row.attributes = new.document["attributes"]
    with unit_of_change(operator=operator):
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # a concurrent registration took the URN
            raise ValidationError(
                {"document": [f"The schema “{new.urn}” already exists."]}
            ) from None
        _bump_revision()
    return row, "created" if created else "updated"


@transaction.atomic
def extension_schema_delete(*, schema: ExtensionSchema, operator=None) -> None:
    """Remove a registered extension schema no resource holds values of.

    Refused while users (or groups) hold values under its URN: they would stop being
    served yet stay stored, and a later schema under that URN would inherit them. Clear
    them first (PATCH ``remove`` of the URN).
    """
    row = ExtensionSchema.objects.select_for_update().filter(pk=schema.pk).first()
    if row is None:
        return
    held = extension_holders(row.resource_type, row.urn)
    if held:
        raise ValidationError(
            {
                "__all__": f"{held} {row.resource_type.lower()}(s) hold values of “{row.urn}”; "
                f"clear them first (PATCH remove '{row.urn}'), then remove the schema."
            }
        )
    with unit_of_change(operator=operator):
        row.delete()
        _bump_revision()


def extension_schema_holders(schemas: Iterable[ExtensionSchema]) -> dict[int, int]:
    """For a listing: how many resources hold values of each schema."""
    return {row.pk: extension_holders(row.resource_type, row.urn) for row in schemas}
