"""Fixtures for the integration suite: a real Elasticsearch or OpenSearch.

The engine (``engine_url``, from ``tests/support/engine.py``) is the cluster at
``REINDEX_FSM_TEST_ENGINE_URL`` when that is set (so the suite runs unchanged against any
cluster a user points it at), else the local OpenSearch of the test-engine launcher (reused
if it already runs in ``REINDEX_FSM_ENGINE_HOME``; stopped at the end only if this session
started it). The operator's ``REINDEX_FSM_ENGINE_URL`` is never read.

The cluster may be shared: every test works on indices and aliases under its own unique
prefix (``itest-<random>``) and deletes them at teardown, cancelling any copy into them
first. Real time is used (no fake clock), with short polls.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm.api import Config
from reindex_fsm.crashpoints import ENV_VAR as CRASH_ENV_VAR
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import EngineError, IndexNotFound, TaskNotFound
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.planning import flatten_settings, is_volatile
from reindex_fsm.testing import sample

ROOT = Path(__file__).resolve().parents[2]
BIG_DOCS = 20_000
SMALL_DOCS = 2_000
# Short polls: the defaults are tuned for long production copies.
FAST = {"poll_interval_s": 0.2, "poll_max_interval_s": 1.0}
CLI_TIMEOUT_S = 120


# -- engine ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def engine(engine_url: str) -> Iterator[ClientEngine]:
    eng = connect(engine_url)
    try:
        yield eng
    finally:
        eng.close()


def raw(engine: ClientEngine, method: str, path: str, body: Any = None, **params: str) -> Any:
    """One REST request through the adapter's client (auth and TLS as configured)."""
    return engine.request(method, path, params=params or None, body=body)


def wait_for(what: str, probe: Any, timeout: float = 90.0, every: float = 0.2) -> Any:
    """``probe()``'s first truthy value, polled every ``every`` seconds; the test fails
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# -- the engine's vector field type ------------------------------------------------------


def vector_type(engine: ClientEngine) -> str:
    """The vector field a recompute run gets by default here: dense_vector on Elasticsearch
    (on 7.x only with x-pack's vectors module, which the Elasticsearch 7.17 test engine
    lacks), knn_vector where OpenSearch's k-NN plugin is; else "float" (a plain float array,
    to be given with --vector-mapping)."""
    info = engine.info()
    if info.flavor == "elasticsearch":
        if not info.version.startswith("7."):
            return "dense_vector"
        body = raw(engine, "GET", "/_nodes/plugins", filter_path="nodes.*.modules.name")
        modules = {m["name"] for n in body["nodes"].values() for m in n["modules"]}
        return "dense_vector" if "x-pack-vectors" in modules else "float"
    return "knn_vector" if any("knn" in p for p in engine.plugins()) else "float"


def knn_searchable(engine: ClientEngine) -> bool:
    """Whether the default vector field can be searched by kNN (7.x's dense_vector cannot)."""
    kind = vector_type(engine)
    return kind == "knn_vector" or (
        kind == "dense_vector" and not engine.info().version.startswith("7.")
    )


# -- naming and cleanup ---------------------------------------------------------------------


def unique_prefix() -> str:
    return f"itest-{uuid.uuid4().hex[:10]}"


def indices_under(engine: ClientEngine, prefix: str) -> list[str]:
    body = raw(engine, "GET", f"/{prefix}*/_settings/index.uuid", expand_wildcards="all")
    return sorted(body)


def cancel_copies_under(engine: ClientEngine, prefix: str, wait_s: float = 20.0) -> None:
    """Cancel (and await) every reindex task from or into an index under ``prefix``: a copy
    still running into a deleted index would create it again."""
    pending = [t.task_id for t in engine.list_reindex_tasks() if prefix in t.description]
    for task_id in pending:
        with contextlib.suppress(TaskNotFound, EngineError):
            engine.cancel_task(task_id)
    deadline = time.monotonic() + wait_s
    while pending and time.monotonic() < deadline:
        pending = [t for t in pending if not _finished(engine, t)]
        if pending:
            time.sleep(0.2)


def _finished(engine: ClientEngine, task_id: str) -> bool:
    status = engine.get_task(task_id)
    return status is None or status.completed


def delete_indices_under(engine: ClientEngine, prefix: str, keep: tuple[str, ...] = ()) -> None:
    cancel_copies_under(engine, prefix)
    for index in indices_under(engine, prefix):
        if index in keep:
            continue
        with contextlib.suppress(IndexNotFound):
            engine.delete_index(index)


@dataclass
class Names:
    """Unique names for one test; everything under ``prefix`` is deleted at teardown."""

    prefix: str

    @property
    def alias(self) -> str:
        return self.prefix

    @property
    def source(self) -> str:
        return f"{self.prefix}-src"

    @property
    def target(self) -> str:
        return f"{self.prefix}-target"

    def __call__(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"


@pytest.fixture
def names(engine: ClientEngine) -> Iterator[Names]:
    n = Names(unique_prefix())
    try:
        yield n
    finally:
        delete_indices_under(engine, n.prefix)


@pytest.fixture
def make_source(engine: ClientEngine, names: Names) -> Callable[..., int]:
    """``make_source(n_docs, extra_aliases=..., settings=...)``: the sample index
    ``names.source`` behind ``names.alias`` (is_write_index); returns its count."""

    def make(n_docs: int = SMALL_DOCS, **kwargs: Any) -> int:
        count = sample.create_sample(engine, names.source, names.alias, n_docs, **kwargs)
        assert count == n_docs
        return count

    return make


# -- the shared 20k-document source ------------------------------------------------------------


@dataclass
class BigSource:
    """One 20,000-document sample index per session, behind ``alias``. Tests may move the
    alias away (their target names start with ``alias-``); teardown puts it back."""

    index: str
    alias: str
    aliases: dict[str, dict[str, Any]]
    count: int


@pytest.fixture(scope="session")
def big_source_session(engine: ClientEngine) -> Iterator[BigSource]:
    prefix = unique_prefix()
    index, alias = f"{prefix}src", prefix
    try:
        count = sample.create_sample(engine, index, alias, BIG_DOCS)
        yield BigSource(index, alias, engine.get_index_aliases(index), count)
    finally:
        delete_indices_under(engine, prefix)


@pytest.fixture
def big_source(engine: ClientEngine, big_source_session: BigSource) -> Iterator[BigSource]:
    big = big_source_session
    try:
        yield big
    finally:
        delete_indices_under(engine, f"{big.alias}-")  # the runs' targets
        engine.update_aliases(
            [
                {"add": {"index": big.index, "alias": name, **props}}
                for name, props in big.aliases.items()
            ]
        )
        assert engine.get_index_aliases(big.index) == big.aliases


# -- runs ----------------------------------------------------------------------------------------


def options(**kwargs: Any) -> RunOptions:
    return RunOptions(**{**FAST, **kwargs})


def make_config(
    tmp_path: Path, engine_url: str, crash: Callable[[], Crashpoints] | None = None
) -> Config:
    return Config(
        state_db=f"sqlite:///{tmp_path}/state.db",
        engine_url=engine_url,
        crash=crash or (lambda: Crashpoints()),
    )


@pytest.fixture
def cfg(tmp_path: Path, engine_url: str) -> Config:
    return make_config(tmp_path, engine_url)


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: no crash hook, no engine URL (given explicitly)."""
    drop = {CRASH_ENV_VAR, "REINDEX_FSM_ENGINE_URL", "REINDEX_FSM_STATE_DB"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def cli_argv(*args: str) -> list[str]:
    """``reindex-fsm ARGS``: the console script installed next to this interpreter, else
    the same entry point run by this interpreter (the script may not be on PATH)."""
    script = Path(sys.executable).parent / "reindex-fsm"
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "from reindex_fsm.cli import main; main()", *args]


def run_cli(*args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv(*args), capture_output=True, text=True, env=cli_env(), timeout=timeout
    )


def cli_json(*args: str) -> tuple[int, Any]:
    result = run_cli(*args, "--json")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"reindex-fsm {' '.join(args)} printed no JSON (exit {result.returncode}):\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr[-2000:]}"
        )
    return result.returncode, data


# -- comparisons --------------------------------------------------------------------------------


def content_digest(engine: ClientEngine, index: str) -> tuple[int, str]:
    """(number of documents, sha256 of the sorted (id, canonical JSON source) pairs)."""
    pairs = sorted(
        (hit["_id"], json.dumps(hit["_source"], sort_keys=True, ensure_ascii=False))
        for hit in engine.scan(index)
    )
    digest = hashlib.sha256()
    for doc_id, source in pairs:
        digest.update(doc_id.encode())
        digest.update(b"\0")
        digest.update(source.encode())
        digest.update(b"\n")
    return len(pairs), digest.hexdigest()


def stable_settings(engine: ClientEngine, index: str) -> dict[str, Any]:
    """An index's flat settings less those no two indices share (uuid, creation date, ...)."""
    settings = engine.get_index(index).settings
    return {k: v for k, v in settings.items() if not is_volatile(k)}


def mappings_without_meta(engine: ClientEngine, index: str) -> dict[str, Any]:
    mappings = dict(engine.get_index(index).mappings)
    mappings.pop("_meta", None)
    return mappings


def as_reported(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as GET _settings reports them: flat keys, scalar values as strings."""
    return {
        k: [str(x) for x in v]
        if isinstance(v, list)
        else str(v).lower()
        if isinstance(v, bool)
        else str(v)
        for k, v in flatten_settings(settings).items()
    }


def alias_snapshot(engine: ClientEngine, prefix: str) -> dict[str, Any]:
    """Every alias of every index under ``prefix``, with its properties."""
    return raw(engine, "GET", f"/{prefix}*/_alias", expand_wildcards="all")


def reindex_tasks_under(engine: ClientEngine, prefix: str) -> list[Any]:
    return [t for t in engine.list_reindex_tasks() if prefix in t.description]
