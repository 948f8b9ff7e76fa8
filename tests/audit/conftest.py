"""The SCIM HTTP fixtures, shared with tests/scim."""

from tests.scim.conftest import anonymous_scim, readonly_scim, scim  # noqa: F401
