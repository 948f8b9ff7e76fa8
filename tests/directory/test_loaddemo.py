"""`make run` loads the demo through this command; running it again must be harmless."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from console.permissions import operator_role
from provisioning.access.models import ScimToken
from provisioning.access.token_check import scim_token_authenticate
from provisioning.directory.models import Group, Membership, User
from provisioning.oversight.models import PolicyRule

pytestmark = pytest.mark.django_db


def run() -> dict[str, str]:
    out = StringIO()
    call_command("loaddemo", stdout=out)
    lines = {}
    for line in out.getvalue().splitlines():
        key, _, value = line.partition(":")
        lines[key.strip()] = value.strip()
    return lines


def test_loaddemo_is_idempotent_and_prints_working_credentials():
    first = run()
    second = run()

    assert User.objects.count() == 8 and Group.objects.count() == 4
    assert Membership.objects.count() == 8
    # Each run leaves exactly one valid demo token: the one it printed.
    assert scim_token_authenticate(first["SCIM token"]) is None
    assert scim_token_authenticate(second["SCIM token"]) is not None
    assert ScimToken.objects.filter(revoked_at__isnull=True).count() == 1
    username, _, password = second["Operator login"].partition(" / ")
    operator = get_user_model().objects.get(username=username)
    assert operator.check_password(password.split()[0])
    assert operator_role(operator) == "administrator"
    assert Group.objects.get(display_name="IT Admins").privileged
    assert set(PolicyRule.objects.filter(enabled=True).values_list("kind", flat=True)) == {
        "delete_user",
        "privileged_membership",
        "deactivate_user",
    }
