"""Factories for the objects tests set up, in one place (factory_boy).

Two ways to make directory users and groups:

- ``UserFactory``, ``GroupFactory``, ``MembershipFactory`` write rows directly: no SCIM
  document, no audit trail, no policy. For tests of reads (filters, lists, counters,
  query counts) that need data, sometimes a lot of it (``create_bulk``).
- ``ProvisionedUserFactory`` and ``ProvisionedGroupFactory`` build a SCIM document and
  ``create()`` provisions it through the directory services, as a SCIM POST or a
  console action does: validated, authorized for ``client``, audited, policed.

Access objects go through their services too, so they are audited and hashed as in
production: ``ScimClientFactory`` (the raw token is kept on the instance as
``raw_token``), ``ScimTokenFactory`` (``raw``), ``ScimRoleFactory``, and
``OperatorFactory`` (a console operator in the group of one role).
"""

from __future__ import annotations

import factory
from django.conf import settings
from django.contrib.auth.models import Group as AuthGroup
from django.utils import timezone
from factory.django import DjangoModelFactory

from provisioning.access.clients import scim_client_create, scim_token_issue
from provisioning.access.models import Role, ScimClient, ScimToken
from provisioning.access.roles import scim_role_create
from provisioning.directory import services
from provisioning.directory.models import Group, Membership, User, UserEmail
from provisioning.scim.schema import GROUP, USER

# --- Directory rows -----------------------------------------------------------------


class UserFactory(DjangoModelFactory):
    """A user row. ``emails``: (value, type, primary) tuples, stored as UserEmail rows."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    user_name = factory.Sequence(lambda n: f"user{n}@example.test")
    created = factory.LazyFunction(timezone.now)
    last_modified = factory.SelfAttribute("created")

    @factory.post_generation
    def emails(obj, create, extracted, **kwargs):
        if create and extracted:
            for value, type_, primary in extracted:
                UserEmail.objects.create(user=obj, value=value, type=type_, primary=primary)

    @classmethod
    def create_bulk(cls, n: int, **kwargs) -> list[User]:
        """``n`` users in one bulk INSERT (no post-generation): for tests that need volume."""
        return User.objects.bulk_create(cls.build_batch(n, **kwargs))


class GroupFactory(DjangoModelFactory):
    """A group row. ``members``: users or groups, stored in one bulk INSERT of memberships."""

    class Meta:
        model = Group
        skip_postgeneration_save = True

    display_name = factory.Sequence(lambda n: f"group-{n}")
    created = factory.LazyFunction(timezone.now)
    last_modified = factory.SelfAttribute("created")

    @factory.post_generation
    def members(obj, create, extracted, **kwargs):
        if create and extracted:
            Membership.objects.bulk_create(
                MembershipFactory.build(group=obj, member=member) for member in extracted
            )


class MembershipFactory(DjangoModelFactory):
    """One membership row; ``member`` is a user or a group."""

    class Meta:
        model = Membership
        exclude = ("member",)

    group = factory.SubFactory(GroupFactory)
    member = factory.SubFactory(UserFactory)
    user = factory.LazyAttribute(lambda o: o.member if isinstance(o.member, User) else None)
    member_group = factory.LazyAttribute(
        lambda o: o.member if isinstance(o.member, Group) else None
    )


# --- Directory resources through the services -------------------------------------


def _member_ref(member: User | Group | dict) -> dict:
    if isinstance(member, dict):
        return member
    return {"value": str(member.pk), "type": "User" if isinstance(member, User) else "Group"}


class ProvisionedUserFactory(factory.DictFactory):
    """A SCIM user document; ``create()`` provisions it with ``user_create``.

    Any SCIM attribute is a keyword (``userName=...``, ``active=True``); ``client`` is
    the SCIM client that provisions it (None: a write without one, as from the console).
    """

    schemas = factory.LazyFunction(lambda: [USER])
    userName = factory.Sequence(lambda n: f"user{n}@example.test")

    @classmethod
    def _create(cls, model_class, *args, client: ScimClient | None = None, **document) -> User:
        return services.user_create(document=document, client=client)


class ProvisionedGroupFactory(factory.DictFactory):
    """A SCIM group document; ``create()`` provisions it with ``group_create``.

    ``members`` are users or groups (or SCIM member dicts); ``client`` as for users.
    """

    schemas = factory.LazyFunction(lambda: [GROUP])
    displayName = factory.Sequence(lambda n: f"group-{n}")
    members = factory.LazyFunction(list)

    @classmethod
    def _create(cls, model_class, *args, client: ScimClient | None = None, **document) -> Group:
        document["members"] = [_member_ref(m) for m in document["members"]]
        return services.group_create(document=document, client=client)


# --- Access -----------------------------------------------------------------------


class ScimRoleFactory(factory.Factory):
    """A custom SCIM role, created with ``scim_role_create`` (any of its keywords)."""

    class Meta:
        model = Role

    name = factory.Sequence(lambda n: f"role-{n}")
    permissions = factory.LazyFunction(lambda: ["User:read"])

    @classmethod
    def _create(cls, model_class, *args, **kwargs) -> Role:
        return scim_role_create(**kwargs)


class ScimClientFactory(factory.Factory):
    """A SCIM client with its first token, created with ``scim_client_create``.

    ``role`` is a Role or a role name. The raw token, which production shows only
    once, is kept on the instance as ``raw_token``.
    """

    class Meta:
        model = ScimClient

    name = factory.Sequence(lambda n: f"idp-{n}")
    role = "provisioner"

    @classmethod
    def _create(cls, model_class, *args, **kwargs) -> ScimClient:
        client, raw = scim_client_create(**kwargs)
        client.raw_token = raw
        return client


class ScimTokenFactory(factory.Factory):
    """A further token of a SCIM client, issued with ``scim_token_issue`` (raw: ``raw``)."""

    class Meta:
        model = ScimToken

    client = factory.SubFactory(ScimClientFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs) -> ScimToken:
        token, raw = scim_token_issue(**kwargs)
        token.raw = raw
        return token


class OperatorFactory(DjangoModelFactory):
    """A console operator: a Django user in the group of ``role`` (viewer, approver or
    administrator), as ``createoperator`` makes them; ``role=None``: a user without one.
    No usable password unless one is given."""

    class Meta:
        model = settings.AUTH_USER_MODEL

    role = "viewer"
    username = factory.LazyAttributeSequence(lambda o, n: f"{o.role or 'user'}-{n}")
    password = None

    @classmethod
    def _create(cls, model_class, *args, role: str | None, **kwargs):
        user = model_class.objects.create_user(*args, **kwargs)
        if role is not None:
            user.groups.add(AuthGroup.objects.get(name=role))
        return user
