"""``make bench``: synthetic data (loaded once), gunicorn, HTTP load, server-time
measurements; prints the table and writes JSON to bench/results/."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from provisioning.benchmark import report, runner
from provisioning.benchmark.synthetic import SyntheticSpec


class Command(BaseCommand):
    help = "Run the enterprise-scale benchmark against the configured PostgreSQL database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--duration", type=float, default=30, help="seconds of HTTP load per mix")
        parser.add_argument("--warmup", type=float, default=5)
        parser.add_argument("--concurrency", type=int, default=8, help="concurrent HTTP clients")
        parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
        parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
        parser.add_argument("--repeat", type=int, default=30, help="samples per in-process measurement")
        parser.add_argument(
            "--worst-repeat", type=int, default=3, help="repetitions of each worst-request case"
        )
        parser.add_argument(
            "--only",
            default="",
            help=f"comma-separated stages to run (default all): {', '.join(runner.STAGES)}",
        )
        parser.add_argument("--users", type=int, default=SyntheticSpec().users)
        parser.add_argument("--audit-entries", type=int, default=SyntheticSpec().audit_entries)
        parser.add_argument(
            "--group-sizes",
            default=",".join(str(size) for size in SyntheticSpec().group_sizes),
            help="scaling group sizes, e.g. 10,10000,100000",
        )

    def handle(self, *args, **options) -> None:
        spec = SyntheticSpec(
            users=options["users"],
            audit_entries=options["audit_entries"],
            group_sizes=tuple(int(size) for size in options["group_sizes"].split(",") if size.strip()),
        )
        results = runner.run(
            spec=spec,
            duration=options["duration"],
            warmup=options["warmup"],
            concurrency=options["concurrency"],
            workers=options["workers"],
            threads=options["threads"],
            repeat=options["repeat"],
            worst_repeat=options["worst_repeat"],
            only={stage.strip() for stage in options["only"].split(",") if stage.strip()},
            log=lambda line: self.stderr.write(line),
        )
        path = runner.save(results)
        self.stdout.write(report.render(results))
        self.stdout.write(f"\nResults: {path.relative_to(runner.BASE_DIR)}")
