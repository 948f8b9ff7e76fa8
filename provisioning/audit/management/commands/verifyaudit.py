"""Verify the audit trail: every row hash and every sealed batch. Exits 1 on any problem."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from provisioning.audit.sealing import audit_seal, audit_verify


class Command(BaseCommand):
    help = "Report audit entries, change sets or change records modified, deleted or inserted out of order."

    def add_arguments(self, parser):
        parser.add_argument("--seal", action="store_true", help="Seal unsealed rows first.")
        parser.add_argument(
            "--grace",
            type=int,
            default=None,
            help="With --seal: seal only rows older than this many seconds (default: the setting).",
        )

    def handle(self, *args, seal: bool = False, grace: int | None = None, **options):
        if seal:
            batches = audit_seal(grace=None if grace is None else timedelta(seconds=grace))
            self.stdout.write(f"Sealed {len(batches)} batch(es).")
        report = audit_verify()
        for stream, count in report.checked.items():
            self.stdout.write(f"{stream}: {count} rows checked")
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(problem)
            raise CommandError(f"Audit trail verification FAILED: {len(report.problems)} problem(s)")
        self.stdout.write(self.style.SUCCESS("Audit trail verified: no modification, deletion or insertion."))
