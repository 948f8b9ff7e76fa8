"""What the load generator looks up: ``runner.write_targets``."""

from __future__ import annotations

import json

import pytest

from provisioning.benchmark.runner import write_targets
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_external_id_lookups_name_users_that_have_one(tmp_path):
    """Users created by earlier runs' ``post_user`` have no externalId: ``externalId eq
    ""`` would ask for all of them (absent, RFC 7644 §3.4.2.2), a list that grows with
    every run. Only external ids that exist are looked up."""
    with_ids = [UserFactory(external_id=f"ext-{i}") for i in range(6)]
    without = [UserFactory(external_id=None) for _ in range(6)]
    UserFactory(external_id="")
    GroupFactory()
    path = tmp_path / "targets.json"

    write_targets(path, "http://127.0.0.1/bench/floor", count=4)

    targets = json.loads(path.read_text())
    assert targets["external_ids"]
    assert set(targets["external_ids"]) <= {u.external_id for u in with_ids}
    assert len(targets["external_ids"]) <= 4
    # Reads by id and userName still pick from every user, as before.
    assert len(targets["user_ids"]) == 4
    assert len(set(targets["user_ids"]) & {str(u.pk) for u in without}) >= 1


def test_no_external_id_at_all_is_refused(tmp_path):
    UserFactory(external_id=None)
    with pytest.raises(RuntimeError, match="externalId"):
        write_targets(tmp_path / "targets.json", "http://127.0.0.1/bench/floor")
