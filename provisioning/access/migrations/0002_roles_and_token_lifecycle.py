"""Roles become rows: built-ins created here, ``ScimClient.role`` text converted to a foreign key.

Tokens gain expiry, allowed networks and last-used address; clients a denied-request counter.
"""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models

_ALL = [f"{rt}:{op}" for rt in ("User", "Group") for op in ("read", "create", "replace", "patch", "delete")]
# Frozen copy of provisioning.access.builtin.BUILTIN_ROLES at the time of this migration.
BUILTIN_ROLES = {
    "provisioner": ("Every operation on users and groups.", _ALL),
    "read-only": (
        "Reads users and groups; never writes (auditors, reporting).",
        ["User:read", "Group:read"],
    ),
    "no-delete": (
        "Creates, updates and deactivates users and groups; never deletes.",
        [p for p in _ALL if not p.endswith(":delete")],
    ),
    "users-only": (
        "Every operation on users; no access to groups.",
        [p for p in _ALL if p.startswith("User:")],
    ),
}


def create_builtin_roles(apps, schema_editor):
    Role = apps.get_model("access", "Role")
    for name, (description, permissions) in BUILTIN_ROLES.items():
        Role.objects.update_or_create(
            name=name,
            defaults={"description": description, "permissions": permissions, "built_in": True},
        )


def convert_client_roles(apps, schema_editor):
    Role = apps.get_model("access", "Role")
    ScimClient = apps.get_model("access", "ScimClient")
    roles = {role.name: role for role in Role.objects.all()}
    for client in ScimClient.objects.all():
        # Unknown legacy values get the least privilege rather than failing the migration.
        client.role_ref = roles.get(client.role) or roles["read-only"]
        client.save(update_fields=["role_ref"])


def restore_client_roles(apps, schema_editor):
    ScimClient = apps.get_model("access", "ScimClient")
    for client in ScimClient.objects.select_related("role_ref"):
        name = client.role_ref.name
        client.role = name if name in ("provisioner", "read-only") else "read-only"
        client.save(update_fields=["role"])


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Role",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=64)),
                ("description", models.TextField(blank=True, default="")),
                ("built_in", models.BooleanField(default=False, editable=False)),
                ("permissions", models.JSONField(blank=True, default=list)),
                ("forbidden_attributes", models.JSONField(blank=True, default=list)),
                ("own_resources_only", models.BooleanField(default=False)),
                ("protected_group_names", models.JSONField(blank=True, default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["name"],
                "constraints": [
                    models.UniqueConstraint(django.db.models.functions.text.Lower("name"), name="role_name_ci_unique")
                ],
            },
        ),
        migrations.RunPython(create_builtin_roles, migrations.RunPython.noop),
        migrations.AddField(
            model_name="scimclient",
            name="role_ref",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="access.role"
            ),
        ),
        migrations.RunPython(convert_client_roles, restore_client_roles),
        migrations.RemoveField(model_name="scimclient", name="role"),
        migrations.RenameField(model_name="scimclient", old_name="role_ref", new_name="role"),
        migrations.AlterField(
            model_name="scimclient",
            name="role",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="clients", to="access.role"
            ),
        ),
        migrations.AddField(
            model_name="scimclient",
            name="denied_requests",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="scimtoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="scimtoken",
            name="allowed_networks",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="scimtoken",
            name="last_used_address",
            field=models.GenericIPAddressField(blank=True, null=True),
        ),
    ]
