"""Register an extension schema from an RFC 7643 §7 schema document, or change the one
registered under its URN:

    python manage.py loadschema costcenter.json
    python manage.py loadschema acme-group.json --resource-type Group

Running it again with the same file changes nothing. The file may hold one schema
document or a list of them (as ``GET /Schemas`` ``Resources`` would).
"""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from provisioning.directory.extensions import extension_schema_save


class Command(BaseCommand):
    help = (
        "Register (or update) SCIM extension schemas from a JSON file holding an RFC 7643 §7 "
        "schema document or a list of them. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path of the JSON schema document.")
        parser.add_argument(
            "--resource-type",
            choices=["User", "Group"],
            default=None,
            help=(
                "The resource type the schema extends. Default: the last part of its URN "
                "(…:2.0:User or …:2.0:Group); an already registered schema keeps its own."
            ),
        )

    def handle(self, *args, file: str, resource_type: str | None, **options) -> None:
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text.") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}") from None
        documents = data if isinstance(data, list) else [data]
        if not documents:
            raise CommandError(f"{file} holds no schema document.")
        # All of the file or none of it.
        with transaction.atomic():
            outcomes = [
                self._load(file, documents, index, resource_type) for index in range(len(documents))
            ]
        for row, outcome in outcomes:
            count = len(row.attributes)
            self.stdout.write(
                f"{outcome.capitalize()}: {row.urn} ({row.resource_type}, {count} "
                f"attribute{'s' if count != 1 else ''})",
                style_func=self.style.SUCCESS if outcome != "unchanged" else None,
            )

    def _load(self, file: str, documents: list, index: int, resource_type: str | None):
        label = file if len(documents) == 1 else f"{file} [{index}]"
        try:
            return extension_schema_save(
                document=documents[index], resource_type=resource_type, operator=None
            )
        except ValidationError as exc:
            problems = "\n".join(f"  - {message}" for message in exc.messages)
            raise CommandError(f"{label}: nothing was loaded from the file:\n{problems}") from None
