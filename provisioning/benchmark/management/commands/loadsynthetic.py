"""Load synthetic enterprise-scale data: users, groups (one of 100,000 members), nesting,
years of audit history and a request log, shaped exactly like real SCIM traffic."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.benchmark.synthetic import SyntheticSpec, load_synthetic


def _sizes(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"--group-sizes must be comma-separated integers, not {value!r}") from None


def _until(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Bulk-load synthetic users, groups, memberships, audit history (change sets, change "
        "records, audit entries with their hashes, sealed) and request-log rows. Deterministic "
        "for a given --seed and --until. Needs a database without synthetic data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = SyntheticSpec()
        parser.add_argument("--users", type=int, default=defaults.users)
        parser.add_argument("--groups", type=int, default=defaults.groups, help="ordinary groups")
        parser.add_argument(
            "--group-sizes",
            type=_sizes,
            default=defaults.group_sizes,
            help="sizes of the scaling groups 'bench-scale-<size>' (default 10,10000,100000)",
        )
        parser.add_argument("--nested", type=int, default=defaults.nested, help="group-in-group memberships")
        parser.add_argument("--audit-entries", type=int, default=defaults.audit_entries)
        parser.add_argument("--request-log", type=int, default=defaults.request_log)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument(
            "--until",
            type=_until,
            default=defaults.until,
            help="end of the synthetic history, ISO 8601 (default: today 00:00 UTC)",
        )
        parser.add_argument("--history-days", type=int, default=defaults.history_days)
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="processes replaying the history on PostgreSQL (default: one per CPU)",
        )

    def handle(self, *args, **options) -> None:
        spec = SyntheticSpec(
            users=options["users"],
            groups=options["groups"],
            group_sizes=options["group_sizes"],
            nested=options["nested"],
            audit_entries=options["audit_entries"],
            request_log=options["request_log"],
            seed=options["seed"],
            batch_size=options["batch_size"],
            until=options["until"],
            history_days=options["history_days"],
        )
        try:
            report = load_synthetic(spec, workers=options["workers"], progress=lambda line: self.stderr.write(line))
        except (ValueError, RuntimeError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Loaded {report.users} users, {report.groups} groups, {report.memberships} memberships, "
            f"{report.audit_entries} audited writes (change sets, records, entries), "
            f"{report.request_log} request-log rows, {report.seals} seals in {report.seconds}s"
        )
