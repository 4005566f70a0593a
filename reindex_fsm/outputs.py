"""What a run writes beside itself while it moves: its metrics file (``--metrics-file``,
stored with the run's options, so a resume keeps writing it) and the one notification
when it ends (``--notify-url``, Config's: never stored).

:class:`RunOutputs` is the run's reporter (api gives it to the run's context): every event
goes on to the operator's reporter as before; a state change rewrites the metrics file at
once, a progress count at most every :data:`EVERY_S` seconds (and the copy's completion);
:meth:`RunOutputs.finish` (api calls it when it stops driving the run, after the lease is
given back) writes the file a last time and, when this process moved the run to an end
(SWAPPED, FAILED, ROLLED_BACK, CANCELLED, UNDONE), sends the event. Neither ever fails the
run: a file that cannot be written, or an event not delivered, is one warning line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import metrics, notify
from .events import Event, Progress, Reporter, SilentReporter, Transition
from .machine import State
from .options import check_metrics_file
from .progress import throttle
from .store import RunRecord

if TYPE_CHECKING:
    from .config import Config
    from .runner import RunDriver

EVERY_S = 5.0  # node_exporter is scraped every 15 s or more: a file per 5 s is plenty


class RunOutputs:
    """A run's reporter: the events go on to ``inner``; the metrics file and the end
    notification are written from them (see the module docstring)."""

    def __init__(
        self,
        inner: Reporter | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        warn: Callable[[str], None] = lambda _line: None,
        notify_url: str | None = None,
    ) -> None:
        self.inner = inner or SilentReporter()
        self.now, self.clock, self.sleep, self.warn = now, clock, sleep, warn
        self.notify_url = notify_url
        self.docs_per_s: float | None = None
        self._ended: State | None = None  # the end this process moved the run to
        self._written_at: float | None = None
        self._first: tuple[float, int] | None = None  # (clock, done) of the first count seen
        self._warned: set[str] = set()

    @classmethod
    def of(cls, cfg: Config, now: Callable[[], datetime]) -> RunOutputs:
        """The outputs of a run driven with ``cfg`` (``now``: the clock of the stored
        timestamps, the repository's)."""
        return cls(
            cfg.reporter,
            now=now,
            clock=cfg.clock,
            sleep=cfg.sleep,
            warn=cfg.warn,
            notify_url=cfg.notify_url,
        )

    # -- the reporter --------------------------------------------------------------------
    def emit(self, run: RunRecord, event: Event) -> None:
        self.inner.emit(run, event)
        if isinstance(event, Transition):
            self._ended = event.dest if event.dest in notify.ENDS else None
            self.write(run)
        elif isinstance(event, Progress) and event.counted:
            self._measure(run, event)
            due = self._written_at is None or self.clock() - self._written_at >= EVERY_S
            if due or event.completed:
                self._written_at = self.clock()
                self.write(run)

    def _measure(self, run: RunRecord, progress: Progress) -> None:
        """The copy's rate: the task's count over its running time (a recompute has
        none: the documents written since the first count this process saw), never above
        the copy's throttle (a throttled task writes a batch at once, then waits)."""
        now, done = self.clock(), progress.done
        rate: float | None = None
        if progress.running_time_s > 0:
            rate = done / progress.running_time_s
        else:
            if self._first is None or done < self._first[1]:
                self._first = (now, done)
            elapsed, gained = now - self._first[0], done - self._first[1]
            rate = gained / elapsed if elapsed > 0 else None
        cap = throttle(run, progress)
        if rate is not None:
            self.docs_per_s = rate if cap is None else min(rate, cap)

    # -- the file and the event ------------------------------------------------------------
    def write(self, run: RunRecord) -> None:
        """Write the run's metrics file, if it has one; a failure is one warning line (the
        same failure is not repeated)."""
        path = metrics_file_of(run)
        if not path:
            return
        try:
            metrics.write_run(path, run, self.now(), self.docs_per_s)
        except OSError as exc:
            line = f"metrics file {path} not written: {exc.strerror or exc}; the run goes on"
            if line not in self._warned:
                self._warned.add(line)
                self.warn(line)

    def finish(self, run: RunRecord, *, ended: bool = False) -> None:
        """The run is no longer driven by this process: write the file a last time, and
        send the event if this process moved it to an end (``ended``: it did, with its
        state changes not reported, e.g. a start the engine refused)."""
        self.write(run)
        if self.notify_url is None or run.state not in notify.ENDS:
            return
        if not (ended or self._ended is run.state):
            return  # moved there by another process (an abort): that one tells
        self._ended = None  # one event per end
        figures = metrics.RunFigures(run, self.now(), self.docs_per_s)
        notifier = notify.Notifier(self.notify_url, self.warn, self.sleep)
        notifier.send(notify.run_event(figures))


def metrics_file_of(run: RunRecord) -> str | None:
    value = (run.options or {}).get("metrics_file")
    return str(value) if value else None


def finish(reporter: Reporter, run: RunRecord, *, ended: bool = False) -> None:
    """:meth:`RunOutputs.finish`, when ``reporter`` is the run's outputs."""
    if isinstance(reporter, RunOutputs):
        reporter.finish(run, ended=ended)


def resuming_with(path: str) -> Callable[[RunDriver], RunRecord]:
    """``resume --metrics-file PATH``: store PATH with the run's options (under the lease,
    as the resume's first write), then resume; later resumes keep writing it. A path
    that cannot be one is refused here, before anything is opened."""
    check_metrics_file(path)
    path = os.path.abspath(path)  # stored: a later resume may run in another folder

    def how(driver: RunDriver) -> RunRecord:
        ctx = driver.ctx
        if metrics_file_of(ctx.record) != path:
            ctx.checkpoint(
                event="metrics_file",
                detail={"note": f"metrics written to {path}"},
                options={**ctx.record.options, "metrics_file": path},
            )
        return driver.resume()

    return how


# -- a batch: what its runner calls (the batch's state and its runs' records, as strings
# and plain records, so that it needs nothing of a run's context) --------------------------
def batch_moved(
    cfg: Config, batch_id: str, state: str, runs: list[RunRecord], metrics_file: str | None
) -> None:
    """Rewrite the batch's metrics file (one series per run, and the batch's totals), if
    it has one; call it as the batch moves (a run started or ended). Never raises: a file
    that cannot be written is one warning line."""
    if not metrics_file:
        return
    try:
        metrics.write_batch(metrics_file, batch_id, state, runs, cfg.repo().now())
    except OSError as exc:
        cfg.warn(
            f"metrics file {metrics_file} not written: {exc.strerror or exc}; the batch goes on"
        )


def batch_ended(
    cfg: Config, batch_id: str, state: str, runs: list[RunRecord], metrics_file: str | None
) -> None:
    """The batch ended (its runner says in which ``state``): its metrics file a last time,
    and one ``batch_ended`` event to ``cfg.notify_url`` (each run has sent its own).
    Never raises: an event not delivered is one warning line."""
    batch_moved(cfg, batch_id, state, runs, metrics_file)
    if cfg.notify_url is None:
        return
    now = cfg.repo().now()
    event = notify.batch_event(batch_id, state, [metrics.RunFigures(r, now) for r in runs], now)
    notify.Notifier(cfg.notify_url, cfg.warn, cfg.sleep).send(event)
