"""Exactly one process drives a run: a live holder of the run's lease refuses a resume
(naming its owner, pid and host), a dead one gives it back at once; a process that lost
its lease writes nothing more (no transition, no checkpoint, no engine write) and exits 7;
a run's commands go to the run's own cluster; Ctrl-C and SIGTERM print the real run."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config, exit_code_for
from reindex_fsm.cli import Terminated, cli
from reindex_fsm.errors import ExitCode, LockHeld, WrongCluster
from reindex_fsm.lease import Holder, LeasedEngine, LeaseKeeper, this_process
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, db_rows, make_cluster, make_config
from .test_lease import Clock, dead_process, keeper, stored


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "120"])
    yield proc.pid
    proc.kill()
    proc.wait()


def interrupted_start(cfg: Config, fake: FakeEngine) -> str:
    """A start stopped mid-copy (as by a crash): its lease left behind, the run REINDEXING."""
    fake.task_script = TaskScript(docs_per_poll=500)
    fake.fail_on("get_task", nth=2, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        api.start(cfg, ALIAS, RunOptions())
    (record,) = cfg.repo().list()
    assert record.state is State.REINDEXING
    return record.id


def make_lease_live(fake: FakeEngine, pid: int) -> None:
    """The lease of the run now names another live process of this host."""
    doc, seq_no = fake.leases[ALIAS]
    fake.leases[ALIAS] = ({**doc, "pid": pid, "owner": f"ops@{socket.gethostname()}:{pid}"}, seq_no)


# -- live or dead ----------------------------------------------------------------------------


def test_a_resume_of_a_run_a_live_process_drives_is_refused_naming_it(
    cfg: Config, fake: FakeEngine, state_db: str, live_pid: int
) -> None:
    run_id = interrupted_start(cfg, fake)
    make_lease_live(fake, live_pid)
    db_before, engine_before = db_rows(state_db), fake.snapshot()
    writes_before = fake.call_names(mutating_only=True)
    result = CliRunner().invoke(cli, ["resume", run_id], obj=cfg)
    assert result.exit_code == ExitCode.LOCK_HELD, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: run {run_id} on alias 'documents' is being driven by another process: "
        f"owner ops@{socket.gethostname()}:{live_pid} (pid {live_pid} on host "
        f"{socket.gethostname()}), "
    ), line
    assert f"`reindex-fsm abort {run_id}`" in line
    assert db_rows(state_db) == db_before and fake.snapshot() == engine_before
    assert fake.call_names(mutating_only=True) == writes_before  # not even the lease


def test_a_resume_takes_the_lease_of_a_killed_process_back_at_once(
    cfg: Config, fake: FakeEngine
) -> None:
    run_id = interrupted_start(cfg, fake)
    dead = dead_process()
    make_lease_live(fake, dead.pid)  # the pid of a process that has ended
    assert api.resume(cfg, run_id).record.state is State.SWAPPED
    assert fake.leases == {}


def test_a_failed_run_is_driven_by_nobody_so_its_resume_takes_the_lease_at_once(
    cfg: Config, fake: FakeEngine, live_pid: int
) -> None:
    """A process that stops driving a run it did not finish (FAILED) may live on (a library
    caller): its lease stays, for other state databases, but says nobody drives the run."""
    fake.task_script = TaskScript(fail_after_polls=1)
    record = api.start(cfg, ALIAS, RunOptions()).record
    assert record.state is State.FAILED
    doc, _seq_no = fake.leases[ALIAS]
    assert doc["driving"] is False and doc["run_id"] == record.id
    make_lease_live(fake, live_pid)  # its process is still alive (another pid of this host)
    fake.task_script = TaskScript()
    result = CliRunner().invoke(cli, ["resume", record.id], obj=cfg)
    assert result.exit_code == 0, result.output
    assert cfg.repo().get(record.id).state is State.SWAPPED and fake.leases == {}


def test_a_zombie_holder_is_dead() -> None:
    proc = subprocess.Popen(["sleep", "120"])
    proc.kill()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        fake, clock = FakeEngine(), Clock()
        me = this_process()
        keeper(fake, clock, "run-a", process=Holder(me.host, proc.pid, me.pid_ns)).acquire()
        keeper(fake, clock, "run-a").acquire()  # killed, not yet reaped: taken back
        assert stored(fake).holder == me
    finally:
        proc.wait()


def test_a_holder_on_another_host_is_live_until_its_lease_expires() -> None:
    fake, clock = FakeEngine(), Clock()
    keeper(fake, clock, "run-a", process=Holder("elsewhere", 1, "other-boot:1")).acquire()
    with pytest.raises(LockHeld, match="pid 1 on host elsewhere"):
        keeper(fake, clock, "run-a").acquire()
    clock.advance(61)
    keeper(fake, clock, "run-a").acquire()
    assert stored(fake).holder == this_process()


def test_a_keeper_of_this_process_is_live_while_it_drives_and_dead_once_retired() -> None:
    fake, clock = FakeEngine(), Clock()
    first = keeper(fake, clock, "run-a")
    first.acquire()
    with pytest.raises(LockHeld, match="being driven by another process"):
        keeper(fake, clock, "run-a").acquire()
    first.retire()  # its driver ended (a crash, Ctrl-C) without releasing
    second = keeper(fake, clock, "run-a")
    second.acquire()
    with pytest.raises(LockHeld, match="lease lost: run run-a on alias 'documents' is being"):
        first.renew()
    second.release()
    assert fake.leases == {}


def test_two_resumes_at_once_one_drives_the_other_is_refused(
    cfg: Config, fake: FakeEngine, state_db: str
) -> None:
    run_id = interrupted_start(cfg, fake)
    second: dict[str, Any] = {}
    original = fake.get_task

    def meanwhile(task_id: str) -> Any:  # while the first resume drives, a second one
        if not second:
            other = make_config(fake, state_db)
            try:
                api.resume(other, run_id)
            except LockHeld as exc:
                second["error"] = exc
            else:
                second["error"] = None
        return original(task_id)

    fake.get_task = meanwhile  # type: ignore[method-assign]
    outcome = api.resume(cfg, run_id)
    assert outcome.record.state is State.SWAPPED and outcome.exit_code == ExitCode.OK
    assert isinstance(second["error"], LockHeld), second
    assert second["error"].exit_code == ExitCode.LOCK_HELD
    assert "being driven by another process" in second["error"].message
    steps = [(e.from_state, e.to_state) for e in cfg.repo().events(run_id) if e.from_state]
    assert steps.count(("REINDEXING", "VERIFYING")) == 1
    assert steps.count(("VERIFYING", "SWAPPED")) == 1
    assert fake.leases == {}


# -- a lost lease ------------------------------------------------------------------------------


def test_a_lease_lost_mid_copy_writes_nothing_more_and_exits_7(
    cfg: Config, fake: FakeEngine, state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keepers: list[LeaseKeeper] = []
    monkeypatch.setattr(LeaseKeeper, "start_heartbeat", lambda self: keepers.append(self))
    fake.task_script = TaskScript(docs_per_poll=500)
    original = fake.get_task
    at_loss: dict[str, Any] = {}

    def taken_over(task_id: str) -> Any:
        status = original(task_id)
        if not at_loss and status.created >= 1000:
            (mine,) = keepers
            usurper = keeper(fake, Clock(), mine.run_id, process=Holder("elsewhere", 1, "x"))
            usurper.acquire(force=True)  # another process drives the run now
            with pytest.raises(LockHeld):
                mine.renew()  # what the heartbeat does: it finds the lease lost
            at_loss.update(calls=len(fake.calls), db=db_rows(state_db))
        return status

    fake.get_task = taken_over  # type: ignore[method-assign]
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force"], obj=cfg)
    assert result.exit_code == ExitCode.LOCK_HELD, result.output
    assert "error: lease lost: run " in result.stderr
    assert "is being driven by another process: owner op@host-" in result.stderr
    later = [c.method for c in fake.calls[at_loss["calls"] :]]
    assert not [m for m in later if m in ("put_lease", "delete_lease", *LEASE_FREE_WRITES)]
    assert db_rows(state_db) == at_loss["db"]  # no transition, no checkpoint
    (record,) = cfg.repo().list()
    assert record.state is State.REINDEXING


def test_a_driver_that_lost_its_lease_stops_polling_a_stalled_copy(
    cfg: Config, fake: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is written while a copy makes no progress: the poll itself stops."""
    keepers: list[LeaseKeeper] = []
    monkeypatch.setattr(LeaseKeeper, "start_heartbeat", lambda self: keepers.append(self))
    fake.task_script = TaskScript(stall=True)
    original = fake.get_task
    polls_after_loss: list[int] = []

    class StillPolling(Exception):
        pass

    def taken_over(task_id: str) -> Any:
        if polls_after_loss:
            polls_after_loss.append(1)
            if len(polls_after_loss) > 20:
                raise StillPolling()
        elif fake.call_names().count("get_task") == 3:
            (mine,) = keepers
            keeper(fake, Clock(), mine.run_id, process=Holder("elsewhere", 1, "x")).acquire(
                force=True
            )
            with pytest.raises(LockHeld):
                mine.renew()  # the heartbeat finds it lost
            polls_after_loss.append(0)
        return original(task_id)

    fake.get_task = taken_over  # type: ignore[method-assign]
    with pytest.raises(LockHeld, match="lease lost"):
        api.start(cfg, ALIAS, RunOptions())
    assert len(polls_after_loss) == 1  # not one poll more


LEASE_FREE_WRITES = (
    "create_index",
    "put_settings",
    "update_aliases",
    "delete_index",
    "start_reindex",
    "cancel_task",
    "bulk",
    "add_write_block",
    "remove_write_block",
    "delete_task_result",
)


def test_the_leased_engine_refuses_writes_once_the_lease_is_lost() -> None:
    fake, clock = make_cluster(10), Clock()
    k = keeper(fake, clock, "run-a")
    k.acquire()
    guarded = LeasedEngine(fake, k)
    guarded.create_index("mine", {}, {})
    usurper = keeper(fake, clock, "run-b")
    clock.advance(61)
    usurper.acquire()
    with pytest.raises(LockHeld):
        k.renew()
    with pytest.raises(LockHeld, match="lease lost"):
        guarded.delete_index("mine")
    assert fake.index_exists("mine") and guarded.count(SOURCE) == 10  # reads go on


def test_a_late_heartbeat_is_made_up_for_before_a_write() -> None:
    fake, clock = FakeEngine(), Clock()
    k = keeper(fake, clock, "run-a")
    k.acquire()
    clock.advance(20)
    k.ensure()  # renewed less than ttl/2 ago: no request
    assert fake.call_names().count("put_lease") == 1
    clock.advance(15)
    k.ensure()  # the heartbeat is late: renewed now, before the write
    assert fake.call_names().count("put_lease") == 2


def test_a_run_still_active_is_not_exit_0(cfg: Config, fake: FakeEngine) -> None:
    run_id = interrupted_start(cfg, fake)
    assert exit_code_for(cfg.repo().get(run_id)) == ExitCode.LOCK_HELD


def test_an_abort_takes_the_run_over_from_its_live_driver(fake: FakeEngine, tmp_path: Path) -> None:
    """A start in a thread of this process drives the run; abort from another
    connection takes the lease over; the start writes nothing more and reports it."""
    db = f"sqlite:///{tmp_path / 'state.db'}"
    start_cfg, abort_cfg = make_config(fake, db), make_config(fake, db)
    start_cfg.sleep = lambda _s: time.sleep(0.005)
    warnings: list[str] = []
    abort_cfg.warn = warnings.append
    start_cfg.repo(), abort_cfg.repo()
    fake.task_script = TaskScript(stall=True)
    ended: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: ended.update(outcome=api.start(start_cfg, ALIAS, RunOptions())),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not [r for r in abort_cfg.repo().list() if r.state is State.REINDEXING]:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    (record,) = abort_cfg.repo().list()
    with pytest.raises(LockHeld, match="being driven by another process"):
        api.resume(abort_cfg, record.id)
    outcome = api.abort(abort_cfg, record.id)
    thread.join(timeout=30)
    assert outcome.record.state is State.ROLLED_BACK and outcome.exit_code == ExitCode.OK
    (warning,) = warnings
    assert warning.startswith(f"abort: took run {record.id} over from the process driving it")
    assert ended["outcome"].record.state is State.ROLLED_BACK  # the start reports the abort
    assert fake.leases == {}


# -- the run's own cluster -----------------------------------------------------------------------

OTHER_URL = "http://other-cluster:9200"


def two_clusters(state_db: str) -> tuple[Config, FakeEngine, FakeEngine]:
    """The run's cluster at its URL, another cluster at OTHER_URL; no URL configured."""
    mine = make_cluster()
    other = make_cluster()
    other.url = OTHER_URL
    other.set_info(FakeEngine(cluster_uuid="other-uuid").info())
    cfg = make_config(mine, state_db)
    cfg.engine_url = None
    cfg.engine_factory = lambda url, kind, **kw: other if url == OTHER_URL else mine
    return cfg, mine, other


@pytest.mark.parametrize(
    "argv",
    [["resume"], ["abort"], ["rethrottle", "{run}", "100"], ["undo"]],
    ids=["resume", "abort", "rethrottle", "undo"],
)
def test_commands_of_a_run_refuse_another_cluster(state_db: str, argv: list[str]) -> None:
    cfg, mine, other = two_clusters(state_db)
    if argv == ["undo"]:
        run_id = api.start(cfg, ALIAS, RunOptions()).record.id
    else:
        mine.task_script = TaskScript(stall=True)
        mine.fail_on("get_task", nth=2, error=KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            api.start(cfg, ALIAS, RunOptions())
        (record,) = cfg.repo().list()
        run_id = record.id
    assert cfg.repo().get(run_id).cluster_uuid == "fake-cluster-uuid"
    db_before, mine_before, other_before = db_rows(state_db), mine.snapshot(), other.snapshot()
    mine_calls, other.calls = len(mine.calls), []
    args = [a.format(run=run_id) for a in argv] if len(argv) > 1 else [*argv, run_id]
    if argv == ["undo"]:
        args.append("--yes")  # past the question: the cluster check is what is tested
    result = CliRunner().invoke(cli, [*args, "--engine-url", OTHER_URL], obj=cfg)
    assert result.exit_code == ExitCode.USAGE, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: run {run_id} belongs to cluster 'fake' (UUID fake-cluster-uuid) at "
        f"http://fake-cluster:9200, but the engine reached is cluster 'fake' (UUID "
        f"other-uuid) at {OTHER_URL}; nothing was written; "
    ), line
    assert db_rows(state_db) == db_before
    assert mine.snapshot() == mine_before and other.snapshot() == other_before
    assert other.call_names(mutating_only=True) == [] and other.leases == {}
    assert len(mine.calls) == mine_calls


def test_the_stored_url_wins_over_the_environment(
    state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, mine, other = two_clusters(state_db)
    run_id = interrupted_start(cfg, mine)
    monkeypatch.setenv("REINDEX_FSM_ENGINE_URL", OTHER_URL)
    warnings: list[str] = []
    cfg.warn = warnings.append
    assert api.resume(cfg, run_id).record.state is State.SWAPPED
    assert other.calls == [] and other.leases == {}
    (warning,) = warnings
    assert warning.startswith(f"REINDEX_FSM_ENGINE_URL ({OTHER_URL}) is not used: run {run_id}")


def test_the_cli_reads_the_environment_as_the_variable_not_as_engine_url(
    state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, mine, other = two_clusters(state_db)
    run_id = interrupted_start(cfg, mine)
    monkeypatch.setenv("REINDEX_FSM_ENGINE_URL", OTHER_URL)
    result = CliRunner().invoke(cli, ["resume", run_id, "--json"], obj=cfg)
    assert result.exit_code == 0, result.output
    assert other.calls == [] and '"state": "SWAPPED"' in result.stdout


def test_another_node_of_the_same_cluster_is_accepted(state_db: str) -> None:
    cfg, mine, _other = two_clusters(state_db)
    run_id = interrupted_start(cfg, mine)
    node2 = "http://fake-node-2:9200"
    cfg.engine_factory = lambda url, kind, **kw: mine  # every URL reaches the run's cluster
    result = CliRunner().invoke(cli, ["resume", run_id, "--engine-url", node2], obj=cfg)
    assert result.exit_code == 0, result.output


def test_a_run_stored_without_a_cluster_uuid_is_not_checked(state_db: str) -> None:
    cfg, mine, other = two_clusters(state_db)
    run_id = interrupted_start(cfg, mine)
    record = cfg.repo().get(run_id)
    cfg.repo().checkpoint(run_id, record.state, cluster_uuid=None)  # as stored before
    mine.set_info(other.info())  # the same cluster, whatever UUID it reports now
    assert api.resume(cfg, run_id).record.state is State.SWAPPED


def test_an_engine_without_a_uuid_is_not_the_runs_cluster(state_db: str) -> None:
    cfg, mine, _other = two_clusters(state_db)
    run_id = interrupted_start(cfg, mine)
    mine.set_info(FakeEngine(cluster_uuid="").info())
    with pytest.raises(WrongCluster, match=r"UUID unknown"):
        api.resume(cfg, run_id)


# -- Ctrl-C and SIGTERM -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal_error", "code", "what"),
    [
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
        (Terminated(), ExitCode.TERMINATED, "terminated (SIGTERM)"),
    ],
    ids=["sigint", "sigterm"],
)
def test_an_interrupted_run_names_itself_its_task_and_the_block(
    cfg: Config, fake: FakeEngine, signal_error: BaseException, code: ExitCode, what: str
) -> None:
    fake.task_script = TaskScript(docs_per_poll=500)
    fake.fail_on("get_task", nth=2, error=signal_error)
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force"], obj=cfg)
    assert result.exit_code == code, result.output
    (record,) = cfg.repo().list()
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"{what}: run {record.id} stopped in REINDEXING; on the server its _reindex task "
        f"{record.task_id} keeps copying into {record.target_index} and writes to "
        f"{record.source_index} stay BLOCKED; `reindex-fsm resume {record.id}` continues "
        f"it, `reindex-fsm abort {record.id}` cancels it and lifts the block"
    )
    assert "RUN_ID" not in result.stderr
    assert api.resume(cfg, record.id).record.state is State.SWAPPED  # at once


def test_an_interrupt_before_any_run_says_so(cfg: Config, fake: FakeEngine) -> None:
    fake.fail_on("get_alias", nth=1, error=Terminated())
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force"], obj=cfg)
    assert result.exit_code == ExitCode.TERMINATED
    assert result.stderr.strip() == "terminated (SIGTERM): no run was under way; nothing to resume"
    assert cfg.repo().list() == []
