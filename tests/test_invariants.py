"""The run's invariants under random schedules, on the fake engine (hypothesis, stateful).

A schedule mixes: starts and resumes with random options; "processes" killed at a random
crash point (an exception nothing in the tool may catch: the process's memory is gone,
the state database and the cluster stay) or paused there while something else happens;
engine faults (once, on the Nth call of a method; sticky, until healed; refused
connections; tasks that fail or vanish); other actors (a client writing through the
alias, someone moving the alias or deleting the target or the source, a lease document
overwritten, a second process resuming or aborting the run); and operator commands
(abort, undo, cleanup, rethrottle, resume of finished runs).

After every step (no process running):
- the alias is on exactly one index, and that index holds every document a client was
  told was written through the alias, as last acknowledged (once an actor deleted the
  index the alias was on, the data is gone: only "not worse" is checked, at most one);
- the tool never added an alias the run does not own (every alias it adds is moved there
  from the run's other index in the same request, or restores one that vanished onto the
  run's own source);
- a write block is on an index only while an unfinished run of this database records
  holding it;
- every stored state and transition is one of machine.TRANSITIONS, in order;
and around every command: every failure raised is a ReindexFsmError; exit 0 means the
goal was reached; a process whose lease was taken over (a stolen lease, another process
resuming or aborting the run) writes nothing more, to the state database or the engine.
At the end, with the faults healed and the leases expired, the unfinished run can be
finished: resumed to its end when nobody touched its indices, else aborted.

Profiles (tests/conftest.py): the unit suite runs "invariants-quick", 500 schedules of 4
steps in two halves, each with a fixed seed (other seeds than the slow tests'); the `slow`
tests, which CI runs, run "invariants", 5,000 schedules of 4 steps in two halves (about
100 s on 2 cores under `-n 2`), and "invariants-slow", 2,000 longer schedules of 12 steps.
`REINDEX_FSM_INVARIANTS_SEED=<int>` adds to the seeds to explore other schedules.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import StaticPool

from reindex_fsm import api, gate, lease
from reindex_fsm.api import Config
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.engine.base import ENGINE_WRITES
from reindex_fsm.errors import (
    EngineError,
    EngineUnreachable,
    ReindexFsmError,
    SwappedNotRolledBack,
)
from reindex_fsm.machine import TRANSITIONS, UNFINISHED, State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.views import is_blocked
from reindex_fsm.store import RunRecord, RunRepository, _sqlite_pragmas, migrate
from reindex_fsm.testing.fake import FakeEngine, TaskScript

ALIAS = "docs"
SOURCE = "docs-v1"
OTHER, OTHER_ALIAS = "other-v1", "other"  # never any run's: must never change
NOW = datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)
N_DOCS = 6
OLD = "2026-11-24T00:00:00.000+00:00"
MAPPINGS = {"properties": {"title": {"type": "keyword"}, "updated_at": {"type": "date"}}}
DB_URL = "sqlite:///invariants-in-memory.db"  # shown in lease documents only
WRITES = ENGINE_WRITES  # engine calls that change something (the lease's own aside)
FAULT_METHODS = sorted(
    WRITES
    | {
        "get_task",
        "list_reindex_tasks",
        "refresh",
        "count",
        "get_index",
        "get_index_aliases",
        "index_exists",
        "cluster_health",
        "put_lease",
        "get_lease",
        "search",
        "scan",
    }
)
# (trigger, from, to) of every transition in the machine's own table.
ALLOWED: set[tuple[str, str, str]] = {
    (t["trigger"], str(src), str(t["dest"]))
    for t in TRANSITIONS
    for src in (t["source"] if isinstance(t["source"], list) else [t["source"]])
}
MAX_SLEEPS = 5000  # a command that sleeps more often than this on the fake clock never ends


class SimulatedKill(BaseException):
    """SIGKILL at a crash point: nothing in the tool may catch it."""


class NeverEnds(BaseException):
    """A command kept polling the fake clock far beyond any wait the tool allows."""


# One in-memory state database for the whole session (its SQL compilation cache stays
# warm); each example empties it. Migrated with the real Alembic migrations.
_DB = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
event.listen(_DB, "connect", _sqlite_pragmas)
event.listen(_DB, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
_migrated = False


def _fresh_db() -> None:
    global _migrated
    if not _migrated:
        migrate(_DB)
        _migrated = True
    with _DB.connect() as conn:
        conn.connection.dbapi_connection.executescript(  # type: ignore[union-attr]
            "DELETE FROM alias_locks; DELETE FROM run_events; DELETE FROM runs;"
        )


# Every "process" has its own lease owner (user@host:pid in production).
_owner = ["proc-0"]


def _current_owner() -> str:
    return _owner[0]


OPTIONS = st.builds(
    dict,
    verify=st.booleans(),
    rollback_on_failure=st.booleans(),
    write_policy=st.sampled_from(["block", "catch-up"]),
    slices=st.sampled_from(["auto", 1, 2]),
    requests_per_second=st.sampled_from([None, None, 50.0]),
    bulk_tuning=st.booleans(),
    pause_before_swap=st.booleans(),
)
INTERFERENCES = [
    "write",
    "write",
    "steal_lease",
    "second_resume",
    "abort",
    "swap",
    "rethrottle",
    "move_alias",
    "delete_target",
    "delete_source",
    "vanish_task",
]
# Where a process dies or pauses: a crash point by name (first occurrence, or the Kth
# progress checkpoint), or the Nth crash point whatever its name.
POINTS = [
    *(f"commit.{state}" for state in State),
    "create_target.engine_done",
    "checkpoint.write_block",
    "write_policy.blocked",
    "start_copy.engine_done",
    "checkpoint.copy_restarted",
    "catch_up.pass_started",
    "checkpoint.catch_up_pass",
    "catch_up.deletes_reconciled",
    "verify.settings_restored",
    "swap.engine_done",
    "write_policy.released",
    "rollback.cancel_sent",
    "rollback.aliases_restored",
    "rollback.engine_done",
    "undo.engine_done",
    "checkpoint.swap_approved",  # swap RUN_ID asked for, nothing of it done yet
    "checkpoint.source_changed_at_the_gate",
    *(f"checkpoint.progress#{k}" for k in range(1, 7)),
]
AT = st.one_of(st.sampled_from(POINTS), st.integers(1, 40))
CRASH = st.one_of(
    st.none(),
    st.tuples(st.just("kill"), AT),
    st.tuples(st.just("pause"), AT, st.sampled_from(INTERFERENCES)),
)


class Invariants(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        _fresh_db()
        self.repo = RunRepository(_DB, self.now)
        self.wall_s = 0.0  # the world's wall clock, past NOW (leases expire on it)
        self.mono = 0.0  # the processes' monotonic clock (polls, timeouts)
        self.sleeps = 0
        self.pids = itertools.count(1)
        self.fake = self._cluster()
        # what the alias must hold: the documents as last acknowledged to a client
        self.expected: dict[str, dict[str, Any]] = copy.deepcopy(self.fake.indices[SOURCE].docs)
        self.other_before = copy.deepcopy(self._other())
        self.broken = False  # an actor deleted the index the alias was on: data gone
        self.touched = False  # an actor moved the alias or deleted/re-made an index
        self.writer_on_polls = False
        self.busy = False  # a client writes through the alias before every command
        self.n_writes = 0
        self.driving: str | None = None  # the command running now (alias checks)
        self.violations: list[str] = []  # alias additions the tool should not have made
        self.fence: tuple[str, int, int] | None = None  # the paused process lost its lease
        self.nested_errors: list[BaseException] = []
        self.manual = itertools.count(1)
        self._runs: list[RunRecord] | None = None
        self.commands = 0  # commands run so far (only they write the state database)
        self._checked_at = -1

    # -- the world -----------------------------------------------------------------------
    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.wall_s)

    def clock(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.mono += seconds
        self.sleeps += 1
        if self.sleeps > MAX_SLEEPS:
            raise NeverEnds(f"{self.driving} slept {self.sleeps} times")

    def _cluster(self) -> FakeEngine:
        fake = FakeEngine()
        docs = {f"d{i}": {"title": f"doc {i}", "updated_at": OLD} for i in range(N_DOCS)}
        fake.add_index(SOURCE, docs, mappings=MAPPINGS, aliases={ALIAS: {"is_write_index": True}})
        fake.add_index(
            OTHER, {"o": {"title": "other"}}, mappings=MAPPINGS, aliases={OTHER_ALIAS: {}}
        )
        fake.task_script = TaskScript(docs_per_poll=4)
        fake.auto_create_missing_dest = True  # as a real engine: the invariants judge it
        original_aliases, original_get_task = fake.update_aliases, fake.get_task

        def update_aliases(actions: list[dict[str, Any]]) -> None:
            before = self.placement()
            original_aliases(actions)
            self._check_alias_moves(before, self.placement())

        def get_task(task_id: str) -> Any:
            if self.writer_on_polls:  # a client writing while the tool polls its task
                self.client_write(("insert", "update", "delete")[self.n_writes % 3])
            return original_get_task(task_id)

        fake.update_aliases = update_aliases  # type: ignore[method-assign]
        fake.get_task = get_task  # type: ignore[method-assign]
        return fake

    def placement(self) -> dict[str, set[str]]:
        """alias -> the indices it is on."""
        out: dict[str, set[str]] = {}
        for name, idx in self.fake.indices.items():
            for alias in idx.aliases:
                out.setdefault(alias, set()).add(name)
        return out

    def runs(self, fresh: bool = False) -> list[RunRecord]:
        """Every run of the state database, oldest first (cached between commands)."""
        if fresh or self._runs is None:
            with _DB.connect() as conn:
                order = [r[0] for r in conn.execute(text("SELECT id FROM runs ORDER BY rowid"))]
            found = {r.id: r for r in self.repo.list(limit=None)}
            self._runs = [found[i] for i in order]
        return self._runs

    def latest(self) -> RunRecord | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def _check_alias_moves(self, before: dict[str, set[str]], after: dict[str, set[str]]) -> None:
        """Every alias the tool adds is moved from the other index of one of its runs in
        the same request, or restores a vanished one onto a run's own source."""
        runs = self.runs(fresh=True)
        pairs = {(r.source_index, r.target_index) for r in runs}
        sources = {r.source_index: (r.plan or {}).get("source_uuid") for r in runs}
        for alias, indices in after.items():
            for index in indices - before.get(alias, set()):
                removed = before.get(alias, set()) - indices
                moved = any((r, index) in pairs or (index, r) in pairs for r in removed)
                restored = (
                    not before.get(alias)
                    and index in sources
                    and self.fake.indices[index].settings.get("index.uuid") == sources[index]
                )
                if not (moved or restored):
                    self.violations.append(
                        f"{self.driving}: added alias {alias} to {index} "
                        f"(it was on {sorted(before.get(alias, set()))})"
                    )

    def client_write(self, kind: str) -> bool:
        """A client writes through the alias; what it is told was done is expected."""
        on = self.placement().get(ALIAS, set())
        if len(on) != 1:
            return False
        self.n_writes += 1
        ids = sorted(self.expected)
        doc = {
            "title": f"write {self.n_writes}",
            "updated_at": self.now().isoformat("T", "milliseconds"),
        }
        if kind == "insert" or not ids:
            doc_id, source = f"w{self.n_writes}", doc
        elif kind == "update":
            doc_id, source = ids[self.n_writes % len(ids)], doc
        else:
            doc_id, source = ids[self.n_writes % len(ids)], None
        try:
            self.fake.write(ALIAS, doc_id, source)
        except EngineError:
            return False  # refused (write block): the client knows it was not written
        if source is None:
            self.expected.pop(doc_id, None)
        else:
            self.expected[doc_id] = copy.deepcopy(source)
        return True

    # -- processes -----------------------------------------------------------------------
    def config(self, crash: Crashpoints | None = None) -> Config:
        cfg = Config(
            state_db=DB_URL,
            engine_url=self.fake.url,
            engine_factory=lambda url, kind, **kw: self.fake,
            now=self.now,
            clock=self.clock,
            sleep=self.sleep,
            crash=lambda: crash or Crashpoints(),
        )
        cfg._repo = RunRepository(_DB, self.now)
        return cfg

    @contextmanager
    def process(self, what: str) -> Iterator[str]:
        outer = (_owner[0], self.driving)
        _owner[0] = f"proc-{next(self.pids)}"
        self.driving = what
        try:
            yield _owner[0]
        finally:
            _owner[0], self.driving = outer

    def writes_so_far(self) -> tuple[int, int]:
        with _DB.connect() as conn:
            events = conn.execute(text("SELECT count(*) FROM run_events")).scalar() or 0
        engine_writes = sum(1 for c in self.fake.calls if c.method in WRITES)
        return int(events), engine_writes

    def command(
        self, what: str, verb: Callable[[Config], Any], crash: Any, run_id: str | None = None
    ) -> Any:
        """Run one command in a new process, maybe killed or paused at a crash point."""
        if self.busy:
            self.client_write(("insert", "update", "delete")[self.n_writes % 3])
        self.sleeps = 0
        self.fence, self.nested_errors = None, []
        points: Crashpoints | None = None
        if crash is not None:
            if crash[0] == "kill":
                points = Crashpoints(crash[1], self._kill)
            else:
                points = Crashpoints(crash[1], lambda name: self._interfere(crash[2], run_id))
        result: Any = None
        with self.process(what):
            try:
                result = verb(self.config(points))
            except SimulatedKill:
                result = None
            except ReindexFsmError as exc:
                result = exc
            finally:
                self._runs = None
                self.commands += 1
        for exc in self.nested_errors:
            raise exc
        if self.fence is not None:
            who, events, engine_writes = self.fence
            now_events, now_writes = self.writes_so_far()
            written = [c.method for c in self.fake.calls if c.method in WRITES]
            assert (now_events, now_writes) == (events, engine_writes), (
                f"{what}: kept writing after {who} took the run over "
                f"({now_events - events} state DB events, {now_writes - engine_writes} "
                f"engine writes: {written[engine_writes:]})"
            )
        return result

    @staticmethod
    def _kill(name: str) -> None:
        raise SimulatedKill(name)

    def _interfere(self, kind: str, run_id: str | None) -> None:
        """Something else happens while the process is paused at a crash point."""
        record = self.repo.find(run_id) if run_id else self.runs(fresh=True)[-1]
        paused = _owner[0]
        held = self._lease_owner() == paused
        self._interference(kind, record)
        if held and self._lease_owner() != paused:  # taken over: the paused one must stop
            self.fence = (f"{kind} while paused", *self.writes_so_far())

    def _lease_owner(self) -> str | None:
        found = self.fake.leases.get(ALIAS)
        return found[0].get("owner") if found else None

    def _interference(self, kind: str, record: RunRecord | None) -> None:
        if kind == "write":
            for k in ("insert", "update", "delete"):
                self.client_write(k)
        elif kind == "steal_lease":
            self.steal_lease()
        elif kind in ("second_resume", "abort", "swap") and record is not None:
            verb = {"second_resume": api.resume, "abort": api.abort, "swap": gate.swap}[kind]
            with self.process(f"{kind} while {self.driving}"):
                try:
                    verb(self.config(), record.id)
                except ReindexFsmError:
                    pass  # e.g. refused (LockHeld): the first process drives on
                except BaseException as exc:
                    self.nested_errors.append(exc)
        elif kind == "rethrottle" and record is not None:
            try:
                api.rethrottle(self.config(), record.id, 10.0)
            except ReindexFsmError:
                return
            except BaseException as exc:
                self.nested_errors.append(exc)
        elif kind == "move_alias":
            self.move_alias()
        elif kind == "delete_target" and record is not None:
            self._delete(record.target_index)
        elif kind == "delete_source" and record is not None:
            self._delete(record.source_index)
        elif kind == "vanish_task":
            self.vanish_tasks()

    def _outcome(self, what: str, result: Any) -> None:
        if isinstance(result, api.Outcome):
            state = result.record.state
            if result.exit_code == 0:
                wanted = (
                    (State.ROLLED_BACK, State.CANCELLED) if result.aborted else (State.SWAPPED,)
                )
                assert state in wanted, f"{what} exited 0 with the run {state}"

    @initialize(busy=st.booleans())
    def traffic(self, busy: bool) -> None:
        """A busy alias: a client writes before every command and while the tool polls."""
        self.busy = self.writer_on_polls = busy

    # -- the tool's commands ----------------------------------------------------------------
    def _run(self, i: int) -> RunRecord:
        runs = self.runs()
        return runs[i % len(runs)]

    def has_runs(self) -> bool:
        return self.latest() is not None

    @rule(options=OPTIONS, crash=CRASH)
    def start(self, options: dict[str, Any], crash: Any) -> None:
        if options["write_policy"] == "catch-up":
            options["since_field"] = "updated_at"
        opts = RunOptions(**options)
        result = self.command("start", lambda cfg: api.start(cfg, ALIAS, opts), crash)
        self._outcome("start", result)

    @precondition(has_runs)
    @rule(i=st.integers(0, 5), crash=CRASH)
    def resume(self, i: int, crash: Any) -> None:
        run_id = self._run(i).id
        result = self.command("resume", lambda cfg: api.resume(cfg, run_id), crash, run_id)
        self._outcome("resume", result)

    @precondition(has_runs)
    @rule(i=st.integers(0, 5), crash=CRASH)
    def abort(self, i: int, crash: Any) -> None:
        run_id = self._run(i).id
        result = self.command("abort", lambda cfg: api.abort(cfg, run_id), crash, run_id)
        self._outcome("abort", result)

    @precondition(has_runs)
    @rule(i=st.integers(0, 5), crash=CRASH)
    def swap(self, i: int, crash: Any) -> None:
        """swap RUN_ID: lets a run waiting at the gate through (refused for any other)."""
        run_id = self._run(i).id
        result = self.command("swap", lambda cfg: gate.swap(cfg, run_id), crash, run_id)
        self._outcome("swap", result)

    @precondition(has_runs)
    @rule(i=st.integers(0, 5), force=st.booleans(), crash=CRASH)
    def undo(self, i: int, force: bool, crash: Any) -> None:
        run_id = self._run(i).id
        before = self.placement().get(ALIAS, set())
        self.command("undo", lambda cfg: api.undo(cfg, run_id, force=force), crash, run_id)
        on = self.placement().get(ALIAS, set())
        if force and on != before and len(on) == 1:
            # --force: the operator chose to lose the writes made since the swap (also
            # when the process was killed once it had moved the alias)
            self.expected = copy.deepcopy(self.fake.indices[next(iter(on))].docs)

    @rule(
        op=st.one_of(
            st.tuples(st.just("cleanup"), st.integers(0, 2)),
            st.tuples(
                st.just("rethrottle"), st.integers(0, 5), st.sampled_from([None, 5.0, 500.0])
            ),
        )
    )
    def operator(self, op: tuple[Any, ...]) -> None:
        """cleanup or rethrottle (any time, also with no run or none copying)."""
        getattr(self, op[0])(*op[1:])

    def cleanup(self, keep: int) -> None:
        self.command("cleanup", lambda cfg: api.cleanup(cfg, ALIAS, keep), None)

    def rethrottle(self, i: int, rps: float | None) -> None:
        if not self.has_runs():
            return
        run_id = self._run(i).id
        self.command("rethrottle", lambda cfg: api.rethrottle(cfg, run_id, rps), None)

    # -- what else happens (one rule each, so that commands are most of a schedule) -------
    @rule(
        fault=st.one_of(
            st.tuples(
                st.just("fault_once"),
                st.sampled_from(FAULT_METHODS),
                st.integers(1, 6),
                st.booleans(),
            ),
            st.tuples(st.just("fault_sticky"), st.sampled_from(FAULT_METHODS)),
            st.tuples(st.just("refuse_connections")),
            st.tuples(st.just("tasks_fail"), st.booleans(), st.integers(0, 2)),
            st.tuples(st.just("next_task_vanishes")),
            st.tuples(st.just("vanish_tasks")),
            st.tuples(st.just("heal")),
        )
    )
    def engine_fault(self, fault: tuple[Any, ...]) -> None:
        getattr(self, fault[0])(*fault[1:])

    @rule(
        act=st.one_of(
            st.tuples(
                st.just("write"),
                st.sampled_from(["insert", "update", "delete"]),
                st.integers(1, 3),
            ),
            st.tuples(st.just("writer_during_polls"), st.booleans()),
            st.tuples(st.just("time_passes")),
            st.tuples(st.just("steal_lease")),
            st.tuples(st.just("move_alias")),
            st.tuples(st.just("delete_index"), st.booleans()),
            st.tuples(st.just("recreate_source")),
        )
    )
    def other_actor(self, act: tuple[Any, ...]) -> None:
        getattr(self, act[0])(*act[1:])

    # -- faults --------------------------------------------------------------------------
    def fault_once(self, method: str, nth: int, unreachable: bool) -> None:
        error = EngineUnreachable(self.fake.url, "connection reset") if unreachable else None
        self.fake.fail_on(method, nth, error)

    def fault_sticky(self, method: str) -> None:
        self.fake.fail_always(method)

    def refuse_connections(self) -> None:
        self.fake.refuse_connections()

    def tasks_fail(self, sticky: bool, after: int) -> None:
        """Reindex tasks report a bulk failure: every one from now on (sticky), or the
        one after the next ``after`` (e.g. a catch-up pass, not the main copy)."""
        failing = TaskScript(docs_per_poll=4, fail_after_polls=1)
        if sticky:
            self.fake.task_script = failing
        else:
            self.fake.next_task_scripts[:] = [TaskScript(docs_per_poll=4)] * after + [failing]

    def next_task_vanishes(self) -> None:
        self.fake.next_task_scripts.append(TaskScript(docs_per_poll=4, vanish_after_polls=1))

    def vanish_tasks(self) -> None:
        for task in self.fake.tasks.values():
            if not task.completed:
                task.vanished = True

    def heal(self) -> None:
        self.fake.heal()
        self.fake.task_script = TaskScript(docs_per_poll=4)

    # -- other actors ----------------------------------------------------------------------
    def write(self, kind: str, n: int) -> None:
        for _ in range(n):
            self.client_write(kind)

    def writer_during_polls(self, on: bool) -> None:
        self.writer_on_polls = on

    def time_passes(self) -> None:
        self.wall_s += 300  # past any lease's expiry

    def steal_lease(self) -> None:
        """Someone overwrites the alias's lease document (another run, alive)."""
        now = self.now()
        doc = {
            "alias": ALIAS,
            "run_id": "intruder",
            "owner": "someone@elsewhere:1",
            "state_db": "sqlite:///elsewhere.db",
            "acquired_at": now.isoformat(),
            "heartbeat_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=60)).isoformat(),
        }
        self.fake.leases[ALIAS] = (doc, next(self.fake._seq_nos))

    def move_alias(self) -> None:
        """Someone copies the alias's index to a new one and moves the alias there."""
        on = self.placement().get(ALIAS, set())
        if len(on) != 1:
            return
        (current,) = on
        name = f"manual-{next(self.manual)}"
        idx = self.fake.indices[current]
        self.fake.add_index(name, idx.docs, mappings=MAPPINGS)
        self.fake.indices[name].aliases[ALIAS] = idx.aliases.pop(ALIAS)
        self.touched = True

    def delete_index(self, source: bool) -> None:
        record = self.latest()
        if record is None:
            return
        self._delete(record.source_index if source else record.target_index)

    def _delete(self, name: str) -> None:
        if name not in self.fake.indices or name == OTHER:
            return
        if ALIAS in self.fake.indices[name].aliases:
            self.broken = True  # the live index, with the acknowledged writes, is gone
        del self.fake.indices[name]
        self.touched = True

    def recreate_source(self) -> None:
        """An empty index under the name of a deleted source."""
        record = self.latest()
        name = record.source_index if record else SOURCE
        if name not in self.fake.indices:
            self.fake.add_index(name, {}, mappings=MAPPINGS)
            self.touched = True

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def alias_on_one_complete_index(self) -> None:
        on = self.placement().get(ALIAS, set())
        if self.broken:
            assert len(on) <= 1, f"alias {ALIAS} on {sorted(on)}"
            return
        assert len(on) == 1, f"alias {ALIAS} on {sorted(on)}, not on exactly one index"
        (index,) = on
        docs = self.fake.indices[index].docs
        missing = sorted(set(self.expected) - set(docs))
        extra = sorted(set(docs) - set(self.expected))
        stale = sorted(k for k in self.expected if k in docs and docs[k] != self.expected[k])
        assert not (missing or extra or stale), (
            f"alias {ALIAS} on {index}: acknowledged writes lost: missing {missing}, "
            f"deleted but there {extra}, older version {stale}"
        )

    @invariant()
    def no_alias_added_that_the_run_does_not_own(self) -> None:
        assert not self.violations, self.violations
        assert self._other() == self.other_before, f"{OTHER} changed: {self._other()}"

    def _other(self) -> Any:
        idx = self.fake.indices.get(OTHER)
        if idx is None:
            return None
        return (idx.settings, idx.mappings, idx.docs, idx.aliases)

    @invariant()
    def write_block_only_while_held(self) -> None:
        blocked = {n for n in self.fake.indices if self.fake.write_blocked(n)}
        if not blocked:
            return
        holders = {
            (r.write_policy or {}).get("index")
            for r in self.runs()
            if r.state in UNFINISHED and is_blocked(r.write_policy)
        }
        assert blocked <= holders, (
            f"write block on {sorted(blocked - holders)} and no unfinished run holds it"
        )

    @invariant()
    def states_and_transitions_allowed(self) -> None:
        if self.commands == self._checked_at:
            return  # nothing stored since the last check
        self._checked_at = self.commands
        with _DB.connect() as conn:
            rows = conn.execute(
                text("SELECT run_id, from_state, to_state, trigger FROM run_events ORDER BY id")
            ).all()
            states = dict(conn.execute(text("SELECT id, state FROM runs")).all())
        at: dict[str, str] = {}
        for run_id, src, dst, trigger in rows:
            if src is None:
                assert run_id not in at and dst == State.PLANNED, (run_id, src, dst, trigger)
            else:
                assert at.get(run_id) == src, (
                    f"{run_id}: {trigger} from {src}, stored {at.get(run_id)}"
                )
                if src != dst:
                    assert (trigger, src, dst) in ALLOWED, (
                        f"{run_id}: {src} -{trigger}-> {dst} is not in the machine"
                    )
            at[run_id] = dst
        for run_id, state in states.items():
            assert state == at.get(run_id), (
                f"{run_id} stored {state}, its events say {at.get(run_id)}"
            )

    # -- the end: every unfinished run can be finished -----------------------------------
    def teardown(self) -> None:
        self.fake.heal()
        self.fake.task_script = TaskScript(docs_per_poll=4)
        self.writer_on_polls = self.busy = False
        self.wall_s += 300
        for record in self.runs():
            if record.state not in UNFINISHED:
                continue
            goal = not self.touched and record.state is not State.ABORTING
            for _attempt in range(4):
                # a run waiting at the gate (VERIFIED) is let through by swap, not resume
                at_gate = self.repo.get(record.id).state is State.VERIFIED
                verb = (gate.swap if at_gate else api.resume) if goal else api.abort
                result = self.command(
                    f"final {verb.__name__}",
                    lambda cfg, r=record, v=verb: v(cfg, r.id),
                    None,
                    record.id,
                )
                # a first resume may find a failure from before the heal (a task started
                # under a fault fails when next polled); a second one must get there (and
                # a run that pauses before its swap stops VERIFIED on the way)
                unfinished = isinstance(result, api.Outcome) and result.record.state in (
                    State.FAILED,
                    State.VERIFIED,
                )
                if not (goal and unfinished):
                    break
            if isinstance(result, SwappedNotRolledBack):  # the swap was found made: the
                # target is live, so the abort recorded SWAPPED instead (a finished end)
                assert self.repo.get(record.id).state is State.SWAPPED, result
                continue
            assert isinstance(result, api.Outcome), (
                f"{verb.__name__} of {record.id} ({record.state}) once the faults are gone: "
                f"{result!r}"
            )
            ends = (
                {State.SWAPPED, State.ROLLED_BACK} if goal else {State.ROLLED_BACK, State.CANCELLED}
            )
            assert result.record.state in ends, (
                f"{verb.__name__} of {record.id} ({record.state}) once the faults are gone "
                f"ended {result.record.state}: {result.record.error}"
            )
            if goal and result.record.state is State.ROLLED_BACK:
                assert RunOptions.from_dict(record.options).rollback_on_failure, (
                    f"resume of {record.id} rolled back without --rollback-on-failure"
                )
        self.check_all()

    def check_all(self) -> None:
        self.alias_on_one_complete_index()
        self.no_alias_added_that_the_run_does_not_own()
        self.write_block_only_while_held()
        self.states_and_transitions_allowed()


@contextmanager
def _owners() -> Iterator[None]:
    original = lease.default_owner
    lease.default_owner = _current_owner  # type: ignore[assignment]
    try:
        yield
    finally:
        lease.default_owner = original  # type: ignore[assignment]


def _run(profile: str, run_seed: int) -> None:
    machine = seed(run_seed + int(os.environ.get("REINDEX_FSM_INVARIANTS_SEED") or 0))(
        type(f"Invariants{run_seed}", (Invariants,), {})
    )
    with _owners():
        run_state_machine_as_test(machine, settings=settings.get_profile(profile))


@pytest.mark.parametrize("half", [1, 2])
def test_run_invariants_quick(half: int) -> None:
    """500 random schedules in all (2 x the "invariants-quick" profile), in the unit suite."""
    _run("invariants-quick", 100 + half)


@pytest.mark.slow
@pytest.mark.parametrize("half", [1, 2])
def test_run_invariants(half: int) -> None:
    """5,000 random schedules in all (2 x the "invariants" profile), each with its seed."""
    _run("invariants", half)


@pytest.mark.slow
def test_run_invariants_long() -> None:
    _run("invariants-slow", 1000)


# Schedules the random search reaches only rarely, run through the same machine and
# invariants every time (each is also a plain case in tests/test_invariant_cases.py).
PLAIN = {
    "verify": False,
    "rollback_on_failure": False,
    "write_policy": "block",
    "slices": "auto",
    "requests_per_second": None,
    "bulk_tuning": False,
}
PAUSED = {**PLAIN, "verify": True, "pause_before_swap": True}
CATCH_UP_PAUSED = {**PAUSED, "write_policy": "catch-up"}
SCHEDULES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "paused with catch-up, writes while it waits, swap": [
        ("start", {"options": CATCH_UP_PAUSED, "crash": None}),
        ("other_actor", {"act": ("write", "insert", 2)}),
        ("other_actor", {"act": ("write", "update", 1)}),
        ("other_actor", {"act": ("write", "delete", 1)}),
        ("swap", {"i": 0, "crash": None}),
    ],
    "paused with catch-up, the swap killed in its last pass, a write, resume": [
        ("start", {"options": CATCH_UP_PAUSED, "crash": None}),
        ("other_actor", {"act": ("write", "insert", 1)}),
        ("swap", {"i": 0, "crash": ("kill", "catch_up.pass_started")}),
        ("other_actor", {"act": ("write", "insert", 1)}),  # refused: the block is on again
        ("resume", {"i": 0, "crash": None}),
    ],
    "paused, the swap killed after it moved the alias, a write, abort": [
        ("start", {"options": PAUSED, "crash": None}),
        ("swap", {"i": 0, "crash": ("kill", "swap.engine_done")}),
        ("other_actor", {"act": ("write", "insert", 1)}),
        ("abort", {"i": 0, "crash": None}),
    ],
    "paused, the alias moved while it waits, swap": [
        ("start", {"options": PAUSED, "crash": None}),
        ("other_actor", {"act": ("move_alias",)}),
        ("swap", {"i": 0, "crash": None}),
    ],
    "paused, aborted while the swap is paused at its approval": [
        ("start", {"options": PAUSED, "crash": None}),
        ("swap", {"i": 0, "crash": ("pause", "checkpoint.swap_approved", "abort")}),
    ],
    "killed after the swap, a write, abort": [
        ("start", {"options": PLAIN, "crash": ("kill", "swap.engine_done")}),
        ("other_actor", {"act": ("write", "insert", 1)}),
        ("abort", {"i": 0, "crash": None}),
    ],
    "killed after the swap, resume, a write, undo": [
        ("start", {"options": PLAIN, "crash": ("kill", "swap.engine_done")}),
        ("resume", {"i": 0, "crash": None}),
        ("other_actor", {"act": ("write", "insert", 1)}),
        ("undo", {"i": 0, "force": False, "crash": None}),
    ],
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_known_schedules(name: str) -> None:
    with _owners():
        machine = Invariants()
        for step, arguments in SCHEDULES[name]:
            getattr(machine, step)(**copy.deepcopy(arguments))
            machine.check_all()
        machine.teardown()
