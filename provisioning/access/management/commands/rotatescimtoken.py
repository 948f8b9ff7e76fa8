"""Issue a new bearer token for a SCIM client, keeping its other tokens working.

Rotation without downtime: issue, configure the new token in the IdP, then
revoke the old one (``revokescimtoken PREFIX``), or let it expire:

    TOKEN=$(python manage.py rotatescimtoken okta --expire-old-in 24 | tail -1)
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.access.clients import scim_token_rotate
from provisioning.access.models import ScimClient


class Command(BaseCommand):
    help = (
        "Issue a new token for a SCIM client and print it as the last line of standard output "
        "(shown only this once). Its other tokens keep working until revoked or expired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client", help="Name of the SCIM client (case-insensitive).")
        parser.add_argument(
            "--expire-old-in",
            type=float,
            metavar="HOURS",
            help="Make the client's other active tokens expire this many hours from now.",
        )

    def handle(self, *args, client: str, expire_old_in: float | None, **options) -> None:
        found = ScimClient.objects.filter(name__iexact=client.strip()).first()
        if found is None:
            raise CommandError(f"No SCIM client named “{client}”.")
        grace = None
        if expire_old_in is not None:
            if expire_old_in < 0:
                raise CommandError("--expire-old-in cannot be negative.")
            grace = timedelta(hours=expire_old_in)
        try:
            token, raw = scim_token_rotate(client=found, expire_old_in=grace)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        others = found.tokens.filter(revoked_at__isnull=True).exclude(pk=token.pk)
        self.stderr.write(
            f"Issued token {token.prefix}… for “{found.name}”.", style_func=self.style.SUCCESS
        )
        for other in others:
            until = (
                f"until {other.expires_at:%Y-%m-%d %H:%M %Z}"
                if other.expires_at
                else ("until revoked")
            )
            self.stderr.write(f"  Token {other.prefix}… still works {until}.")
        self.stderr.write(
            "The new token follows. It is shown only this once: store it in the IdP now.",
            style_func=self.style.WARNING,
        )
        self.stdout.write(raw)
