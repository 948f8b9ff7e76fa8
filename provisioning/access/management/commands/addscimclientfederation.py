"""Trust JWTs from an external issuer as a SCIM client's credentials (federation):

    python manage.py addscimclientfederation entra \\
        --issuer https://login.microsoftonline.com/<tenant>/v2.0 --subject <object id>

The issuer's keys are read from its OpenID discovery document
(``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``). The assertion's
audience must be ``--audience``, by default the token endpoint's URL.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.models import ScimClient
from provisioning.access.oauth_credentials import federation_add


class Command(BaseCommand):
    help = "Trust a federated issuer and subject as a SCIM client's OAuth credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Name of the SCIM client (case-insensitive).")
        parser.add_argument("--issuer", required=True, help="The issuer URL (the JWT's iss).")
        parser.add_argument("--subject", required=True, help="The expected subject (sub).")
        parser.add_argument(
            "--audience",
            default="",
            help="The expected audience (aud); default: this server's token endpoint URL.",
        )

    def handle(self, *args, name: str, issuer: str, subject: str, audience: str, **options) -> None:
        client = ScimClient.objects.filter(name__iexact=name.strip()).first()
        if client is None:
            raise CommandError(f"No SCIM client named “{name}”.")
        try:
            federation = federation_add(
                client=client, issuer=issuer, subject=subject, audience=audience
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"“{client.name}” now accepts JWTs from {federation.issuer} about {federation.subject} "
            f"(audience: {federation.audience or 'the token endpoint URL'})."
        )
