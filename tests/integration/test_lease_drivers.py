"""On a real engine: exactly one process drives a run. A resume while the start still runs
is refused (owner, pid, host) and the start swaps; two resumes at once after a SIGKILL:
one swaps, the other is refused, and the run ends SWAPPED with writes released. SIGTERM
(and Ctrl-C) mid-copy name the real run, its task and the block. And a run's commands
refuse a second, separate cluster, writing nothing into either."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm.crashpoints import ENV_VAR as CRASH_ENV_VAR
from reindex_fsm.engine.base import LEASE_INDEX
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import ExitCode, ReindexFsmError
from reindex_fsm.machine import State
from reindex_fsm.store import open_store
from tests.support.engine import started_engine

from .conftest import Names, cli_argv, cli_env, cli_json, raw, wait_for

pytestmark = pytest.mark.integration

SLOW_COPY = ["--requests-per-second", "100", "--slices", "1"]  # 2,000 docs: about 20 s
WAIT_S = 90.0


def spawn(*args: str, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = cli_env()
    if crash_at:
        env[CRASH_ENV_VAR] = crash_at
    return subprocess.Popen(
        cli_argv(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def copying(db: str, proc: subprocess.Popen[str]) -> Any:
    """The stored run as ``show --json`` prints it, once it is REINDEXING with a first batch
    copied (else None). Read from the state database in this process, so the probe is quick
    beside a throttled copy; the test fails at once, with the start's stderr, if the start
    ended before that."""
    if proc.poll() is not None:
        _out, err = proc.communicate()
        pytest.fail(f"the start ended (exit {proc.returncode}) before its copy was seen: {err}")
    try:
        store = open_store(db, read_only=True)
    except ReindexFsmError:  # the start has not made its database yet
        return None
    try:
        runs = store.list(limit=1)
    finally:
        store.engine.dispose()
    if not runs:
        return None
    run = runs[0]
    copied = (run.progress or {}).get("created", 0)
    if run.state is State.REINDEXING and run.task_id and copied:
        return run.as_dict()
    return None


@pytest.fixture
def contested(engine: ClientEngine, names: Names, make_source: Any) -> Iterator[None]:
    make_source(2_000)
    yield
    stored = engine.get_lease(names.alias)
    if stored is not None:
        engine.delete_lease(names.alias, stored.seq_no, stored.primary_term)


def test_a_resume_while_the_start_runs_is_refused_and_the_start_swaps(
    engine: ClientEngine, engine_url: str, names: Names, tmp_path: Path, contested: None
) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    start = spawn(
        "start", "--alias", names.alias, "--force", "--json", "--state-db", db,
        "--engine-url", engine_url, *SLOW_COPY,
    )  # fmt: skip
    try:
        shown = wait_for("the copy to run", lambda: copying(db, start))
        rid = shown["run_id"]
        resumed = subprocess.run(
            cli_argv("resume", rid, "--state-db", db, "--engine-url", engine_url),
            env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert resumed.returncode == ExitCode.LOCK_HELD, resumed.stderr
        (line,) = resumed.stderr.strip().splitlines()
        host = socket.gethostname()
        assert line.startswith(
            f"error: run {rid} on alias '{names.alias}' is being driven by another process: "
        ), line
        assert f"(pid {start.pid} on host {host})" in line, line
        out, err = finish(start)
    finally:
        if start.poll() is None:
            start.kill()
            start.communicate()
    assert start.returncode == 0, err
    assert json.loads(out)["state"] == "SWAPPED"
    assert "lease lost" not in err
    _code, final = cli_json("show", rid, "--state-db", db)
    steps = [(e["from"], e["to"]) for e in final["events"]]
    assert steps.count(("REINDEXING", "VERIFYING")) == 1
    assert set(engine.get_alias(names.alias)) == {final["target_index"]}
    assert engine.get_lease(names.alias) is None


def test_two_resumes_at_once_after_a_sigkill_one_swaps_the_other_is_refused(
    engine: ClientEngine, engine_url: str, names: Names, tmp_path: Path, contested: None
) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    killed = spawn(
        "start", "--alias", names.alias, "--force", "--json", "--state-db", db,
        "--engine-url", engine_url, *SLOW_COPY, crash_at="commit.REINDEXING",
    )  # fmt: skip
    finish(killed)
    assert killed.returncode == -signal.SIGKILL
    _, runs = cli_json("history", "--state-db", db)
    rid = runs[0]["run_id"]
    resumes = [
        spawn("resume", rid, "--json", "--state-db", db, "--engine-url", engine_url)
        for _ in range(2)
    ]
    results = [(p, *finish(p)) for p in resumes]
    codes = sorted(p.returncode for p, _o, _e in results)
    assert codes == [0, ExitCode.LOCK_HELD], [(p.returncode, e[-600:]) for p, _o, e in results]
    for proc, out, err in results:
        if proc.returncode == 0:
            assert json.loads(out)["state"] == "SWAPPED"
        else:
            (line,) = err.strip().splitlines()
            assert f"run {rid} on alias '{names.alias}' is being driven by another process" in (
                line
            )
    _code, final = cli_json("show", rid, "--state-db", db)
    assert final["state"] == "SWAPPED"
    steps = [(e["from"], e["to"]) for e in final["events"]]
    assert steps.count(("REINDEXING", "VERIFYING")) == 1, steps
    assert steps.count(("VERIFYING", "SWAPPED")) == 1, steps
    assert set(engine.get_alias(names.alias)) == {final["target_index"]}
    source_settings = raw(engine, "GET", f"/{names.source}/_settings", flat_settings="true")
    assert source_settings[names.source]["settings"].get("index.blocks.write") != "true"
    assert engine.get_lease(names.alias) is None


@pytest.mark.parametrize(
    ("signum", "code", "what"),
    [
        (signal.SIGTERM, ExitCode.TERMINATED, "terminated (SIGTERM)"),
        (signal.SIGINT, ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
    ],
    ids=["sigterm", "sigint"],
)
def test_a_signal_mid_copy_names_the_run_its_task_and_the_block_and_resume_finishes(
    engine: ClientEngine,
    engine_url: str,
    names: Names,
    tmp_path: Path,
    contested: None,
    signum: int,
    code: int,
    what: str,
) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    start = spawn(
        "start", "--alias", names.alias, "--force", "--state-db", db,
        "--engine-url", engine_url, *SLOW_COPY,
    )  # fmt: skip
    try:
        shown = wait_for("the copy to run", lambda: copying(db, start))
        os.kill(start.pid, signum)
        _out, err = finish(start, timeout=60)
    finally:
        if start.poll() is None:
            start.kill()
            start.communicate()
    assert start.returncode == code, err
    rid, task = shown["run_id"], shown["task_id"]
    line = err.strip().splitlines()[-1]
    assert line == (
        f"{what}: run {rid} stopped in REINDEXING; on the server its _reindex task {task} "
        f"keeps copying into {shown['target_index']} and writes to {names.source} stay "
        f"BLOCKED; `reindex-fsm resume {rid}` continues it, `reindex-fsm abort {rid}` "
        "cancels it and lifts the block"
    ), err
    assert "RUN_ID" not in err
    # what the line says: the task runs on, the source is blocked
    status = engine.get_task(task)
    assert status is not None
    source_settings = raw(engine, "GET", f"/{names.source}/_settings", flat_settings="true")
    assert source_settings[names.source]["settings"].get("index.blocks.write") == "true"
    # and resume takes the lease back at once (its process is gone) and finishes
    resumed, final = cli_json("resume", rid, "--state-db", db, "--engine-url", engine_url)
    assert resumed == 0 and final["state"] == "SWAPPED", final


# -- another cluster ------------------------------------------------------------------------------


def test_another_url_of_the_runs_own_cluster_is_accepted(
    engine: ClientEngine, engine_url: str, names: Names, tmp_path: Path, contested: None
) -> None:
    """The same node under another name (localhost for 127.0.0.1): the run's cluster UUID."""
    other_url = engine_url.replace("127.0.0.1", "localhost")
    assert other_url != engine_url, "the test engine's URL names no 127.0.0.1"
    db = f"sqlite:///{tmp_path / 'state.db'}"
    killed = spawn(
        "start", "--alias", names.alias, "--force", "--json", "--state-db", db,
        "--engine-url", engine_url, *SLOW_COPY, crash_at="commit.REINDEXING",
    )  # fmt: skip
    finish(killed)
    assert killed.returncode == -signal.SIGKILL
    _, runs = cli_json("history", "--state-db", db)
    code, final = cli_json("resume", runs[0]["run_id"], "--state-db", db, "--engine-url", other_url)
    assert code == 0 and final["state"] == "SWAPPED", final


@pytest.fixture(scope="module")
def second_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second, separate engine (its own home, its own cluster UUID), stopped at the end."""
    home = tmp_path_factory.mktemp("eng-lease")  # per session: sessions of other kinds run too
    with started_engine(home, knn=False, heap="512m") as second:
        yield second.url


def all_indices(engine: ClientEngine) -> list[str]:
    rows = raw(engine, "GET", "/_cat/indices", format="json", expand_wildcards="all")
    return sorted(r["index"] for r in rows)


def refused(argv: list[str], db: str, url: str) -> str:
    result = subprocess.run(
        cli_argv(*argv, "--state-db", db, "--engine-url", url),
        env=cli_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == ExitCode.USAGE, (argv, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_runs_commands_refuse_another_cluster_and_the_env_var_does_not_move_it(
    engine: ClientEngine,
    engine_url: str,
    names: Names,
    tmp_path: Path,
    contested: None,
    second_cluster: str,
) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    killed = spawn(
        "start", "--alias", names.alias, "--force", "--json", "--state-db", db,
        "--engine-url", engine_url, *SLOW_COPY, crash_at="commit.REINDEXING",
    )  # fmt: skip
    finish(killed)
    assert killed.returncode == -signal.SIGKILL
    _, runs = cli_json("history", "--state-db", db)
    rid = runs[0]["run_id"]
    _, before = cli_json("show", rid, "--state-db", db)
    mine = raw(engine, "GET", "/")["cluster_uuid"]
    with connect(second_cluster, "auto") as other:
        theirs = raw(other, "GET", "/")["cluster_uuid"]
        assert theirs != mine
        other_before = all_indices(other)

        def wrong_cluster(line: str) -> bool:
            return line.startswith(
                f"error: run {rid} belongs to cluster 'reindex-fsm-engine' (UUID {mine}) at "
                f"{engine_url}, but the engine reached is cluster 'reindex-fsm-engine' (UUID "
                f"{theirs}) at {second_cluster}; nothing was written; "
            )

        for argv in (["resume", rid], ["abort", rid], ["rethrottle", rid, "100"]):
            line = refused(argv, db, second_cluster)
            assert wrong_cluster(line), line
        # nothing written into the other cluster (no lease index, no index) nor the DB
        assert all_indices(other) == other_before and LEASE_INDEX not in other_before
        _, same = cli_json("show", rid, "--state-db", db)
        assert same["state"] == "REINDEXING" and same["events"] == before["events"]
        # the variable pointing at the other cluster does not move the run: its URL wins
        env = {**cli_env(), "REINDEX_FSM_ENGINE_URL": second_cluster}
        resumed = subprocess.run(
            cli_argv("resume", rid, "--json", "--state-db", db),
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["state"] == "SWAPPED"
        assert f"REINDEX_FSM_ENGINE_URL ({second_cluster}) is not used" in resumed.stderr
        # undo of the SWAPPED run refuses the other cluster too
        line = refused(["undo", rid, "--force"], db, second_cluster)
        assert wrong_cluster(line), line
        assert all_indices(other) == other_before
    _code, swapped = cli_json("show", rid, "--state-db", db)
    assert swapped["state"] == "SWAPPED"
    assert set(engine.get_alias(names.alias)) == {swapped["target_index"]}
    assert engine.get_lease(names.alias) is None
