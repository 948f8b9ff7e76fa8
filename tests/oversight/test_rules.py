"""Policy rule and circuit breaker services: validation keyed by field, canonical
attribute names, and every change audited in a change set of the operator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError

from provisioning.access.clients import scim_client_create
from provisioning.audit.models import AuditEntry
from provisioning.oversight import rules
from provisioning.oversight.models import CircuitBreaker, PolicyRule

pytestmark = pytest.mark.django_db

MANAGER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"


@pytest.fixture
def alice(operators):
    return operators["alice"]


def entries(model, pk) -> list[AuditEntry]:
    content_type = ContentType.objects.get_for_model(model)
    return list(
        AuditEntry.objects.filter(content_type=content_type, object_pk=str(pk))
        .select_related("change_set")
        .order_by("id")
    )


def create(operator, **overrides) -> PolicyRule:
    fields = {
        "name": "Hold title changes",
        "kind": "attribute_change",
        "action": "hold",
        "attributes": ["Title", MANAGER.upper().replace("URN:", "urn:", 1)],
    }
    return rules.policy_rule_create(**{**fields, **overrides}, operator=operator)


def errors(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


def test_create_stores_canonical_attributes_and_is_attributed_to_the_operator(alice):
    client, _ = scim_client_create(name="okta-prod", role="provisioner")
    rule = create(alice, clients=[client], two_approvers=True, enabled=False)
    rule.refresh_from_db()
    assert rule.attributes == ["title", MANAGER]
    assert list(rule.clients.all()) == [client]
    assert rule.two_approvers and not rule.enabled
    created = entries(PolicyRule, rule.pk)  # the row, then its clients
    assert created[0].action == AuditEntry.Action.CREATE
    assert {entry.actor for entry in created} == {alice}
    [change_set] = {entry.change_set for entry in created}  # one unit
    assert change_set.operator == alice and change_set.source == "console"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"attributes": ["bogus"]}, "attributes", "not a User or Group attribute"),
        ({"attributes": ["name.givenName"]}, "attributes", "whole attribute"),
        ({"attributes": ["id"]}, "attributes", "read-only"),
        ({"attributes": []}, "attributes", "at least one attribute"),
        ({"kind": "delete_user"}, "attributes", "Only “Change chosen attributes”"),
        ({"action": "flag", "two_approvers": True}, "two_approvers", "only to rules that hold"),
        ({"name": "  "}, "name", "needs a name"),
        ({"kind": "everything"}, "kind", "Unknown kind"),
        ({"action": "shrug"}, "action", "Unknown action"),
    ],
)
def test_invalid_rules_are_refused_by_field(alice, overrides, field, message):
    with pytest.raises(ValidationError) as excinfo:
        create(alice, **overrides)
    assert message in " ".join(errors(excinfo)[field])
    assert not PolicyRule.objects.filter(name="Hold title changes").exists()


def test_every_problem_is_reported_at_once(alice):
    with pytest.raises(ValidationError) as excinfo:
        create(alice, name="", attributes=["bogus", "id"], action="flag", two_approvers=True)
    found = errors(excinfo)
    assert set(found) == {"name", "attributes", "two_approvers"}
    assert len(found["attributes"]) == 2


def test_names_are_unique(alice):
    create(alice)
    with pytest.raises(ValidationError) as excinfo:
        create(alice)
    assert "already exists" in errors(excinfo)["name"][0]


def test_update_validates_the_rule_as_a_whole(alice):
    rule = create(alice, two_approvers=True)
    with pytest.raises(ValidationError) as excinfo:
        rules.policy_rule_update(rule=rule, action="flag", operator=alice)
    assert "two_approvers" in errors(excinfo)
    rule = rules.policy_rule_update(
        rule=rule, name="Flag title changes", action="flag", two_approvers=False, operator=alice
    )
    rule.refresh_from_db()
    assert (rule.name, rule.action, rule.two_approvers) == ("Flag title changes", "flag", False)
    assert rule.attributes == ["title", MANAGER]  # untouched fields stay
    # Keeping its own name is not a clash.
    rules.policy_rule_update(rule=rule, name="Flag title changes", operator=alice)
    with pytest.raises(TypeError):
        rules.policy_rule_update(rule=rule, updated_at=None, operator=alice)


def test_set_enabled_changes_only_what_differs(alice):
    rule = create(alice, enabled=False)
    rules.policy_rule_set_enabled(rule=rule, enabled=True, operator=alice)
    rules.policy_rule_set_enabled(rule=rule, enabled=True, operator=alice)  # a double submit
    rule.refresh_from_db()
    assert rule.enabled is True
    assert len(entries(PolicyRule, rule.pk)) == 2  # created, enabled once


def test_delete_is_audited(alice):
    rule = create(alice)
    rules.policy_rule_delete(rule=rule, operator=alice)
    assert not PolicyRule.objects.filter(pk=rule.pk).exists()
    last = entries(PolicyRule, rule.pk)[-1]
    assert last.action == AuditEntry.Action.DELETE and last.actor == alice


def test_circuit_breaker_update_creates_the_row_and_checks_ranges(alice):
    CircuitBreaker.objects.all().delete()
    with pytest.raises(ValidationError) as excinfo:
        rules.circuit_breaker_update(
            max_operations=0, window_minutes=0, max_percent="101", operator=alice
        )
    assert set(errors(excinfo)) == {"max_operations", "window_minutes", "max_percent"}
    with pytest.raises(ValidationError) as excinfo:
        rules.circuit_breaker_update(max_percent="NaN", operator=alice)
    assert set(errors(excinfo)) == {"max_percent"}
    assert not CircuitBreaker.objects.exists()

    breaker = rules.circuit_breaker_update(
        max_operations=20, window_minutes=5, max_percent=Decimal("2.5"), operator=alice
    )
    breaker = CircuitBreaker.objects.get()
    assert (breaker.max_operations, breaker.window_minutes, breaker.max_percent) == (
        20,
        5,
        Decimal("2.50"),
    )
    assert breaker.min_directory_size == 100  # the default, untouched
    rules.circuit_breaker_update(enabled=False, operator=alice)
    breaker.refresh_from_db()
    assert breaker.enabled is False and breaker.max_operations == 20
    assert [entry.actor for entry in entries(CircuitBreaker, breaker.pk)] == [alice, alice]
