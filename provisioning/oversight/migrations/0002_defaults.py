"""The circuit breaker with its default thresholds, and the built-in rules (off until enabled)."""

from django.db import migrations

RULES = [
    ("Hold user deletions", "delete_user", "hold", []),
    ("Hold group deletions", "delete_group", "hold", []),
    ("Flag deactivations", "deactivate_user", "flag", []),
    ("Hold additions to privileged groups", "privileged_membership", "hold", []),
    ("Flag userName or primary email changes", "identity_change", "flag", []),
    (
        "Flag manager changes",
        "attribute_change",
        "flag",
        ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"],
    ),
]


def create_defaults(apps, schema_editor):
    CircuitBreaker = apps.get_model("oversight", "CircuitBreaker")
    PolicyRule = apps.get_model("oversight", "PolicyRule")
    if not CircuitBreaker.objects.exists():
        CircuitBreaker.objects.create()
    for name, kind, action, attributes in RULES:
        PolicyRule.objects.get_or_create(
            name=name,
            defaults={"kind": kind, "action": action, "attributes": attributes, "enabled": False},
        )


class Migration(migrations.Migration):
    dependencies = [("oversight", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
