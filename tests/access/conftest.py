"""Fixtures shared by the access tests."""

import pytest

from provisioning.access.models import ScimClient
from tests.factories import ScimClientFactory


@pytest.fixture
def okta(db) -> tuple[ScimClient, str]:
    """A provisioner client named okta, and its first raw token."""
    client = ScimClientFactory(name="okta")
    return client, client.raw_token


@pytest.fixture
def oauth_client(db):
    """An OAuth client (provisioner) with its first client secret: (client, raw secret)."""
    from provisioning.access.oauth_credentials import scim_client_create_oauth

    return scim_client_create_oauth(name="entra", role="provisioner")


@pytest.fixture
def key_server(settings):
    """A local HTTP server for JWKS and discovery documents; http URLs allowed."""
    from tests.access.oauth_helpers import KeyServer

    settings.SCIMGATE_OAUTH_ALLOW_HTTP = True
    server = KeyServer()
    yield server
    server.close()
