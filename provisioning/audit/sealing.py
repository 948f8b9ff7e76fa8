"""Tamper evidence: rows of the audit streams are sealed into hash-chained batches, and
``audit_verify`` recomputes every row hash and every batch.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import (
    CHANGE_SET_HASH,
    AuditEntry,
    AuditSeal,
    ChangeRecord,
    ChangeSet,
    RetiredEntry,
    Sealed,
)
from .retired import unrepeated

logger = logging.getLogger(__name__)

SEALED_STREAMS: dict[str, type[Sealed]] = {
    AuditSeal.Stream.ENTRIES: AuditEntry,
    AuditSeal.Stream.CHANGE_SETS: ChangeSet,
    AuditSeal.Stream.RECORDS: ChangeRecord,
}
GENESIS = "0" * 64


def batch_hash(previous: str, first_id: int, last_id: int, row_hashes: list[str]) -> str:
    """H(previous batch hash, id range, count, ordered row hashes)."""
    digest = hashlib.sha256()
    digest.update(f"{previous}|{first_id}|{last_id}|{len(row_hashes)}|".encode())
    for row_hash in row_hashes:
        digest.update(row_hash.encode())
        digest.update(b",")
    return digest.hexdigest()


def _time_field(model: type[Sealed]) -> str:
    return "timestamp" if model is AuditEntry else "created_at"


# Rows that left a stream's table but not its chain (``RetiredEntry``): sealed and
# verified in id order with the rows that stayed.
_RETIRED = {AuditSeal.Stream.ENTRIES: RetiredEntry}


def audit_seal(*, batch_size: int = 5000, grace: timedelta | None = None) -> list[AuditSeal]:
    """Seal every row written more than ``grace`` ago into chained batches, per stream.

    Rows are hashed when written, so writers never wait on the seal; sealing
    only reads them. The grace period keeps rows of still-open transactions
    (which may hold lower ids) out of a batch.
    """
    if grace is None:
        grace = timedelta(seconds=settings.SCIMGATE_AUDIT_SEAL_GRACE_SECONDS)
    cutoff = timezone.now() - grace
    sealed: list[AuditSeal] = []
    for stream, model in SEALED_STREAMS.items():
        while True:
            try:
                seal = _seal_next_batch(stream, model, batch_size, cutoff)
            except IntegrityError:
                logger.info("Another sealer sealed %s first", stream)
                break
            if seal is None:
                break
            sealed.append(seal)
            # An external copy of each hash makes truncating the chain detectable too.
            logger.info("Sealed %s rows %s..%s: %s", stream, seal.first_id, seal.last_id, seal.batch_hash)
    return sealed


@transaction.atomic
def _seal_next_batch(stream: str, model: type[Sealed], batch_size: int, cutoff) -> AuditSeal | None:
    last = AuditSeal.objects.select_for_update().filter(stream=stream).order_by("-last_id").first()
    after_id = last.last_id if last else 0
    rows = list(
        model.objects.filter(pk__gt=after_id, **{f"{_time_field(model)}__lte": cutoff})
        .order_by("pk")
        .values_list("pk", "content_hash")[:batch_size]
    )
    retired = _RETIRED.get(stream)
    if retired is not None:
        moved = retired.objects.filter(pk__gt=after_id, timestamp__lte=cutoff).order_by("pk")
        rows = sorted(rows + list(moved.values_list("pk", "content_hash")[:batch_size]))[:batch_size]
    if not rows:
        return None
    previous = last.batch_hash if last else GENESIS
    hashes = [row_hash for _pk, row_hash in rows]
    first_id, last_id = rows[0][0], rows[-1][0]
    return AuditSeal.objects.create(
        stream=stream,
        first_id=first_id,
        last_id=last_id,
        row_count=len(rows),
        previous_hash=previous,
        batch_hash=batch_hash(previous, first_id, last_id, hashes),
    )


@dataclass
class VerifyReport:
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_verify(*, chunk_size: int = 2000) -> VerifyReport:
    """Recompute every row hash and every sealed batch; report modified, deleted or inserted rows.

    Reads in id order with a server-side cursor on PostgreSQL: memory stays
    constant however long the log is.
    """
    report = VerifyReport()
    for stream, model in SEALED_STREAMS.items():
        report.checked[stream] = _verify_stream(stream, model, report, chunk_size)
    return report


def _verify_stream(stream: str, model: type[Sealed], report: VerifyReport, chunk_size: int) -> int:
    seals = list(AuditSeal.objects.filter(stream=stream).order_by("last_id"))
    rows = _stream_rows(stream, model, chunk_size)
    previous, previous_last, checked = GENESIS, 0, 0
    pending = next(rows, None)
    for seal in seals:
        where = f"{stream} seal {seal.first_id}..{seal.last_id}"
        if seal.previous_hash != previous:
            report.problems.append(f"{where}: does not chain to the previous seal (seal altered or removed)")
        if seal.first_id <= previous_last:
            report.problems.append(f"{where}: overlaps the previous seal")
        hashes: list[str] = []
        while pending is not None and pending.pk <= seal.last_id:
            checked += 1
            if pending.pk < seal.first_id:
                report.problems.append(f"{stream} row {pending.pk}: inserted out of order before {where}")
            else:
                hashes.append(pending.content_hash)
            _check_row(stream, pending, report)
            pending = next(rows, None)
        if len(hashes) != seal.row_count:
            report.problems.append(
                f"{where}: {len(hashes)} rows present, {seal.row_count} sealed (rows deleted or inserted)"
            )
        if batch_hash(seal.previous_hash, seal.first_id, seal.last_id, hashes) != seal.batch_hash:
            report.problems.append(f"{where}: batch hash mismatch (rows changed, deleted or inserted)")
        previous, previous_last = seal.batch_hash, seal.last_id
    while pending is not None:  # written since the last seal: row hashes only
        checked += 1
        _check_row(stream, pending, report)
        pending = next(rows, None)
    return checked


def _stream_rows(stream: str, model: type[Sealed], chunk_size: int) -> Iterator:
    """Every row of a stream in id order, retired ones included; a change record with the
    content hash of its change set, which its own hash covers (``hash_version`` 2)."""
    queryset = model.objects.order_by("pk")
    if model is ChangeRecord:
        queryset = queryset.annotate(**{CHANGE_SET_HASH: F("change_set__content_hash")})
    rows = queryset.iterator(chunk_size=chunk_size)
    retired = _RETIRED.get(stream)
    if retired is None:
        return rows
    moved = _checked_retired(retired.objects.order_by("pk").iterator(chunk_size=chunk_size), chunk_size)
    return heapq.merge(rows, moved, key=lambda row: row.pk)


# Set on a retired row that is not an entry its change record repeats.
_NOT_REPEATED = "_audit_not_repeated"


def _checked_retired(rows: Iterator[RetiredEntry], chunk_size: int) -> Iterator[RetiredEntry]:
    """Retired rows in id order, each checked against ``retired.unrepeated`` a chunk at a time."""
    batch: list[RetiredEntry] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk_size:
            yield from _flagged(batch)
            batch = []
    yield from _flagged(batch)


def _flagged(batch: list[RetiredEntry]) -> list[RetiredEntry]:
    bad = unrepeated(batch)
    for row in batch:
        setattr(row, _NOT_REPEATED, row.pk in bad)
    return batch


def _check_row(stream: str, row: Sealed | RetiredEntry, report: VerifyReport) -> None:
    if row.compute_hash() != row.content_hash:
        report.problems.append(f"{stream} row {row.pk}: content modified (hash mismatch)")
    if getattr(row, _NOT_REPEATED, False):
        report.problems.append(
            f"{stream} row {row.pk}: retired, but no change record repeats it (moved out of the log)"
        )
