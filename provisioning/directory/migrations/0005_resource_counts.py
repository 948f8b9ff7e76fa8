"""Exact user and group totals maintained by triggers (see ``ResourceCount``).

PostgreSQL: statement-level triggers with transition tables (one UPDATE per INSERT or
DELETE statement, however many rows), plus a TRUNCATE trigger. The counter row stays
locked until the writing transaction ends, so creates and deletes commit one after
another. SQLite: row-level triggers (writers are serialised anyway; its TRUNCATE is a
DELETE, which fires them).
"""

from django.db import migrations, models

TABLES = (("User", "directory_user"), ("Group", "directory_group"))

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION directory_resource_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE directory_resourcecount SET total = 0 WHERE resource_type = TG_ARGV[0];
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO changed FROM new_rows;
    ELSE
        SELECT -count(*) INTO changed FROM old_rows;
    END IF;
    IF changed <> 0 THEN
        UPDATE directory_resourcecount SET total = total + changed
        WHERE resource_type = TG_ARGV[0];
    END IF;
    RETURN NULL;
END
$$;
"""


def _postgres_triggers(kind: str, table: str) -> str:
    return f"""
CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION directory_resource_count('{kind}');
CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION directory_resource_count('{kind}');
CREATE TRIGGER {table}_count_truncate AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION directory_resource_count('{kind}');
"""


def _sqlite_triggers(kind: str, table: str) -> list[str]:
    return [
        f"""CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} BEGIN
            UPDATE directory_resourcecount SET total = total + 1 WHERE resource_type = '{kind}';
        END""",
        f"""CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} BEGIN
            UPDATE directory_resourcecount SET total = total - 1 WHERE resource_type = '{kind}';
        END""",
    ]


def install(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(POSTGRES_FUNCTION)
            for kind, table in TABLES:
                cursor.execute(_postgres_triggers(kind, table))
        elif connection.vendor == "sqlite":
            for kind, table in TABLES:
                for statement in _sqlite_triggers(kind, table):
                    cursor.execute(statement)
        else:
            return  # no triggers: readers find no row and count
        for kind, table in TABLES:
            cursor.execute(
                f"INSERT INTO directory_resourcecount (resource_type, total) "  # noqa: S608
                f"SELECT %s, COUNT(*) FROM {table}",
                [kind],
            )


def uninstall(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for _kind, table in TABLES:
            for suffix in ("insert", "delete", "truncate"):
                if connection.vendor == "postgresql":
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_count_{suffix} ON {table}")
                elif connection.vendor == "sqlite":
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_count_{suffix}")
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION IF EXISTS directory_resource_count()")


class Migration(migrations.Migration):
    dependencies = [("directory", "0004_user_search_trigram")]

    operations = [
        migrations.CreateModel(
            name="ResourceCount",
            fields=[
                ("resource_type", models.CharField(max_length=16, primary_key=True, serialize=False)),
                ("total", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]
