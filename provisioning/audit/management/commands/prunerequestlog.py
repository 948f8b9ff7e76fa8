"""Delete SCIM request-log rows past retention (REQUEST_LOG_RETENTION_DAYS). The audit log is kept."""

from django.core.management.base import BaseCommand

from provisioning.audit.request_log import request_log_prune


class Command(BaseCommand):
    help = "Delete request-log rows older than the retention period."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Override REQUEST_LOG_RETENTION_DAYS.")

    def handle(self, *args, days: int | None = None, **options):
        deleted = request_log_prune(older_than_days=days)
        self.stdout.write(f"Deleted {deleted} request-log row(s).")
