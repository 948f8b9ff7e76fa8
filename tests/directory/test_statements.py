"""Querysets compiled once and run again with other values (``directory.statements``)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q, Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisioning.directory import statements
from provisioning.directory.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PK = User._meta.pk
USER_NAME = User._meta.get_field("user_name")


@pytest.fixture(autouse=True)
def no_compiled_statements():
    statements.forget()
    yield
    statements.forget()


def _fields(user: User) -> dict:
    return {f.attname: getattr(user, f.attname) for f in User._meta.concrete_fields}


def _by_pk(pk):
    return User.objects.filter(pk=pk).order_by("created", "pk")[:1]


def _by_name(name):
    return User.objects.filter(Exact(Lower("user_name"), Lower(Value(name)))).order_by("created", "pk")


def test_rows_are_the_instances_the_orm_builds():
    """Every column through the ORM's own converters: JSON, timestamps, NULLs, booleans."""
    users = [
        UserFactory(attributes={"title": "Ünïcode", "addresses": [{"locality": "Oslo"}]}),
        UserFactory(external_id=None, active=False),
        UserFactory(deletion_due=None, manager_id=""),
    ]
    for user in users:
        [fetched] = statements.fetch(("pk",), _by_pk, [user.pk], [PK])
        [orm] = list(_by_pk(user.pk))
        assert type(fetched) is User and not fetched._state.adding
        assert _fields(fetched) == _fields(orm)
        assert fetched._state.db == "default" and fetched.etag == orm.etag


def test_an_assembled_instance_behaves_as_one_the_orm_builds():
    """Rows become instances without ``Model.__init__`` where it would do nothing more
    (``statements._maker``): the same values and state, saved, refreshed and related as
    the ORM's own."""
    source = UserFactory().source
    user = UserFactory(source=source, attributes={"title": "T"})
    assert statements._plain_model(User)
    [fetched] = statements.fetch(("pk",), _by_pk, [user.pk], [PK])
    [orm] = list(_by_pk(user.pk))
    assert {k: v for k, v in vars(fetched).items() if k != "_state"} == {
        k: v for k, v in vars(orm).items() if k != "_state"
    }
    assert not fetched._state.adding and fetched._state.db == "default"
    assert fetched._state.fields_cache == {}
    assert fetched.source == source  # a foreign key reads its object
    assert fetched == orm and hash(fetched) == hash(orm)
    fetched.display_name = "Changed"
    fetched.save(update_fields=["display_name"])
    assert User.objects.get(pk=user.pk).display_name == "Changed"
    fetched.refresh_from_db()
    assert fetched.display_name == "Changed"


def test_instances_are_made_by_the_orm_where_more_than_values_is_wanted(monkeypatch):
    """A receiver of ``pre_init``/``post_init``, or a model's own ``__init__``: every
    instance comes through ``Model.from_db`` again, so that nothing is skipped."""
    from django.db.models.signals import post_init

    user = UserFactory()
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(receiver, sender=User)
    try:
        [fetched] = statements.fetch(("pk",), _by_pk, [user.pk], [PK])
    finally:
        post_init.disconnect(receiver, sender=User)
    assert seen == [user.pk] and fetched.pk == user.pk

    original = User.__init__
    made = []

    def own_init(self, *args, **kwargs):
        made.append(args[0] if args else None)
        original(self, *args, **kwargs)

    monkeypatch.setattr(User, "__init__", own_init)
    monkeypatch.setattr(statements, "_plain_models", {})
    assert not statements._plain_model(User)
    [fetched] = statements.fetch(("pk",), _by_pk, [user.pk], [PK])
    assert made == [user.pk] and fetched.pk == user.pk


def test_a_shape_is_compiled_once_then_run_with_each_value():
    first, second = UserFactory(user_name="Ada@Example.com"), UserFactory(user_name="bob@example.com")
    assert statements.fetch(("name",), _by_name, ["ADA@example.com"], [USER_NAME]) == [first]
    built = []

    def counting(name):
        built.append(name)
        return _by_name(name)

    with CaptureQueriesContext(connection) as queries:
        assert statements.fetch(("name",), counting, ["BOB@EXAMPLE.COM"], [USER_NAME]) == [second]
        assert statements.fetch(("name",), counting, ["nobody"], [USER_NAME]) == []
    assert built == [] and len(queries) == 2
    # The values are parameters of the one statement, whatever they hold.
    hostile = "x' OR '1'='1"
    assert statements.fetch(("name",), _by_name, [hostile], [USER_NAME]) == []


def test_what_the_orm_reads_through_a_compiled_statement_is_the_same_sql():
    user = UserFactory()
    with CaptureQueriesContext(connection) as orm:
        list(_by_pk(user.pk))
    statements.fetch(("pk",), _by_pk, [user.pk], [PK])  # compiles
    with CaptureQueriesContext(connection) as compiled:
        statements.fetch(("pk",), _by_pk, [user.pk], [PK])
    assert [q["sql"] for q in compiled] == [q["sql"] for q in orm]


def test_a_value_the_orm_transforms_is_never_compiled():
    """``contains`` wraps the value in ``%...%``: no parameter equals the marker, so the
    shape runs through the ORM every time and still answers right."""
    ada = UserFactory(user_name="ada.lovelace@example.com")

    def containing(text):
        return User.objects.filter(user_name__contains=text).order_by("pk")

    for _ in range(2):
        assert statements.fetch(("co",), containing, ["lovelace"], [USER_NAME]) == [ada]
    assert statements._compiled[("default", connection.vendor, "co")] is statements._UNCACHEABLE


def test_shapes_that_are_not_plain_rows_run_through_the_orm():
    user = UserFactory()
    for build in (
        lambda pk: User.objects.filter(pk=pk).select_related("source"),
        lambda pk: User.objects.filter(pk=pk).defer("attributes"),
        lambda pk: User.objects.filter(pk=pk).annotate(n=Lower("user_name")),
    ):
        statements.forget()
        assert [u.pk for u in statements.fetch(("other",), build, [user.pk], [PK])] == [user.pk]
        assert statements._compiled[("default", connection.vendor, "other")] is statements._UNCACHEABLE


def test_the_oldest_shape_goes_beyond_the_limit(monkeypatch):
    monkeypatch.setattr(statements, "MAX_STATEMENTS", 2)
    user = UserFactory()
    for key in ("a", "b", "a", "c"):
        statements.fetch((key,), _by_pk, [user.pk], [PK])
    assert [k[-1] for k in statements._compiled] == ["a", "c"]


def test_rows_of_a_transaction_are_those_it_sees():
    user = UserFactory(deletion_due=None)
    statements.fetch(("live",), lambda pk: User.objects.filter(pk=pk), [user.pk], [PK])
    User.with_retired.filter(pk=user.pk).update(deletion_due=timezone.now() + timedelta(days=1))
    assert statements.fetch(("live",), lambda pk: User.objects.filter(pk=pk), [user.pk], [PK]) == []
    assert statements.fetch(("any",), lambda pk: User.with_retired.filter(Q(pk=pk)), [user.pk], [PK])


def _locked(pk):
    return User.objects.select_for_update().filter(pk=pk).order_by("pk")[:1]


@pytest.mark.django_db(transaction=True)
def test_a_locking_statement_locks_and_needs_a_transaction(on_postgres):
    """As the ORM: ``FOR UPDATE`` in the SQL, and refused outside a transaction, where its
    lock would end with the statement; compiled or not."""
    from django.db import transaction
    from django.db.transaction import TransactionManagementError

    user = UserFactory()
    for _ in range(2):  # compiles, then runs compiled
        with pytest.raises(TransactionManagementError):
            statements.fetch(("lock",), _locked, [user.pk], [PK])
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            assert statements.fetch(("lock",), _locked, [user.pk], [PK]) == [user]
        assert queries[-1]["sql"].endswith("FOR UPDATE")
    assert statements._compiled[("default", "postgresql", "lock")].for_update


@pytest.mark.django_db
@pytest.mark.parametrize("start,stop", [(0, 1), (0, 3), (1, 4), (4, 9), (9, 12)])
def test_a_paged_shape_takes_its_bounds_as_parameters(start, stop):
    """Every page of one shape is one compiled statement; each equals the ORM's slice,
    also where the bounds sit in a subquery with a value after them."""
    users = UserFactory.create_bulk(10)
    name = users[5].user_name

    def build(value, *, start, stop):
        keys = User.objects.order_by("created", "pk").values("pk")[start:stop]
        return User.objects.filter(pk__in=keys).exclude(user_name=value).order_by("created", "pk")

    field = User._meta.get_field("user_name")
    got = statements.fetch(("subquery",), build, (name,), (field,), start=start, stop=stop)
    assert got == list(build(name, start=start, stop=stop))
    entry = statements._compiled[("default", connection.vendor, "subquery")]
    assert entry is not statements._UNCACHEABLE and entry.bounds_at is not None
    assert "LIMIT %s OFFSET %s" in entry.sql


@pytest.mark.django_db
def test_a_key_names_either_a_paged_shape_or_one_that_is_not():
    UserFactory()
    pk = User._meta.pk
    statements.fetch(("k",), lambda v, *, start, stop: User.objects.filter(pk=v)[start:stop], (uuid.uuid4(),), (pk,), start=0, stop=1)
    with pytest.raises(ValueError, match="paged"):
        statements.fetch(("k",), lambda v: User.objects.filter(pk=v), (uuid.uuid4(),), (pk,))
    with pytest.raises(ValueError, match="start < stop"):
        statements.fetch(("k",), lambda v, *, start, stop: User.objects.none(), (1,), (pk,), start=3, stop=3)


@pytest.mark.django_db
def test_a_scalar_is_compiled_once_and_reads_what_the_orm_reads():
    UserFactory.create_bulk(3)
    built = []

    def build():
        built.append(1)
        return User.objects.order_by("-created").values_list("user_name", flat=True)[:1]

    expected = build()[0]
    built.clear()
    assert statements.scalar(("newest",), build) == expected
    assert statements.scalar(("newest",), build) == expected
    assert built == [1]
    nobody = User.objects.filter(user_name="nobody@nowhere.example").values_list("pk")
    assert statements.scalar(("nobody",), lambda: nobody) is None
