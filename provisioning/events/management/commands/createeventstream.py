"""Register an outbound event stream and print what its receiver needs.

Human messages go to standard error; the last line of standard output is, one space
between:

- ``--push URL`` (SET push, RFC 8935): ``STREAM_ID -`` (SETs are signed with the
  server's keys, published at /.well-known/jwks.json);
- ``--push URL --format webhook``: ``STREAM_ID SECRET``, the Standard Webhooks signing
  secret (``whsec_...``);
- ``--poll`` (RFC 8936): ``POLL_URL TOKEN``, the poll endpoint and its bearer token.

Secrets and tokens are shown only this once:

    read STREAM_ID SECRET < <(python manage.py createeventstream hr --push https://hr.example.com/hook --format webhook | tail -1)
"""

import contextlib
import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from provisioning.access.models import ScimClient
from provisioning.events.models import EventStream
from provisioning.events.streams import (
    FILTERABLE_KINDS,
    RESOURCE_TYPES,
    create_stream,
    poll_url,
)


def _list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Command(BaseCommand):
    help = (
        "Register an event stream (SET push, webhook or SET poll) and print, as the last "
        "line of standard output, STREAM_ID SECRET (push: SECRET is the webhook signing "
        "secret, or - for SET push) or POLL_URL TOKEN (poll). Shown only this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name", help="Unique name of the stream, e.g. the receiving application."
        )
        method = parser.add_mutually_exclusive_group(required=True)
        method.add_argument("--push", metavar="URL", help="POST each event to this https URL.")
        method.add_argument(
            "--poll", action="store_true", help="The receiver polls for events (RFC 8936)."
        )
        parser.add_argument(
            "--format",
            choices=["set", "webhook"],
            default="set",
            help="With --push: signed SETs (RFC 8935, default) or Standard Webhooks JSON.",
        )
        parser.add_argument(
            "--client",
            metavar="SCIM_CLIENT",
            help="Bind to this SCIM client (name or id): its asynchronous completions come here.",
        )
        parser.add_argument(
            "--resource-types",
            metavar="TYPES",
            help=f"Comma-separated, of {', '.join(RESOURCE_TYPES)} (default: all).",
        )
        parser.add_argument(
            "--events",
            metavar="KINDS",
            help=f"Comma-separated, of {', '.join(k.value for k in FILTERABLE_KINDS)} (default: all).",
        )
        parser.add_argument(
            "--payload",
            choices=EventStream.Payload.values,
            default=EventStream.Payload.NOTICE,
            help="notice: changed attribute names; full: the resource's data (default: %(default)s).",
        )
        parser.add_argument(
            "--authorization",
            metavar="VALUE",
            default="",
            help="With --push (SET): the Authorization header value sent with each event.",
        )
        parser.add_argument(
            "--base-url",
            metavar="URL",
            default="",
            help=(
                "With --poll: the server's public root URL for the printed poll URL "
                "(default: from SCIM_BASE_URL, SCIMGATE_EVENTS_ISSUER or SCIMGATE_CONSOLE_URL)."
            ),
        )

    def _client(self, value: str | None) -> ScimClient | None:
        if not value:
            return None
        match = Q(name__iexact=value)
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(value))
        client = ScimClient.objects.filter(match).first()
        if client is None:
            raise CommandError(f"No SCIM client named “{value}”.")
        return client

    def handle(self, *args, name: str, push: str | None, poll: bool, **options) -> None:
        if poll and options["format"] != "set":
            raise CommandError("--format applies to --push streams only.")
        if poll and options["authorization"]:
            raise CommandError("--authorization applies to --push streams only.")
        if push and options["base_url"]:
            raise CommandError("--base-url applies to --poll streams only.")
        if poll:
            method = EventStream.Method.POLL
        elif options["format"] == "webhook":
            method = EventStream.Method.WEBHOOK
        else:
            method = EventStream.Method.PUSH
        try:
            stream, raw = create_stream(
                name=name,
                method=method,
                endpoint_url=push or "",
                authorization=options["authorization"],
                resource_types=_list(options["resource_types"]),
                event_kinds=_list(options["events"]),
                payload=options["payload"],
                client=self._client(options["client"]),
            )
        except ValidationError as exc:
            raise CommandError(
                " ".join(
                    f"{field}: {message}" if field != "__all__" else message
                    for field, messages in exc.message_dict.items()
                    for message in messages
                )
            ) from exc
        self.stderr.write(
            f"Created event stream “{stream.name}” ({stream.get_method_display()}, id: {stream.pk}).",
            style_func=self.style.SUCCESS,
        )
        if method == EventStream.Method.POLL:
            self.stderr.write(
                "Its poll URL and bearer token follow. The token is shown only this once.",
                style_func=self.style.WARNING,
            )
            self.stdout.write(f"{poll_url(stream, options['base_url'])} {raw}")
        elif method == EventStream.Method.WEBHOOK:
            self.stderr.write(
                "Its id and webhook signing secret follow. The secret is shown only this once.",
                style_func=self.style.WARNING,
            )
            self.stdout.write(f"{stream.pk} {raw}")
        else:
            self.stderr.write(
                "Its id follows; SETs are signed with the keys at /.well-known/jwks.json."
            )
            self.stdout.write(f"{stream.pk} -")
