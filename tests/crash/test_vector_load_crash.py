"""SIGKILL a `--recompute-embeddings` run into a faiss knn_vector target while its graph
build is deferred (``index.knn.advanced.approximate_threshold`` -1 on the target) and
while the deferred build runs (after the restore, at the force-merge), resume it in a
new process: the run must end SWAPPED with every document, the threshold back to the
engine's default, and the k-NN query answering with the document itself.

The local engine has no native faiss library: the target is one shard, small enough to
be one segment, so its force-merge calls nothing native (see
tests/integration/test_vector_load_engine.py)."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from reindex_fsm.embedders import hashing
from reindex_fsm.engine.connect import connect
from reindex_fsm.steps import vector_load

from .conftest import drop_source, history, make_source, resume_args, run_cli

pytestmark = pytest.mark.crash

N_DOCS = 800
THRESHOLD = vector_load.THRESHOLD
FAISS = {
    "type": "knn_vector",
    "dimension": hashing.DIMENSION,
    "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"},
}
WORDS = [f"{a}{b}" for a in ("al", "be", "ka", "do", "ri", "su") for b in ("n", "x", "ta", "mo")]
POINTS = [
    "checkpoint.progress#3",  # copying, no graph in force
    "commit.VERIFYING",  # copied, the threshold still -1
    "verify.settings_restored",  # the threshold back, no force-merge yet
    "verify.vector_merge_started",  # force-merge asked for, not awaited
]


@pytest.mark.needs("knn")  # deselected, and named, on an engine without the k-NN plugin
@pytest.mark.parametrize("point", POINTS)
def test_kill_while_the_graph_is_deferred_resumes(engine_url: str, tmp_path: Path, point: str):
    engine = connect(engine_url)
    alias = f"crash-vec-{uuid.uuid4().hex[:8]}"
    src = make_source(engine, engine_url, alias, 20, settings={"index.number_of_shards": 1})
    try:
        docs = tmp_path / "docs.jsonl"
        rng = random.Random(5)
        texts = [" ".join(rng.choices(WORDS, k=8)) for _ in range(N_DOCS)]
        with docs.open("w") as out:
            for i, text in enumerate(texts):
                out.write(json.dumps({"id": f"v{i:05d}", "text": text}) + "\n")
        db = tmp_path / "state.db"
        args = ["start", "--alias", alias, "--recompute-embeddings"]
        args += ["--documents-path", str(docs), "--batch-size", "100", "--allow-shrink"]
        args += ["--vector-mapping", json.dumps(FAISS), "--verify", "--force", "--json"]
        args += ["--state-db", str(db), "--engine-url", engine_url]
        killed = run_cli(args, crash_at=point)
        assert killed.rc == -9, f"not killed at {point} ({killed.rc}): {killed.err[-2000:]}"
        (run,) = history(db)
        done = run_cli(resume_args(db, engine_url, run["run_id"]))
        assert done.rc == 0, f"resume failed ({done.rc}): {done.err[-2000:]}"
        (run,) = history(db)
        assert run["state"] == "SWAPPED"
        target = run["target_index"]
        assert list(engine.get_alias(alias)) == [target]
        assert engine.count(target) == N_DOCS
        assert THRESHOLD not in engine.get_index(target).settings
        vector = hashing.compute_embeddings([texts[321]])[0].tolist()
        body = {"size": 1, "query": {"knn": {"embedding": {"vector": vector, "k": 3}}}}
        top = engine.request("POST", f"/{target}/_search", body=body)["hits"]["hits"][0]
        assert top["_id"] == "v00321"
    finally:
        drop_source(src)
