"""Create a SCIM client and print its first bearer token.

Human messages go to standard error; the token is the last line of standard
output, so scripts can capture it:

    TOKEN=$(python manage.py createscimclient okta | tail -1)
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.clients import scim_client_create


class Command(BaseCommand):
    help = (
        "Create a SCIM client (one IdP connection) and print its bearer token as the last "
        "line of standard output. The token is shown only this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Unique name of the client, e.g. the IdP: okta, entra.")
        parser.add_argument(
            "--role",
            default="provisioner",
            help=(
                "Name of the role: what the client may do (default: %(default)s; built-in: "
                "provisioner, read-only, no-delete, users-only)."
            ),
        )

    def handle(self, *args, name: str, role: str, **options) -> None:
        try:
            client, raw = scim_client_create(name=name, role=role)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stderr.write(
            f"Created SCIM client “{client.name}” (role: {client.role.name}, id: {client.id}).",
            style_func=self.style.SUCCESS,
        )
        self.stderr.write(
            "Its bearer token follows. It is shown only this once: store it in the IdP now.",
            style_func=self.style.WARNING,
        )
        self.stdout.write(raw)
