"""Policies: rules listed for every operator, created, edited, enabled, disabled and
deleted by administrators only, attribute names validated, every change audited;
the circuit breaker's thresholds."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from provisioning.audit.models import AuditEntry
from provisioning.oversight.models import CircuitBreaker, PolicyRule

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db

LIST = reverse("console:policy_list")
NEW = reverse("console:policy_create")
MANAGER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"


def post(client: Client, path: str, data: dict):
    return client.post(path, {"csrfmiddlewaretoken": csrf_token(client, LIST), **data})


def rule_data(**overrides) -> dict:
    data = {
        "name": "Hold title changes",
        "kind": "attribute_change",
        "action": "hold",
        "enabled": "on",
        "attributes": "Title\n" + MANAGER.upper().replace("URN:", "urn:", 1),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def audit_entries(rule: PolicyRule):
    content_type = ContentType.objects.get_for_model(PolicyRule)
    return AuditEntry.objects.filter(content_type=content_type, object_pk=str(rule.pk)).order_by(
        "id"
    )


def test_every_operator_reads_the_rules_and_the_breaker(viewer_client):
    response = viewer_client.get(LIST)
    assert response.status_code == 200
    names = [rule.name for rule in response.context["rules"]]
    assert "Hold user deletions" in names  # the built-in rules, disabled until enabled
    body = response.content.decode()
    assert "Mass-change circuit breaker" in body
    assert f'href="{NEW}"' not in body and "policy_toggle" not in body
    assert "/toggle/" not in body and "Edit thresholds" not in body


def test_only_administrators_change_policies(approver_client, viewer_client):
    rule = PolicyRule.objects.get(name="Hold user deletions")
    for client in (approver_client, viewer_client):
        assert client.get(NEW).status_code == 403
        assert client.post(NEW, rule_data()).status_code == 403
        assert (
            client.post(
                reverse("console:policy_toggle", args=[rule.pk]), {"enabled": "yes"}
            ).status_code
            == 403
        )
        assert client.get(reverse("console:circuit_breaker_edit")).status_code == 403
        assert client.post(reverse("console:policy_delete", args=[rule.pk])).status_code == 403
    rule.refresh_from_db()
    assert rule.enabled is False


def test_creating_a_rule_canonicalises_attributes_and_is_audited(admin_client, administrator, idp):
    response = post(admin_client, NEW, rule_data(clients=[str(idp.pk)], two_approvers="on"))
    assert response.status_code == 302
    rule = PolicyRule.objects.get(name="Hold title changes")
    assert rule.attributes == ["title", MANAGER]
    assert list(rule.clients.all()) == [idp]
    assert rule.two_approvers and rule.enabled
    entry = audit_entries(rule).first()
    assert entry.actor == administrator
    assert entry.change_set.source == "console"
    assert entry.change_set.request["console"] == {"action": "policy.create"}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"attributes": "bogus"}, "attributes", "not a User or Group attribute"),
        ({"attributes": "name.givenName"}, "attributes", "whole attribute"),
        ({"attributes": "id"}, "attributes", "read-only"),
        ({"attributes": ""}, "attributes", "at least one attribute"),
        ({"kind": "delete_user"}, "attributes", "Only “Change chosen attributes”"),
        ({"action": "flag", "two_approvers": "on"}, "two_approvers", "only to rules that hold"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_invalid_rules_are_refused_with_400(admin_client, overrides, field, message):
    response = post(admin_client, NEW, rule_data(**overrides))
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert not PolicyRule.objects.filter(name="Hold title changes").exists()


def test_the_service_refusing_a_rule_shows_on_the_field(admin_client):
    taken = PolicyRule.objects.get(name="Hold user deletions")
    response = post(admin_client, NEW, rule_data(name=taken.name))
    assert response.status_code == 400
    assert "already exists" in " ".join(response.context["form"].errors["name"])
    # Every problem the service found is shown, each on its field.
    response = post(
        admin_client, NEW, rule_data(name=taken.name, action="flag", two_approvers="on")
    )
    assert set(response.context["form"].errors) == {"name", "two_approvers"}


def test_editing_enabling_disabling_and_deleting(admin_client):
    rule = PolicyRule.objects.get(name="Flag manager changes")
    edit = reverse("console:policy_edit", args=[rule.pk])
    page = admin_client.get(edit)
    assert page.status_code == 200 and MANAGER in page.content.decode()

    response = post(
        admin_client, edit, rule_data(name="Hold manager changes", attributes=MANAGER, enabled=None)
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.action, rule.enabled) == ("Hold manager changes", "hold", False)

    toggle = reverse("console:policy_toggle", args=[rule.pk])
    post(admin_client, toggle, {"enabled": "yes"})
    rule.refresh_from_db()
    assert rule.enabled is True
    post(admin_client, toggle, {"enabled": "yes"})  # a double submit does not flip it back
    rule.refresh_from_db()
    assert rule.enabled is True
    post(admin_client, toggle, {"enabled": "no"})
    rule.refresh_from_db()
    assert rule.enabled is False

    delete = reverse("console:policy_delete", args=[rule.pk])
    confirm = admin_client.get(delete)
    assert confirm.status_code == 200 and b"Delete rule</button>" in confirm.content
    assert post(admin_client, delete, {}).status_code == 302
    assert not PolicyRule.objects.filter(pk=rule.pk).exists()
    actions = [entry.action for entry in audit_entries(rule)]
    assert actions[0] == AuditEntry.Action.UPDATE and actions[-1] == AuditEntry.Action.DELETE


def test_rule_names_are_escaped(admin_client):
    post(admin_client, NEW, rule_data(name=XSS))
    body = admin_client.get(LIST).content.decode()
    assert XSS not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_the_circuit_breaker_thresholds(admin_client, administrator):
    url = reverse("console:circuit_breaker_edit")
    assert admin_client.get(url).status_code == 200
    data = {
        "enabled": "on",
        "max_operations": "20",
        "window_minutes": "5",
        "max_percent": "2.5",
        "percent_of": "directory",
        "percent_window_minutes": "60",
        "min_directory_size": "500",
        "churn_window_minutes": "",
        "deletion_delay_days": "0",
    }

    refused = post(admin_client, url, {**data, "max_percent": "0", "window_minutes": "0"})
    assert refused.status_code == 400
    assert set(refused.context["form"].errors) == {"max_percent", "window_minutes"}

    assert post(admin_client, url, data).status_code == 302
    breaker = CircuitBreaker.objects.get(client__isnull=True)
    assert (breaker.max_operations, breaker.window_minutes, str(breaker.max_percent)) == (
        20,
        5,
        "2.50",
    )
    entry = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(CircuitBreaker)
    ).latest("id")
    assert entry.actor == administrator
    assert "<strong>20</strong> times within" in admin_client.get(LIST).content.decode()


def test_the_breaker_editor_shows_how_close_each_client_is(admin_client, administrator):
    from datetime import timedelta

    from django.utils import timezone

    from provisioning.oversight.models import DestructiveEvent
    from tests.factories import ScimClientFactory

    calm, busy = ScimClientFactory(name="calm-idp"), ScimClientFactory(name="busy-idp")
    DestructiveEvent.objects.create(client=busy, at=timezone.now(), weight=40)
    DestructiveEvent.objects.create(client=busy, at=timezone.now() - timedelta(hours=2), weight=9)
    CircuitBreaker.objects.create(client=calm, max_operations=5)

    body = admin_client.get(reverse("console:circuit_breaker_edit")).content.decode()

    assert 'value="80" aria-label="busy-idp: 80% of the way to tripping"' in body
    assert "40 of 50" in body and "0 of 5" in body


def test_a_client_gets_settings_of_its_own_and_back_to_the_defaults(admin_client, administrator):
    from tests.factories import ScimClientFactory

    client = ScimClientFactory(name="own-idp")
    url = reverse("console:client_breaker_edit", args=[client.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and "It uses the defaults" in page.content.decode()
    data = {
        "enabled": "on",
        "max_operations": "7",
        "window_minutes": "10",
        "max_percent": "20",
        "percent_of": "client",
        "percent_window_minutes": "60",
        "min_directory_size": "10",
        "churn_window_minutes": "30",
        "deletion_delay_days": "14",
    }
    refused = post(admin_client, url, {**data, "deletion_delay_days": "400"})
    assert refused.status_code == 400
    assert set(refused.context["form"].errors) == {"deletion_delay_days"}
    assert not CircuitBreaker.objects.filter(client=client).exists()

    assert post(admin_client, url, data).status_code == 302
    own = CircuitBreaker.objects.get(client=client)
    assert (
        own.max_operations,
        own.percent_of,
        own.churn_window_minutes,
        own.deletion_delay_days,
    ) == (
        7,
        "client",
        30,
        14,
    )
    assert post(admin_client, url, {"use_defaults": "yes"}).status_code == 302
    assert not CircuitBreaker.objects.filter(client=client).exists()
