"""The unit of change that access services run their writes in: a plug point.

Role, client, token and operator changes are audited as one change set per
action, attributed to the operator. Access sits below audit, so audit installs
its ``change_set_scope`` here from its ``AppConfig.ready()`` instead of access
importing it; without the audit app the writes simply run unscoped.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol


class ScopeFactory(Protocol):
    def __call__(self, *, operator: Any, source: str) -> AbstractContextManager: ...


def _unscoped(*, operator: Any, source: str) -> AbstractContextManager:
    return nullcontext()


_factory: list[ScopeFactory] = [_unscoped]


def register_unit_of_change(factory: ScopeFactory) -> None:
    _factory[0] = factory


def unit_of_change(*, operator: Any, source: str = "console") -> AbstractContextManager:
    """One audited unit of change attributed to ``operator`` (joins an open one)."""
    return _factory[0](operator=operator, source=source)
