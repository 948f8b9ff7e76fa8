"""Shared fixtures. The database is SQLite unless DATABASE_URL points elsewhere."""

import pytest
from django.db import connection


def pytest_report_header(config):
    from django.conf import settings

    return f"database: {settings.DATABASES['default']['ENGINE']}"


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "celery_worker: runs a real Celery worker process (PostgreSQL + Redis)"
    )


@pytest.fixture(autouse=True)
def celery_in_process(request):
    """Tasks run in-process in tests, even when a broker is configured (CI's second pass),
    except in tests that start a real worker and want messages to go through the broker."""
    from provisioning.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = request.node.get_closest_marker("celery_worker") is None
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fresh_cache():
    """Cached values (throttle counters, the directory size) never leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
