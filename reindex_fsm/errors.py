"""One exception root for reindex-fsm, with data-carrying subclasses.

Lower layers (the engine clients, SQLAlchemy) are translated into these at the
boundary with ``raise ... from``; the CLI maps them to exit codes in one place
(:func:`reindex_fsm.cli.main`) and prints one clear line.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the README lists them."""

    OK = 0
    INTERNAL = 1  # a bug: please report it with the -v traceback
    USAGE = 2  # bad input: wrong alias, bad option, nothing to resume
    ROLLED_BACK = 3  # the run failed and was rolled back: alias and source as before
    RUN_FAILED = 4  # the run failed and was kept (FAILED) for a human to decide
    VERIFICATION_FAILED = 5  # verification found the target different from the source
    ENGINE_UNREACHABLE = 6  # could not talk to the engine; the run is resumable
    LOCK_HELD = 7  # another run is active on this alias
    RUN_NOT_FOUND = 8  # no run with that ID in the state database
    STATE_DB = 9  # the state database cannot be opened or written
    DECLINED = 10  # the operator declined at the confirmation prompt; nothing done
    ENGINE_REFUSED = 11  # the engine refused a request outside a run step (e.g. a privilege)
    BAD_INPUT = 12  # the documents file or the embedder is unusable; nothing was written
    PREFLIGHT_FAILED = 13  # a preflight check refused the start; nothing was written
    UNDO_REFUSED = 14  # undo refused (not SWAPPED, previous index gone, alias moved...)
    BATCH_INCOMPLETE = 15  # a batch ended with runs not SWAPPED (failed, rolled back, not made)
    PAUSED = 16  # --pause-before-swap: VERIFIED, waiting at the gate for `swap` or `abort`
    INTERRUPTED = 130  # Ctrl-C; the run is resumable
    TERMINATED = 143  # SIGTERM (128 + 15: systemd, Kubernetes, a timeout); the run is resumable


class ReindexFsmError(Exception):
    """Root of every error reindex-fsm raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """What went wrong and what to do, on one line."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(ReindexFsmError):
    exit_code = ExitCode.USAGE


class AliasNotFound(UsageError):
    def __init__(self, alias: str) -> None:
        super().__init__(
            f"alias {alias!r} does not exist",
            hint="check the name with GET _cat/aliases, or create the alias first",
        )
        self.alias = alias


class NotAnAlias(UsageError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is a concrete index, not an alias",
            hint="reindex-fsm moves an alias; put an alias in front of the index first",
        )
        self.name = name


class AliasOnSeveralIndices(UsageError):
    def __init__(self, alias: str, indices: list[str]) -> None:
        super().__init__(
            f"alias {alias!r} points at {len(indices)} indices ({', '.join(sorted(indices))})",
            hint="reindex-fsm needs an alias on exactly one index",
        )
        self.alias = alias
        self.indices = indices


class TargetExists(UsageError):
    """The target name is taken by an index this run did not create."""

    def __init__(self, index: str, owner: str | None = None) -> None:
        whose = f"by run {owner}" if owner else "outside reindex-fsm"
        super().__init__(
            f"index {index!r} already exists and was created {whose}",
            hint="choose another --target-index or delete that index yourself",
        )
        self.index = index
        self.owner = owner


class TargetRefused(UsageError):
    """The engine refused to create the planned target (its settings or mappings: an
    unknown setting, a bad value, an unknown field type...). Found by the run's first write
    to the index, before the write block and the copy: the run ends CANCELLED, nothing kept."""

    def __init__(self, index: str, reason: str, run_id: str) -> None:
        super().__init__(
            f"the engine refused to create the target index {index!r}: {reason}",
            hint="fix --set, --settings, --mappings or --copy-set (or the source settings they "
            f"start from); nothing was written: run {run_id} is CANCELLED and the alias free",
        )
        self.index = index
        self.reason = reason
        self.run_id = run_id


class RunNotFound(ReindexFsmError):
    exit_code = ExitCode.RUN_NOT_FOUND

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"no run with ID {run_id!r} in the state database",
            hint="list runs with `reindex-fsm history`, or check --state-db",
        )
        self.run_id = run_id


class RunFinished(UsageError):
    def __init__(self, run_id: str, state: str) -> None:
        super().__init__(
            f"run {run_id} already finished in state {state}",
            hint="nothing to resume or abort; start a new run",
        )
        self.run_id = run_id
        self.state = state


class LockHeld(ReindexFsmError):
    exit_code = ExitCode.LOCK_HELD

    def __init__(
        self,
        alias: str,
        run_id: str,
        state: str | None = None,
        *,
        holder: str | None = None,
        hint: str | None = None,
        lost: bool = False,
        driven: bool = False,
    ) -> None:
        what = f"run {run_id}" + (f" ({state})" if state else "")
        message = f"alias {alias!r} is busy: {what} is not finished"
        if holder is not None:  # the engine lease of another process (possibly elsewhere)
            message = f"alias {alias!r} is locked by {what}, {holder}"
        if driven:  # the run itself is driven by another live process
            message = f"{what} on alias {alias!r} is being driven by another process" + (
                f": {holder}" if holder else ""
            )
        if lost:  # this process held it and another took it over
            message = f"lease lost: {message}"
        if hint is None:
            hint = (
                f"resume it with `reindex-fsm resume {run_id}` or abort it with "
                f"`reindex-fsm abort {run_id}`"
            )
            if state == "SWAPPED":  # holds the lock only while it is being undone
                hint = f"an undo of it is running or was interrupted: `reindex-fsm undo {run_id}`"
        super().__init__(message, hint=hint)
        self.alias = alias
        self.run_id = run_id
        self.state = state
        self.holder = holder


class WrongCluster(UsageError):
    """The engine reached is not the cluster the run was planned on (its cluster UUID)."""

    def __init__(self, run_id: str, stored: str, reached: str) -> None:
        super().__init__(
            f"run {run_id} belongs to {stored}, but the engine reached is {reached}; "
            "nothing was written",
            hint="give --engine-url a node of the run's own cluster (or unset "
            "REINDEX_FSM_ENGINE_URL to use the run's stored URL)",
        )
        self.run_id = run_id


class StaleState(ReindexFsmError):
    """A compare-and-set on the run row found another state: someone else moved it."""

    def __init__(self, run_id: str, expected: str, actual: str | None) -> None:
        super().__init__(
            f"run {run_id} is in state {actual}, expected {expected}: another process moved it",
            hint=f"see `reindex-fsm show {run_id}`",
        )
        self.run_id = run_id
        self.expected = expected
        self.actual = actual


class StateStoreError(ReindexFsmError):
    exit_code = ExitCode.STATE_DB

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message, hint=hint or "pass a writable --state-db (or REINDEX_FSM_STATE_DB)"
        )


class NoStateDatabase(ReindexFsmError):
    """A command that only reads (show, history) was pointed at a state database that is
    not there: it creates nothing and says so."""

    exit_code = ExitCode.RUN_NOT_FOUND

    def __init__(self, where: str) -> None:
        super().__init__(
            f"no state database at {where}: no run was ever stored there",
            hint="check --state-db (or REINDEX_FSM_STATE_DB); nothing was created",
        )
        self.where = where


class EngineError(ReindexFsmError):
    """The engine refused a request. Carries the status and the engine's reason."""

    exit_code = ExitCode.ENGINE_REFUSED

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


class EngineUnreachable(EngineError):
    exit_code = ExitCode.ENGINE_UNREACHABLE

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the engine at {url}: {reason}",
            hint="check --engine-url (or REINDEX_FSM_ENGINE_URL) and that the cluster is up; "
            "an interrupted run can be resumed with `reindex-fsm resume RUN_ID`",
        )
        self.url = url


class UnsupportedEngine(EngineError):
    exit_code = ExitCode.USAGE


class IndexNotFound(EngineError):
    def __init__(self, index: str) -> None:
        super().__init__(f"index {index!r} does not exist", status=404)
        self.index = index


class TaskNotFound(EngineError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} not found", status=404)
        self.task_id = task_id


class RunStepFailed(ReindexFsmError):
    """A step failed for good (not a transient error): the run takes the failure path."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, message: str, *, run_id: str, state: str, task_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id
        self.state = state
        self.task_id = task_id


class CopyFailed(RunStepFailed):
    pass


class VerificationFailed(RunStepFailed):
    exit_code = ExitCode.VERIFICATION_FAILED


class BadInput(ReindexFsmError):
    """The documents file, a document in it, or the embedder cannot be used. Raised before
    anything is written when found at plan time; during a run it fails the copy step."""

    exit_code = ExitCode.BAD_INPUT


class EmbedderError(BadInput):
    pass


class InputError(BadInput):
    """A documents file (or one line of it) is unusable."""

    def __init__(
        self, path: str, message: str, line: int | None = None, *, hint: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line


class Declined(ReindexFsmError):
    exit_code = ExitCode.DECLINED


# -- lease and preflight --


class LeaseConflict(EngineError):
    """A lease write was refused because the lease document changed since it was read
    (HTTP 409 on ``op_type=create`` or ``if_seq_no``/``if_primary_term``)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the lease of {key!r} was changed by another process", status=409)
        self.key = key


class PreflightFailed(ReindexFsmError):
    """A read-only check before ``start`` found the cluster or the source unfit."""

    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, check: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"preflight {check}: {message}", hint=hint)
        self.check = check


class UndoRefused(ReindexFsmError):
    """``undo`` cannot move the aliases back; nothing was changed."""

    exit_code = ExitCode.UNDO_REFUSED

    def __init__(self, run_id: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"cannot undo run {run_id}: {reason}",
            hint=hint or f"see `reindex-fsm show {run_id}`; nothing was changed",
        )
        self.run_id = run_id
        self.reason = reason


# -- abort and rollback in a world that moved --


class SourceGone(ReindexFsmError):
    """The run's source index was deleted (or deleted and created again) since the run
    was planned: the run cannot go on; ``abort`` finishes it. Nothing was changed."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, run_id: str, index: str, why: str) -> None:
        super().__init__(
            f"cannot resume run {run_id}: its source index {index} {why}",
            hint=f"`reindex-fsm abort {run_id}` finishes it (its target deleted, the alias "
            "released); nothing was changed",
        )
        self.run_id = run_id
        self.index = index


class SwappedNotRolledBack(UsageError):
    """An abort found the run's swap made (the alias on its own target): the target is
    live, so nothing was rolled back and the run is recorded SWAPPED."""

    def __init__(self, run_id: str, alias: str, target: str) -> None:
        super().__init__(
            f"run {run_id} was not rolled back: its swap was made (alias {alias} is on its "
            f"target {target}, which may have taken writes since), so it is now recorded "
            "SWAPPED",
            hint=f"`reindex-fsm undo {run_id}` moves the alias back (it checks for those "
            "writes first)",
        )
        self.run_id = run_id


# -- batches --


class BatchNotFound(ReindexFsmError):
    exit_code = ExitCode.RUN_NOT_FOUND

    def __init__(self, batch_id: str) -> None:
        super().__init__(
            f"no batch with ID {batch_id!r} in the state database",
            hint="list batches with `reindex-fsm history --batches`, or check --state-db",
        )
        self.batch_id = batch_id


class BatchFinished(UsageError):
    def __init__(self, batch_id: str, state: str) -> None:
        super().__init__(
            f"batch {batch_id} already finished in state {state}",
            hint=f"nothing to resume or abort; see `reindex-fsm show {batch_id}`",
        )
        self.batch_id = batch_id
        self.state = state
