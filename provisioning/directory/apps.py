from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def _unicode_lower_on_sqlite(sender, connection, **kwargs) -> None:
    """SQLite's LOWER() folds ASCII only; userName uniqueness and filters need Unicode.

    PostgreSQL's lower() already folds Unicode under a UTF-8 locale.
    """
    if connection.vendor == "sqlite":
        connection.connection.create_function("LOWER", 1, _lower, deterministic=True)


def _access_gate(write) -> None:
    """The client's role (operation, ownership, attributes, protected groups)."""
    from provisioning.access.authorization import authorize_change

    authorize_change(write.change)


def _schema_gate(write) -> None:
    """Registered extensions' ``required`` and ``immutable`` attributes. A rollback puts
    back what was stored, whatever the schemas say today."""
    from provisioning.scim.resources import check_extension_rules
    from provisioning.scim.schema import RESOURCE_SCHEMAS

    from .pipeline import ROLLBACK

    if write.origin == ROLLBACK:
        return
    change = write.change
    check_extension_rules(
        RESOURCE_SCHEMAS[change.resource_type], change.action, change.before, change.after
    )


class DirectoryConfig(AppConfig):
    name = "provisioning.directory"
    label = "directory"
    verbose_name = "Directory"

    def ready(self) -> None:
        from provisioning.scim.schema import set_extension_source

        from . import extensions, pipeline, timestamps

        connection_created.connect(_unicode_lower_on_sqlite, dispatch_uid="scimgate-unicode-lower")
        connection_created.connect(
            timestamps.use_iso_timestamptz_loader, dispatch_uid="scimgate-iso-timestamptz"
        )
        # Access control sits below the directory, so the directory installs its gate;
        # oversight and audit, above it, plug in their own from their apps.
        pipeline.register_gate("access", _access_gate, order=100)
        # After access (a client without the permission learns nothing), before policy
        # (an invalid write is refused, not held).
        pipeline.register_gate("extension-schemas", _schema_gate, order=150)
        # Registered extension schemas: every SCIM request and directory write refreshes
        # them from the database (provisioning.scim.schema.refresh_extensions).
        set_extension_source(extensions.extension_revision, extensions.extension_definitions)
