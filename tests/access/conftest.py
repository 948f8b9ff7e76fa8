"""Fixtures shared by the access tests."""

import pytest

from provisioning.access.models import ScimClient
from tests.factories import ScimClientFactory


@pytest.fixture
def okta(db) -> tuple[ScimClient, str]:
    """A provisioner client named okta, and its first raw token."""
    client = ScimClientFactory(name="okta")
    return client, client.raw_token
