"""Synthetic enterprise-scale data, shaped exactly like real SCIM traffic, loaded in bulk.

``load_synthetic`` replays a deterministic provisioning history — an IdP
creating users and groups, filling large groups member by member in PATCH
batches, nesting groups, then years of attribute and membership changes —
and writes, for every recorded write, what the real request path writes: the
change set (with the redacted request as the middleware stores it), the
change record (snapshots before/after, exact membership delta, search text:
the one record of a directory change), each with its content HMAC computed by the
audit models' own ``normalise_for_hash``/``compute_hash``. Then the directory rows
in their final state, the tail of the request log, and ``audit_seal``: so
``verifyaudit`` passes on synthetic data.

Per-row signals are bypassed on purpose (bulk inserts); on PostgreSQL rows go
through ``COPY`` inside one transaction, with the audit tables' secondary
indexes dropped and rebuilt around it (DDL is transactional: a failure
leaves nothing behind). Elsewhere (SQLite in tests) ``bulk_create`` is used.

Everything is drawn from one ``random.Random(seed)`` and a fixed end time:
the same ``--seed`` and ``--until`` give the same data.

This module is the entry point (what to load, and the loader). The plan of writes is
in ``history``, their replay into users and groups in ``replay``, the rows each write
records in ``audit_rows`` and ``request_rows``, and the bulk writing in ``row_writer``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.contenttypes.models import ContentType
from django.db import connections, transaction

from provisioning.access.clients import scim_client_create
from provisioning.access.models import ScimClient
from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet, RequestLog
from provisioning.audit.sealing import audit_seal
from provisioning.directory.models import Group, Membership, User, UserEmail
from provisioning.directory.services import resource_counts_refresh

from .history import CITIES, Plan, ReplayContext
from .replay import PartReplay, PartResult
from .row_writer import RowWriter

logger = logging.getLogger(__name__)

SYNTHETIC_CLIENT = "synthetic-idp"


@dataclass
class SyntheticSpec:
    """What to load. ``audit_entries`` is a target: the creates and the membership batches
    the directory needs come first, attribute and membership changes fill the rest."""

    users: int = 100_000
    groups: int = 1_000
    group_sizes: tuple[int, ...] = (10, 10_000, 100_000)
    nested: int = 50
    audit_entries: int = 1_000_000
    request_log: int = 100_000
    seed: int = 7
    batch_size: int = 5_000
    until: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    history_days: int = 3 * 365
    members_per_patch: int = 500

    def validate(self) -> None:
        if self.users < 1:
            raise ValueError("--users must be at least 1")
        if any(size < 0 or size > self.users for size in self.group_sizes):
            raise ValueError("every --group-sizes entry must be between 0 and --users")
        if self.nested > max(0, self.groups - 1):
            raise ValueError("--nested needs at least --nested + 1 ordinary --groups")
        if self.batch_size < 1 or self.members_per_patch < 1:
            raise ValueError("--batch-size must be positive")


@dataclass
class LoadReport:
    users: int = 0
    groups: int = 0
    memberships: int = 0
    change_sets: int = 0
    audit_entries: int = 0
    request_log: int = 0
    seals: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def synthetic_client() -> ScimClient | None:
    return ScimClient.objects.filter(name=SYNTHETIC_CLIENT).first()


# Set before forking the workers (fork start method: they inherit it, nothing is pickled).
_FORKED: dict = {}


def _run_forked_part(part: int) -> PartResult:
    plan, context, parts, progress = (
        _FORKED["plan"], _FORKED["context"], _FORKED["parts"], _FORKED["progress"],
    )
    try:
        writer = RowWriter()
        with transaction.atomic():
            writer.relax_constraints()
            return PartReplay(plan, context, part, parts, writer, progress).run()
    finally:
        connections.close_all()


# --- The loader ---------------------------------------------------------------------


class SyntheticLoader:
    """Plans the history, replays it (in ``workers`` processes on PostgreSQL), then writes
    the directory as the history left it, rebuilds indexes and seals the audit trail."""

    def __init__(
        self,
        spec: SyntheticSpec,
        *,
        workers: int | None = None,
        progress: Callable[[str], None] | None = None,
    ):
        spec.validate()
        self.spec = spec
        self.writer = RowWriter()
        self.progress = progress or (lambda message: None)
        self.report = LoadReport()
        forkable = (
            self.writer.postgres
            and not self.writer.connection.in_atomic_block
            and "fork" in multiprocessing.get_all_start_methods()
        )
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1)) if forkable else 1

    def load(self) -> LoadReport:
        started = time.perf_counter()
        if synthetic_client() is not None:
            raise RuntimeError(
                f"Synthetic data is already loaded (client '{SYNTHETIC_CLIENT}' exists); "
                "use a fresh database"
            )
        plan = Plan(self.spec)
        if self.workers == 1:
            with transaction.atomic():
                context = self._prepare(plan)
                self.writer.relax_constraints()
                self.writer.drop_indexes()
                parts = [self._phase("replay", lambda: PartReplay(plan, context, 0, 1, self.writer, self.progress).run())]
                self._phase("directory", lambda: self._write_directory(plan, parts))
                self._phase("indexes", self.writer.rebuild_indexes)
        else:
            with transaction.atomic():
                context = self._prepare(plan)
            with transaction.atomic():
                self.writer.drop_indexes()
            try:
                parts = self._phase("replay", lambda: self._replay_forked(plan, context))
                with transaction.atomic():
                    self.writer.relax_constraints()
                    self._phase("directory", lambda: self._write_directory(plan, parts))
            finally:
                with transaction.atomic():
                    self._phase("indexes", self.writer.rebuild_indexes)
        self.report.change_sets = self.report.audit_entries = sum(p.writes for p in parts)
        self.report.request_log = sum(p.request_log for p in parts)
        self._phase(
            "analyze",
            lambda: self.writer.analyze(
                [User, UserEmail, Group, Membership, AuditEntry, ChangeSet, ChangeRecord, RequestLog]
            ),
        )
        # The history ends before now and the loader runs on a quiet database: every row
        # written so far is committed, so no grace period is needed.
        self.report.seals = len(self._phase("seal", lambda: audit_seal(grace=timedelta(0))))
        self.report.seconds = round(time.perf_counter() - started, 1)
        return self.report

    def _phase(self, name: str, action: Callable[[], object]):
        started = time.perf_counter()
        outcome = action()
        self.report.phases[name] = round(time.perf_counter() - started, 1)
        self.progress(f"{name}: {self.report.phases[name]}s")
        return outcome

    def _prepare(self, plan: Plan) -> ReplayContext:
        """The synthetic IdP's client (through the real service: audited) and the id ranges."""
        client, _token = scim_client_create(name=SYNTHETIC_CLIENT, role="provisioner")
        return ReplayContext(
            client_id=client.pk,
            client_name=client.name,
            token_prefix=client.tokens.values_list("prefix", flat=True).first() or "",
            user_type_id=ContentType.objects.get_for_model(User).pk,
            group_type_id=ContentType.objects.get_for_model(Group).pk,
            change_set_base=self.writer.reserve_ids(ChangeSet, plan.total),
            record_base=self.writer.reserve_ids(ChangeRecord, plan.total),
        )

    def _replay_forked(self, plan: Plan, context: ReplayContext) -> list[PartResult]:
        _FORKED.update(plan=plan, context=context, parts=self.workers, progress=self.progress)
        # Children open their own connections; none may inherit the parent's socket.
        connections.close_all()
        try:
            with multiprocessing.get_context("fork").Pool(self.workers) as pool:
                return pool.map(_run_forked_part, range(self.workers))
        finally:
            _FORKED.clear()

    def _write_directory(self, plan: Plan, parts: list[PartResult]) -> None:
        batch = self.spec.batch_size
        users = sorted((i, s.user) for p in parts for i, s in p.users.items())
        for start in range(0, len(users), batch):
            part = [user for _i, user in users[start : start + batch]]
            self.writer.insert(User, part)
            emails = [
                UserEmail(
                    user_id=user.pk,
                    value=email["value"][:320],
                    type=str(email.get("type", ""))[:64],
                    primary=email.get("primary") is True,
                )
                for user in part
                for email in user.attributes.get("emails", [])
                if isinstance(email.get("value"), str)
            ]
            self.writer.insert(UserEmail, emails, with_pk=False)
        groups = sorted((i, s) for p in parts for i, s in p.groups.items())
        self.writer.insert(Group, [state.group for _i, state in groups])
        memberships: list[Membership] = []
        for _i, state in groups:
            for member_id, (is_group, added) in state.members.items():
                memberships.append(
                    Membership(
                        group_id=state.group.pk,
                        user_id=None if is_group else member_id,
                        member_group_id=member_id if is_group else None,
                        display=None,
                        created=added,
                    )
                )
                if len(memberships) >= batch:
                    self.writer.insert(Membership, memberships, with_pk=False)
                    self.report.memberships += len(memberships)
                    memberships = []
        self.writer.insert(Membership, memberships, with_pk=False)
        self.report.memberships += len(memberships)
        # The counters behind unfiltered list totals: COPY under replication role "replica"
        # fired no trigger.
        resource_counts_refresh()
        self.report.users = len(users)
        self.report.groups = len(groups)


def top_up(progress: Callable[[str], None] | None = None) -> int:
    """Give the users of a load made before ``addresses`` and ``phoneNumbers`` were
    generated the values the generator now gives them (``history.user_address``, from
    the index behind their employeeNumber), in one UPDATE; returns how many users
    changed. PostgreSQL only (the benchmark's database). Their audit history predates
    the attributes, as it would for attributes an IdP starts sending."""
    client = synthetic_client()
    if client is None or connections["default"].vendor != "postgresql":
        return 0
    table = connections["default"].ops.quote_name(User._meta.db_table)
    # The table name comes from the model; every value is a parameter.
    sql = f"""
        UPDATE {table} AS u SET attributes = u.attributes || jsonb_build_object(
            'addresses', jsonb_build_array(jsonb_build_object(
                'type', 'work', 'locality', (%s::text[])[1 + t.n %% %s], 'country', 'US')),
            'phoneNumbers', jsonb_build_array(jsonb_build_object(
                'value', '+1 555 ' || lpad(t.n::text, 7, '0'), 'type', 'work', 'primary', true)))
        FROM (
            SELECT id, employee_number::bigint - 100000 AS n FROM {table}
            WHERE source_id = %s AND employee_number ~ '^[0-9]{{6,7}}$'
              AND NOT (attributes ? 'addresses')
        ) AS t
        WHERE u.id = t.id
    """  # noqa: S608
    with transaction.atomic(), connections["default"].cursor() as cursor:
        cursor.execute(sql, [CITIES, len(CITIES), client.pk])
        changed = cursor.rowcount
    if changed and progress:
        progress(f"synthetic users topped up with addresses and phone numbers: {changed}")
    return changed


def load_synthetic(
    spec: SyntheticSpec, *, workers: int | None = None, progress: Callable[[str], None] | None = None
) -> LoadReport:
    """Load ``spec`` into the default database (which must not hold synthetic data yet)."""
    return SyntheticLoader(spec, workers=workers, progress=progress).load()
