"""One plain function per verb: start, plan, resume, abort, show, history.

No printing and no argument parsing here (that is the cli package); every function takes
a :class:`~reindex_fsm.config.Config` and returns data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import outputs, remote
from .cleanup import CleanupRow as CleanupRow  # re-exported: callers' imports
from .cleanup import cleanup as cleanup
from .config import DEFAULT_ENGINE_URL as DEFAULT_ENGINE_URL  # re-exported: callers' imports
from .config import ENGINE_KINDS as ENGINE_KINDS
from .config import Config as Config
from .config import default_engine_factory as default_engine_factory
from .engine.base import Engine, opaque_id_for
from .errors import (
    ExitCode,
    LockHeld,
    RunFinished,
    SwappedNotRolledBack,
    TargetRefused,
    TaskNotFound,
    UndoRefused,
    UsageError,
    WrongCluster,
)
from .lease import Lease, LeasedEngine, LeasedSleep, LeaseKeeper
from .machine import State
from .options import RunOptions
from .plan import Plan
from .preflight import preflight
from .reads import KEY_FIELDS as KEY_FIELDS  # show and history: re-exported, callers' imports
from .reads import SUMMARY_FIELDS as SUMMARY_FIELDS
from .reads import history as history
from .reads import history_rows as history_rows
from .reads import show as show
from .reads import show_picture as show_picture
from .reads import summary as summary
from .runner import RunDriver
from .steps import create_target, data_streams, gate, swap, verify, views, write_policy
from .steps.context import RunContext
from .steps.copy.registry import strategy_for, strategy_for_options
from .steps.planning import make_plan
from .store import (
    RunOrigin,
    RunRecord,
    RunRepository,
    redact_state_db,
)


@dataclass(frozen=True)
class Outcome:
    record: RunRecord
    aborted: bool = False  # the operator asked for the rollback: ending there is success
    undone: bool = False  # the operator asked for undo: UNDONE is success

    @property
    def exit_code(self) -> ExitCode:
        if self.undone and self.record.state is State.UNDONE:
            return ExitCode.OK
        if self.aborted and self.record.state in (State.ROLLED_BACK, State.CANCELLED):
            return ExitCode.OK
        if self.aborted and self.record.state is State.SWAPPED:  # swapped meanwhile
            return ExitCode.LOCK_HELD
        return exit_code_for(self.record)


def exit_code_for(record: RunRecord) -> ExitCode:
    """The exit code of a start or resume that ended with ``record``."""
    if record.state is State.SWAPPED:
        return ExitCode.OK
    if record.state is State.VERIFIED:  # waits at the gate (--pause-before-swap): unfinished
        return ExitCode.PAUSED
    if record.error_kind == "VerificationFailed":
        return ExitCode.VERIFICATION_FAILED
    if record.state in (State.ROLLED_BACK, State.CANCELLED):  # failed, or aborted meanwhile
        return ExitCode.ROLLED_BACK
    if record.state is State.FAILED:
        return ExitCode.RUN_FAILED
    return ExitCode.LOCK_HELD  # not there: another process moved it (UNDONE, still active)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _context(
    cfg: Config, engine: Engine, record: RunRecord, lease: LeaseKeeper | None = None
) -> RunContext:
    return RunContext(
        engine=engine if lease is None else LeasedEngine(engine, lease),
        repo=cfg.repo(),
        record=record,
        clock=cfg.clock,
        sleep=cfg.sleep if lease is None else LeasedSleep(cfg.sleep, lease),
        crash=cfg.crash(),
        reporter=outputs.RunOutputs.of(cfg, cfg.repo().now),  # + metrics file, notification
        now=cfg.now,
        lease=lease,
    )


def _check_alias_free(repo: RunRepository, alias: str) -> None:
    active = repo.active_run_for(alias)
    if active is not None:
        raise LockHeld(alias, active.id, active.state.value)


def _checked_plan(
    cfg: Config, engine: Engine, alias: str, options: RunOptions, run_id: str | None = None
) -> Plan:
    """Preflight (read-only; PreflightFailed at the first failed check), then the plan."""
    info = engine.info()
    if options.source_url is not None:  # another cluster as the source
        p = remote.make_plan(cfg, engine, info, alias, options, new_run_id(), cfg.now())
        return replace(p, shrink=verify.check_plan(p, options))
    with data_streams.refused(engine, alias):  # a data stream named: one line, exit 2
        results = preflight(engine, info, alias, options)
        p = make_plan(engine, info, alias, options, run_id or new_run_id(), cfg.now())
    shrink = verify.check_plan(p, options)  # a much smaller target needs --allow-shrink
    return replace(p, preflight=[r.to_dict() for r in results], shrink=shrink)


def check_options(options: RunOptions) -> None:
    """Refuse (UsageError) what the options alone say cannot work: every rule of
    :meth:`RunOptions.validate`, then what the copy strategy they choose cannot honour.
    The CLI and every verb that plans ask this, before the engine or the database is
    opened."""
    options.validate()
    refused = strategy_for_options(options).refuses(options)
    if refused is not None:
        raise refused


def plan(cfg: Config, alias: str, options: RunOptions, *, run_id: str | None = None) -> Plan:
    """What ``start`` would do; reads the engine and the database, writes nothing.
    Options the CLI would refuse are refused here too, before either is opened.
    ``run_id``: the ID the run is to have (a batch's, stored before its run was made)."""
    check_options(options)
    cfg, options = remote.split_credentials(cfg, options)
    _check_alias_free(cfg.repo(), alias)
    return _checked_plan(cfg, cfg.engine(), alias, options, run_id)


def lease_holder(cfg: Config, alias: str) -> dict[str, Any] | None:
    """The engine lease on ``alias`` as --dry-run shows it (None: free). Reads only."""
    stored = cfg.engine().get_lease(alias)
    if stored is None:
        return None
    lease = Lease.from_stored(alias, stored)
    return {
        "run_id": lease.run_id,
        "owner": lease.owner,
        "state_db": lease.state_db,
        "expires_at": lease.expires_at.isoformat(),
        "expired": lease.expired(cfg.now()),
    }


def _keeper(cfg: Config, engine: Engine, alias: str, run_id: str, ttl_s: float) -> LeaseKeeper:
    return LeaseKeeper(
        engine,
        alias,
        run_id,
        state_db=redact_state_db(cfg.state_db_url()),
        ttl_s=ttl_s,
        now=cfg.now,
        warn=cfg.warn,
        finished=lambda holder: _finished_here(cfg.repo(), alias, holder),
    )


def _finished_here(repo: RunRepository, alias: str, run_id: str) -> bool:
    """The run holding a lease is one of this state database's, finished, and not being
    undone (the alias lock): its process died after its last commit, before releasing."""
    record = repo.find(run_id)
    if record is None or not record.finished:
        return False
    holder = repo.active_run_for(alias)
    return holder is None or holder.id != run_id


def _drive_holding(
    ctx: RunContext,
    keeper: LeaseKeeper,
    how: Callable[[RunDriver], RunRecord],
    before: Callable[[], None] = lambda: None,
) -> RunRecord:
    """Drive with the lease renewed in the background; give it up when the run is
    finished. Any other end (FAILED, a crash, Ctrl-C, SIGTERM, unreachable) lets it
    expire, and a resume of the same run on this host takes it back at once (its
    process is gone). A Ctrl-C or SIGTERM carries the run's last stored record
    (``exc.run``) for the line the CLI prints."""
    keeper.start_heartbeat()
    try:
        before()
        record = how(RunDriver(ctx))
    except TargetRefused:  # the run ended CANCELLED as it raised: nothing left to hold
        keeper.release()
        outputs.finish(ctx.reporter, ctx.record, ended=True)
        raise
    except KeyboardInterrupt as exc:
        exc.run = ctx.record  # type: ignore[attr-defined]
        raise
    finally:
        keeper.retire()
    if record.finished:
        keeper.release()
    elif record.state in (State.FAILED, State.VERIFIED):  # nobody drives it now: its
        keeper.mark_idle()  # resume (or swap) need not wait
    outputs.finish(ctx.reporter, record)  # the metrics file's last write; the notification
    return record


def _cluster_of(info: Any, url: str) -> str:
    name = f"cluster {info.cluster_name!r}" if info.cluster_name else "a cluster"
    return f"{name} (UUID {info.cluster_uuid or 'unknown'}) at {url}"


def _run_engine(cfg: Config, record: RunRecord) -> Engine:
    """The engine of a stored run: ``--engine-url`` if given, else the run's stored URL
    (REINDEX_FSM_ENGINE_URL does not override it: a warning says so). Refused with
    WrongCluster, before anything is written, when it is not the cluster the run was
    planned on (its UUID); another node of that cluster is fine. Runs stored without a
    cluster UUID are not checked."""
    engine = cfg.run_engine(record.id, record.engine_url)
    if record.cluster_uuid:
        info = engine.info()
        if info.cluster_uuid != record.cluster_uuid:
            name = (record.plan.get("engine") or {}).get("cluster_name")
            stored = f"cluster {name!r}" if name else "a cluster"
            raise WrongCluster(
                record.id,
                f"{stored} (UUID {record.cluster_uuid}) at {record.engine_url}",
                _cluster_of(info, engine.url),
            )
    return engine


def describe(p: Plan, options: RunOptions) -> list[dict[str, Any]]:
    """Every step's plan, for --dry-run and the confirmation prompt."""
    return [
        create_target.plan(p),
        write_policy.plan(p, options),
        strategy_for(p).describe(p),
        verify.plan(p, options.verify, options),
        *([gate.plan(p, options)] if views.pauses(options) else []),
        swap.plan(p),
    ]


def start(
    cfg: Config,
    alias: str,
    options: RunOptions,
    planned: Plan | None = None,
    *,
    force_unlock: bool = False,
    origin: RunOrigin | None = None,
) -> Outcome:
    """Preflight and plan (read-only), take the engine lease, store the run (the
    database lock; ``origin``: the batch and plan file it came from), and drive it to its
    end. A refused lease leaves the state database untouched; a refused database lock
    gives the lease back. Options the CLI would refuse are refused here too (UsageError),
    before anything is opened."""
    check_options(options)
    cfg, options = remote.split_credentials(cfg, options)
    repo = cfg.repo()
    _check_alias_free(repo, alias)
    engine = cfg.engine()
    p = planned or _checked_plan(cfg, engine, alias, options)
    engine = remote.sourced(cfg, engine, p)
    keeper = _keeper(cfg, engine, alias, p.run_id, options.lease_ttl_s)
    keeper.acquire(force=force_unlock)
    try:
        record = _create_run(repo, engine, p, options, origin)
    except BaseException:
        keeper.release()
        raise
    for result in p.preflight:  # once the run is on its way (an error stays one line)
        if result["status"] == "warning":
            cfg.warn(f"preflight {result['check']}: {result['detail']}")
    ctx = _context(cfg, engine, record, keeper)
    before = lambda: ctx.crash("commit.PLANNED")  # noqa: E731
    return Outcome(_drive_holding(ctx, keeper, RunDriver.drive, before))


def _create_run(
    repo: RunRepository,
    engine: Engine,
    p: Plan,
    options: RunOptions,
    origin: RunOrigin | None = None,
) -> RunRecord:
    origin = origin or RunOrigin()
    return repo.create(
        {
            **origin.columns(),
            "id": p.run_id,
            "alias": p.alias,
            "source_index": p.source_index,
            "target_index": p.target_index,
            "options": options.to_dict(),
            "plan": p.to_dict(),
            "engine_url": engine.url,
            "engine_flavor": p.engine["flavor"],
            "engine_version": p.engine["version"],
            "cluster_uuid": p.engine.get("cluster_uuid") or None,
            "source_count": p.source_count,
        },
        detail={"source": p.source_index, "target": p.target_index, "count": p.source_count},
    )


def holding_lease(
    cfg: Config,
    run_id: str,
    how: Callable[[RunDriver], RunRecord],
    *,
    force_unlock: bool = False,
    take_over: bool = False,
) -> RunRecord:
    """Drive the stored unfinished run ``run_id`` with ``how`` (e.g. ``RunDriver.resume``)
    while holding its alias's engine lease: what resume, abort (and undo) share. A
    finished run is refused before any engine call, and so is an engine of another
    cluster (WrongCluster); a lease held by another run is LockHeld; the run's own
    lease is taken back at once from a process that is gone, and refused (LockHeld:
    the live holder's owner, pid and host) while its process still drives it, unless
    ``take_over`` (abort) or ``force_unlock``."""
    record = cfg.repo().get(run_id)
    if record.finished:
        raise RunFinished(record.id, record.state.value)
    engine = remote.sourced(cfg, _run_engine(cfg, record), Plan.from_dict(record.plan))
    ttl_s = RunOptions.from_dict(record.options).lease_ttl_s
    keeper = _keeper(cfg, engine, record.alias, record.id, ttl_s)
    keeper.acquire(force=force_unlock, take_over=take_over)
    try:  # read again under the lease: the run may have moved before we took it
        record = cfg.repo().get(run_id)
    except BaseException:
        keeper.retire()
        raise
    if record.finished:
        keeper.release()
        raise RunFinished(record.id, record.state.value)
    return _drive_holding(_context(cfg, engine, record, keeper), keeper, how)


def resume(
    cfg: Config, run_id: str, *, force_unlock: bool = False, metrics_file: str | None = None
) -> Outcome:
    """Continue a stored run; ``metrics_file``: write (and store) this one from now on."""
    how = RunDriver.resume if metrics_file is None else outputs.resuming_with(metrics_file)
    return Outcome(holding_lease(cfg, run_id, how, force_unlock=force_unlock))


def abort(cfg: Config, run_id: str) -> Outcome:
    """Stop a run: an abort takes the run over even from a live process driving it
    (a warning names it), which then stops before its next write."""
    record = holding_lease(cfg, run_id, RunDriver.abort, take_over=True)
    if record.state is State.SWAPPED:  # its swap was found made: the target is live
        raise SwappedNotRolledBack(record.id, record.alias, record.target_index)
    return Outcome(record, aborted=True)


# -- undo, cleanup, rethrottle ---------------------------------------------------------------


def undo(cfg: Config, run_id: str, force: bool = False) -> RunRecord:
    """Move a SWAPPED run's aliases back to its previous index: UNDONE."""
    record = cfg.repo().get(run_id)
    if record.state is not State.SWAPPED:
        raise UndoRefused(
            run_id,
            f"it is {record.state}, only a SWAPPED run can be undone",
            hint=f"an unfinished run is stopped with `reindex-fsm abort {run_id}`"
            if not record.finished
            else "nothing was changed",
        )
    engine = remote.sourced(cfg, _run_engine(cfg, record), Plan.from_dict(record.plan))
    ttl_s = RunOptions.from_dict(record.options).lease_ttl_s
    keeper = _keeper(cfg, engine, record.alias, record.id, ttl_s)
    keeper.acquire()  # no other process, whatever its state DB, is running on the alias
    try:
        ctx = _context(cfg, engine, record, keeper)
        return _drive_holding(ctx, keeper, lambda driver: driver.run_undo(force))
    except UndoRefused:
        keeper.release()
        raise


def rethrottle(cfg: Config, run_id: str, requests_per_second: float | None) -> dict[str, Any]:
    """Change the rate of a run's running ``_reindex`` copy (None: unlimited) and store it,
    so that a copy restarted later (vanished task, resume) keeps it."""
    repo = cfg.repo()
    record = repo.get(run_id)
    if record.state is not State.REINDEXING:
        raise UsageError(
            f"run {run_id} has no running copy: it is {record.state}",
            hint="rethrottle applies while a run is REINDEXING",
        )
    strategy = strategy_for_options(RunOptions.from_dict(record.options))
    if not strategy.can_rethrottle:
        raise UsageError(
            f"run {run_id} copies with {strategy.flag}: there is no _reindex task to rethrottle",
            hint=f"its rate is set by {strategy.rate_set_by}",
        )
    engine = _run_engine(cfg, record)
    task_id = _running_copy(engine, record)
    rate = -1.0 if requests_per_second is None else requests_per_second
    try:
        engine.rethrottle(task_id, rate)
    except TaskNotFound as exc:
        raise UsageError(
            f"run {run_id}: its copy task {task_id} finished or vanished meanwhile",
            hint=f"see `reindex-fsm show {run_id}`",
        ) from exc
    options = {**record.options, "requests_per_second": requests_per_second}
    shown = "unlimited" if requests_per_second is None else requests_per_second
    repo.checkpoint(
        run_id,
        State.REINDEXING,
        event="rethrottled",
        detail={"task_id": task_id, "requests_per_second": shown},
        options=options,
    )
    return {"run_id": run_id, "task_id": task_id, "requests_per_second": shown}


def _running_copy(engine: Engine, record: RunRecord) -> str:
    if record.task_id:
        status = engine.get_task(record.task_id)
        if status is not None and not status.completed:
            return record.task_id
    running = engine.list_reindex_tasks(opaque_id_for(record.id))
    if not running:
        raise UsageError(
            f"run {record.id} has no running copy task",
            hint=f"the copy may have just finished; see `reindex-fsm show {record.id}`",
        )
    return running[0].task_id
