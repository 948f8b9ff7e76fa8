"""Revoke a SCIM bearer token by its prefix (the 8 characters after ``scg_``)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.clients import scim_token_revoke
from provisioning.access.models import ScimToken
from provisioning.access.token_check import token_prefix_of


class Command(BaseCommand):
    help = "Revoke a SCIM bearer token, given its prefix (as shown in the console) or the token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The token's prefix, e.g. Ab3dE6gH.")

    def handle(self, *args, prefix: str, **options) -> None:
        # Accept a whole token too, but look it up by its prefix only.
        prefix = token_prefix_of(prefix.strip()) or prefix.strip()
        token = ScimToken.objects.select_related("client").filter(prefix=prefix).first()
        if token is None:
            raise CommandError(f"No token with the prefix “{prefix}”.")
        if token.is_revoked:
            self.stderr.write(f"Token {prefix}… of “{token.client}” was already revoked.")
            return
        scim_token_revoke(token=token)
        self.stderr.write(
            f"Revoked token {prefix}… of “{token.client}”.", style_func=self.style.SUCCESS
        )
