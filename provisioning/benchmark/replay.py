"""Replaying the history: the users and groups each write leaves, and the rows it records.

A ``PartReplay`` walks the whole plan and replays the events whose target falls in its
part (``index % parts == part``): it keeps each user's and group's state as the
history changes it, builds the ``Change`` the directory service would have applied,
and queues the audit rows (``audit_rows``) and request-log rows (``request_rows``) of
that write, written in batches. The final users, groups and memberships are what the
loader writes to the directory tables.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Model

from provisioning.audit.middleware import SCIM_PREFIX
from provisioning.audit.models import ChangeRecord, ChangeSet, RequestLog
from provisioning.directory.changes import Change, MemberRef
from provisioning.directory.models import Group, User
from provisioning.scim import resources
from provisioning.scim.schema import ENTERPRISE_USER, GROUP, GROUP_SCHEMA, USER, USER_SCHEMA

from .audit_rows import audit_rows
from .history import (
    DEPARTMENTS,
    DOMAIN,
    FIRST_NAMES,
    GROUP_CREATE,
    LAST_NAMES,
    MEMBERS_ADD,
    NESTED,
    TITLES,
    USER_CREATE,
    USER_PATCH,
    Event,
    Plan,
    ReplayContext,
    user_address,
)
from .request_rows import request_rows
from .row_writer import RowWriter

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class _UserState:
    user: User  # the row as it stands after the latest replayed write
    document: dict  # its writable document (what PATCH operates on)


@dataclass
class _GroupState:
    group: Group
    # member id -> (is_group, time added); insertion order is membership order.
    members: dict[uuid.UUID, tuple[bool, datetime]] = field(default_factory=dict)


@dataclass
class PartResult:
    users: dict[int, _UserState] = field(default_factory=dict)
    groups: dict[int, _GroupState] = field(default_factory=dict)
    writes: int = 0
    request_log: int = 0


class PartReplay:
    """Replays the events whose target ``index % parts == part`` and writes their audit rows."""

    def __init__(self, plan: Plan, context: ReplayContext, part: int, parts: int, writer: RowWriter,
                 progress: Callable[[str], None]):
        self.plan, self.context, self.part, self.parts = plan, context, part, parts
        self.writer, self.progress = writer, progress
        self.result = PartResult()
        self._pending: list[tuple] = []

    def run(self) -> PartResult:
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
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_name = f"{first}.{last}.{index}@{DOMAIN}".lower()
        body: dict = {
            "schemas": [USER, ENTERPRISE_USER],
            "externalId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "userName": user_name,
            "active": True,
            "displayName": f"{first} {last}",
            "title": rng.choice(TITLES),
            "name": {"formatted": f"{first} {last}", "givenName": first, "familyName": last},
            "emails": [{"value": user_name, "type": "work", "primary": True}],
            **user_address(index),
            ENTERPRISE_USER: {
                "employeeNumber": str(100000 + index),
                "department": rng.choice(DEPARTMENTS),
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
            path, value = "displayName", f"{after['name']['givenName']} {rng.choice(LAST_NAMES)}"
            after[path] = value
        elif kind == "department":
            path, value = f"{ENTERPRISE_USER}:department", rng.choice(DEPARTMENTS)
            after.setdefault(ENTERPRISE_USER, {})["department"] = value
        else:
            path, value = "title", rng.choice(TITLES)
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


    # -- the rows of one write ----------------------------------------------------

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
        """Queue the audit rows the request path writes for ``change`` and, for the last
        writes of the history, its request-log rows."""
        raw = json.dumps(body).encode()
        correlation_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        change_set, record = audit_rows(
            self.context,
            event,
            change,
            correlation_id=correlation_id,
            method=method,
            path=path,
            body=body,
            raw=raw,
            old=old,
        )
        requests: list[RequestLog] = []
        if event.index >= self.plan.request_log_from:
            single = self.plan.request_log_single and event.index == self.plan.request_log_from
            requests = request_rows(
                self.context,
                event,
                rng,
                change,
                method=method,
                path=path,
                raw=raw,
                status=status,
                correlation_id=correlation_id,
                read_first=not single,
            )
        self._pending.append((change_set, record, requests))

    def _flush(self) -> None:
        if not self._pending:
            return
        change_sets, records, requests = [], [], []
        for change_set, record, write_requests in self._pending:
            change_sets.append(change_set)
            records.append(record)
            requests.extend(write_requests)
        self.writer.insert(ChangeSet, change_sets)
        self.writer.insert(ChangeRecord, records)
        self.writer.insert(RequestLog, requests, with_pk=False)
        before = self.result.writes
        self.result.writes += len(self._pending)
        self.result.request_log += len(requests)
        self._pending = []
        if before // 100_000 != self.result.writes // 100_000:
            self.progress(f"  part {self.part + 1}/{self.parts}: {self.result.writes} writes replayed")
