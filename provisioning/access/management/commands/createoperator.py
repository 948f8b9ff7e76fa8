"""Create a console operator with one role.

The password comes from the ``OPERATOR_PASSWORD`` environment variable (never
a command-line argument, which other local users could read), or is generated
and printed as the last line of standard output.
"""

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.builtin import OPERATOR_ROLES
from provisioning.access.operators import operator_create


class Command(BaseCommand):
    help = (
        "Create a console operator (viewer, approver or administrator). The password is read "
        "from OPERATOR_PASSWORD, or generated and printed as the last line of standard output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=OPERATOR_ROLES)
        parser.add_argument("--email", default="")

    def handle(self, *args, username: str, role: str, email: str, **options) -> None:
        given = os.environ.get("OPERATOR_PASSWORD") or None
        try:
            user, password = operator_create(
                username=username, role=role, password=given, email=email
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stderr.write(
            f"Created operator “{user.get_username()}” with the role {role}.",
            style_func=self.style.SUCCESS,
        )
        if given is None:
            self.stderr.write(
                "Generated password follows; it is shown only this once.",
                style_func=self.style.WARNING,
            )
            self.stdout.write(password)
