from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.directory.models import User
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


@pytest.fixture
def established(db):
    """Users created a day ago (by ``source``, default none): destroying them is not churn."""

    def make(count: int, *, source=None, prefix: str = "established") -> list[User]:
        day_ago = timezone.now() - timedelta(days=1)
        return User.objects.bulk_create(
            User(
                user_name=f"{prefix}{n:04d}@x.example",
                active=True,
                created=day_ago + timedelta(microseconds=n),
                last_modified=day_ago,
                source=source,
            )
            for n in range(count)
        )

    return make
