"""Management API personas: an operator of each role with an API token, a client that
sends the token, and operations held by policy to decide."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from provisioning.access.operator_tokens import operator_token_create
from provisioning.oversight.models import PendingOperation, PolicyRule
from tests.factories import OperatorFactory, ScimClientFactory
from tests.scim.conftest import ScimApi


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # The throttle counts in the cache; every test starts with a full budget.
    cache.clear()
    yield
    cache.clear()


def token_client(user, name: str = "script") -> APIClient:
    _token, raw = operator_token_create(user=user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    client.user = user
    return client


@pytest.fixture
def viewer_api(db) -> APIClient:
    return token_client(OperatorFactory(role="viewer"))


@pytest.fixture
def approver_api(db) -> APIClient:
    return token_client(OperatorFactory(role="approver"))


@pytest.fixture
def second_approver_api(db) -> APIClient:
    return token_client(OperatorFactory(role="approver"))


@pytest.fixture
def admin_api(db) -> APIClient:
    return token_client(OperatorFactory(role="administrator"))


@pytest.fixture
def scim(db) -> ScimApi:
    return ScimApi(ScimClientFactory(name="entra-prod").raw_token)


def hold(kind: str = "delete_user", **extra) -> PolicyRule:
    return PolicyRule.objects.create(name=f"hold {kind}", kind=kind, action="hold", **extra)


@pytest.fixture
def held(scim) -> PendingOperation:
    """A user deletion held by policy."""
    hold("delete_user")
    user = scim.create_user("held@example.com")
    assert scim.delete(f"/Users/{user['id']}").status_code == 202
    return PendingOperation.objects.get(resource_id=user["id"])
