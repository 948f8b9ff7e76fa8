"""Create a SCIM client and print its first bearer token, or with ``--oauth`` its OAuth
client id and first client secret.

Human messages go to standard error; the token (or ``CLIENT_ID CLIENT_SECRET``, one
space between) is the last line of standard output, so scripts can capture it:

    TOKEN=$(python manage.py createscimclient okta | tail -1)
    read CLIENT_ID CLIENT_SECRET < <(python manage.py createscimclient entra --oauth | tail -1)
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.clients import scim_client_create
from provisioning.access.oauth_credentials import scim_client_create_oauth


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
        parser.add_argument(
            "--oauth",
            action="store_true",
            help=(
                "Authenticate with OAuth 2.0 client credentials instead of a static token: "
                "print the client id and a client secret (valid one year)."
            ),
        )

    def handle(self, *args, name: str, role: str, oauth: bool = False, **options) -> None:
        create = scim_client_create_oauth if oauth else scim_client_create
        try:
            client, raw = create(name=name, role=role)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if oauth:
            self.stderr.write(
                f"Created SCIM client “{client.name}” (role: {client.role.name}) for OAuth 2.0 "
                "client credentials.",
                style_func=self.style.SUCCESS,
            )
            self.stderr.write(
                "Its client id and client secret follow. The secret is shown only this once: "
                "store it in the IdP now.",
                style_func=self.style.WARNING,
            )
            self.stdout.write(f"{client.pk} {raw}")
            return
        self.stderr.write(
            f"Created SCIM client “{client.name}” (role: {client.role.name}, id: {client.id}).",
            style_func=self.style.SUCCESS,
        )
        self.stderr.write(
            "Its bearer token follows. It is shown only this once: store it in the IdP now.",
            style_func=self.style.WARNING,
        )
        self.stdout.write(raw)
