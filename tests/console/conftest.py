"""Console personas (one per operator role) and directory builders.

Operators get their role from the Django groups the access migration creates,
exactly as ``createoperator`` does.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.test import Client

from provisioning.access.clients import scim_client_create
from provisioning.directory import services
from provisioning.directory.models import User
from provisioning.scim.schema import ENTERPRISE_USER, USER

XSS = "<img src=x onerror=alert(1)>"


def operator(role: str):
    user = get_user_model().objects.create_user(username=f"{role}-{uuid.uuid4().hex[:6]}")
    user.groups.add(AuthGroup.objects.get(name=role))
    return user


@pytest.fixture
def viewer(db):
    return operator("viewer")


@pytest.fixture
def approver(db):
    return operator("approver")


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
def idp(db):
    client, _ = scim_client_create(name="okta-prod", role="provisioner")
    return client


def make_user(user_name: str, *, client=None, **extra):
    document = {"schemas": [USER], "userName": user_name, **extra}
    return services.user_create(document=document, client=client)


def make_group(name: str, members=(), *, client=None):
    return services.group_create(
        client=client,
        document={
            "displayName": name,
            "members": [
                {"value": str(m.pk), "type": "User" if isinstance(m, User) else "Group"}
                for m in members
            ],
        },
    )


def full_user(client=None):
    """A user with every kind of attribute the detail page shows."""
    return make_user(
        "ana.silva@example.com",
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
