"""Register the public keys a SCIM client signs its ``private_key_jwt`` assertions with
(RFC 7523 §2.2), from a JWKS file:

    python manage.py addscimclientkey entra keys.json

The file holds a JWKS document (``{"keys": [...]}``) of public keys only; private key
material is refused. The client may then authenticate with ``private_key_jwt``.
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.models import ScimClient
from provisioning.access.oauth_credentials import client_key_add


class Command(BaseCommand):
    help = "Register the public keys in a JWKS file for a SCIM client's private_key_jwt."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Name of the SCIM client (case-insensitive).")
        parser.add_argument("jwks_file", help="Path of a JWKS document of public keys.")

    def handle(self, *args, name: str, jwks_file: str, **options) -> None:
        client = ScimClient.objects.filter(name__iexact=name.strip()).first()
        if client is None:
            raise CommandError(f"No SCIM client named “{name}”.")
        try:
            with open(jwks_file, encoding="utf-8") as handle:
                document = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {jwks_file}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CommandError(f"{jwks_file} is not JSON.") from exc
        try:
            entry = client_key_add(client=client, jwks=document)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        kids = ", ".join(entry.key_ids) or "no kid"
        self.stdout.write(
            f"Registered {len(entry.jwks['keys'])} key(s) ({kids}) for “{client.name}”; "
            "it may now authenticate with private_key_jwt."
        )
