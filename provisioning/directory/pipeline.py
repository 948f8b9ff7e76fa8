"""One door for every write: gates, apply, recorders.

Every change to the directory, whatever started it (a SCIM request, a Bulk
operation, a console action, an approved or released operation, a rollback, a
restore), is planned as a ``Change`` by ``provisioning.directory.services`` and
passed to ``commit``:

1. *gates*, in order, may refuse the change (raise a SCIM error) or hold it
   (``Write.hold``); access control, policy rules and the circuit breaker are
   gates;
2. a held change is not applied: ``Held`` is raised, the write's transaction
   rolls back and the registered *holder* stores a pending operation;
3. otherwise the change is applied;
4. *recorders*, in order, record what was applied in the same transaction
   (audit change record, review flag, destructive-operation count, events).

The directory imports none of the packages that plug in: access, oversight and
audit register their gates and recorders from their ``AppConfig.ready()``. There
is no bypass: an approved operation carries an ``Approval`` naming the holds a
person approved, and gates pass exactly those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .changes import Change

# Where a write comes from. Policy uses it to decide which rules cover the write.
SCIM = "scim"
CONSOLE = "console"  # an operator's own action (e.g. deactivate from the console)
APPROVAL = "approval"  # an approved or released pending operation, applied
ROLLBACK = "rollback"  # one step of undoing a change set (restores included)
# The hard delete of a user whose SCIM DELETE was deferred (deactivate before delete):
# the second half of a write whose first half passed every gate.
SCHEDULED = "scheduled"


@dataclass(frozen=True)
class Approval:
    """A person's decision on a held operation: the holds (by key) it lets pass."""

    pending_id: Any
    holds: frozenset[str]


@dataclass(frozen=True)
class Hold:
    key: str  # what an approval names to let it pass: "rule:12", "circuit-breaker"
    reason: str


@dataclass
class Write:
    """One change on its way through the pipeline, and what the gates decided about it."""

    change: Change
    origin: str = SCIM
    approval: Approval | None = None
    # For a rollback step: the SCIM client whose change is being undone (policy rules
    # that cover that client cover the undoing too).
    on_behalf_of: Any = None
    holds: list[Hold] = field(default_factory=list)
    # Holds a gate found and the approval let pass, kept so a re-hold can name them.
    passed: list[Hold] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    # Gate -> recorder notes of the packages that plug in (e.g. the breaker's weight).
    notes: dict[str, Any] = field(default_factory=dict)
    # What the audit recorder wrote (its change record), for later recorders.
    record: Any = None

    def hold(self, key: str, reason: str) -> None:
        """Hold the change for approval, unless a person already approved this hold."""
        hold = Hold(key, reason)
        if self.approval is not None and key in self.approval.holds:
            self.passed.append(hold)
        elif hold not in self.holds:
            self.holds.append(hold)

    def flag(self, reason: str) -> None:
        if reason not in self.flags:
            self.flags.append(reason)

    @property
    def held(self) -> bool:
        return bool(self.holds)


Gate = Callable[[Write], None]
Recorder = Callable[[Write], None]
Holder = Callable[[Write], Any]


@dataclass(order=True)
class _Entry:
    order: int
    name: str
    function: Callable = field(compare=False)


_gates: list[_Entry] = []
_recorders: list[_Entry] = []
_loaders: list[Callable[[Any], None]] = []
_holder: list[Holder] = []
_deferral: list[Callable[[Any], Any]] = []


def _register(entries: list[_Entry], name: str, function: Callable, order: int) -> None:
    entries[:] = [e for e in entries if e.name != name]
    entries.append(_Entry(order, name, function))
    entries.sort()


def register_gate(name: str, gate: Gate, *, order: int) -> None:
    """Add (or replace, by name) a gate. Lower ``order`` runs first: access 100, policy 200,
    circuit breaker 300."""
    _register(_gates, name, gate, order)


def register_recorder(name: str, recorder: Recorder, *, order: int) -> None:
    """Add (or replace, by name) a recorder: audit 100, flags 200, breaker count 300."""
    _register(_recorders, name, recorder, order)


def unregister(name: str) -> None:
    _gates[:] = [e for e in _gates if e.name != name]
    _recorders[:] = [e for e in _recorders if e.name != name]


def register_loader(loader: Callable[[Any], None]) -> None:
    """Called with each resource a write locks before changing it (audit diffs against it)."""
    if loader not in _loaders:
        _loaders.append(loader)


def register_holder(holder: Holder) -> None:
    """The one function that stores a held write (a pending operation) and returns it."""
    _holder[:] = [holder]


def register_deletion_deferral(deferral: Callable[[Any], Any]) -> None:
    """The one function that says, for a SCIM client, until when a user it deletes is only
    deactivated (a datetime: the hard delete is due then), or None to delete at once."""
    _deferral[:] = [deferral]


def deletion_deferred_until(client) -> Any:
    """When a user deleted by ``client`` is to be deleted for good; None: now."""
    if client is None or not _deferral:
        return None
    return _deferral[0](client)


def gates() -> list[str]:
    return [e.name for e in _gates]


def recorders() -> list[str]:
    return [e.name for e in _recorders]


class Held(Exception):
    """Raised inside a write that a gate held: nothing was applied."""

    def __init__(self, write: Write):
        super().__init__("held: " + "; ".join(h.reason for h in write.holds))
        self.write = write


class OperationHeld(Exception):
    """A write was held and stored; ``pending`` is what the holder returned (SCIM answers 202)."""

    def __init__(self, pending):
        super().__init__(f"held as pending operation {pending.pk}")
        self.pending = pending


def loaded(resource) -> None:
    for loader in _loaders:
        loader(resource)


def evaluate(write: Write) -> Write:
    """Run every gate on ``write``; refusals raise, holds accumulate on it."""
    for entry in _gates:
        entry.function(write)
    return write


def commit(write: Write, apply: Callable[[Change], None]) -> Write:
    """Gate, apply and record one planned change (inside the caller's transaction).

    A no-op is gated (a refused write is refused even if it would change nothing)
    but neither applied nor recorded.
    """
    evaluate(write)
    if write.held:
        raise Held(write)
    if write.change.is_noop:
        return write
    apply(write.change)
    for entry in _recorders:
        entry.function(write)
    return write


def store_hold(held: Held):
    """Store a held write through the registered holder (in the caller's transaction)."""
    if not _holder:
        raise RuntimeError("No holder is registered to store held writes")
    return _holder[0](held.write)
