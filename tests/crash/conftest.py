"""Crash tests against a real engine: the CLI is run as a subprocess, SIGKILLed at a crash
point or at a random moment, then resumed in a new process; every case must converge.

Session fixtures give engine URLs:

* ``engine_url`` (``tests/support/engine.py``): ``REINDEX_FSM_TEST_ENGINE_URL`` when set,
  else the local engine of the test-engine launcher (stopped at the end only if this session
  started it).
* ``cluster3``: always its own three-node cluster (another engine home), so that a test may
  kill its nodes; skipped when ``REINDEX_FSM_TEST_ENGINE_URL`` is set.

Other people use this machine's engines: no node is stopped but in the session's own
three-node home, and every index and alias name carries a random per-session suffix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import ENV_VAR as CRASH_ENV
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.engine.base import Engine, opaque_id_for
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import ExitCode
from reindex_fsm.options import RunOptions
from reindex_fsm.store import open_store
from reindex_fsm.testing.sample import create_sample
from tests.support.engine import TEST_ENGINE_URL_ENV, LocalEngine, started_engine

N_DOCS = 3000  # three _reindex batches of 1,000
THROTTLE_RPS = 1000  # about one batch a second: the throttled copy lasts a few seconds
SOURCE_SETTINGS_CHECKED = ("index.number_of_replicas", "index.refresh_interval")
TERMINAL_STATES = ("SWAPPED", "ROLLED_BACK", "CANCELLED")

# -- results, for the summary line at the end of the session --------------------------


@dataclass
class CaseResult:
    kind: str
    case: str
    passed: bool = False
    landed: str | None = None  # the stored state the kill left the run in ("-": none stored)
    known_bug: str | None = None  # an expected failure (xfail) because of a tool bug


RESULTS: list[CaseResult] = []
NOTES: list[str] = []  # free-form observations (node failure test)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS and not NOTES:
        return
    tr = terminalreporter
    tr.section("crash summary")
    kinds: dict[str, list[CaseResult]] = {}
    for r in RESULTS:
        kinds.setdefault(r.kind, []).append(r)
    for kind, rs in kinds.items():
        landed: dict[str, int] = {}
        for r in rs:
            landed[r.landed or "?"] = landed.get(r.landed or "?", 0) + 1
        tr.write_line(
            f"  {kind:<16} tried {len(rs):>3}  passed {sum(r.passed for r in rs):>3}"
            f"   killed in: {', '.join(f'{k} x{v}' for k, v in sorted(landed.items()))}"
        )
    for r in RESULTS:
        if not r.passed:
            why = f" (expected: known tool bug, {r.known_bug})" if r.known_bug else ""
            tr.write_line(f"  not passed: {r.case}{why}")
    for note in NOTES:
        tr.write_line(note)
    passed = sum(r.passed for r in RESULTS)
    tr.write_line(f"crash points: tried {len(RESULTS)}, passed {passed}")


# -- engines ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    if os.environ.get(TEST_ENGINE_URL_ENV):
        pytest.skip(
            f"{TEST_ENGINE_URL_ENV} is set: the node failure test needs a cluster of its own "
            "whose nodes it can stop (unset it to let the test start a 3-node cluster)"
        )
    with started_engine(tmp_path_factory.mktemp("engine3"), 3) as cluster:
        yield cluster


# -- engine helpers ---------------------------------------------------------------------------


def http_json(url: str, path: str, method: str = "GET", body: Any = None) -> Any:
    """One plain HTTP request, for what the Engine protocol does not offer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def doc_hashes(engine: Engine, index: str) -> dict[str, str]:
    """Every document of ``index``: _id -> sha256 of its canonical _source."""
    return {
        hit["_id"]: hashlib.sha256(
            json.dumps(hit["_source"], sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        for hit in engine.scan(index)
    }


def run_meta(url: str) -> dict[str, dict[str, Any]]:
    """index -> its ``_meta.reindex_fsm``, for every index that has one (hidden ones too)."""
    body = http_json(url, "/_mapping?expand_wildcards=all&filter_path=*.mappings._meta.reindex_fsm")
    return {index: v["mappings"]["_meta"]["reindex_fsm"] for index, v in (body or {}).items()}


def diff_docs(want: dict[str, str], got: dict[str, str]) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    return (
        f"{len(got)} docs vs {len(want)}: missing {len(missing)} {missing[:3]}, "
        f"extra {len(extra)} {extra[:3]}, changed {len(changed)} {changed[:3]}"
    )


# -- the CLI as a subprocess ----------------------------------------------------------------


def _cli_prefix() -> list[str]:
    script = Path(sys.executable).with_name("reindex-fsm")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "reindex_fsm.cli"]


CLI = _cli_prefix()


def cli_env(crash_at: str | None = None) -> dict[str, str]:
    """The environment of a CLI process: none of the caller's REINDEX_FSM_* settings (every
    command gets --state-db and --engine-url), and the crash point if one is asked for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REINDEX_FSM_")}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return env


def spawn(args: list[str], crash_at: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        env=cli_env(crash_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_args(alias: str, db: Path, url: str, throttled: bool) -> list[str]:
    args = ["start", "--alias", alias, "--verify", "--force", "--json"]
    args += ["--state-db", str(db), "--engine-url", url]
    if throttled:
        args += ["--requests-per-second", str(THROTTLE_RPS), "--slices", "1"]
    return args


@dataclass
class Finished:
    rc: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.out.strip().splitlines()[-1])


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> Finished:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"CLI still running after {timeout}s; stderr: {err[-2000:]}") from None
    return Finished(proc.returncode, out, err)


def run_cli(args: list[str], crash_at: str | None = None, timeout: float = 180) -> Finished:
    return finish(spawn(args, crash_at), timeout)


def history(db: Path) -> list[dict[str, Any]]:
    """The runs of ``db``; none when the process was killed before it made the database
    (history creates none: it says so, exit 8)."""
    done = run_cli(["history", "--json", "--state-db", str(db)])
    if done.rc == ExitCode.RUN_NOT_FOUND and not db.exists():
        return []
    assert done.rc == 0, f"history failed ({done.rc}): {done.out} {done.err[-2000:]}"
    return done.json()  # type: ignore[return-value]


def show(db: Path, run_id: str) -> dict[str, Any]:
    done = run_cli(["show", run_id, "--json", "--state-db", str(db)])
    assert done.rc == 0, f"show failed ({done.rc}): {done.out} {done.err[-2000:]}"
    return done.json()


def resume_args(db: Path, url: str, run_id: str) -> list[str]:
    return ["resume", run_id, "--json", "--state-db", str(db), "--engine-url", url]


def db_state(db: Path) -> str | None:
    """The stored state of the (only) run, read directly and read-only; None if no run yet."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT state FROM runs").fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return row[0] if row else None


def wait_for_state(proc: subprocess.Popen[str], db: Path, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while db_state(db) != state:
        if proc.poll() is not None:
            raise AssertionError(f"the CLI exited ({proc.returncode}) before {state}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run did not reach {state} within {timeout}s")
        time.sleep(0.02)


def sigkill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)


# -- the source and its checks ------------------------------------------------------------------


@dataclass
class Source:
    """One sample index behind an alias (and a filtered, routed second alias)."""

    engine: Engine
    url: str
    alias: str
    index: str
    aliases: dict[str, dict[str, Any]]  # every alias of the source, with its properties
    settings: dict[str, Any]  # the source's checked settings
    hashes: dict[str, str] = field(repr=False)

    def reset(self) -> None:
        """Between cases: stop any copy out of the source, put every alias back on the source
        in one _aliases call, delete every index a run on our alias created."""
        for task in self.engine.list_reindex_tasks():
            if f"[{self.index}]" in task.description:
                with contextlib.suppress(Exception):
                    self.engine.cancel_task(task.task_id)
        deadline = time.monotonic() + 30
        while any(f"[{self.index}]" in t.description for t in self.engine.list_reindex_tasks()):
            assert time.monotonic() < deadline, "reindex tasks of the source would not stop"
            time.sleep(0.2)
        actions: list[dict[str, Any]] = []
        for name, props in self.aliases.items():
            on = self.engine.get_alias(name)
            actions += [{"remove": {"index": i, "alias": name}} for i in on if i != self.index]
            if self.index not in on:
                actions.append({"add": {"index": self.index, "alias": name, **props}})
        if actions:
            self.engine.update_aliases(actions)
        if self.write_blocked():
            self.engine.remove_write_block(self.index)
        # A process killed after taking the engine lease but before storing its run (or
        # after its last commit, in another database) leaves a lease that would hold the
        # alias until it expires; the next case is an operator who waited for that.
        lease = self.engine.get_lease(self.alias)
        if lease is not None:
            self.engine.delete_lease(self.alias, lease.seq_no, lease.primary_term)
        for index, meta in run_meta(self.url).items():
            if meta.get("alias") == self.alias and index != self.index:
                self.engine.delete_index(index)

    def write_blocked(self) -> bool:
        blocks = self.engine.get_index(self.index).settings.get("index.blocks.write")
        return str(blocks).lower() == "true"

    def owned_by(self, run_id: str) -> list[str]:
        return sorted(i for i, m in run_meta(self.url).items() if m.get("run_id") == run_id)

    def ours(self) -> list[str]:
        """Indices created by any run on our alias."""
        return sorted(
            i
            for i, m in run_meta(self.url).items()
            if m.get("alias") == self.alias and i != self.index
        )

    def assert_untouched(self) -> None:
        """Nothing was stored: the aliases are on the source, no run index exists."""
        for name, props in self.aliases.items():
            assert self.engine.get_alias(name) == {self.index: {name: props}}, name
        assert self.ours() == [], "a run that was never stored left an index"
        assert not self.write_blocked(), "a run that was never stored left a write block"

    def assert_converged(
        self, db: Path, run_id: str, want: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """SWAPPED, the aliases on the target alone, the target holding exactly the source's
        documents (or ``want``: IDs and _source hashes), no other index or running task of
        the run, the alias lock released."""
        want = self.hashes if want is None else want
        repo = open_store(f"sqlite:///{db}")
        record = repo.get(run_id)
        assert record.state.value == "SWAPPED", (record.state, record.error)
        assert record.finished_at is not None
        assert repo.active_run_for(self.alias) is None, "alias lock not released"
        target = record.target_index
        for name, props in self.aliases.items():
            assert self.engine.get_alias(name) == {target: {name: props}}, f"alias {name}"
        assert self.engine.get_index_aliases(self.index) == {}, "aliases left on the source"
        assert not self.write_blocked(), "write block left on the source"
        assert not (record.write_policy or {}).get("blocked"), "block still recorded"
        got = doc_hashes(self.engine, target)
        assert got == want, diff_docs(want, got)
        assert self.owned_by(run_id) == [target], "stray index of the run"
        assert self.engine.list_reindex_tasks(opaque_id_for(run_id)) == [], "task left running"
        settings = self.engine.get_index(target).settings
        for key, value in self.settings.items():
            assert str(settings.get(key)) == str(value), f"{key} not restored on {target}"
        return record.as_dict()


def make_source(engine: Engine, url: str, alias: str, n_docs: int, **kw: Any) -> Source:
    index = f"{alias}-src"
    extra = {f"{alias}-en": {"filter": {"term": {"lang": "en"}}, "routing": "1"}}
    count = create_sample(engine, index, alias, n_docs, extra_aliases=extra, **kw)
    assert count == n_docs
    settings = engine.get_index(index).settings
    return Source(
        engine=engine,
        url=url,
        alias=alias,
        index=index,
        aliases=engine.get_index_aliases(index),
        settings={k: settings.get(k) for k in SOURCE_SETTINGS_CHECKED},
        hashes=doc_hashes(engine, index),
    )


def drop_source(src: Source) -> None:
    with contextlib.suppress(Exception):
        src.reset()
        src.engine.delete_index(src.index)


@pytest.fixture(scope="session")
def source(engine_url: str) -> Iterator[Source]:
    """One source per session: a few thousand realistic articles behind a unique alias."""
    engine = connect(engine_url)
    src = make_source(engine, engine_url, f"crash-{uuid.uuid4().hex[:8]}", N_DOCS)
    try:
        yield src
    finally:
        drop_source(src)
        engine.close()


@dataclass
class Recording:
    plain: list[str]  # crash points of an uninterrupted, unthrottled run
    throttled: list[str]  # the same with --requests-per-second (copy lasting seconds)
    seconds: dict[str, float]


@pytest.fixture(scope="session")
def recording(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """Run twice uninterrupted, in this process, with a recording Crashpoints: the named
    points an uninterrupted run passes. Each run must converge like any crash case."""
    tmp = tmp_path_factory.mktemp("recording")
    seen: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for name, rps in (("plain", None), ("throttled", float(THROTTLE_RPS))):
        points = Crashpoints()
        db = tmp / f"{name}.db"
        cfg = api.Config(
            state_db=f"sqlite:///{db}",
            engine_url=source.url,
            crash=lambda p=points: p,  # type: ignore[misc]
        )
        t0 = time.monotonic()
        outcome = api.start(
            cfg, source.alias, RunOptions(verify=True, requests_per_second=rps, slices=1)
        )
        seconds[name] = time.monotonic() - t0
        source.assert_converged(db, outcome.record.id)
        source.reset()
        seen[name] = points.seen
    return Recording(seen["plain"], seen["throttled"], seconds)


@pytest.fixture
def crash_result(request: pytest.FixtureRequest) -> CaseResult:
    """Registers the case for the summary; the test sets its ``kind``, and ``passed`` as its
    last step."""
    result = CaseResult("other", request.node.name)
    RESULTS.append(result)
    return result


@pytest.fixture
def clean_source(source: Source) -> Iterator[Source]:
    """The session's source, reset after the case (alias back, the case's target deleted)."""
    source.reset()
    yield source
    source.reset()
