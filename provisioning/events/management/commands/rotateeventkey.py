"""Replace the key that signs SETs:

    python manage.py rotateeventkey [--algorithm ES256] [--retire-previous-after-hours N]

The new key signs from now on; the previous one stays in /.well-known/jwks.json for N
hours (default SCIMGATE_EVENTS_KEY_OVERLAP_HOURS), so receivers that cached the old JWKS
keep verifying until they fetch it again. N = 0 stops publishing it at once.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.events.models import SigningKey
from provisioning.events.signing import rotate


class Command(BaseCommand):
    help = "Rotate the SET signing key; the previous key stays published for an overlap."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--algorithm",
            choices=[choice.value for choice in SigningKey.Algorithm],
            default=None,
            help="RS256 or ES256 (default: SCIMGATE_EVENTS_SIGNING_ALGORITHM).",
        )
        parser.add_argument(
            "--retire-previous-after-hours",
            type=float,
            default=None,
            help="How long the previous key stays published (default: "
            "SCIMGATE_EVENTS_KEY_OVERLAP_HOURS; 0: not at all).",
        )

    def handle(self, *args, algorithm, retire_previous_after_hours, **options) -> None:
        hours = retire_previous_after_hours
        if hours is not None and hours < 0:
            raise CommandError("--retire-previous-after-hours cannot be negative.")
        previous = list(SigningKey.objects.filter(status=SigningKey.Status.ACTIVE))
        key = rotate(algorithm=algorithm, overlap=None if hours is None else timedelta(hours=hours))
        for old in previous:
            old.refresh_from_db()
            until = (
                f"published until {old.retired_at:%Y-%m-%d %H:%M} UTC"
                if old.status == SigningKey.Status.RETIRING
                else "no longer published"
            )
            self.stdout.write(f"previous key {old.kid} ({old.algorithm}): {until}")
        self.stdout.write(f"active key {key.kid} ({key.algorithm})")
