"""SIGKILL `reindex-fsm start --recompute-embeddings` mid-batch, resume it in a new process,
check that the target holds exactly what an uninterrupted run writes.

The input is a JSONL file of 1,200 documents read in batches of 100 (12 batches, 12
checkpoints), embedded with the default ``hashing`` embedder and stored as a plain
``float`` array. The reference is one uninterrupted run of the same command; its target
must also equal what this process computes itself (each JSONL document plus the hashing
embedder's vector of its text), so the comparison is exact: same IDs, same ``_source``
hashes, the vector's JSON floats included, no tolerance.

Kinds of case (counted in the crash summary at the end of the session):

* recompute-named: the K-th pass of a named point: between reading and embedding
  (``recompute.read``), embedded but not indexed (``recompute.embedded``), bulk
  acknowledged but no checkpoint (``recompute.indexed``), checkpoint stored
  (``checkpoint.progress``), and the commits of the states around the copy.
* recompute-random: a seeded random moment while the run is REINDEXING.
* recompute-workers: ``--workers 2`` (two spawned embedding processes, two stripes); also
  checks that no process of the killed run outlives it.
* recompute-index: the source-index reader (PIT + search_after) against its own
  uninterrupted reference.

Every case uses its own alias over a fresh source index (with a filtered, routed second
alias) and its own state database, and must end SWAPPED with the reference's documents
and vectors, every alias of the source on the target alone, no other index of the run,
the copy-time settings restored, the alias lock released and ``history`` showing SWAPPED.
Every kill is also checked for processes of the killed run left alive (the CLI's children
carry a per-case environment tag, found through /proc).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm import api, embedders
from reindex_fsm.engine.base import Engine
from reindex_fsm.engine.connect import connect
from reindex_fsm.store import open_store

from .conftest import (
    CLI,
    NOTES,
    CaseResult,
    Source,
    cli_env,
    diff_docs,
    doc_hashes,
    drop_source,
    make_source,
    resume_args,
    run_cli,
    sigkill,
    wait_for_state,
)

pytestmark = pytest.mark.crash

N_DOCS = 1200
BATCH_SIZE = 100
N_BATCHES = N_DOCS // BATCH_SIZE
VECTOR_FIELD = "embedding"  # the CLI's default --vector-field
VECTOR_MAPPING = '{"type": "float"}'
INDEX_TEXT_FIELD = "{title} {body}"  # the sample articles' text, for the index reader
SOURCE_SETTINGS = {"index.number_of_shards": 1}  # the JSONL cases' (small) source index
ORPHAN_GRACE_S = 3.0  # how long processes of a killed run may take to go away
TAG_VAR = "RECOMPUTE_CRASH_TEST_TAG"  # in the CLI's environment, inherited by its children
SESSION = uuid.uuid4().hex[:6]

NAMED = [
    ("commit.TARGET_CREATED", "TARGET_CREATED"),
    ("commit.REINDEXING", "REINDEXING"),
    ("recompute.read#1", "REINDEXING"),  # batch 0 read, nothing embedded yet
    ("recompute.read#5", "REINDEXING"),
    ("recompute.embedded#1", "REINDEXING"),  # batch 0 embedded, not sent
    ("recompute.embedded#6", "REINDEXING"),
    ("recompute.indexed#1", "REINDEXING"),  # batch 0 acknowledged, no checkpoint
    ("recompute.indexed#7", "REINDEXING"),
    ("recompute.indexed#12", "REINDEXING"),  # the last batch acknowledged, no checkpoint
    ("checkpoint.progress#2", "REINDEXING"),
    ("checkpoint.progress#11", "REINDEXING"),
    ("checkpoint.progress#12", "REINDEXING"),  # every batch stored, copy_done not yet
    ("commit.VERIFYING", "VERIFYING"),
]
# Random kills: a seeded moment within RANDOM_DELAY_S after the k-th checkpoint was seen
# stored, k drawn from each range. A batch takes about 0.1-0.2 s here; with at least four
# batches to go the kill lands in REINDEXING, somewhere in the batch pipeline.
RANDOM_BATCHES = [(1, 4), (5, 8)]
RANDOM_DELAY_S = 0.08
WORKERS_POINTS = ["recompute.indexed#3", "checkpoint.progress#4"]
INDEX_POINT = "recompute.indexed#2"

_WORDS = [
    *("index", "alias", "shard", "replica", "vector", "embedding", "token", "batch"),
    *("checkpoint", "resume", "crash", "merge", "refresh", "segment", "cluster", "node"),
    *("query", "latency", "Grüße", "café", "naïve", "東京", "данные"),
]


# -- documents and what the target must hold --------------------------------------------------


def source_hash(source: dict[str, Any]) -> str:
    """The hash conftest.doc_hashes gives a document with this _source."""
    return hashlib.sha256(
        json.dumps(source, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def embed(texts: list[str]) -> list[list[float]]:
    """The default embedder's vectors, as the run sends them (float32 rows as JSON floats)."""
    return embedders.load("hashing").fn(texts).tolist()  # type: ignore[no-any-return]


def write_documents(path: Path) -> dict[str, str]:
    """Write the JSONL input; return _id -> hash of the _source the target must hold."""
    rng = random.Random(20240611)
    docs = []
    for i in range(N_DOCS):
        docs.append(
            {
                "id": f"doc-{i:05d}",
                "text": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 40))),
                "lang": rng.choice(["en", "de", "fr"]),
                "views": rng.randint(0, 10**6),
                "rating": round(rng.random() * 5, 3),
                "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)),
            }
        )
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    vectors = embed([d["text"] for d in docs])
    return {
        d["id"]: source_hash({**d, VECTOR_FIELD: v}) for d, v in zip(docs, vectors, strict=True)
    }


def expected_from_source(engine: Engine, index: str) -> dict[str, str]:
    """What a recompute of ``index`` with INDEX_TEXT_FIELD must write: each document's
    _source plus the vector of its "{title} {body}"."""
    hits = list(engine.scan(index))
    vectors = embed([f"{h['_source']['title']} {h['_source']['body']}" for h in hits])
    return {
        h["_id"]: source_hash({**h["_source"], VECTOR_FIELD: v})
        for h, v in zip(hits, vectors, strict=True)
    }


# -- the CLI ----------------------------------------------------------------------------------


def recompute_args(src: Source, db: Path, documents: Path | None, workers: int = 1) -> list[str]:
    args = ["start", "--alias", src.alias, "--recompute-embeddings"]
    if documents is not None:
        args += ["--documents-path", str(documents)]
    else:
        args += ["--text-field", INDEX_TEXT_FIELD]
    args += ["--batch-size", str(BATCH_SIZE), "--vector-mapping", VECTOR_MAPPING]
    if workers != 1:
        args += ["--workers", str(workers)]
    args += ["--verify", "--force", "--json", "--state-db", str(db), "--engine-url", src.url]
    return args


@dataclass
class Launched:
    """A CLI process whose output goes to files: processes it leaves behind may hold its
    stdout and stderr open, so reading pipes to EOF could hang."""

    proc: subprocess.Popen[str]
    tag: str
    out: Path
    err: Path

    def wait(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            sigkill(self.proc)
            self.proc.wait()
            raise AssertionError(f"CLI still running after {timeout}s: {self.stderr()}") from None

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()[-2000:]


def launch(args: list[str], tmp_path: Path, name: str, crash_at: str | None = None) -> Launched:
    tag = f"{SESSION}-{uuid.uuid4().hex[:10]}"
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(
            [*CLI, *args],
            env={**cli_env(crash_at), TAG_VAR: tag},
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            text=True,
        )
    return Launched(proc, tag, out, err)


# -- processes a killed run left behind -------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    pid: int
    ppid: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid} (ppid {self.ppid}): {self.cmdline[:160]}"


def tagged_processes(tag: str) -> list[Leftover]:
    """Live processes whose environment carries ``tag``: the CLI's children (and theirs)."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie holds nothing
            continue
        found.append(Leftover(int(entry), int(fields[1]), cmdline))
    return found


def leftovers_after_kill(tag: str) -> list[Leftover]:
    """Processes of the killed run still alive ORPHAN_GRACE_S after it died (none: returns
    as soon as there are none). Any found are SIGKILLed, by PID, once recorded: this test
    started them, and they must not linger into the next case."""
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    return left


# -- the stored run ---------------------------------------------------------------------------


def stored_run(db: Path) -> dict[str, Any] | None:
    """id, state and progress of the (only) run, read directly; None if none was stored."""
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT id, state, progress FROM runs").fetchone()
    finally:
        con.close()
    if row is None:
        return None
    return {"id": row[0], "state": row[1], "progress": json.loads(row[2]) if row[2] else None}


def wait_for_batches(proc: subprocess.Popen[str], db: Path, n: int, timeout: float = 60) -> None:
    """Until the run has stored the checkpoint of its n-th batch."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = stored_run(db)
        except sqlite3.Error:  # being written: read again
            stored = None
        if stored is not None and (stored["progress"] or {}).get("batches", 0) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the CLI exited ({proc.returncode}) before batch {n}")
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {n} was not stored within {timeout}s")
        time.sleep(0.01)


def assert_converged(src: Source, db: Path, run_id: str, want: dict[str, str]) -> None:
    """The common convergence checks (Source.assert_converged) with ``want`` (IDs and
    _source hashes, vectors included) as the target's documents; and each document counted
    once, no other index of any run on the alias, history showing SWAPPED."""
    record = src.assert_converged(db, run_id, want)
    assert record["target_count"] == len(want), record["target_count"]
    indexed = (record["progress"] or {}).get("indexed")
    assert indexed == len(want), f"progress counts {indexed} documents indexed, not {len(want)}"
    assert src.ours() == [record["target_index"]], "another index of a run on this alias"
    runs = api.history(api.Config(state_db=f"sqlite:///{db}"), alias=src.alias)
    assert [(r.id, r.state.value) for r in runs] == [(run_id, "SWAPPED")]


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Reference:
    documents: Path
    hashes: dict[str, str]  # _id -> _source hash of the uninterrupted run's target
    copy_seconds: float  # how long it was REINDEXING


def uninterrupted(src: Source, tmp_path: Path, documents: Path | None) -> tuple[str, Path]:
    """One uninterrupted run of the command under test; returns its run ID and state db."""
    db = tmp_path / f"reference-{src.alias}.db"
    run = launch(recompute_args(src, db, documents), tmp_path, f"reference-{src.alias}")
    rc = run.wait()
    assert rc == 0, f"the uninterrupted run exited {rc}: {run.stdout()} {run.stderr()}"
    assert leftovers_after_kill(run.tag) == [], "processes left by an uninterrupted run"
    result = json.loads(run.stdout().strip().splitlines()[-1])
    assert result["state"] == "SWAPPED", result
    return result["run_id"], db


_counter = iter(range(10**6))


def fresh_source(engine: Engine, url: str, n_docs: int, **kw: Any) -> Source:
    return make_source(engine, url, f"rcx-{SESSION}-{next(_counter)}", n_docs, **kw)


@pytest.fixture(scope="session")
def engine(engine_url: str) -> Iterator[Engine]:
    eng = connect(engine_url)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="session")
def reference(
    engine: Engine, engine_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    tmp = tmp_path_factory.mktemp("recompute-reference")
    documents = tmp / "documents.jsonl"
    computed = write_documents(documents)
    src = fresh_source(engine, engine_url, 5, settings=SOURCE_SETTINGS)
    try:
        run_id, db = uninterrupted(src, tmp, documents)
        repo = open_store(f"sqlite:///{db}")
        record = repo.get(run_id)
        hashes = doc_hashes(engine, record.target_index)
        # The reference itself is what this process computes from the file.
        assert hashes == computed, diff_docs(computed, hashes)
        assert_converged(src, db, run_id, hashes)
        at = {e.to_state: e.at for e in repo.events(run_id)}
        copy_seconds = (at["VERIFYING"] - at["REINDEXING"]).total_seconds()
    finally:
        drop_source(src)
    NOTES.append(
        f"  recompute reference: {len(hashes)} documents in {N_BATCHES} batches, "
        f"REINDEXING for {copy_seconds:.2f}s"
    )
    return Reference(documents, hashes, copy_seconds)


@pytest.fixture
def case_source(engine: Engine, engine_url: str) -> Iterator[Source]:
    """A small source index behind a fresh alias (the JSONL is what is copied)."""
    src = fresh_source(engine, engine_url, 5, settings=SOURCE_SETTINGS)
    try:
        yield src
    finally:
        drop_source(src)


# -- the case ---------------------------------------------------------------------------------

Killer = Callable[[subprocess.Popen[str], Path], None]


def kill_and_resume(
    src: Source,
    tmp_path: Path,
    result: CaseResult,
    want: dict[str, str],
    *,
    documents: Path | None,
    crash_at: str | None = None,
    kill: Killer | None = None,
    landed: str = "REINDEXING",
    workers: int = 1,
) -> list[Leftover]:
    """Start (SIGKILLed at ``crash_at`` or by ``kill``), resume in a new process, check the
    run converged to ``want``. Returns the processes the killed run left alive (already
    killed by then), for the caller to judge."""
    db = tmp_path / "state.db"
    run = launch(recompute_args(src, db, documents, workers), tmp_path, "start", crash_at)
    if kill is not None:
        try:
            kill(run.proc, db)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; stdout: {run.stdout()} stderr: {run.stderr()}") from exc
        finally:
            sigkill(run.proc)
    rc = run.wait()
    assert rc == -signal.SIGKILL, f"start was not killed (exit {rc}): {run.stdout()} {run.stderr()}"
    left = leftovers_after_kill(run.tag)

    stored = stored_run(db)
    assert stored is not None, "no run stored"
    batches = (stored["progress"] or {}).get("batches", 0)
    result.landed = stored["state"]
    if stored["state"] == "REINDEXING":
        result.case += f" [{batches}/{N_BATCHES} batches stored]"
    assert stored["state"] == landed, f"killed in {stored['state']}, not {landed}"

    done = run_cli(resume_args(db, src.url, stored["id"]))
    assert done.rc == 0, f"resume exited {done.rc}: {done.out} {done.err[-2000:]}"
    assert done.json()["state"] == "SWAPPED", done.out
    assert_converged(src, db, stored["id"], want)
    return left


def no_leftovers(left: list[Leftover], point: str, workers: int) -> None:
    if not left:
        return
    message = (
        f"SIGKILL of `start --recompute-embeddings --workers {workers}` at {point} left "
        f"{len(left)} process(es) of it alive after {ORPHAN_GRACE_S:.0f}s (now killed): "
        + "; ".join(str(p) for p in left)
    )
    NOTES.append(f"  {message}")
    raise AssertionError(message)


@pytest.mark.parametrize(("point", "landed"), NAMED, ids=[p for p, _ in NAMED])
def test_named_point(
    point: str,
    landed: str,
    reference: Reference,
    case_source: Source,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = "recompute-named"
    left = kill_and_resume(
        case_source,
        tmp_path,
        crash_result,
        reference.hashes,
        documents=reference.documents,
        crash_at=point,
        landed=landed,
    )
    no_leftovers(left, point, 1)
    crash_result.passed = True


@pytest.mark.parametrize("seed", range(len(RANDOM_BATCHES)))
def test_random_kill_while_reindexing(
    seed: int,
    reference: Reference,
    case_source: Source,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = "recompute-random"
    rng = random.Random(4099 + seed)
    after = rng.randint(*RANDOM_BATCHES[seed])
    delay = rng.uniform(0, RANDOM_DELAY_S)
    crash_result.case += f" ({delay * 1000:.0f}ms after batch {after} was stored)"

    def kill(proc: subprocess.Popen[str], db: Path) -> None:
        wait_for_state(proc, db, "REINDEXING")
        wait_for_batches(proc, db, after)
        time.sleep(delay)

    left = kill_and_resume(
        case_source,
        tmp_path,
        crash_result,
        reference.hashes,
        documents=reference.documents,
        kill=kill,
    )
    no_leftovers(left, f"{delay * 1000:.0f}ms after batch {after}", 1)
    crash_result.passed = True


@pytest.mark.parametrize("point", WORKERS_POINTS)
def test_workers_kill(
    point: str,
    reference: Reference,
    case_source: Source,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = "recompute-workers"
    left = kill_and_resume(
        case_source,
        tmp_path,
        crash_result,
        reference.hashes,
        documents=reference.documents,
        crash_at=point,
        workers=2,
    )
    # The run converged; what is left is whether the kill left embedding processes behind.
    no_leftovers(left, point, 2)
    crash_result.passed = True


def test_index_reader_kill(
    engine: Engine, engine_url: str, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "recompute-index"
    src = fresh_source(engine, engine_url, N_DOCS)
    try:
        computed = expected_from_source(engine, src.index)
        run_id, db = uninterrupted(src, tmp_path, None)
        target = open_store(f"sqlite:///{db}").get(run_id).target_index
        want = doc_hashes(engine, target)
        assert want == computed, diff_docs(computed, want)
        assert_converged(src, db, run_id, want)
        src.reset()  # aliases back on the source, the reference's target deleted

        left = kill_and_resume(
            src, tmp_path, crash_result, want, documents=None, crash_at=INDEX_POINT
        )
        no_leftovers(left, INDEX_POINT, 1)
    finally:
        drop_source(src)
    crash_result.passed = True
