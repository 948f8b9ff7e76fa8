import pytest

from provisioning.oversight.models import CircuitBreaker, PolicyRule
from tests.factories import OperatorFactory, ScimClientFactory
from tests.scim.conftest import ScimApi, scim  # noqa: F401


@pytest.fixture
def operators(db):
    return {
        name: OperatorFactory(username=name, email=f"{name}@ops.example", role=None)
        for name in ("alice", "bob", "carol")
    }


@pytest.fixture
def hold_rule(db):
    def make(kind: str, action: str = "hold", **extra) -> PolicyRule:
        return PolicyRule.objects.create(name=f"{action} {kind}", kind=kind, action=action, **extra)

    return make


@pytest.fixture
def other_scim(db):
    return ScimApi(ScimClientFactory(name="second-idp").raw_token)


@pytest.fixture
def breaker(db):
    breaker, _ = CircuitBreaker.objects.get_or_create(pk=1)
    return breaker


@pytest.fixture
def decide(django_capture_on_commit_callbacks):
    """Call an oversight service and run what it queued for after commit (the apply task).

    Tests run inside a transaction that never commits; production runs the same
    callbacks when the service's transaction commits.
    """

    def run(service, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return run
