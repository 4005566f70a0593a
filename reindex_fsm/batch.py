"""Batches: ordinary runs on several aliases, started and driven together.

A batch is stored before any of its runs is made: the aliases it was resolved to (once,
when it was planned), each one's options, its concurrency, slices budget and failure
policy. Its runs are ordinary runs made by :func:`reindex_fsm.api.start` with the batch's
ID as their origin: each keeps its own engine lease, alias lock, checkpoints and history,
and ``resume RUN_ID`` continues it on its own. ``resume BATCH_ID`` continues every
unfinished run of the batch and makes those not made yet; ``abort BATCH_ID`` aborts every
unfinished run.

Runs are driven by daemon threads of the one process (``concurrency`` of them). Every
path a run takes is thread-safe: each run has its own engine client, lease keeper (and
heartbeat thread), state machine and context; the state database is one SQLAlchemy pool
whose writes are single compare-and-set transactions (SQLite waits on its busy timeout);
the progress reporter is serialized here. Signals reach the main thread only: Ctrl-C or
SIGTERM stops the batch making new runs and ends the process, which takes the runs under
way down like a kill, from which each resumes. One process also means that a SIGKILL of
the batch stops every run at once: no orphan drives a run its resume would find held.

The slices budget bounds the ``_reindex`` slices of the batch's copies at one time: a run
about to be made gets at most the budget left (``--slices auto`` counts as the source's
primary shards, what the engines make of it; a copy that is not a ``_reindex`` task counts
as one), and waits while none is left; a run resumed keeps its stored slices and waits
until as many (at most the whole budget) are free.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

from . import api, outputs
from .batch_threads import SlicesBudget, in_threads
from .config import Config
from .engine.base import Engine
from .errors import BatchFinished, ExitCode, ReindexFsmError, UsageError
from .events import Event, Reporter
from .machine import TERMINAL, State
from .options import RunOptions
from .steps.copy.registry import strategy_for_options
from .steps.planning import check_alias_name
from .store import RunOrigin, RunRecord
from .store.batches import ABORTED, FAILED, PAUSED, RUNNING, SUCCEEDED, BatchRecord, BatchRepository
from .store.records import BATCH_PREFIX
from .store.records import is_batch_id as is_batch_id  # re-exported: callers' imports

ON_FAILURE = ("stop", "continue")


def new_batch_id() -> str:
    return BATCH_PREFIX + uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class BatchItem:
    """One alias of a batch and the options of its run."""

    alias: str
    options: RunOptions


@dataclass(frozen=True)
class BatchSettings:
    """How a batch drives its runs: ``concurrency`` runs at once; ``slices_budget``
    ``_reindex`` slices at once across them (None: unbounded); ``on_failure`` "stop"
    (make no new run once one failed) or "continue"."""

    concurrency: int = 1
    slices_budget: int | None = None
    on_failure: str = "stop"

    def validate(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise UsageError(f"--concurrency {self.concurrency!r} is not a number")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency} must be at least 1")
        budget = self.slices_budget
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise UsageError(f"--slices-budget {budget!r} is not a number")
        if budget is not None and budget < 1:
            raise UsageError(f"--slices-budget {budget} must be at least 1")
        if self.on_failure not in ON_FAILURE:
            raise UsageError(
                f"--on-failure {self.on_failure!r} is not one of {', '.join(ON_FAILURE)}"
            )


@dataclass(frozen=True)
class BatchOutcome:
    """A batch as a start, resume or abort left it, with its runs (one per item made)."""

    batch: BatchRecord
    runs: list[RunRecord]
    aborted: bool = False  # the operator asked for the abort: runs ended there are success

    @property
    def batch_id(self) -> str:
        return self.batch.id

    @property
    def swapped(self) -> int:
        return sum(1 for r in self.runs if r.state is State.SWAPPED)

    @property
    def total(self) -> int:
        return len(self.batch.items)

    @property
    def exit_code(self) -> ExitCode:
        """0 only if every alias's run is SWAPPED (an abort: if no run is left
        unfinished); PAUSED if the others wait at the gate; else BATCH_INCOMPLETE."""
        if self.aborted:
            left = [r for r in self.runs if r.state not in TERMINAL]
            return ExitCode.OK if not left else ExitCode.BATCH_INCOMPLETE
        if self.batch.state == PAUSED:
            return ExitCode.PAUSED
        return ExitCode.OK if self.swapped == self.total else ExitCode.BATCH_INCOMPLETE

    def as_dict(self) -> dict[str, Any]:
        by_id = {r.id: r for r in self.runs}
        items = []
        for item in self.batch.items:
            run = by_id.get(item.get("run_id") or "")
            items.append(
                {
                    "alias": item["alias"],
                    "run_id": run.id if run else None,
                    "state": run.state.value if run else None,
                    "source_index": run.source_index if run else None,
                    "target_index": run.target_index if run else None,
                    "error": run.error if run else item.get("error"),
                }
            )
        return {
            "batch_id": self.batch.id,
            "state": self.batch.state,
            "swapped": self.swapped,
            "total": self.total,
            "exit_code": int(self.exit_code),
            "concurrency": self.batch.concurrency,
            "slices_budget": self.batch.slices_budget,
            "on_failure": self.batch.on_failure,
            "error": self.batch.error,
            "created_at": self.batch.created_at.isoformat(),
            "finished_at": self.batch.finished_at.isoformat() if self.batch.finished_at else None,
            "plan_path": self.batch.plan_path,
            "plan_hash": self.batch.plan_hash,
            "runs": items,
        }


# -- planning: the aliases, once ---------------------------------------------------------------


def _check_pattern(pattern: str) -> str:
    """One pattern as the engines read it: ``*`` is the only wildcard; no list (``,``),
    no exclusion (``-``)."""
    bad = [c for c in ", ?[]" if c in pattern]
    if not pattern.strip() or bad or pattern.startswith("-"):
        raise UsageError(
            f"--alias-pattern {pattern!r} is not one alias pattern",
            hint="give one pattern such as 'logs-*' (* is the only wildcard; repeat the flag "
            "for more); nothing was done",
        )
    return pattern


def resolve_aliases(engine: Engine, aliases: list[str], patterns: list[str]) -> list[str]:
    """The aliases a batch is for: ``aliases`` as given (each once, in order), then the
    aliases that exist now and match one of ``patterns`` (sorted, each once). A pattern
    that matches no alias, or an alias given twice, is refused (UsageError)."""
    chosen: list[str] = []
    for alias in aliases:
        check_alias_name(alias)
        if alias in chosen:
            raise UsageError(
                f"alias {alias!r} is given twice",
                hint="name each alias once; nothing was done",
            )
        chosen.append(alias)
    for pattern in patterns:
        _check_pattern(pattern)
        found = {
            name
            for on_index in engine.get_alias(pattern).values()
            for name in on_index
            if fnmatchcase(name, pattern)
        }
        if not found:
            raise UsageError(
                f"no alias matches --alias-pattern {pattern!r}",
                hint="list the aliases with GET _cat/aliases; nothing was done",
            )
        chosen.extend(name for name in sorted(found) if name not in chosen)
    return chosen


def _check_items(cfg: Config, items: list[BatchItem]) -> None:
    """Refuse what cannot work before anything is written: no alias, an alias twice, the
    options of one, and each alias's plan (the alias, its lock, preflight...), whose
    error line is prefixed by the alias when it does not name it."""
    if not items:
        raise UsageError("a batch needs at least one alias")
    seen: set[str] = set()
    for item in items:
        check_alias_name(item.alias)
        if item.alias in seen:
            raise UsageError(
                f"alias {item.alias!r} is in the batch twice",
                hint="name each alias once; nothing was done",
            )
        seen.add(item.alias)
        api.check_options(item.options)
        if item.options.source_url is not None:  # aliases are resolved on the target cluster
            raise UsageError(
                "a batch cannot copy from another cluster (--source-url)",
                hint="start one run per alias; nothing was done",
            )
    targets = [item.options.target_index for item in items if item.options.target_index]
    if len(set(targets)) < len(targets):
        raise UsageError(
            f"--target-index {targets[0]} would be the target of several runs",
            hint="leave it out in a batch (each run names its target <alias>-<UTC timestamp>); "
            "nothing was done",
        )
    for item in items:
        try:
            api.plan(cfg, item.alias, item.options)
        except ReindexFsmError as exc:
            if item.alias not in exc.message:
                exc.message = f"alias {item.alias}: {exc.message}"
            raise


def _common(options: list[dict[str, Any]]) -> dict[str, Any]:
    first = options[0]
    return {k: v for k, v in first.items() if all(o.get(k) == v for o in options[1:])}


def start_batch(
    cfg: Config,
    items: list[BatchItem],
    settings: BatchSettings,
    *,
    plan_path: str | None = None,
    plan_hash: str | None = None,
) -> BatchOutcome:
    """Check every item (its options, then its plan: read-only), store the batch, then
    make and drive its runs. Anything refused before the batch is stored leaves the state
    database and the engine untouched."""
    settings.validate()
    _check_items(cfg, items)
    engine = cfg.engine()
    dicts = [item.options.to_dict() for item in items]
    metrics_file = _batch_metrics_file(dicts)
    batch_id = new_batch_id()
    _batches(cfg).create(
        {
            "id": batch_id,
            "items": [
                {"alias": item.alias, "options": o, "run_id": None, "error": None}
                for item, o in zip(items, dicts, strict=True)
            ],
            "options": {**_common(dicts), "metrics_file": metrics_file},
            "concurrency": settings.concurrency,
            "slices_budget": settings.slices_budget,
            "on_failure": settings.on_failure,
            "engine_url": engine.url,
            "plan_path": plan_path,
            "plan_hash": plan_hash,
        }
    )
    return _drive(cfg, batch_id)


def resume_batch(cfg: Config, batch_id: str) -> BatchOutcome:
    """Continue every unfinished run of the batch (a FAILED run is retried) and make the
    runs not made yet; refused (BatchFinished) for a batch that SUCCEEDED or was ABORTED."""
    batch = _batches(cfg).get(batch_id)
    if batch.state in (SUCCEEDED, ABORTED):
        raise BatchFinished(batch.id, batch.state)
    return _drive(cfg, batch_id)


def abort_batch(cfg: Config, batch_id: str) -> BatchOutcome:
    """Abort every unfinished run of the batch (as ``abort RUN_ID`` does each) and make
    no more: the batch is marked ABORTED first, so a process still driving it makes no
    new run. Runs already SWAPPED stay as they are."""
    repo = _batches(cfg)
    batch = repo.get(batch_id)
    runs = _reconciled(repo, batch)
    unfinished = [r for r in runs.values() if r.state not in TERMINAL]
    if batch.state in (SUCCEEDED, ABORTED) and not unfinished:
        raise BatchFinished(batch.id, batch.state)
    repo.set_state(batch_id, ABORTED, error="aborted")
    cfg = _batch_config(cfg, repo.get(batch_id))
    errors: dict[str, str] = {}

    def abort_one(run: RunRecord) -> None:
        try:
            api.abort(cfg, run.id)
        except ReindexFsmError as exc:
            errors[run.alias] = exc.one_line()

    in_threads([partial(abort_one, r) for r in unfinished], batch.concurrency)
    for alias, line in errors.items():
        repo.set_item(batch_id, alias, error=line)
    after = repo.runs(batch_id)
    left = [r for r in after if r.state not in TERMINAL]
    error = "aborted" + (
        f"; {len(left)} run(s) not aborted: " + ", ".join(f"{r.alias} ({r.state})" for r in left)
        if left
        else ""
    )
    batch = repo.set_state(batch_id, ABORTED, error=error)
    _moved(cfg, repo, batch_id, ended=True)
    return BatchOutcome(batch, after, aborted=True)


def show_batch(cfg: Config, batch_id: str) -> BatchOutcome:
    """The batch and its runs, read only."""
    repo = BatchRepository(cfg.repo(read_only=True).engine)
    return BatchOutcome(repo.get(batch_id), repo.runs(batch_id))


def list_batches(cfg: Config, limit: int | None = 50) -> list[BatchOutcome]:
    """Batches, newest first, each with its runs."""
    repo = BatchRepository(cfg.repo(read_only=True).engine)
    return [BatchOutcome(b, repo.runs(b.id)) for b in repo.list(limit)]


# -- driving -----------------------------------------------------------------------------------


def _batch_metrics_file(dicts: list[dict[str, Any]]) -> str | None:
    """The one --metrics-file all runs were given is the batch's (a series per run, the
    totals), not the runs'; different files (a plan file's per alias) stay the runs'."""
    files = {d.get("metrics_file") for d in dicts}
    if len(files) != 1 or None in files:
        return None
    for d in dicts:
        d["metrics_file"] = None
    return files.pop()


def _moved(cfg: Config, repo: BatchRepository, batch_id: str, *, ended: bool = False) -> None:
    """The batch's metrics file rewritten (and, once it ended, its one event sent)."""
    batch = repo.get(batch_id)
    report = outputs.batch_ended if ended else outputs.batch_moved
    report(cfg, batch_id, batch.state, repo.runs(batch_id), batch.options.get("metrics_file"))


def _batches(cfg: Config) -> BatchRepository:
    return BatchRepository(cfg.repo().engine)


def _batch_config(cfg: Config, batch: BatchRecord) -> Config:
    """The Config the batch's runs are made with: the batch's own cluster unless
    --engine-url is given, and one reporter shared safely by the run threads."""
    cfg.repo()  # opened (and migrated) once, before any thread uses it
    return replace(
        cfg,
        engine_url=cfg.engine_url or batch.engine_url,
        reporter=_Serialized(cfg.reporter),
    )


class _Serialized:
    """A reporter fed by several run threads: one event at a time."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.lock = threading.Lock()

    def emit(self, run: RunRecord, event: Event) -> None:
        with self.lock:
            self.reporter.emit(run, event)


def slices_wanted(engine: Engine, source_index: str, options: RunOptions) -> int:
    """The ``_reindex`` slices a run's copy uses: its --slices, auto = the source's
    primary shards; one for a copy that is not a ``_reindex`` task."""
    if not strategy_for_options(options).can_rethrottle:
        return 1
    if options.slices != "auto":
        return int(options.slices)
    settings = engine.get_index(source_index).settings
    return max(1, int(settings.get("index.number_of_shards") or 1))


def _reconciled(repo: BatchRepository, batch: BatchRecord) -> dict[str, RunRecord]:
    """The run of each alias, found by ``runs.batch_id`` (stored with the run itself, so
    a run made just before a crash is found although its item lacks its ID); an item
    whose run ID was stored but whose run never was made has none."""
    runs: dict[str, RunRecord] = {}
    for run in repo.runs(batch.id):
        runs[run.alias] = run  # oldest first: the newest wins
    for item in batch.items:
        made = runs.get(item["alias"])
        if made is not None and item.get("run_id") != made.id:
            repo.set_item(batch.id, item["alias"], run_id=made.id)
    return runs


# A run resumed from these (or FAILED from one) may still copy: its slices count.
_BEFORE_VERIFY = (State.PLANNED, State.TARGET_CREATED, State.REINDEXING)


class _Driver:
    """One drive of a batch: its jobs, the shared stop flag and slices budget."""

    def __init__(self, cfg: Config, repo: BatchRepository, batch: BatchRecord) -> None:
        self.cfg, self.repo, self.batch = cfg, repo, batch
        self.stop = threading.Event()
        self.budget = SlicesBudget(batch.slices_budget)
        self.origin = RunOrigin(batch.id, batch.plan_path, batch.plan_hash)

    def stopped(self) -> bool:
        """Make or continue no more runs: a failure under --on-failure stop, an
        interrupt, or the batch aborted by another process meanwhile."""
        if self.stop.is_set():
            return True
        if self.repo.get(self.batch.id).state != RUNNING:
            self.stop.set()
        return self.stop.is_set()

    def failed(self) -> None:
        if self.batch.on_failure == "stop":
            self.stop.set()

    def refused(self, alias: str, exc: ReindexFsmError) -> None:
        """A run that could not be made or driven: its item keeps the error line, and it
        counts as a failure, unless the alias's run is SWAPPED after all (another process
        drove it to its end meanwhile)."""
        runs = [r for r in self.repo.runs(self.batch.id) if r.alias == alias]
        if runs and runs[-1].state is State.SWAPPED:
            return
        self.repo.set_item(self.batch.id, alias, error=exc.one_line())
        self.failed()

    def make(self, item: dict[str, Any]) -> None:
        alias = item["alias"]
        options = RunOptions.from_dict(item["options"])
        if self.stopped():
            return
        try:
            engine = self.cfg.engine()
            # The run ID stored for this item before a crash, if any: a lease that process
            # took for it before storing the run is then this run's own, taken back at once.
            p = api.plan(self.cfg, alias, options, run_id=item.get("run_id"))
            want = slices_wanted(engine, p.source_index, options)
            granted = self.budget.take(want, flexible=True)
        except ReindexFsmError as exc:
            self.refused(alias, exc)
            return
        try:
            if self.stopped():
                return
            if granted < want:  # the budget left: the plan's request carries the slices
                options = replace(options, slices=granted)
                p = api.plan(self.cfg, alias, options, run_id=p.run_id)
            self.repo.set_item(self.batch.id, alias, run_id=p.run_id, error=None)
            outcome = api.start(self.cfg, alias, options, p, origin=self.origin)
            if outcome.record.state not in (State.SWAPPED, State.VERIFIED):  # paused: no failure
                self.failed()
        except ReindexFsmError as exc:
            self.refused(alias, exc)
        finally:
            self.budget.give(granted)
            _moved(self.cfg, self.repo, self.batch.id)

    def resume(self, run: RunRecord) -> None:
        if self.stopped():
            return
        options = RunOptions.from_dict(run.options)
        copying = run.state in _BEFORE_VERIFY or run.failed_from in _BEFORE_VERIFY
        try:
            engine = self.cfg.run_engine(run.id, run.engine_url)
            want = slices_wanted(engine, run.source_index, options) if copying else 0
            taken = self.budget.take(want, flexible=False)
        except ReindexFsmError as exc:
            self.refused(run.alias, exc)
            return
        try:
            if self.stopped():
                return
            outcome = api.resume(self.cfg, run.id)
            if outcome.record.state not in (State.SWAPPED, State.VERIFIED):  # paused: no failure
                self.failed()
        except ReindexFsmError as exc:
            self.refused(run.alias, exc)
        finally:
            self.budget.give(taken)
            _moved(self.cfg, self.repo, self.batch.id)


def _drive(cfg: Config, batch_id: str) -> BatchOutcome:
    """Make or continue every run of the batch not finished yet, ``concurrency`` at a
    time, then store how the batch ended."""
    repo = _batches(cfg)
    batch = repo.set_state(batch_id, RUNNING)
    cfg = _batch_config(cfg, batch)
    runs = _reconciled(repo, batch)
    driver = _Driver(cfg, repo, batch)
    jobs: list[Callable[[], None]] = []
    for item in batch.items:
        run = runs.get(item["alias"])
        if run is None:
            jobs.append(partial(driver.make, item))
        elif run.state not in TERMINAL:
            jobs.append(partial(driver.resume, run))
    try:
        in_threads(jobs, batch.concurrency)
    except KeyboardInterrupt as exc:
        driver.stop.set()
        exc.batch_id = batch_id  # type: ignore[attr-defined]
        raise
    outcome = _ended(repo, batch_id)
    _moved(cfg, repo, batch_id, ended=True)
    return outcome


def _ended(repo: BatchRepository, batch_id: str) -> BatchOutcome:
    batch = repo.get(batch_id)
    by_alias = {r.alias: r for r in repo.runs(batch_id)}
    runs = [by_alias[a] for a in batch.aliases if a in by_alias]
    not_swapped = [
        f"{a} ({by_alias[a].state})" if a in by_alias else f"{a} (no run)"
        for a in batch.aliases
        if a not in by_alias or by_alias[a].state is not State.SWAPPED
    ]
    if batch.state == ABORTED:  # aborted by another process while this one drove it
        return BatchOutcome(batch, runs)
    if not not_swapped:
        return BatchOutcome(repo.set_state(batch_id, SUCCEEDED), runs)
    swapped = len(batch.items) - len(not_swapped)
    paused = [a for a in batch.aliases if a in by_alias and by_alias[a].state is State.VERIFIED]
    if len(paused) == len(not_swapped):  # the rest wait at the gate: nothing failed
        error = f"{swapped}/{len(batch.items)} runs SWAPPED; at the gate: {', '.join(paused)}"
        return BatchOutcome(repo.set_state(batch_id, PAUSED, error=error), runs)
    error = f"{swapped}/{len(batch.items)} runs SWAPPED; not: {', '.join(not_swapped)}"
    return BatchOutcome(repo.set_state(batch_id, FAILED, error=error), runs)
