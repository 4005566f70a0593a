"""The engine lease on the fake engine: taking, expiry, own-run takeover, --force-unlock,
lost-lease detection before a write, release, and how start/resume/abort use it."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.engine.base import StoredLease
from reindex_fsm.errors import ExitCode, LeaseConflict, LockHeld
from reindex_fsm.lease import Holder, Lease, LeaseKeeper, this_process
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, NOW, SOURCE, TARGET, db_rows, make_config


class Clock:
    """A settable wall clock for lease expiry."""

    def __init__(self, t: datetime = NOW) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def keeper(fake: FakeEngine, clock: Clock, run_id: str, **kw: Any) -> LeaseKeeper:
    return LeaseKeeper(
        fake,
        ALIAS,
        run_id,
        state_db=f"sqlite:///state-of-{run_id}.db",
        ttl_s=kw.pop("ttl_s", 60),
        now=clock,
        owner=f"op@host-{run_id}:1",
        **kw,
    )


def dead_process() -> Holder:
    """A process of this host that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return Holder(socket.gethostname(), proc.pid, this_process().pid_ns)


def stored(fake: FakeEngine) -> Lease:
    found = fake.get_lease(ALIAS)
    assert found is not None
    return Lease.from_stored(ALIAS, found)


def test_a_free_alias_is_taken_with_owner_heartbeat_and_expiry() -> None:
    fake, clock = FakeEngine(), Clock()
    keeper(fake, clock, "run-a").acquire()
    assert fake.call_names() == ["get_lease", "put_lease"]
    assert str(fake.calls[-1]) == "put_lease(documents, create)"
    lease = stored(fake)
    assert (lease.run_id, lease.owner, lease.state_db) == (
        "run-a",
        "op@host-run-a:1",
        "sqlite:///state-of-run-a.db",
    )
    assert lease.acquired_at == lease.heartbeat_at == NOW
    assert lease.expires_at == NOW + timedelta(seconds=60)


def test_a_held_lease_refuses_another_run_naming_the_holder() -> None:
    fake, clock = FakeEngine(), Clock()
    keeper(fake, clock, "run-a").acquire()
    clock.advance(15)
    with pytest.raises(LockHeld) as held:
        keeper(fake, clock, "run-b").acquire()
    assert held.value.exit_code == ExitCode.LOCK_HELD and held.value.run_id == "run-a"
    assert held.value.one_line().startswith(
        "alias 'documents' is locked by run run-a, owner op@host-run-a:1, "
        "state DB sqlite:///state-of-run-a.db, expires in 45 s; wait for"
    )
    assert stored(fake).run_id == "run-a"


def test_an_expired_lease_is_taken_over_and_its_holder_finds_it_lost() -> None:
    fake, clock = FakeEngine(), Clock()
    first = keeper(fake, clock, "run-a")
    first.acquire()
    clock.advance(61)
    second = keeper(fake, clock, "run-b")
    second.acquire()
    assert stored(fake).run_id == "run-b"
    with pytest.raises(LockHeld, match="lease lost: alias 'documents' is locked by run run-b"):
        first.renew()
    with pytest.raises(LockHeld):  # and it stays lost
        first.check()
    first.release()  # not ours any more: the new holder's lease stays
    assert stored(fake).run_id == "run-b"
    second.release()
    assert fake.leases == {}


def test_renewal_extends_the_lease_and_keeps_acquired_at() -> None:
    fake, clock = FakeEngine(), Clock()
    k = keeper(fake, clock, "run-a")
    k.acquire()
    clock.advance(50)
    k.renew()
    lease = stored(fake)
    assert lease.acquired_at == NOW and lease.heartbeat_at == NOW + timedelta(seconds=50)
    assert lease.expires_at == NOW + timedelta(seconds=110)
    clock.advance(50)  # past the first expiry, not the renewed one
    with pytest.raises(LockHeld):
        keeper(fake, clock, "run-b").acquire()


def test_the_runs_own_lease_is_taken_back_at_once_from_a_dead_process() -> None:
    fake, clock = FakeEngine(), Clock()
    keeper(fake, clock, "run-a", process=dead_process()).acquire()  # then it is SIGKILLed
    resumed = keeper(fake, clock, "run-a")
    resumed.acquire()  # no wait for the expiry
    assert resumed.held is not None and stored(fake).holder == this_process()


def test_force_unlock_takes_a_live_lease_with_a_warning() -> None:
    fake, clock, warnings = FakeEngine(), Clock(), []
    keeper(fake, clock, "run-a").acquire()
    keeper(fake, clock, "run-b", warn=warnings.append).acquire(force=True)
    assert stored(fake).run_id == "run-b"
    (warning,) = warnings
    assert warning.startswith(
        "--force-unlock: took over the lease of alias 'documents' from run run-a "
        "(owner op@host-run-a:1,"
    )


def test_a_lost_answer_retried_into_a_conflict_is_recognised_as_ours() -> None:
    """The client retries a write whose answer was lost: the retry meets our own write."""

    class LostAnswers(FakeEngine):
        def put_lease(self, key: str, doc: Any, **kw: Any) -> StoredLease:
            super().put_lease(key, doc, **kw)
            raise LeaseConflict(key)

    fake, clock = LostAnswers(), Clock()
    k = keeper(fake, clock, "run-a")
    k.acquire()
    k.renew()
    assert k.lost is None and stored(fake).run_id == "run-a"


def test_a_failover_of_the_lease_index_does_not_lose_the_lease() -> None:
    """A new primary (or seq_no) for the same document: still our lease, renewed there."""
    fake, clock = FakeEngine(), Clock()
    k = keeper(fake, clock, "run-a")
    k.acquire()
    doc, _seq_no = fake.leases[ALIAS]
    fake.leases[ALIAS] = (doc, 41)  # as after a primary promotion: same content, new position
    clock.advance(20)
    k.renew()
    assert k.lost is None and stored(fake).heartbeat_at == NOW + timedelta(seconds=20)
    doc, _seq_no = fake.leases[ALIAS]
    fake.leases[ALIAS] = (doc, 77)
    k.release()
    assert fake.leases == {}


def test_the_heartbeat_renews_from_a_thread() -> None:
    fake = FakeEngine()
    k = LeaseKeeper(fake, ALIAS, "run-a", state_db="x", ttl_s=1, now=Clock())
    k.acquire()
    k.start_heartbeat()
    deadline = time.monotonic() + 10
    while fake.call_names().count("put_lease") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    k.stop_heartbeat()
    assert fake.call_names().count("put_lease") >= 3  # taken, then renewed every ttl/3


# -- through the commands --------------------------------------------------------------------


def other_holder(fake: FakeEngine, run_id: str = "elsewhere1") -> None:
    """Another operator's run (another state database) holds the alias."""
    keeper(fake, Clock(), run_id).acquire()


def test_start_refused_by_the_lease_leaves_everything_untouched(
    cfg: Config, fake: FakeEngine, state_db: str
) -> None:
    other_holder(fake)
    engine_before, db_before = fake.snapshot(), db_rows(state_db)
    writes_before = fake.call_names(mutating_only=True)
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force"], obj=cfg)
    assert result.exit_code == ExitCode.LOCK_HELD
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: alias 'documents' is locked by run elsewhere1, owner op@")
    assert fake.snapshot() == engine_before and db_rows(state_db) == db_before
    assert fake.call_names(mutating_only=True) == writes_before
    assert stored(fake).run_id == "elsewhere1"


def test_force_unlock_on_start_warns_and_runs(cfg: Config, fake: FakeEngine) -> None:
    other_holder(fake)
    result = CliRunner().invoke(
        cli, ["start", "--alias", ALIAS, "--force", "--force-unlock"], obj=cfg
    )
    assert result.exit_code == 0, result.stderr
    assert "warning: --force-unlock: took over the lease of alias 'documents' from run " in (
        result.stderr
    )
    assert fake.leases == {}  # released at SWAPPED


def test_a_refused_database_lock_gives_the_lease_back(
    cfg: Config, fake: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = cfg.repo()

    def raced(*_a: Any, **_k: Any) -> None:  # another start of this database won the row
        raise LockHeld(ALIAS, "racer000001", "PLANNED")

    monkeypatch.setattr(repo, "create", raced)
    with pytest.raises(LockHeld, match="racer000001"):
        api.start(cfg, ALIAS, RunOptions())
    assert fake.leases == {}
    assert "create_index" not in fake.call_names()


def test_a_lease_lost_during_the_copy_stops_the_run_before_the_swap(
    cfg: Config, fake: FakeEngine
) -> None:
    original = fake.get_task

    def taken_over(task_id: str) -> Any:  # someone --force-unlocks while we copy
        if fake.leases and fake.get_lease(ALIAS).doc["run_id"] != "usurper01":  # type: ignore[union-attr]
            keeper(fake, Clock(), "usurper01").acquire(force=True)
        return original(task_id)

    fake.get_task = taken_over  # type: ignore[method-assign]
    with pytest.raises(LockHeld, match="lease lost: alias 'documents' is locked by run usurper01"):
        api.start(cfg, ALIAS, RunOptions())
    (record,) = cfg.repo().list()
    assert record.state is State.REINDEXING  # the copy's end not stored either: not FAILED
    assert "update_aliases" not in fake.call_names()
    assert fake.indices[SOURCE].aliases  # the alias did not move
    fake.get_task = original  # type: ignore[method-assign]
    fake.leases.clear()  # the usurper is done
    assert api.resume(cfg, record.id).record.state is State.SWAPPED
    assert ALIAS in fake.indices[TARGET].aliases and fake.leases == {}


def test_resume_after_a_crash_takes_the_runs_own_lease_without_waiting(
    cfg: Config, fake: FakeEngine
) -> None:
    fake.task_script = TaskScript(docs_per_poll=500)
    fake.fail_on("get_task", nth=2, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        api.start(cfg, ALIAS, RunOptions())
    (record,) = cfg.repo().list()
    assert stored(fake).run_id == record.id  # left behind, not released
    assert api.resume(cfg, record.id).record.state is State.SWAPPED
    assert fake.leases == {}


def test_another_database_cannot_resume_or_abort_over_a_held_lease(
    fake: FakeEngine, tmp_path: Path
) -> None:
    mine = make_config(fake, f"sqlite:///{tmp_path / 'mine.db'}")
    fake.task_script = TaskScript(fail_after_polls=1)
    failed = api.start(mine, ALIAS, RunOptions()).record
    assert failed.state is State.FAILED
    assert stored(fake).run_id == failed.id  # a FAILED run's lease is not released: expires
    fake.leases.clear()  # expired meanwhile; another operator starts on the alias
    theirs = make_config(fake, f"sqlite:///{tmp_path / 'theirs.db'}")
    fake.task_script = TaskScript(stall=True)
    fake.fail_on("get_task", nth=1, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        api.start(theirs, ALIAS, RunOptions(target_index="documents-theirs"))
    with pytest.raises(LockHeld):
        api.resume(mine, failed.id)
    with pytest.raises(LockHeld):
        api.abort(mine, failed.id)
    assert mine.repo().get(failed.id).state is State.FAILED


def test_a_lease_left_by_a_finished_run_of_this_database_is_taken_at_once(
    cfg: Config, fake: FakeEngine
) -> None:
    """Killed after its last commit (SWAPPED), before releasing: the lease names a run this
    database knows to be finished, so the next start need not wait for the expiry."""
    first = api.start(cfg, ALIAS, RunOptions()).record
    assert first.state.value == "SWAPPED" and fake.leases == {}
    keeper(fake, Clock(), first.id).acquire()  # as if the release never happened
    second = api.start(cfg, ALIAS, RunOptions()).record
    assert second.state.value == "SWAPPED", second.error
    assert fake.leases == {}


def test_a_lease_of_a_run_unknown_to_this_database_still_waits_for_its_expiry(
    cfg: Config, fake: FakeEngine
) -> None:
    other_holder(fake, "unknown0001")
    with pytest.raises(LockHeld, match="unknown0001"):
        api.start(cfg, ALIAS, RunOptions())
