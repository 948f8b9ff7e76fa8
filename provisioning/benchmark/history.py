"""The synthetic history as a plan: every recorded write, in order, drawn from one seed.

Iterating a ``Plan`` only draws random numbers, so every worker walks the whole plan
and builds the rows of the events it owns (``replay``). The names, departments and
titles the synthetic people and groups are made of are here too.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .synthetic import SyntheticSpec

SCALE_GROUP_PREFIX = "bench-scale-"
DOMAIN = "corp.example.com"
IDP_ADDRESS = "20.190.128.104"  # an Entra provisioning egress address

FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Xavier", "Yara", "Zoe", "Amir", "Bea", "Carlos", "Dana", "Emil", "Fatima", "Goran", "Hana"]
LAST_NAMES = ["Silva", "Okafor", "Martin", "Patel", "Novak", "Haddad", "Kim", "Lefevre", "Garcia", "Schmidt", "Rossi", "Tanaka", "Kowalski", "Nguyen", "Johnson", "Ivanova", "Dubois", "Larsen", "Moreau", "Costa", "Fischer", "Yilmaz", "Sato", "Brown", "Jensen", "Horvat"]
DEPARTMENTS = ["Engineering", "Finance", "Sales", "Marketing", "Legal", "Support", "Operations", "Research", "Security", "HR", "Procurement", "Facilities"]
TITLES = ["Engineer", "Senior Engineer", "Staff Engineer", "Analyst", "Manager", "Director", "Accountant", "Designer", "Consultant", "Specialist", "Coordinator", "Administrator"]
CITIES = ["Lisbon", "Porto", "Berlin", "Paris", "Madrid", "Warsaw", "Dublin", "Oslo", "Vienna", "Prague", "Zurich", "Milan", "Lyon", "Seattle", "Austin", "Toronto", "Sydney", "Osaka", "Seoul", "Nairobi"]


def user_address(index: int) -> dict:
    """User ``index``'s work address and phone number: derived from the index alone (no
    random draw), so adding them left every other drawn value as it was, and an older
    load can be topped up with the same values (``synthetic.top_up``)."""
    return {
        "addresses": [{"type": "work", "locality": CITIES[index % len(CITIES)], "country": "US"}],
        "phoneNumbers": [{"value": f"+1 555 {index:07d}", "type": "work", "primary": True}],
    }


# Entra-like attribute updates, by weight; the membership share of the tail is below.
_USER_PATCH_KINDS = (("title", 40), ("department", 25), ("displayName", 15), ("active", 20))
_MEMBERSHIP_SHARE = 0.15


def scale_group_name(size: int) -> str:
    return f"{SCALE_GROUP_PREFIX}{size}"


USER_CREATE, USER_PATCH, GROUP_CREATE, MEMBERS_ADD, NESTED, MEMBER_TOGGLE = range(6)


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
        return f"{DEPARTMENTS[index % len(DEPARTMENTS)]} team {index:05d}"

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


@dataclass(frozen=True)
class ReplayContext:
    """What every worker needs besides the plan: the client, content types, id bases."""

    client_id: uuid.UUID
    client_name: str
    token_prefix: str
    user_type_id: int
    group_type_id: int
    change_set_base: int
    record_base: int
