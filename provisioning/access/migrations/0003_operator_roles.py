"""Console operator permissions and the groups viewer, approver, administrator."""

from django.db import migrations, models

# Frozen copy of provisioning.access.builtin.OPERATOR_PERMISSIONS.
OPERATOR_PERMISSIONS = {
    "viewer": ["console_view"],
    "approver": ["console_view", "console_approve"],
    "administrator": ["console_view", "console_approve", "console_administer"],
}


def create_operator_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations (post_migrate); the
    # groups need them now.
    access = apps.get_app_config("access")
    access.models_module = True
    create_permissions(access, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in OPERATOR_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="access", codename__in=codenames)
        )


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0002_roles_and_token_lifecycle"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsoleAccess",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("console_view", "Can view the console (viewer)"),
                    ("console_approve", "Can approve, reject and roll back changes (approver)"),
                    ("console_administer", "Can manage clients, tokens, roles, policies, operators"),
                ],
            },
        ),
        migrations.RunPython(create_operator_groups, migrations.RunPython.noop),
    ]
