"""Synthetic enterprise-scale data, shaped exactly like real SCIM traffic, loaded in bulk.

``load_synthetic`` replays a deterministic provisioning history — an IdP
creating users and groups, filling large groups member by member in PATCH
batches, nesting groups, then years of attribute and membership changes —
and writes, for every recorded write, what the real request path writes: the
change set (with the redacted request as the middleware stores it), the
change record (snapshots before/after, exact membership delta, search text)
and the django-auditlog entry (auditlog's own diff, stamped like
``stamp_audit_entry`` does), each with its content HMAC computed by the audit
models' own ``normalise_for_hash``/``compute_hash``. Then the directory rows
in their final state, the tail of the request log, and ``audit_seal``: so
``verifyaudit`` passes on synthetic data.

Per-row signals are bypassed on purpose (bulk inserts); on PostgreSQL rows go
through ``COPY`` inside one transaction, with the audit tables' secondary
indexes dropped and rebuilt around it (DDL is transactional: a failure
leaves nothing behind). Elsewhere (SQLite in tests) ``bulk_create`` is used.

Everything is drawn from one ``random.Random(seed)`` and a fixed end time:
the same ``--seed`` and ``--until`` give the same data.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from auditlog.diff import model_instance_diff
from django.contrib.contenttypes.models import ContentType
from django.db import connections, models, transaction
from django.db.models import Model

from provisioning.access.clients import scim_client_create
from provisioning.access.models import ScimClient
from provisioning.audit.change_sets import _record_search_text, member_json, snapshot
from provisioning.audit.entries import stamp_audit_entry
from provisioning.audit.middleware import SCIM_PREFIX
from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet, RequestLog
from provisioning.audit.redaction import redact_body_text, redact_query
from provisioning.audit.sealing import audit_seal
from provisioning.directory.changes import Change, MemberRef
from provisioning.directory.models import Group, Membership, User, UserEmail
from provisioning.directory.services import resource_counts_refresh
from provisioning.scim import resources
from provisioning.scim.schema import ENTERPRISE_USER, GROUP, GROUP_SCHEMA, USER, USER_SCHEMA

logger = logging.getLogger(__name__)

SYNTHETIC_CLIENT = "synthetic-idp"
SCALE_GROUP_PREFIX = "bench-scale-"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BASE_URL = "http://127.0.0.1:8000/scim/v2"
IDP_ADDRESS = "20.190.128.104"  # an Entra provisioning egress address
DOMAIN = "corp.example.com"

_FIRST = ["Ada", "Ben", "Chloe", "Dev", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Xavier", "Yara", "Zoe", "Amir", "Bea", "Carlos", "Dana", "Emil", "Fatima", "Goran", "Hana"]
_LAST = ["Silva", "Okafor", "Martin", "Patel", "Novak", "Haddad", "Kim", "Lefevre", "Garcia", "Schmidt", "Rossi", "Tanaka", "Kowalski", "Nguyen", "Johnson", "Ivanova", "Dubois", "Larsen", "Moreau", "Costa", "Fischer", "Yilmaz", "Sato", "Brown", "Jensen", "Horvat"]
_DEPARTMENTS = ["Engineering", "Finance", "Sales", "Marketing", "Legal", "Support", "Operations", "Research", "Security", "HR", "Procurement", "Facilities"]
_TITLES = ["Engineer", "Senior Engineer", "Staff Engineer", "Analyst", "Manager", "Director", "Accountant", "Designer", "Consultant", "Specialist", "Coordinator", "Administrator"]
# Entra-like attribute updates, by weight; the membership share of the tail is below.
_USER_PATCH_KINDS = (("title", 40), ("department", 25), ("displayName", 15), ("active", 20))
_MEMBERSHIP_SHARE = 0.15


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


def scale_group_name(size: int) -> str:
    return f"{SCALE_GROUP_PREFIX}{size}"


def synthetic_client() -> ScimClient | None:
    return ScimClient.objects.filter(name=SYNTHETIC_CLIENT).first()


# --- Writing rows -------------------------------------------------------------------


class RowWriter:
    """Bulk inserts: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere. No signals, no hooks."""

    # Tables whose secondary indexes are rebuilt after the load rather than maintained per row.
    REINDEXED = (AuditEntry, ChangeSet, ChangeRecord, RequestLog)

    def __init__(self, using: str = "default"):
        self.connection = connections[using]
        self.postgres = self.connection.vendor == "postgresql"
        self._dropped: list[str] = []

    def reserve_ids(self, model: type[Model], count: int) -> int:
        """The first of ``count`` consecutive primary keys reserved for new rows.

        PostgreSQL: taken from the table's sequence (the loader runs on a quiet database,
        so nothing else draws from it meanwhile). Elsewhere: after the largest id.
        """
        table = model._meta.db_table
        with self.connection.cursor() as cursor:
            if self.postgres:
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
                first = cursor.fetchone()[0]
                if count > 1:
                    cursor.execute(
                        "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, first + count - 1]
                    )
                return first
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - table name from the model
            return cursor.fetchone()[0] + 1

    def insert(self, model: type[Model], objects: list[Model], *, with_pk: bool = True) -> None:
        if not objects:
            return
        fields = [
            f
            for f in model._meta.concrete_fields
            if with_pk or not f.primary_key
        ]
        if not self.postgres:
            model.objects.bulk_create(objects, batch_size=500)
            return
        columns = ", ".join(self.connection.ops.quote_name(f.column) for f in fields)
        sql = f"COPY {self.connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
        attnames = [f.attname for f in fields]
        # psycopg adapts str, int, bool, float, UUID, datetime and None itself; JSON needs
        # the backend's adapter (Field.get_db_prep_save for every cell would double the cost).
        adapters = [
            (i, f.encoder)
            for i, f in enumerate(fields)
            if isinstance(f, models.JSONField)
        ]
        adapt_json = self.connection.ops.adapt_json_value
        with self.connection.cursor() as cursor, cursor.cursor.copy(sql) as copy_:
            for obj in objects:
                row = [getattr(obj, name) for name in attnames]
                for i, encoder in adapters:
                    if row[i] is not None:
                        row[i] = adapt_json(row[i], encoder)
                copy_.write_row(row)

    def relax_constraints(self) -> None:
        """Foreign keys: the loader writes consistent rows by construction. As a superuser,
        skip the per-row checks for this transaction (``session_replication_role``); else
        check them row by row, since a deferred queue of millions of checks would hold
        memory until commit and block the index rebuild."""
        if not self.postgres:
            return
        with self.connection.cursor() as cursor:
            # Runs the checks already queued (the client row) and checks the rest at once.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
            if row and row[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")

    def drop_indexes(self) -> None:
        """Drop the secondary (non-constraint) indexes of the big audit tables; remember them."""
        if not self.postgres:
            return
        tables = [model._meta.db_table for model in self.REINDEXED]
        with self.connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT i.indexname, i.indexdef FROM pg_indexes i
                WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
                """,
                [tables],
            )
            rows = cursor.fetchall()
            for name, definition in rows:
                cursor.execute(f"DROP INDEX {self.connection.ops.quote_name(name)}")
                self._dropped.append(definition)

    def rebuild_indexes(self) -> None:
        if not self._dropped:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            for definition in self._dropped:
                cursor.execute(definition)
        self._dropped = []

    def analyze(self, models: Iterable[type[Model]]) -> None:
        if not self.postgres:
            return
        # VACUUM as well, outside a transaction: it sets the visibility map, without which
        # every index-only scan (deep SCIM pages, capped counts) still visits the heap.
        command = "ANALYZE" if self.connection.in_atomic_block else "VACUUM (ANALYZE)"
        with self.connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"{command} {self.connection.ops.quote_name(model._meta.db_table)}")


# --- The plan: every write of the history, drawn from one seed ------------------------

USER_CREATE, USER_PATCH, GROUP_CREATE, MEMBERS_ADD, NESTED, MEMBER_TOGGLE = range(6)
_GROUP_EVENTS = frozenset({GROUP_CREATE, MEMBERS_ADD, NESTED, MEMBER_TOGGLE})


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded write: its position (and so its audit row ids), time and own seed."""

    index: int
    at: datetime
    seed: int
    kind: int
    target: int  # a user index, or a group index for group events
    arg: object = None


class Plan:
    """The history as a sequence of events. Iterating it only draws random numbers, so
    every worker walks the whole plan and builds the rows of the events it owns."""

    def __init__(self, spec: SyntheticSpec):
        self.spec = spec
        rng = random.Random(spec.seed)
        self.user_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(spec.users)]
        self.group_count = spec.groups + len(spec.group_sizes)
        self.group_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(self.group_count)]
        self.scale_members = [rng.sample(range(spec.users), size) for size in spec.group_sizes]
        self._seed = rng.getrandbits(64)
        scale_patches = sum(math.ceil(size / spec.members_per_patch) for size in spec.group_sizes)
        required = spec.users + self.group_count + scale_patches + spec.nested
        self.tail = max(0, spec.audit_entries - required)
        self.total = required + self.tail
        # The request log covers the last writes: a GET before each, then the write.
        self.request_log_from = max(0, self.total - math.ceil(spec.request_log / 2))
        self.request_log_single = spec.request_log % 2 == 1  # the first of them logs the write only

    def group_name(self, index: int) -> str:
        if index >= self.spec.groups:
            return scale_group_name(self.spec.group_sizes[index - self.spec.groups])
        return f"{_DEPARTMENTS[index % len(_DEPARTMENTS)]} team {index:05d}"

    def events(self) -> Iterable[Event]:
        spec = self.spec
        rng = random.Random(self._seed)
        start = spec.until - timedelta(days=spec.history_days)
        step = (spec.until - timedelta(minutes=1) - start) / max(1, self.total + 1)
        at = start
        index = 0

        def event(kind: int, target: int, arg: object = None) -> Event:
            nonlocal at, index
            at = at + step * rng.uniform(0.5, 1.5)
            # Millisecond precision, as the audit trail stores and hashes times.
            made = Event(index, at.replace(microsecond=at.microsecond // 1000 * 1000), rng.getrandbits(64), kind, target, arg)
            index += 1
            return made

        for user in range(spec.users):
            yield event(USER_CREATE, user)
        for group in range(spec.groups):
            yield event(GROUP_CREATE, group)
        for offset, size in enumerate(spec.group_sizes):
            group = spec.groups + offset
            yield event(GROUP_CREATE, group)
            members = self.scale_members[offset]
            for chunk in range(0, size, spec.members_per_patch):
                yield event(MEMBERS_ADD, group, members[chunk : chunk + spec.members_per_patch])
        for _ in range(spec.nested):
            # Parents come before children in creation order: the nesting has no cycles.
            parent = rng.randrange(0, spec.groups - 1)
            yield event(NESTED, parent, rng.randrange(parent + 1, spec.groups))
        kinds, weights = zip(*_USER_PATCH_KINDS, strict=True)
        for _ in range(self.tail):
            if spec.groups and rng.random() < _MEMBERSHIP_SHARE:
                group = rng.randrange(spec.groups)
                yield event(MEMBER_TOGGLE, group, rng.randrange(spec.users))
            else:
                user = rng.randrange(spec.users)
                yield event(USER_PATCH, user, rng.choices(kinds, weights)[0])


# --- Building the rows of the events one worker owns ----------------------------------


@dataclass
class _UserState:
    user: User  # the row as it stands after the latest replayed write
    document: dict  # its writable document (what PATCH operates on)


@dataclass
class _GroupState:
    group: Group
    # member id -> (is_group, time added); insertion order is membership order.
    members: dict[uuid.UUID, tuple[bool, datetime]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Context:
    """What every worker needs besides the plan: the client, content types, id bases."""

    client_id: uuid.UUID
    client_name: str
    token_prefix: str
    user_type_id: int
    group_type_id: int
    change_set_base: int
    record_base: int
    entry_base: int


@dataclass
class _PartResult:
    users: dict[int, _UserState] = field(default_factory=dict)
    groups: dict[int, _GroupState] = field(default_factory=dict)
    writes: int = 0
    request_log: int = 0


class _Part:
    """Replays the events whose target ``index % parts == part`` and writes their audit rows."""

    def __init__(self, plan: Plan, context: _Context, part: int, parts: int, writer: RowWriter, progress):
        self.plan, self.context, self.part, self.parts = plan, context, part, parts
        self.writer, self.progress = writer, progress
        self.result = _PartResult()
        self._pending: list[tuple] = []

    def run(self) -> _PartResult:
        for event in self.plan.events():
            if event.target % self.parts != self.part:
                continue
            rng = random.Random(event.seed)
            if event.kind == USER_CREATE:
                self._user_create(event, rng)
            elif event.kind == USER_PATCH:
                self._user_patch(event, rng)
            elif event.kind == GROUP_CREATE:
                self._group_create(event, rng)
            elif event.kind == MEMBERS_ADD:
                ids = self.plan.user_ids
                self._member_patch(event, rng, add=[ids[i] for i in event.arg])
            elif event.kind == NESTED:
                child = self.plan.group_ids[event.arg]
                if child in self.result.groups[event.target].members:
                    self._member_patch(event, rng, remove=[child])
                else:
                    self._member_patch(event, rng, add=[child], add_groups=True)
            else:
                user = self.plan.user_ids[event.arg]
                if user in self.result.groups[event.target].members:
                    self._member_patch(event, rng, remove=[user])
                else:
                    self._member_patch(event, rng, add=[user])
            if len(self._pending) >= self.plan.spec.batch_size:
                self._flush()
        self._flush()
        return self.result

    # -- users -------------------------------------------------------------------

    def _user_body(self, index: int, rng: random.Random) -> dict:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        user_name = f"{first}.{last}.{index}@{DOMAIN}".lower()
        body: dict = {
            "schemas": [USER, ENTERPRISE_USER],
            "externalId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "userName": user_name,
            "active": True,
            "displayName": f"{first} {last}",
            "title": rng.choice(_TITLES),
            "name": {"formatted": f"{first} {last}", "givenName": first, "familyName": last},
            "emails": [{"value": user_name, "type": "work", "primary": True}],
            ENTERPRISE_USER: {
                "employeeNumber": str(100000 + index),
                "department": rng.choice(_DEPARTMENTS),
            },
        }
        if index and rng.random() < 0.3:
            body[ENTERPRISE_USER]["manager"] = {"value": str(self.plan.user_ids[rng.randrange(index)])}
        return body

    def _user_create(self, event: Event, rng: random.Random) -> None:
        body = self._user_body(event.target, rng)
        cleaned = resources.clean_document(USER_SCHEMA, body)
        user = User(
            id=self.plan.user_ids[event.target],
            created=event.at,
            last_modified=event.at,
            version=1,
            source_id=self.context.client_id,
            **resources.user_fields(cleaned),
        )
        after = resources.user_editable_document(user)
        self.result.users[event.target] = _UserState(user, after)
        change = Change("create", user, None, after=after, request={"document": body})
        self._record(event, rng, change, "POST", f"{SCIM_PREFIX}Users", body, 201, None)

    def _user_patch(self, event: Event, rng: random.Random) -> None:
        state = self.result.users[event.target]
        before, kind = state.document, event.arg
        after = copy.deepcopy(before)
        if kind == "active":
            active = not before.get("active", True)
            after["active"] = active
            path, value = "active", ("True" if active else "False")  # Entra sends string booleans
        elif kind == "displayName":
            path, value = "displayName", f"{after['name']['givenName']} {rng.choice(_LAST)}"
            after[path] = value
        elif kind == "department":
            path, value = f"{ENTERPRISE_USER}:department", rng.choice(_DEPARTMENTS)
            after.setdefault(ENTERPRISE_USER, {})["department"] = value
        else:
            path, value = "title", rng.choice(_TITLES)
            after[path] = value
        if after == before:  # the same value drawn again: the IdP changes the title instead
            path, value = "title", f"{before.get('title', '')} II".strip()
            after["title"] = value
        old = state.user
        user = copy.copy(old)
        user._state = copy.copy(old._state)
        for name, column in resources.user_fields(after).items():
            setattr(user, name, column)
        user.version, user.last_modified = old.version + 1, event.at
        state.user, state.document = user, after
        body = {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": path, "value": value}]}
        change = Change("patch", user, None, before, after, request={"operations": body["Operations"]})
        self._record(event, rng, change, "PATCH", f"{SCIM_PREFIX}Users/{user.pk}", body, 200, old)

    # -- groups ------------------------------------------------------------------

    def _group_create(self, event: Event, rng: random.Random) -> None:
        body = {
            "schemas": [GROUP],
            "displayName": self.plan.group_name(event.target),
            "externalId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        }
        cleaned = resources.clean_document(GROUP_SCHEMA, body)
        group = Group(
            id=self.plan.group_ids[event.target],
            created=event.at,
            last_modified=event.at,
            version=1,
            source_id=self.context.client_id,
            **resources.group_fields(cleaned),
        )
        self.result.groups[event.target] = _GroupState(group)
        after = resources.group_editable_document(group)
        change = Change("create", group, None, after=after, request={"document": body})
        self._record(event, rng, change, "POST", f"{SCIM_PREFIX}Groups", body, 201, None)

    def _member_patch(
        self,
        event: Event,
        rng: random.Random,
        *,
        add: Sequence[uuid.UUID] = (),
        remove: Sequence[uuid.UUID] = (),
        add_groups: bool = False,
    ) -> None:
        state = self.result.groups[event.target]
        old = state.group
        group = copy.copy(old)
        group._state = copy.copy(old._state)
        group.version, group.last_modified = old.version + 1, event.at
        document = resources.group_editable_document(group)
        added = [MemberRef(member_id, add_groups) for member_id in add]
        removed = [MemberRef(member_id, state.members[member_id][0]) for member_id in remove]
        for ref in added:
            state.members[ref.id] = (ref.is_group, event.at)
        for ref in removed:
            del state.members[ref.id]
        state.group = group
        operations: list[dict] = []
        if added:
            operations.append(
                {"op": "Add", "path": "members", "value": [{"value": str(ref.id)} for ref in added]}
            )
        for ref in removed:
            operations.append({"op": "Remove", "path": f'members[value eq "{ref.id}"]'})
        body = {"schemas": [PATCH_OP], "Operations": operations}
        change = Change(
            "patch",
            group,
            None,
            document,
            copy.deepcopy(document),
            members_added=added,
            members_removed=removed,
            request={"operations": operations},
        )
        self._record(event, rng, change, "PATCH", f"{SCIM_PREFIX}Groups/{group.pk}", body, 204, old)

    # -- the audit rows of one write ---------------------------------------------

    def _record(
        self,
        event: Event,
        rng: random.Random,
        change: Change,
        method: str,
        path: str,
        body: dict,
        status: int,
        old: Model | None,
    ) -> None:
        """The change set, change record and audit entry the request path writes for ``change``."""
        context, resource = self.context, change.resource
        raw = json.dumps(body).encode()
        correlation_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        change_set = ChangeSet(
            id=context.change_set_base + event.index,
            correlation_id=correlation_id,
            created_at=event.at,
            source=ChangeSet.Source.SCIM,
            scim_client_id=context.client_id,
            actor_repr=context.client_name,
            remote_addr=IDP_ADDRESS,
            # What the middleware stores is redact_body(raw)[0]: these bodies carry no
            # secrets, so it is the body itself (tests check the two agree).
            request={"method": method, "path": path, "query": "", "body": body, "body_size": len(raw)},
        )
        # As audit.change_sets._record builds it: a patch's before is one version back.
        if change.action == "create":
            before = None
        else:
            before = snapshot(resource, change.before, version=resource.version - 1)
            before.pop("lastModified")
        document = change.after if change.after is not None else change.before or {}
        name = document.get("userName") or document.get("displayName") or ""
        record = ChangeRecord(
            id=context.record_base + event.index,
            change_set_id=change_set.id,
            created_at=event.at,
            action=change.action,
            resource_type=change.resource_type,
            resource_id=resource.pk,
            resource_name=str(name)[:255],
            before=before,
            after=snapshot(resource, change.after),
            changed_attributes=sorted(change.changed_attributes),
            members_added=[member_json(ref) for ref in change.members_added],
            members_removed=[member_json(ref) for ref in change.members_removed],
        )
        record.search_text = _record_search_text(record, change)
        # django-auditlog's own diff, as its post_save receiver computes it (for an update,
        # over the fields that differ: the others contribute nothing to it).
        if old is None:
            changes = model_instance_diff(None, resource, use_json_for_changes=True)
        else:
            differing = [
                f.name
                for f in resource._meta.concrete_fields
                if getattr(old, f.attname) != getattr(resource, f.attname)
            ]
            changes = model_instance_diff(
                old, resource, fields_to_check=differing, use_json_for_changes=True
            )
        entry = AuditEntry(
            id=context.entry_base + event.index,
            change_set_id=change_set.id,
            content_type_id=context.user_type_id if isinstance(resource, User) else context.group_type_id,
            object_pk=str(resource.pk),
            object_repr=str(resource),
            action=AuditEntry.Action.CREATE if old is None else AuditEntry.Action.UPDATE,
            changes=changes,
            remote_addr=IDP_ADDRESS,
            timestamp=event.at,
            scim_client_id=context.client_id,
        )
        stamp_audit_entry(AuditEntry, entry)  # search text, secrets dropped: the pre_save receiver
        entry.cid = str(correlation_id)  # outside a scope the stamp leaves it empty
        # Times are at millisecond precision and JSON values JSON-native by construction, so
        # the hash is the one the model computes on save (normalise_for_hash changes nothing).
        for row in (change_set, record, entry):
            row.content_hash = row.compute_hash()
        requests: list[RequestLog] = []
        if event.index >= self.plan.request_log_from:
            requests = self._request_rows(event, rng, change, method, path, raw, status, correlation_id)
        self._pending.append((change_set, record, entry, requests))

    def _request_rows(
        self, event: Event, rng: random.Random, change: Change, method: str, path: str,
        raw: bytes, status: int, cid: uuid.UUID,
    ) -> list[RequestLog]:
        """An IdP reads before it writes: the GET, then the write itself."""
        resource = change.resource
        rows = []
        single = self.plan.request_log_single and event.index == self.plan.request_log_from
        if not single:
            if isinstance(resource, User):
                query = urlencode({"filter": f'userName eq "{resource.user_name}"'})
                listing = {
                    "schemas": [LIST_RESPONSE],
                    "totalResults": 1,
                    "startIndex": 1,
                    "itemsPerPage": 1,
                    "Resources": [resources.user_document(resource, BASE_URL)],
                }
                get_path = f"{SCIM_PREFIX}Users"
            else:
                listing = resources.group_document(resource, BASE_URL)
                get_path, query = f"{SCIM_PREFIX}Groups/{resource.pk}", "excludedAttributes=members"
            rows.append(
                self._request_row(
                    rng, event.at - timedelta(milliseconds=rng.uniform(40, 400)),
                    uuid.UUID(int=rng.getrandbits(128), version=4), "GET", get_path, query, b"", 200,
                    json.dumps(listing, separators=(",", ":")).encode(),
                )
            )
        if status == 204:
            response = b""
        elif isinstance(resource, User):
            response = json.dumps(resources.user_document(resource, BASE_URL), separators=(",", ":")).encode()
        else:
            response = json.dumps(resources.group_document(resource, BASE_URL, []), separators=(",", ":")).encode()
        rows.append(self._request_row(rng, event.at, cid, method, path, "", raw, status, response))
        return rows

    def _request_row(
        self, rng: random.Random, at: datetime, cid: uuid.UUID, method: str, path: str,
        query: str, body: bytes, status: int, response: bytes,
    ) -> RequestLog:
        latency = round(rng.uniform(2.0, 30.0), 3)
        request_text = redact_body_text(body)
        response_text = redact_body_text(response)
        return RequestLog(
            timestamp=at + timedelta(milliseconds=latency),
            correlation_id=cid,
            scim_client_id=self.context.client_id,
            token_prefix=self.context.token_prefix,
            method=method,
            path=path,
            query=redact_query(query),
            status=status,
            latency_ms=latency,
            remote_addr=IDP_ADDRESS,
            request_body=request_text,
            request_size=len(body),
            response_body=response_text,
            response_size=len(response),
        )

    def _flush(self) -> None:
        if not self._pending:
            return
        change_sets, records, entries, requests = [], [], [], []
        for change_set, record, entry, request_rows in self._pending:
            change_sets.append(change_set)
            records.append(record)
            entries.append(entry)
            requests.extend(request_rows)
        self.writer.insert(ChangeSet, change_sets)
        self.writer.insert(ChangeRecord, records)
        self.writer.insert(AuditEntry, entries)
        self.writer.insert(RequestLog, requests, with_pk=False)
        before = self.result.writes
        self.result.writes += len(self._pending)
        self.result.request_log += len(requests)
        self._pending = []
        if before // 100_000 != self.result.writes // 100_000:
            self.progress(f"  part {self.part + 1}/{self.parts}: {self.result.writes} writes replayed")


# Set before forking the workers (fork start method: they inherit it, nothing is pickled).
_FORKED: dict = {}


def _run_forked_part(part: int) -> _PartResult:
    plan, context, parts, progress = (
        _FORKED["plan"], _FORKED["context"], _FORKED["parts"], _FORKED["progress"],
    )
    try:
        writer = RowWriter()
        with transaction.atomic():
            writer.relax_constraints()
            return _Part(plan, context, part, parts, writer, progress).run()
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
                parts = [self._phase("replay", lambda: _Part(plan, context, 0, 1, self.writer, self.progress).run())]
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

    def _prepare(self, plan: Plan) -> _Context:
        """The synthetic IdP's client (through the real service: audited) and the id ranges."""
        client, _token = scim_client_create(name=SYNTHETIC_CLIENT, role="provisioner")
        return _Context(
            client_id=client.pk,
            client_name=client.name,
            token_prefix=client.tokens.values_list("prefix", flat=True).first() or "",
            user_type_id=ContentType.objects.get_for_model(User).pk,
            group_type_id=ContentType.objects.get_for_model(Group).pk,
            change_set_base=self.writer.reserve_ids(ChangeSet, plan.total),
            record_base=self.writer.reserve_ids(ChangeRecord, plan.total),
            entry_base=self.writer.reserve_ids(AuditEntry, plan.total),
        )

    def _replay_forked(self, plan: Plan, context: _Context) -> list[_PartResult]:
        _FORKED.update(plan=plan, context=context, parts=self.workers, progress=self.progress)
        # Children open their own connections; none may inherit the parent's socket.
        connections.close_all()
        try:
            with multiprocessing.get_context("fork").Pool(self.workers) as pool:
                return pool.map(_run_forked_part, range(self.workers))
        finally:
            _FORKED.clear()

    def _write_directory(self, plan: Plan, parts: list[_PartResult]) -> None:
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


def load_synthetic(
    spec: SyntheticSpec, *, workers: int | None = None, progress: Callable[[str], None] | None = None
) -> LoadReport:
    """Load ``spec`` into the default database (which must not hold synthetic data yet)."""
    return SyntheticLoader(spec, workers=workers, progress=progress).load()
