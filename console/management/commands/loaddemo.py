"""Load a small demo directory, an operator login and a SCIM token; safe to run again.

Each run leaves exactly one valid demo token and prints it with the operator's
password, so ``make run`` always shows working credentials.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from provisioning.access.clients import scim_client_create, scim_token_issue, scim_token_revoke
from provisioning.access.models import ScimClient
from provisioning.access.operators import operator_create, operator_set_role
from provisioning.directory import services
from provisioning.directory.models import Group, User
from provisioning.oversight.models import PolicyRule
from provisioning.oversight.rules import policy_rule_set_enabled
from provisioning.scim.schema import ENTERPRISE_USER, USER

DEMO_CLIENT = "demo-idp"
OPERATOR = "operator"

PEOPLE = [
    ("ana.silva", "Ana", "Silva", "Engineering", "1001"),
    ("ben.okafor", "Ben", "Okafor", "Engineering", "1002"),
    ("chloe.martin", "Chloé", "Martin", "Finance", "1003"),
    ("dev.patel", "Dev", "Patel", "Finance", "1004"),
    ("eva.novak", "Eva", "Novák", "Sales", "1005"),
    ("farid.haddad", "Farid", "Haddad", "Sales", "1006"),
    ("grace.kim", "Grace", "Kim", "IT", "1007"),
    ("hugo.lefevre", "Hugo", "Lefèvre", "IT", "1008"),
]
GROUPS = {
    "Engineering": ["ana.silva", "ben.okafor"],
    "Finance": ["chloe.martin", "dev.patel"],
    "Sales": ["eva.novak", "farid.haddad"],
    "IT Admins": ["grace.kim", "hugo.lefevre"],
}
DOMAIN = "example.com"
PRIVILEGED = "IT Admins"


class Command(BaseCommand):
    help = "Load the demo directory, an operator login and a SCIM token (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            client = ScimClient.objects.filter(name=DEMO_CLIENT).first()
            if client is None:
                client, token = scim_client_create(name=DEMO_CLIENT, role="provisioner")
            else:
                for old in client.tokens.filter(revoked_at__isnull=True):
                    scim_token_revoke(token=old)
                _, token = scim_token_issue(client=client)
            created_users = self._load_directory(client)
            self._oversight()
            password = self._operator()
        self.stdout.write(
            f"\nDemo directory: {User.objects.count()} users, {Group.objects.count()} groups"
            f" ({created_users} new).\n"
            f"Console:        http://127.0.0.1:8000/   (admin: /admin/)\n"
            f"Operator login: {OPERATOR} / {password}   (role: administrator)\n"
            f"                make run leaves MFA optional; add an authenticator under\n"
            f"                Security (production requires one for approvers and administrators).\n"
            f"Oversight:      user deletions and additions to '{PRIVILEGED}' are held for\n"
            f"                approval; deactivations are applied and flagged for review.\n"
            f"SCIM base URL:  http://127.0.0.1:8000/scim/v2/\n"
            f"SCIM token:     {token}\n"
        )

    def _load_directory(self, client) -> int:
        created = 0
        ids = {}
        for user_name, given, family, department, number in PEOPLE:
            email = f"{user_name}@{DOMAIN}"
            user = User.objects.filter(user_name__iexact=email).first()
            if user is None:
                user = services.user_create(
                    client=client,
                    document={
                        "schemas": [USER, ENTERPRISE_USER],
                        "userName": email,
                        "externalId": f"demo-{number}",
                        "name": {"givenName": given, "familyName": family},
                        "displayName": f"{given} {family}",
                        "emails": [{"value": email, "type": "work", "primary": True}],
                        "active": True,
                        ENTERPRISE_USER: {"employeeNumber": number, "department": department},
                    },
                )
                created += 1
            ids[user_name] = str(user.pk)
        for name, members in GROUPS.items():
            if not Group.objects.filter(display_name__iexact=name).exists():
                services.group_create(
                    client=client,
                    document={
                        "displayName": name,
                        "members": [{"value": ids[m], "type": "User"} for m in members],
                    },
                )
        return created

    def _operator(self) -> str:
        """The demo administrator: created once, given a fresh password on every run."""
        password = os.environ.get("OPERATOR_PASSWORD") or secrets.token_urlsafe(12)
        user_model = get_user_model()
        operator = user_model.objects.filter(username=OPERATOR).first()
        if operator is None:
            operator, password = operator_create(
                username=OPERATOR, role="administrator", password=password
            )
        else:
            operator_set_role(user=operator, role="administrator")
            operator.set_password(password)
            operator.save(update_fields=["password"])
        # Django admin access for the audit and request-log admin views.
        user_model.objects.filter(pk=operator.pk).update(is_staff=True, is_superuser=True)
        return password

    def _oversight(self) -> None:
        """Demo oversight: deletions and privileged-group additions held, deactivations flagged."""
        Group.objects.filter(display_name__iexact=PRIVILEGED).update(privileged=True)
        for rule in PolicyRule.objects.filter(
            kind__in=["delete_user", "privileged_membership", "deactivate_user"]
        ):
            policy_rule_set_enabled(rule=rule, enabled=True, operator=None)
