"""Policy rules and the circuit breaker's thresholds: creating, changing, enabling,
deleting.

Every service validates what it is given and raises ``ValidationError`` keyed
by field (all the problems at once), so a form can show each next to its
field. Each change runs in a change set attributed to the operator, like the
decisions in ``services``: the rule's audit entries say who changed the policy.
A rule takes effect from the next write it is evaluated for.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from provisioning.access.models import ScimClient
from provisioning.scim.errors import ScimError
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA, refresh_extensions

from .models import CircuitBreaker, PolicyRule, RuleAction
from .services import as_operator

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

RULE_FIELDS = (
    "name",
    "kind",
    "action",
    "enabled",
    "clients",
    "attributes",
    "applies_to_console",
    "two_approvers",
)
BREAKER_FIELDS = (
    "enabled",
    "max_operations",
    "window_minutes",
    "max_percent",
    "percent_window_minutes",
    "percent_of",
    "min_directory_size",
    "churn_window_minutes",
    "deletion_delay_days",
)
# The longest deactivate-before-delete delay.
MAX_DELETION_DELAY_DAYS = 365
# The longest window the breaker counts destructive operations over.
MAX_WINDOW_MINUTES = 7 * 24 * 60


def _canonical_attribute(name: str) -> str:
    """``name`` as policy matching sees a changed attribute: a top-level core attribute
    (``active``) or an extension attribute (``urn:...:User:manager``), canonically spelled.
    Raises ValidationError for anything a change cannot carry."""
    name = name.strip()
    for schema in (USER_SCHEMA, GROUP_SCHEMA):
        try:
            path = schema.resolve(name)
        except ScimError:
            continue
        if path.sub_attribute is not None:
            raise ValidationError(
                f"“{name}”: name the whole attribute ({path.attribute.name}); "
                "rules match top-level attributes."
            )
        if path.attribute.mutability == "readOnly":
            raise ValidationError(f"“{name}” is read-only; no client can change it.")
        return str(path)
    raise ValidationError(f"“{name}” is not a User or Group attribute.")


def _clean_rule(fields: dict[str, Any], *, exclude: int | None = None) -> dict[str, Any]:
    """Every field of a rule, checked together; ValidationError lists each field's problems."""
    errors: dict[str, list[str]] = {}
    cleaned = dict(fields)

    name = (fields["name"] or "").strip()
    max_length = PolicyRule._meta.get_field("name").max_length
    if not name or len(name) > max_length:
        errors.setdefault("name", []).append(
            f"A rule needs a name of 1 to {max_length} characters."
        )
    elif PolicyRule.objects.filter(name=name).exclude(pk=exclude).exists():
        errors.setdefault("name", []).append(f"A rule named “{name}” already exists.")
    cleaned["name"] = name

    kind, action = fields["kind"], fields["action"]
    if kind not in PolicyRule.Kind.values:
        errors.setdefault("kind", []).append(f"Unknown kind of rule “{kind}”.")
    if action not in RuleAction.values:
        errors.setdefault("action", []).append(f"Unknown action “{action}”.")

    attributes: list[str] = []
    # Attributes of registered extension schemas are named by their full URN path.
    refresh_extensions()
    for line in fields["attributes"] or ():
        if not isinstance(line, str) or not line.strip():
            continue
        try:
            attributes.append(_canonical_attribute(line))
        except ValidationError as error:
            errors.setdefault("attributes", []).extend(error.messages)
    cleaned["attributes"] = list(dict.fromkeys(attributes))
    if "attributes" not in errors:
        if kind == PolicyRule.Kind.ATTRIBUTE_CHANGE and not attributes:
            errors["attributes"] = ["Name at least one attribute for this kind of rule."]
        elif kind != PolicyRule.Kind.ATTRIBUTE_CHANGE and attributes:
            errors["attributes"] = ["Only “Change chosen attributes” rules name attributes."]

    cleaned["two_approvers"] = bool(fields["two_approvers"])
    if cleaned["two_approvers"] and action != RuleAction.HOLD:
        errors["two_approvers"] = ["Two approvers apply only to rules that hold."]

    clients = list(fields["clients"] or ())
    if any(not isinstance(client, ScimClient) for client in clients):
        errors["clients"] = ["Choose SCIM clients."]
    cleaned["clients"] = clients
    cleaned["enabled"] = bool(fields["enabled"])
    cleaned["applies_to_console"] = bool(fields["applies_to_console"])
    if errors:
        raise ValidationError(errors)
    return cleaned


def _save_rule(rule: PolicyRule, fields: dict[str, Any]) -> PolicyRule:
    clients = fields.pop("clients")
    for name, value in fields.items():
        setattr(rule, name, value)
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError as exc:  # a concurrent rule took the name
        raise ValidationError({"name": f"A rule named “{rule.name}” already exists."}) from exc
    rule.clients.set(clients)
    return rule


@as_operator
@transaction.atomic
def policy_rule_create(
    *,
    name: str,
    kind: str,
    action: str,
    enabled: bool = True,
    clients: Iterable[ScimClient] = (),
    attributes: Iterable[str] = (),
    applies_to_console: bool = False,
    two_approvers: bool = False,
    operator: AbstractBaseUser | None,
) -> PolicyRule:
    """Create a rule. ``clients`` narrows it to those SCIM clients (none: every client);
    ``attributes`` are attribute names for an ``attribute_change`` rule, stored
    canonically. Raises ValidationError keyed by field."""
    fields = _clean_rule(
        {
            "name": name,
            "kind": kind,
            "action": action,
            "enabled": enabled,
            "clients": clients,
            "attributes": attributes,
            "applies_to_console": applies_to_console,
            "two_approvers": two_approvers,
        }
    )
    return _save_rule(PolicyRule(), fields)


@as_operator
@transaction.atomic
def policy_rule_update(
    *, rule: PolicyRule, operator: AbstractBaseUser | None, **changes: Any
) -> PolicyRule:
    """Change any of a rule's fields (``RULE_FIELDS``); the result is validated as a
    whole, so changing the action can refuse the rule's ``two_approvers``."""
    unknown = set(changes) - set(RULE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown policy rule fields: {', '.join(sorted(unknown))}")
    rule = PolicyRule.objects.select_for_update().get(pk=rule.pk)
    current = {name: getattr(rule, name) for name in RULE_FIELDS if name != "clients"}
    if "clients" not in changes:
        current["clients"] = list(rule.clients.all())
    fields = _clean_rule({**current, **changes}, exclude=rule.pk)
    return _save_rule(rule, fields)


@as_operator
@transaction.atomic
def policy_rule_set_enabled(
    *, rule: PolicyRule, enabled: bool, operator: AbstractBaseUser | None
) -> PolicyRule:
    """Enable or disable a rule. Asking for the state it is in changes (and records) nothing,
    so a form submitted twice does not flip it back."""
    rule = PolicyRule.objects.select_for_update().get(pk=rule.pk)
    if rule.enabled != bool(enabled):
        rule.enabled = bool(enabled)
        rule.save(update_fields=["enabled", "updated_at"])
    return rule


@as_operator
@transaction.atomic
def policy_rule_delete(*, rule: PolicyRule, operator: AbstractBaseUser | None) -> None:
    """Delete a rule. Operations it already held stay held until decided."""
    PolicyRule.objects.select_for_update().get(pk=rule.pk).delete()


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clean_breaker(fields: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    cleaned = {"enabled": bool(fields["enabled"])}
    whole = (
        "max_operations",
        "window_minutes",
        "percent_window_minutes",
        "min_directory_size",
        "deletion_delay_days",
    )
    for name in whole:
        value = fields[name]
        if not _whole(value):
            errors[name] = "A whole number."
        cleaned[name] = value
    if "max_operations" not in errors and fields["max_operations"] < 1:
        errors["max_operations"] = "At least 1."
    for name in ("window_minutes", "percent_window_minutes"):
        if name not in errors and not 1 <= fields[name] <= MAX_WINDOW_MINUTES:
            errors[name] = "Between 1 minute and 7 days."
    if "min_directory_size" not in errors and fields["min_directory_size"] < 0:
        errors["min_directory_size"] = "At least 0."
    if "deletion_delay_days" not in errors and not (
        0 <= fields["deletion_delay_days"] <= MAX_DELETION_DELAY_DAYS
    ):
        errors["deletion_delay_days"] = f"Between 0 (delete at once) and {MAX_DELETION_DELAY_DAYS}."
    churn = fields["churn_window_minutes"]
    if churn is not None and (not _whole(churn) or not 1 <= churn <= MAX_WINDOW_MINUTES):
        errors["churn_window_minutes"] = "Empty (the window), or between 1 minute and 7 days."
    cleaned["churn_window_minutes"] = churn
    if fields["percent_of"] not in CircuitBreaker.Base.values:
        errors["percent_of"] = "Choose the directory or the client's own users."
    cleaned["percent_of"] = fields["percent_of"]
    try:
        percent = Decimal(str(fields["max_percent"]))
    except InvalidOperation:
        percent = Decimal("NaN")
    if not percent.is_finite():
        errors["max_percent"] = "A number."
    elif not 0 < percent <= 100:
        errors["max_percent"] = "More than 0 and at most 100."
    else:
        cleaned["max_percent"] = percent.quantize(Decimal("0.01"))
    if errors:
        raise ValidationError(errors)
    return cleaned


def _breaker_save(breaker: CircuitBreaker, changes: dict[str, Any]) -> CircuitBreaker:
    unknown = set(changes) - set(BREAKER_FIELDS)
    if unknown:
        raise TypeError(f"Unknown circuit breaker fields: {', '.join(sorted(unknown))}")
    current = {name: getattr(breaker, name) for name in BREAKER_FIELDS}
    for name, value in _clean_breaker({**current, **changes}).items():
        setattr(breaker, name, value)
    breaker.save()
    return breaker


def _defaults_row() -> CircuitBreaker | None:
    return (
        CircuitBreaker.objects.select_for_update()
        .filter(client__isnull=True)
        .order_by("pk")
        .first()
    )


@as_operator
@transaction.atomic
def circuit_breaker_update(*, operator: AbstractBaseUser | None, **changes: Any) -> CircuitBreaker:
    """Change the default deletion-safety settings (any of ``BREAKER_FIELDS``), creating
    their row with the model's defaults first if there is none. Raises ValidationError
    keyed by field."""
    return _breaker_save(_defaults_row() or CircuitBreaker(), changes)


@as_operator
@transaction.atomic
def client_breaker_update(
    *, client: ScimClient, operator: AbstractBaseUser | None, **changes: Any
) -> CircuitBreaker:
    """Give ``client`` settings of its own (they replace the defaults whole): the current
    ones, or the defaults for a client without any, changed by ``changes``."""
    ScimClient.objects.select_for_update().filter(pk=client.pk).exists()
    breaker = CircuitBreaker.objects.filter(client=client).first()
    if breaker is None:
        defaults = _defaults_row() or CircuitBreaker()
        breaker = CircuitBreaker(
            client=client, **{name: getattr(defaults, name) for name in BREAKER_FIELDS}
        )
    return _breaker_save(breaker, changes)


@as_operator
@transaction.atomic
def client_breaker_clear(*, client: ScimClient, operator: AbstractBaseUser | None) -> bool:
    """Put ``client`` back on the default settings; False if it had none of its own."""
    deleted, _ = CircuitBreaker.objects.filter(client=client).delete()
    return bool(deleted)
