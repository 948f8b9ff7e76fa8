"""PostgreSQL: parameters bound by the server, repeated statements prepared per connection
(DATABASE_SERVER_SIDE_BINDING, DATABASE_PREPARED_STATEMENTS)."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from provisioning.directory.models import User
from tests.factories import UserFactory


def _options(**env: str) -> dict:
    """DATABASES["default"]["OPTIONS"] as the project's settings build them from ``env``."""
    base = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "provisioning.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_on_by_default_off_by_the_environment_and_never_for_sqlite():
    url = "postgres://scimgate@db.invalid:5432/scimgate"
    default = _options(DATABASE_URL=url)
    assert (default["server_side_binding"], default["prepare_threshold"]) == (True, 5)
    off = _options(
        DATABASE_URL=url, DATABASE_SERVER_SIDE_BINDING="false", DATABASE_PREPARED_STATEMENTS="false"
    )
    assert (off["server_side_binding"], off["prepare_threshold"]) == (False, None)
    sqlite = _options(DATABASE_URL="sqlite:///:memory:")
    assert "server_side_binding" not in sqlite and "prepare_threshold" not in sqlite


@pytest.mark.django_db
def test_a_repeated_query_is_prepared_on_its_connection(on_postgres):
    """The sixth run of one statement is a prepared statement of the session
    (``pg_prepared_statements``), so PostgreSQL parses and plans it once."""
    from psycopg import ClientCursor

    assert not isinstance(connection.cursor().cursor, ClientCursor)
    users = UserFactory.create_bulk(6)
    for user in users:
        assert User.objects.filter(user_name=user.user_name).get() == user
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%FROM "directory_user" WHERE %"directory_user"."user_name" = $1%'],
        )
        assert cursor.fetchone()[0] == 1
