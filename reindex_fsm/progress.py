"""What the operator sees while a run moves: its state changes, its notes and warnings,
and the copy's progress, each an event of :mod:`reindex_fsm.events` shown by its type.
Three forms of the :class:`~reindex_fsm.events.Reporter` protocol, all on stderr (stdout
is kept for the command's result):

- :class:`BarReporter` (stderr is a terminal): a rich progress bar, documents copied
  (created + updated + deleted, plus conflicts and no-ops) of the task's total, docs/s
  and ETA; for a recompute run, documents embedded and batches written.
- :class:`LineReporter` (not a terminal): one plain line per state change, and a
  progress line at most every ``every_s`` seconds (and when the copy completes).
- :class:`JsonReporter` (``--json``): one JSON object per line, ``{"event", "run_id",
  "state", "at", ...}``.

A note with its text and a warning (e.g. the write-block notice "WRITES TO ... ARE
BLOCKED") are shown in every form, also with ``-q`` (``quiet``: those only); a warning
stands out in red on a terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress

from .events import Event, Note, Progress, Transition, Warning
from .store import RunRecord

# What a strategy's progress is called: (the bar's label, the line's verb).
_VERBS = {"recompute": ("embedding", "embedded")}
_COPYING = ("copying", "copied")


@dataclass(frozen=True)
class Snapshot:
    """One progress report, with the rate and ETA worked out."""

    done: int
    total: int
    created: int
    updated: int
    deleted: int
    conflicts: int
    completed: bool
    batches: int | None  # recompute runs: bulk batches written
    docs_per_s: float | None
    eta_s: float | None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "done": self.done,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "version_conflicts": self.conflicts,
            "completed": self.completed,
            "docs_per_s": None if self.docs_per_s is None else round(self.docs_per_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        }
        if self.batches is not None:
            out["batches"] = self.batches
        return out


def throttle(run: RunRecord, progress: Progress) -> float | None:
    """The copy's --requests-per-second (as stored with the run, rethrottle included), or
    None when it is not throttled. A throttled ``_reindex`` writes a whole batch at once
    (one per slice), then waits: its counts move in bursts, and the throttle, not the
    burst, is its rate over any longer span."""
    if progress.strategy == "recompute":  # its rate is its batches', not a task throttle
        return None
    options = getattr(run, "options", None) or {}
    rate = options.get("requests_per_second")
    return float(rate) if rate and float(rate) > 0 else None


class _Rate:
    """docs/s since the first report seen (a resumed copy starts counting again), never
    above the copy's throttle."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.first: tuple[float, int] | None = None

    def snapshot(self, run: RunRecord, progress: Progress) -> Snapshot:
        now, done = self.clock(), progress.done
        if self.first is None or done < self.first[1]:
            self.first = (now, done)
        elapsed, gained = now - self.first[0], done - self.first[1]
        rate = gained / elapsed if elapsed > 0 and gained > 0 else None
        if rate is None and progress.running_time_s > 0 and done:
            rate = done / progress.running_time_s
        cap = throttle(run, progress)
        if cap is not None:  # one burst seen, or the first one since we looked: the throttle
            rate = min(rate, cap) if rate else cap
        left = max(progress.total - done, 0)
        eta = 0.0 if progress.completed else (left / rate if rate else None)
        return Snapshot(
            done=done,
            total=progress.total,
            created=progress.created,
            updated=progress.updated,
            deleted=progress.deleted,
            conflicts=progress.version_conflicts,
            completed=progress.completed,
            batches=progress.batches,
            docs_per_s=rate,
            eta_s=eta,
        )


class _Paced:
    """The reports worth a line: one every ``every_s`` seconds, and the completion."""

    def __init__(self, every_s: float, clock: Callable[[], float]) -> None:
        self.every_s, self.clock = every_s, clock
        self._rate = _Rate(clock)
        self._last: float | None = None

    def take(self, run: RunRecord, progress: Progress) -> Snapshot | None:
        if not progress.counted:
            return None
        snap, now = self._rate.snapshot(run, progress), self.clock()
        if self._last is not None and now - self._last < self.every_s and not progress.completed:
            return None
        self._last = now
        return snap


def shown_when_quiet(event: Event) -> bool:
    """What ``-q`` keeps: the warnings and the notes with their text."""
    return isinstance(event, Warning) or (isinstance(event, Note) and event.text is not None)


def _human(s: Snapshot) -> str:
    parts = [f"created {s.created}"]
    if s.updated:
        parts.append(f"updated {s.updated}")
    if s.deleted:
        parts.append(f"deleted {s.deleted}")
    parts.append(f"conflicts {s.conflicts}")
    if s.batches is not None:
        parts.append(f"batches {s.batches}")
    if s.docs_per_s is not None:
        parts.append(f"{s.docs_per_s:.0f} docs/s")
    if s.eta_s is not None and not s.completed:
        parts.append(f"ETA {_duration(s.eta_s)}")
    return ", ".join(parts)


def _compact(s: Snapshot) -> str:
    """What fits beside the bar in 80 columns: conflicts and batches when there are any,
    the rate and the ETA."""
    parts = []
    if s.conflicts:
        parts.append(f"conflicts {s.conflicts}")
    if s.batches is not None:
        parts.append(f"batches {s.batches}")
    if s.docs_per_s is not None:
        parts.append(f"{s.docs_per_s:.0f}/s")
    if s.eta_s is not None and not s.completed:
        parts.append(f"ETA {_duration(s.eta_s)}")
    return " ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Streamed:
    """A reporter writing lines to ``stream``, progress at most once per ``every_s``."""

    def __init__(
        self,
        stream: IO[str],
        every_s: float = 5.0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.quiet = stream, quiet
        self._paced = _Paced(every_s, clock)

    def close(self) -> None:
        pass


class LineReporter(_Streamed):
    """Plain lines on stderr, progress throttled to one line per ``every_s``."""

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def emit(self, run: RunRecord, event: Event) -> None:
        if isinstance(event, Progress):
            self._progress(run, event)
        elif not self.quiet or shown_when_quiet(event):
            self._line(f"run {run.id}: {event.line}")

    def _progress(self, run: RunRecord, progress: Progress) -> None:
        snap = self._paced.take(run, progress)
        if self.quiet or snap is None:
            return
        verb = _VERBS.get(progress.strategy, _COPYING)[1]
        self._line(f"run {run.id}: {verb} {snap.done}/{snap.total} ({_human(snap)})")


class JsonReporter(_Streamed):
    """One JSON object per line on ``stream``: ``event`` is ``transition`` (with
    ``from``/``to``), ``progress`` (the counts, docs/s, ETA) or the name of a stored
    event (``write_block``, ``warning``..., with its ``note``). Progress is throttled like the
    plain lines; state changes and notes are all written."""

    def __init__(
        self,
        stream: IO[str],
        every_s: float = 5.0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(stream, every_s, quiet, clock)
        self.now = now

    def _write(self, run: RunRecord, event: str, **fields: Any) -> None:
        data = {
            "event": event,
            "run_id": run.id,
            "state": str(run.state),
            "at": self.now().isoformat(),
            **fields,
        }
        print(json.dumps(data, default=str), file=self.stream, flush=True)

    def emit(self, run: RunRecord, event: Event) -> None:
        if isinstance(event, Progress):
            snap = self._paced.take(run, event)
            if not self.quiet and snap is not None:
                self._write(run, "progress", task_id=event.task_id, **snap.fields())
        elif self.quiet and not shown_when_quiet(event):
            return
        elif isinstance(event, Transition):
            self._write(run, "transition", **{"from": event.source.value, "to": event.dest.value})
        elif event.text is not None:
            self._write(run, event.name, note=event.text)
        else:
            self._write(run, event.name)


class BarReporter:
    """A rich progress bar on a terminal; state changes and notes print above it."""

    def __init__(
        self,
        console: Console,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console, self.quiet = console, quiet
        self._rate = _Rate(clock)
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def emit(self, run: RunRecord, event: Event) -> None:
        if isinstance(event, Progress):
            self._progress(run, event)
            return
        if self.quiet and not shown_when_quiet(event):
            return
        if isinstance(event, Transition):
            self.close()  # the step that showed a bar is over: leave the bar as it ended
        style = "bold red" if isinstance(event, Warning) else ""
        target = self._bar.console if self._bar is not None else self.console
        target.print(f"run {run.id}: {event.line}", style=style, markup=False, highlight=False)

    def _progress(self, run: RunRecord, progress: Progress) -> None:
        if self.quiet or not progress.counted:
            return
        snap = self._rate.snapshot(run, progress)
        if self._bar is None:
            # Sized for 80 columns: the run ID is on the state lines above the bar.
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}", markup=False),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            verb = _VERBS.get(progress.strategy, _COPYING)[0]
            self._task = self._bar.add_task(verb, total=progress.total or None, counts="")
        assert self._task is not None
        self._bar.update(
            self._task,
            completed=snap.done,
            total=progress.total or None,
            counts=_compact(snap),
        )
        if progress.completed:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None
