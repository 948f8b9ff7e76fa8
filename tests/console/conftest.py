"""Console personas: one operator per role and a logged-in client for each, the IdP
client ``idp``, and a user with every kind of attribute.

Operators get their role from the Django groups the access migration creates,
exactly as ``createoperator`` does (``tests.factories.OperatorFactory``). Here
``admin_client`` is an administrator operator, not pytest-django's superuser.
"""

from __future__ import annotations

import pytest
from django.test import Client

from provisioning.scim.schema import ENTERPRISE_USER, USER
from tests.factories import OperatorFactory, ProvisionedUserFactory, ScimClientFactory

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def viewer(db):
    return OperatorFactory(role="viewer")


@pytest.fixture
def approver(db):
    return OperatorFactory(role="approver")


@pytest.fixture
def administrator(db):
    return OperatorFactory(role="administrator")


@pytest.fixture
def viewer_client(viewer) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def approver_client(approver) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(approver)
    return client


@pytest.fixture
def admin_client(administrator) -> Client:
    """An administrator operator's session (in tests/console this replaces pytest-django's
    superuser ``admin_client``)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(administrator)
    return client


@pytest.fixture
def idp(db):
    return ScimClientFactory(name="okta-prod")


def full_user(client=None):
    """A user with every kind of attribute the detail page shows."""
    return ProvisionedUserFactory(
        userName="ana.silva@example.com",
        client=client,
        externalId="ext-1001",
        displayName="Ana Silva",
        title="Staff engineer",
        name={"givenName": "Ana", "familyName": "Silva", "formatted": "Ana Silva"},
        emails=[{"value": "ana.silva@example.com", "type": "work", "primary": True}],
        phoneNumbers=[{"value": "+1 555 0100", "type": "mobile"}],
        addresses=[
            {
                "type": "work",
                "streetAddress": "1 Main St",
                "locality": "Springfield",
                "country": "US",
            }
        ],
        active=True,
        schemas=[USER, ENTERPRISE_USER],
        **{ENTERPRISE_USER: {"employeeNumber": "1001", "department": "Engineering"}},
    )


def csrf_token(client: Client, url: str) -> str:
    """The token a page's form carries (the page sets the cookie it matches)."""
    response = client.get(url)
    assert response.status_code == 200
    return client.cookies["csrftoken"].value
