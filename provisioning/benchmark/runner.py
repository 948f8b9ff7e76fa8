"""``make bench``: load synthetic data once, serve it with gunicorn, measure, print, save.

Steps: create the PostgreSQL database if missing, migrate, load synthetic data
unless a complete load is present, issue a SCIM token, start gunicorn twice
(audit trail and request log on — the product — and off, for the overhead
figure), drive HTTP load from a separate process (``loadgen``), take the
in-process server-time measurements (``measure``), print a table and write
``bench/results/bench-<timestamp>.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from provisioning.access.clients import scim_token_issue, scim_token_revoke
from provisioning.access.models import ScimToken
from provisioning.directory.models import Group, Membership, User

from . import event_lag, events, json_filters, measure, oauth, worst
from .history import scale_group_name
from .synthetic import SyntheticSpec, load_synthetic, synthetic_client, top_up

BASE_DIR = Path(settings.BASE_DIR)
RESULTS_DIR = BASE_DIR / "bench" / "results"


# --- Database ---------------------------------------------------------------------


def ensure_database() -> str:
    """Create the configured PostgreSQL database if it does not exist; return its name."""
    import psycopg

    config = settings.DATABASES["default"]
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit("make bench needs PostgreSQL: set DATABASE_URL=postgres://...")
    name = config["NAME"]
    params = {
        "dbname": "postgres",
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    return name


def synthetic_present(spec: SyntheticSpec) -> bool:
    """A complete load: the synthetic client, enough users, and every scaling group filled."""
    if synthetic_client() is None:
        return False
    if User.objects.count() < spec.users:
        return False
    for size in spec.group_sizes:
        group = Group.objects.filter(display_name=scale_group_name(size)).first()
        # At least: an interrupted run may have left its probe member behind.
        if group is None or Membership.objects.filter(group=group).count() < size:
            return False
    return True


def bench_token() -> str:
    """A fresh provisioner token for the synthetic IdP; earlier tokens are revoked."""
    client = synthetic_client()
    for token in ScimToken.objects.filter(client=client, revoked_at__isnull=True):
        scim_token_revoke(token=token)
    _token, raw = scim_token_issue(client=client)
    return raw


def open_circuit_breaker() -> None:
    """Let the synthetic IdP make thousands of membership removals, as an administrator
    would before a large sync: the breaker stays enabled and is still evaluated on every
    destructive write (its queries are part of the measured cost), only its limits are
    raised; a quarantine left by an earlier run is discarded."""
    from django.contrib.auth import get_user_model

    from provisioning.audit.context import change_set_scope
    from provisioning.oversight.models import CircuitBreaker, Quarantine
    from provisioning.oversight.services import quarantine_discard

    operator = get_user_model().objects.filter(username=measure.OPERATOR).first()
    if operator is None:
        operator, _password = measure.operator_create(username=measure.OPERATOR, role="administrator")
    with change_set_scope(operator=operator, source="system"):
        breaker = CircuitBreaker.objects.filter(client__isnull=True).first() or CircuitBreaker()
        breaker.enabled, breaker.max_operations, breaker.max_percent = True, 10_000_000, 100
        breaker.save()
    for quarantine in Quarantine.objects.filter(client=synthetic_client(), status=Quarantine.Status.ACTIVE):
        quarantine_discard(quarantine_id=quarantine.pk, operator=operator)


def write_targets(path: Path, floor_url: str, count: int = 2000) -> None:
    """Ids and names the load generator picks from (ordinary groups only: the scaling
    groups keep their exact sizes).

    ``externalId eq`` looks up the external ids users have, as an IdP looks up its own:
    users without one (those earlier runs' ``post_user`` created) are not sampled for it.
    An empty value would be ``externalId eq ""``, which asks for every user without one
    (RFC 7644 §3.4.2.2 as ``filters`` reads it): a list that grew with every run.
    """
    total = User.objects.count()
    step = max(1, total // count)
    rows = list(
        User.objects.order_by("created", "id").values_list("id", "user_name")[::step][:count]
    )
    with_external = User.objects.exclude(external_id__isnull=True).exclude(external_id="")
    external_total = with_external.count()
    external_ids = list(
        with_external.order_by("created", "id").values_list("external_id", flat=True)[
            :: max(1, external_total // count)
        ][:count]
    )
    if not external_ids:
        raise RuntimeError("no user has an externalId for the load generator to look up")
    groups = list(
        Group.objects.exclude(display_name__startswith="bench-scale-").values_list("id", flat=True)[:500]
    )
    path.write_text(
        json.dumps(
            {
                "user_ids": [str(r[0]) for r in rows],
                "user_names": [r[1] for r in rows],
                "external_ids": external_ids,
                "group_ids": [str(g) for g in groups],
                "floor_url": floor_url,
            }
        )
    )


def quiesce() -> None:
    """Before the HTTP stages and the single-request timings: vacuum the directory tables
    earlier writes churned (so autovacuum does not start on them mid-measurement, and a
    server without autovacuum measures the tables as one with it keeps them) and write a
    checkpoint (so its I/O is not spread over the measurements). CHECKPOINT needs a
    superuser; without one it is skipped."""
    import psycopg

    with connection.cursor() as cursor:
        for model in (User, Group, Membership):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
        try:
            cursor.execute("CHECKPOINT")
        except Exception as exc:  # noqa: BLE001 - a plain role may not checkpoint
            if not isinstance(getattr(exc, "__cause__", None), psycopg.errors.InsufficientPrivilege):
                raise


# --- gunicorn ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(*, workers: int, threads: int, env: dict[str, str]) -> Iterator[str]:
    """A gunicorn serving the project on a free port; yields its base URL, stops it after."""
    port = free_port()
    command = [
        # The production settings (limits, forwarded headers), with the bench's sizes.
        sys.executable, "-m", "gunicorn", "--config", "provisioning/gunicorn_conf.py",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--threads", str(threads),
        "--worker-class", "gthread" if threads > 1 else "sync",
        "--backlog", "2048",
        "--log-level", "warning",
        "--timeout", "120",
        "--no-control-socket",  # two run side by side; neither needs gunicornc
    ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, cwd=BASE_DIR, env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/scim/v2/ServiceProviderConfig", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start within 60 s")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def loadgen(base: str, token: str, targets: Path, *, mix: str, duration: float, warmup: float,
            concurrency: int, seed: int = 7, alternate: str | None = None, slot: float = 2.0) -> dict:
    """Run the asyncio load generator in its own process; return its JSON report. With
    ``alternate`` (a second server's base URL) it sends to both in turns of ``slot`` seconds."""
    command = [
        sys.executable, "-m", "provisioning.benchmark.loadgen",
        "--base-url", f"{base}/scim/v2", "--token", token, "--targets", str(targets),
        "--mix", mix, "--duration", str(duration), "--warmup", str(warmup),
        "--concurrency", str(concurrency), "--seed", str(seed),
    ]
    if alternate is not None:
        command += ["--alternate", f"{alternate}/scim/v2", "--slot", str(slot)]
    done = subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, check=True)  # noqa: S603
    return json.loads(done.stdout)


# Pairs of rounds (the mix, then the floor) the mix's share of the floor is the median of.
SHARE_ROUNDS = 4


def floor_share(pairs: list[tuple[float, float]]) -> dict:
    """The mix's throughput as a share of the floor's, from pairs of rounds run one right
    after the other: each pair's share, and their median. A shared machine's speed drifts
    by more than the figure's margin within a minute; a pair shares its moment, and the
    median leaves out a pair that a slow moment split."""
    shares = [round(mix / max(floor, 0.1), 3) for mix, floor in pairs]
    return {
        "pairs": [{"mix_rps": mix, "floor_rps": floor, "share": share} for (mix, floor), share in zip(pairs, shares, strict=True)],
        "median": round(statistics.median(shares), 3),
        "min": min(shares),
        "max": max(shares),
    }


# The write overhead: PATCH user sent to the two servers (with the trail, without it) in
# turns of this many seconds, over four times the mix's duration in all.
OVERHEAD_SLOT_S = 2.0
OVERHEAD_DURATIONS = 4
# Consecutive slots (half each side's) per block, the spread the report shows.
OVERHEAD_BLOCK_SLOTS = 10


def write_overhead(run: dict) -> dict:
    """The audit trail's and request log's cost on a PATCH, from one alternating
    load-generator run (``loadgen(..., alternate=...)``: side 0 with them, side 1 without):
    throughput without / with, less one, over the whole run; the same of the p50s; and the
    overhead of each block of consecutive slots, which shows how far the figure moves
    within the run. Short turns put both sides in every minute of the run, so that a
    shared machine's drift and the checkpoints fall on both alike (rounds of ten seconds
    each gave pairs from 4 % to 53 % in one run)."""
    with_trail, without = run["sides"]
    blocks = []
    for start in range(0, len(run["slots"]), OVERHEAD_BLOCK_SLOTS):
        block = run["slots"][start : start + OVERHEAD_BLOCK_SLOTS]
        # A block needs a turn of each side (a last single turn has none without).
        if len(block) >= 2 and sum(block[0::2]):
            blocks.append(round((sum(block[1::2]) / sum(block[0::2]) - 1) * 100, 1))
    return {
        "with_audit": _side(with_trail),
        "without_audit": _side(without),
        "slot_s": run["slot_s"],
        "duration_s": run["duration_s"],
        "block_slots": OVERHEAD_BLOCK_SLOTS,
        "blocks": blocks,
        "throughput_overhead_pct": round((without["rps"] / max(with_trail["rps"], 0.1) - 1) * 100, 1),
        "p50_overhead_pct": round((with_trail["p50_ms"] / max(without["p50_ms"], 0.01) - 1) * 100, 1),
    }


def _side(run: dict) -> dict:
    return {key: run[key] for key in ("rps", "p50_ms", "p95_ms", "p99_ms", "requests", "errors")}


def full_get_http(base: str, token: str, size: int, repeat: int = 3) -> dict:
    """Time to first and last byte of the streamed 100,000-member GET over HTTP."""
    group = Group.objects.filter(display_name=scale_group_name(size)).first()
    if group is None:
        return {}
    url = f"{base}/scim/v2/Groups/{group.pk}"
    firsts, lasts, size_bytes = [], [], 0
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(repeat + 1):
        started = time.perf_counter()
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            first = None
            size_bytes = 0
            for chunk in response.iter_bytes():
                if first is None:
                    first = time.perf_counter()
                size_bytes += len(chunk)
            response.raise_for_status()
        firsts.append(((first or time.perf_counter()) - started) * 1000)
        lasts.append((time.perf_counter() - started) * 1000)
    firsts, lasts = firsts[1:], lasts[1:]  # the first request warms up
    return {
        "ttfb_ms": round(measure.percentile(firsts, 50), 1),
        "total_p50_ms": round(measure.percentile(lasts, 50), 1),
        "total_max_ms": round(max(lasts), 1),
        "bytes": size_bytes,
        "chunked": True,
    }


# --- The run ----------------------------------------------------------------------


def machine() -> dict:
    memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": memory_gb,
        "postgresql": postgres,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# The stages of a run, in order; ``--only`` runs a subset (the database, the synthetic load
# and the token are always prepared).
STAGES = (
    "mix", "floor", "overhead", "http_get", "inprocess", "worst", "json", "cursor", "oauth", "events", "event_lag"
)


def run(*, spec: SyntheticSpec, duration: float, warmup: float, concurrency: int, workers: int,
        threads: int, repeat: int, worst_repeat: int = 3, only: set[str] | None = None,
        log=print) -> dict:
    stages = set(STAGES) if not only else set(only)
    unknown = stages - set(STAGES)
    if unknown:
        raise SystemExit(f"Unknown stages {sorted(unknown)}; choose among {', '.join(STAGES)}")
    started = time.perf_counter()
    # The figures are the output: no per-request or per-seal log lines in between.
    for noisy in ("httpx", "provisioning.audit.sealing", "provisioning.access.oauth_server", "axes", "celery", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    name = ensure_database()
    log(f"database {name}: migrating")
    call_command("migrate", interactive=False, verbosity=0)
    # gunicorn serves the console's static files through WhiteNoise, from STATIC_ROOT.
    call_command("collectstatic", interactive=False, verbosity=0)
    results: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}
    if synthetic_present(spec):
        log("synthetic data present: reusing it")
        results["load"] = {"reused": True, "topped_up": top_up(progress=log)}
    else:
        if synthetic_client() is not None:
            raise SystemExit(
                f"Database {name} holds an incomplete synthetic load; drop it and run make bench again"
            )
        log(f"loading synthetic data ({spec.users} users, {spec.audit_entries} audit entries)...")
        report = load_synthetic(spec, progress=log)
        results["load"] = {"reused": False, "seconds": report.seconds, "phases": report.phases}
        log(f"loaded in {report.seconds}s")
    token = bench_token()
    open_circuit_breaker()
    if stages & {"mix", "floor", "overhead", "http_get", "worst"}:
        # Earlier runs' writes leave dead rows and pages not all-visible behind, which
        # autovacuum would clear on a production server; a server with autovacuum off (as
        # a CI database may be) would otherwise measure each run on a worse table than the
        # last (the list pages' index-only scans fetching thousands of heap rows).
        quiesce()
    common = {"DEBUG": "false", "LOG_LEVEL": "WARNING", "SCIMGATE_BENCH_FLOOR": "true"}
    bare_env = {**common, "SCIMGATE_AUDIT_ENABLED": "false", "SCIMGATE_REQUEST_LOG_ENABLED": "false"}
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as servers:
        targets = Path(scratch) / "targets.json"
        base = servers.enter_context(gunicorn(workers=workers, threads=threads, env=common))
        bare = None
        if "overhead" in stages:
            bare = servers.enter_context(gunicorn(workers=workers, threads=threads, env=bare_env))
        write_targets(targets, f"{base}/bench/floor")
        load = dict(duration=duration, warmup=warmup, concurrency=concurrency)
        # The rounds of the share of the floor, which alternates the mix and the floor:
        # shorter, so that several fit where one long run would.
        short = dict(duration=max(10.0, duration / 3), warmup=warmup, concurrency=concurrency)
        if "mix" in stages:
            log(f"IdP mix: {concurrency} clients for {duration:.0f}s against gunicorn ({workers}x{threads})")
            results["idp_mix"] = loadgen(base, token, targets, mix="entra", **load)
        if "floor" in stages:
            log("framework floor")
            results["floor"] = loadgen(base, token, targets, mix="floor", **load)
            if "idp_mix" in results:
                results["floor"]["ratio_floor_to_mix"] = round(
                    results["floor"]["rps"] / max(results["idp_mix"]["rps"], 0.1), 2
                )
                log("share of the floor: alternating rounds of the mix and the floor")
                pairs = [(results["idp_mix"]["rps"], results["floor"]["rps"])] + [
                    (
                        loadgen(base, token, targets, mix="entra", seed=11 + i, **short)["rps"],
                        loadgen(base, token, targets, mix="floor", seed=11 + i, **short)["rps"],
                    )
                    for i in range(SHARE_ROUNDS - 1)
                ]
                results["floor_share"] = floor_share(pairs)
        if bare is not None:
            log("write overhead: PATCH user with and without audit trail + request log, alternating")
            # One run whose clients send to both servers in turns of a few seconds (see
            # ``write_overhead``), from a checkpoint and vacuumed tables.
            quiesce()
            results["write_overhead"] = write_overhead(
                loadgen(
                    base, token, targets, mix="write", alternate=bare, slot=OVERHEAD_SLOT_S,
                    duration=OVERHEAD_DURATIONS * duration, warmup=warmup, concurrency=concurrency,
                )
            )
        if "http_get" in stages:
            log("full GET of the largest group over HTTP")
            results["full_group_get_http"] = full_get_http(base, token, max(spec.group_sizes))
        if "worst" in stages:
            log(f"worst single requests with the limits at their defaults ({worst_repeat} of each)")
            quiesce()
            results["worst_requests"] = worst.worst_requests(base, token, repeat=worst_repeat, log=log)
    if "inprocess" in stages:
        log("in-process server-time measurements")
        quiesce()
        client = measure.InProcess(token)
        results["group_scaling"] = measure.group_scaling(client, sorted(spec.group_sizes), repeat=repeat)
        results["full_group_get"] = measure.full_group_get(client, max(spec.group_sizes), repeat=3)
        results["user_lists"] = measure.user_lists(client, repeat=repeat * 2)
        results["bulk"] = measure.bulk(client, settings.SCIM["BULK_MAX_OPERATIONS"])
        results["console"] = measure.console_pages(client, repeat=repeat)
        results["audit_search"] = measure.audit_search(repeat=repeat)
        results["api_pages"] = measure.api_pages(client, repeat=repeat)
    if "json" in stages:
        log("filters and sortBy on JSON-held attributes (in-process)")
        quiesce()
        results["json_filters"] = json_filters.json_filters(measure.InProcess(token), repeat=repeat)
    if "cursor" in stages:
        log("cursor paging: every page of the users, then the last page by cursor and by index")
        quiesce()
        results["cursor_paging"] = measure.cursor_paging(measure.InProcess(token), repeat=repeat)
    if "oauth" in stages:
        log("OAuth: SCIM read with an access token vs a static token, token endpoint throughput")
        quiesce()
        results["oauth"] = oauth.oauth_figures(synthetic_client(), token, repeat=repeat)
    if "events" in stages:
        log("events: PATCH user with the outbox off / no stream / one stream; membership changes with a stream")
        quiesce()
        results["events"] = events.events_figures(token, list(spec.group_sizes), repeat=repeat)
    if "event_lag" in stages:
        log("event delivery lag: 100 changes/s to a local SET push receiver")
        results["event_lag"] = event_lag.event_lag(rate=100, seconds=20, log=log)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["settings"] = {
        "concurrency": concurrency, "duration_s": duration, "gunicorn_workers": workers,
        "gunicorn_threads": threads, "repeat": repeat, "stages": [s for s in STAGES if s in stages],
    }
    return results


def save(results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2))
    return path
