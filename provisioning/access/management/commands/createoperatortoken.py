"""Create an API token for a console operator and print it.

Human messages go to standard error; the token is the last line of standard output,
so scripts can capture it:

    TOKEN=$(python manage.py createoperatortoken alice --name deploy-bot | tail -1)
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from provisioning.access.operator_tokens import operator_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for a console operator (it acts with the operator's role) and "
        "print it as the last line of standard output. The token is shown only this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The operator the token acts as.")
        parser.add_argument(
            "--name",
            default="command line",
            help="What the token is for, e.g. the script or machine (default: %(default)s).",
        )
        parser.add_argument(
            "--expires-days",
            type=int,
            default=None,
            help="Days until the token expires (default: never; at most three years).",
        )

    def handle(self, *args, username: str, name: str, expires_days: int | None, **options):
        User = get_user_model()
        user = User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).first()
        if user is None:
            raise CommandError(f"No operator named “{username}”.")
        if not user.is_active:
            raise CommandError(f"The operator “{username}” is inactive.")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expires_at = (
            timezone.now() + timedelta(days=expires_days) if expires_days is not None else None
        )
        try:
            token, raw = operator_token_create(user=user, name=name, expires_at=expires_at)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M %Z}" if token.expires_at else "no expiry"
        self.stderr.write(
            f"Created API token “{token.name}” ({token.prefix}…, {expiry}) for operator "
            f"{user.get_username()}.",
            style_func=self.style.SUCCESS,
        )
        self.stderr.write(
            "It follows, shown only this once: store it where the script reads it.",
            style_func=self.style.WARNING,
        )
        self.stdout.write(raw)
