"""Another cluster as the source, on real engines: the CLI copies an alias from one local
engine into another, is SIGKILLed during the copy, and a resume in a new process
converges: SWAPPED, the alias on the target cluster's new index holding exactly the
source's documents (IDs and ``_source`` hashes), the source cluster left as it was.

Two pairs: the session's engine (OpenSearch 2.19) into an OpenSearch 3.x of this module,
and an Elasticsearch 7.17 of this module into that OpenSearch 3.x; each pair copied both
ways a run can (``--remote-copy scan``: the tool reads and bulk-indexes; ``reindex``: the
target cluster's ``_reindex`` from remote, in ``_seq_no`` ranges). The two extra engines
are started once for the module (homes under /tmp/remote-*-PID: two sessions at once never
share one), and stopped at its end.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm.engine.base import Engine, opaque_id_for
from reindex_fsm.engine.connect import connect
from reindex_fsm.store import open_store
from tests.support.engine import LocalEngine, started_engine

from .conftest import (
    NOTES,
    CaseResult,
    diff_docs,
    doc_hashes,
    finish,
    make_source,
    resume_args,
    run_cli,
    run_meta,
    sigkill,
    spawn,
)

pytestmark = [pytest.mark.crash, pytest.mark.needs("local_engines")]

N_DOCS = 3000
STARTS: dict[str, float] = {}  # engine -> seconds its start took, for the summary


def _engine(home: str, kind: str) -> Iterator[LocalEngine]:
    settings: dict[str, Any] = {"kind": kind, "knn": False, "heap": "512m", "security": False}
    home = f"{home}-{os.getpid()}"
    try:
        with started_engine(home, **settings) as local:
            STARTS[kind] = local.start_s
            NOTES.append(f"  remote copy: {kind} engine started in {local.start_s:.1f}s")
            yield local
    finally:
        shutil.rmtree(home, ignore_errors=True)  # stopped: its logs and config go too


@pytest.fixture(scope="module")
def opensearch3() -> Iterator[LocalEngine]:
    yield from _engine("/tmp/remote-os3", "opensearch-3")


@pytest.fixture(scope="module")
def elasticsearch7() -> Iterator[LocalEngine]:
    yield from _engine("/tmp/remote-es7", "elasticsearch-7")


def _progress(db: Path) -> tuple[str | None, dict[str, Any]]:
    if not db.exists():
        return None, {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
    try:
        row = con.execute("SELECT state, progress FROM runs").fetchone()
    except sqlite3.Error:
        return None, {}
    finally:
        con.close()
    if not row:
        return None, {}
    return row[0], json.loads(row[1]) if row[1] else {}


def _copying(progress: dict[str, Any]) -> bool:
    """The copy has written some of the documents and is not done."""
    if progress.get("strategy") == "remote-scan":
        return 0 < int(progress.get("indexed") or 0) < N_DOCS
    ranges = progress.get("ranges") or []  # some ranges copied (or copying), not all
    begun = any(r.get("done") or int(r.get("created") or 0) > 0 for r in ranges)
    return begun and not all(r.get("done") for r in ranges)


def _kill_during_copy(args: list[str], db: Path, timeout: float = 120) -> None:
    proc = spawn(args)
    deadline = time.monotonic() + timeout
    try:
        while True:
            state, progress = _progress(db)
            if state == "REINDEXING" and _copying(progress):
                break
            if proc.poll() is not None:
                done = finish(proc)
                raise AssertionError(
                    f"the start ended ({done.rc}) before the copy could be killed: "
                    f"{done.err[-1500:]}"
                )
            assert time.monotonic() < deadline, "the copy did not start in time"
            time.sleep(0.02)
    finally:
        sigkill(proc)
        proc.wait()


def _copy_and_resume(
    source: Engine,
    source_url: str,
    target_url: str,
    mode: str,
    tmp_path: Path,
    result: CaseResult,
) -> dict[str, Any]:
    alias = f"remote-{mode}-{uuid.uuid4().hex[:8]}"
    src = make_source(source, source_url, alias, N_DOCS)
    target = connect(target_url)
    db = tmp_path / "state.db"
    try:
        args = ["start", "--alias", alias, "--source-url", source_url, "--remote-copy", mode]
        args += ["--remote-batch-size", "100", "--verify", "deep", "--force", "--json"]
        args += ["--state-db", str(db), "--engine-url", target_url]
        if mode == "reindex":  # about 2 s a range: the kill lands while tasks copy
            args += ["--requests-per-second", "500", "--remote-ranges", "4"]
        began = time.monotonic()
        _kill_during_copy(args, db)
        state, progress = _progress(db)
        result.landed = state
        (run_id,) = [r["id"] for r in _runs(db)]
        done = run_cli(resume_args(db, target_url, run_id), timeout=300)
        took = time.monotonic() - began
        assert done.rc == 0, f"resume failed ({done.rc}): {done.out[-800:]} {done.err[-1500:]}"
        record = open_store(f"sqlite:///{db}").get(run_id)
        assert record.state.value == "SWAPPED", (record.state, record.error)
        assert (record.verification or {}).get("passed") is True
        index = record.target_index
        for name, props in src.aliases.items():
            assert target.get_alias(name) == {index: {name: props}}, f"alias {name}"
        got = doc_hashes(target, index)
        assert got == src.hashes, diff_docs(src.hashes, got)
        # the source cluster is as it was: its aliases on the source, no block, no index
        for name, props in src.aliases.items():
            assert source.get_alias(name) == {src.index: {name: props}}, name
        assert not src.write_blocked(), "the run blocked writes on the source cluster"
        assert [i for i, m in run_meta(source_url).items() if m.get("run_id") == run_id] == []
        assert target.list_reindex_tasks(opaque_id_for(run_id)) == [], "task left running"
        NOTES.append(
            f"  remote copy {mode}: {source.info().flavor} {source.info().version} -> "
            f"{target.info().flavor} {target.info().version}, killed in {state} after "
            f"{progress.get('indexed', progress.get('copied', 0))} documents"
            + (
                f" ({sum(1 for r in progress['ranges'] if r.get('done'))} of "
                f"{len(progress['ranges'])} ranges done)"
                if "ranges" in progress
                else ""
            )
            + ", resumed: "
            f"SWAPPED in {took:.1f}s"
        )
        result.passed = True
        return record.as_dict()
    finally:
        for name in src.aliases:
            for index in target.get_alias(name):
                target.update_aliases([{"remove": {"index": index, "alias": name}}])
        for index, meta in run_meta(target_url).items():
            if meta.get("alias") == alias:
                target.delete_index(index)
        source.delete_index(src.index)
        target.close()


def _runs(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [{"id": row[0]} for row in con.execute("SELECT id FROM runs")]
    finally:
        con.close()


@pytest.mark.parametrize("mode", ["scan", "reindex"])
def test_opensearch2_to_opensearch3_killed_during_the_copy_resumes(
    engine_url: str,
    opensearch3: LocalEngine,
    mode: str,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = f"remote-{mode}"
    source = connect(engine_url)
    try:
        record = _copy_and_resume(source, engine_url, opensearch3.url, mode, tmp_path, crash_result)
    finally:
        source.close()
    assert record["plan"]["source_cluster"]["copy"] == mode
    assert record["plan"]["source_cluster"]["flavor"] == "opensearch"


@pytest.mark.parametrize("mode", ["scan", "reindex"])
def test_elasticsearch7_to_opensearch3_killed_during_the_copy_resumes(
    elasticsearch7: LocalEngine,
    opensearch3: LocalEngine,
    mode: str,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = f"remote-{mode}"
    source = connect(elasticsearch7.url)
    try:
        record = _copy_and_resume(
            source, elasticsearch7.url, opensearch3.url, mode, tmp_path, crash_result
        )
    finally:
        source.close()
    cluster = record["plan"]["source_cluster"]
    assert (cluster["copy"], cluster["flavor"]) == (mode, "elasticsearch")
    assert cluster["version"].startswith("7.17")


@pytest.mark.parametrize("which", ["opensearch3", "elasticsearch7"])
def test_a_source_the_allowlist_does_not_name_is_refused_by_the_real_engine(
    which: str, request: pytest.FixtureRequest
) -> None:
    """The probe against a real target cluster whose allowlist (127.0.0.1:*, localhost:*)
    does not name the source: the engine refuses before it connects, and the line says
    which setting to change and where."""
    from reindex_fsm.remote import probe_remote_reindex

    local: LocalEngine = request.getfixturevalue(which)
    target = connect(local.url)
    try:
        info = target.info()
        found = probe_remote_reindex(
            target, info, "http://192.0.2.1:9200", "anything", "remote-probe-nothing", {}
        )
        assert found["allowed"] is False, found
        assert "not in the allowlist" in found["detail"]
        setting, config = (
            ("reindex.remote.whitelist", "elasticsearch.yml")
            if info.flavor == "elasticsearch"
            else ("reindex.remote.allowlist", "opensearch.yml")
        )
        assert f'add "192.0.2.1:9200" to {setting} in {config}' in found["fix"]
        assert not target.index_exists("remote-probe-nothing")
    finally:
        target.close()


def test_block_source_writes_blocks_the_source_cluster_until_the_swap(
    engine_url: str, opensearch3: LocalEngine, tmp_path: Path
) -> None:
    """--block-source-writes: the write block is put on the source index on the source
    cluster before the copy (writers there get 403) and comes off at the swap."""
    alias = f"remote-block-{uuid.uuid4().hex[:8]}"
    source = connect(engine_url)
    src = make_source(source, engine_url, alias, 500)
    target = connect(opensearch3.url)
    db = tmp_path / "state.db"
    try:
        args = ["start", "--alias", alias, "--source-url", engine_url, "--remote-copy", "scan"]
        args += ["--block-source-writes", "--remote-batch-size", "50", "--force", "--json"]
        args += ["--state-db", str(db), "--engine-url", opensearch3.url]
        proc = spawn(args)
        deadline = time.monotonic() + 60
        while _progress(db)[0] != "REINDEXING" and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        blocked_during = src.write_blocked()
        done = finish(proc)
        assert done.rc == 0, done.err[-1500:]
        (run_id,) = [r["id"] for r in _runs(db)]
        record = open_store(f"sqlite:///{db}").get(run_id)
        assert record.state.value == "SWAPPED"
        assert blocked_during or record.write_policy["blocked_periods"], record.write_policy
        assert record.write_policy["index"] == src.index and not record.write_policy["blocked"]
        assert not src.write_blocked(), "the block was left on the source cluster"
        assert doc_hashes(target, record.target_index) == src.hashes
    finally:
        for name in src.aliases:
            for index in target.get_alias(name):
                target.update_aliases([{"remove": {"index": index, "alias": name}}])
        for index, meta in run_meta(opensearch3.url).items():
            if meta.get("alias") == alias:
                target.delete_index(index)
        if src.write_blocked():
            source.remove_write_block(src.index)
        source.delete_index(src.index)
        source.close()
        target.close()
