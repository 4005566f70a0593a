"""What a run tells the operator while it moves, as typed events: the library emits them
(the runner and the steps, through ``RunContext.reporter``) and the reporters in
:mod:`reindex_fsm.progress` show each by its type, never by reading its text.

- :class:`Transition`: the run moved from one state to another (after the move was stored).
- :class:`Note`: a fact worth a line, a stored event of the run (``copy_restarted``,
  ``catch_up_pass``...) with the note stored with it, when there is one.
- :class:`Warning`: a line that must stand out (``WRITES TO ... ARE BLOCKED``, a swap
  found made, aliases left as found).
- :class:`Progress`: the counts of the copy (from the engine's task) or of a recompute
  (from its batches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .machine import State

if TYPE_CHECKING:
    from .engine.base import TaskStatus
    from .store import RunRecord

__all__ = [
    "Event",
    "Note",
    "Progress",
    "Reporter",
    "SilentReporter",
    "Transition",
    "Warning",
]


@dataclass(frozen=True)
class Transition:
    """The run moved from ``source`` to ``dest`` by ``trigger`` (with the event's detail)."""

    source: State
    dest: State
    trigger: str = ""
    detail: Mapping[str, Any] | None = None

    @property
    def line(self) -> str:
        return f"{self.source.value} -> {self.dest.value}"


@dataclass(frozen=True)
class Note:
    """A stored event of the run, by its ``name``, and the note stored with it (``text``),
    if any. A note with text is shown in every mode, also with ``-q``; one without is
    a step's milestone, left out with ``-q``."""

    name: str
    text: str | None = None

    @property
    def line(self) -> str:
        return f"{self.name}: {self.text}" if self.text else self.name


@dataclass(frozen=True)
class Warning:  # an event, not the builtin exception class it shadows in this module
    """A line that must stand out, in every mode; ``name`` is what it is about (a stored
    event such as ``write_block``, else ``warning``)."""

    text: str
    name: str = "warning"

    @property
    def line(self) -> str:
        return f"{self.name}: {self.text}"


@dataclass(frozen=True)
class Progress:
    """How far the copy is: ``strategy`` is how the documents are written (``copy``:
    the engine's reindex task, ``recompute``: batches computed and written here), and
    ``batches`` the bulk batches written so far (recompute only)."""

    strategy: str
    task_id: str
    total: int
    created: int = 0
    updated: int = 0
    deleted: int = 0
    version_conflicts: int = 0
    noops: int = 0
    completed: bool = False
    running_time_s: float = 0.0
    batches: int | None = None

    @classmethod
    def from_status(
        cls, status: TaskStatus, strategy: str = "copy", batches: int | None = None
    ) -> Progress:
        """The progress the task status shows (a recompute makes one of its counters)."""
        return cls(
            strategy=strategy,
            task_id=status.task_id,
            total=status.total,
            created=status.created,
            updated=status.updated,
            deleted=status.deleted,
            version_conflicts=status.version_conflicts,
            noops=status.noops,
            completed=status.completed,
            running_time_s=status.running_time_s,
            batches=batches,
        )

    @property
    def done(self) -> int:
        """Documents the copy is done with, conflicts and no-ops included."""
        return self.created + self.updated + self.deleted + self.version_conflicts + self.noops

    @property
    def counted(self) -> bool:
        """The task knows what it copies: a task just started reports a total of 0 (its
        search has not returned yet), which is not progress worth a line (``copied 0/0``)."""
        return self.total > 0 or self.completed


Event = Transition | Note | Warning | Progress


class Reporter(Protocol):
    """Where the events of a run go (the CLI's reporters are in :mod:`reindex_fsm.progress`)."""

    def emit(self, run: RunRecord, event: Event) -> None: ...


class SilentReporter:
    """The library's default: nothing is shown."""

    def emit(self, run: RunRecord, event: Event) -> None:
        pass
