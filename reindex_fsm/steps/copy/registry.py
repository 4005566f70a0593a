"""The copy strategies by name. A new strategy is its own module and one line in
:data:`STRATEGIES`; the runner and the steps find it through :func:`strategy_for` (a
stored plan) and :func:`strategy_for_options` (a run being planned).

The default, ``reindex``, comes first and is chosen when no later one is: the later
strategies are asked first."""

from __future__ import annotations

from typing import Any

from ...options import RunOptions
from ...plan import Plan
from .base import CopyStrategy
from .recompute import RecomputeEmbeddings
from .reindex import ReindexCopy
from .remote_reindex import RemoteReindexCopy
from .remote_scan import RemoteScanCopy

STRATEGIES: dict[str, CopyStrategy] = {
    "reindex": ReindexCopy(),
    "recompute": RecomputeEmbeddings(),
    "remote-reindex": RemoteReindexCopy(),  # another cluster as the source
    "remote-scan": RemoteScanCopy(),
}
DEFAULT = "reindex"


def register(strategy: CopyStrategy) -> None:
    """Add a strategy (or replace the one of its name)."""
    STRATEGIES[strategy.name] = strategy


def unregister(name: str) -> None:
    if name == DEFAULT:
        raise ValueError(f"the default strategy {name!r} cannot be removed")
    STRATEGIES.pop(name, None)


def _latest_first() -> list[CopyStrategy]:
    return list(reversed(STRATEGIES.values()))


def strategy_for_options(options: RunOptions) -> CopyStrategy:
    """The strategy a run with these options copies with."""
    for strategy in _latest_first():
        if strategy.chosen_by(options):
            return strategy
    return STRATEGIES[DEFAULT]


def strategy_for(plan: Plan) -> CopyStrategy:
    """The strategy a planned run copies with."""
    for strategy in _latest_first():
        if strategy.planned(plan):
            return strategy
    return STRATEGIES[DEFAULT]


def documents_copied(progress: dict[str, Any] | None) -> int | None:
    """Documents a copy had written at its last stored progress (None: none stored)."""
    if not progress:
        return None
    for strategy in _latest_first():
        copied = strategy.copied(progress)
        if copied is not None:
            return copied
    return None
