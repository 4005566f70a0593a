"""Vector targets on the real engine: a knn_vector field of a native k-NN engine (faiss)
is loaded with no graph (``index.knn.advanced.approximate_threshold`` -1 on the target
while it is copied into), the setting is back to the engine's default before
verification, the force-merge runs, and the k-NN query answers correctly; the tool's
own lucene mapping is loaded as before.

The local engine has no native faiss library: a faiss segment can be written and
searched (exactly) only while it has no graph, so these runs are small and one shard,
one segment, whose force-merge is a no-op (nothing native is called)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.embedders import hashing
from reindex_fsm.machine import State
from reindex_fsm.steps import vector_load

from .conftest import make_config, options, raw

# Deselected (and named in the summary) on an engine without the OpenSearch k-NN plugin.
pytestmark = [pytest.mark.integration, pytest.mark.needs("knn")]

THRESHOLD = vector_load.THRESHOLD
FAISS = {
    "type": "knn_vector",
    "dimension": hashing.DIMENSION,
    "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"},
}


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"j{i:05d}", "title": f"title number {i}"}) + "\n")
    return path


def _knn_top(engine, index: str, text: str) -> str:
    vector = hashing.compute_embeddings([text])[0].tolist()
    body = {"size": 3, "query": {"knn": {"embedding": {"vector": vector, "k": 3}}}}
    return raw(engine, "POST", f"/{index}/_search", body=body)["hits"]["hits"][0]["_id"]


class SettingsSeen(Crashpoints):
    """Reads the target's threshold at the first progress checkpoint (mid-copy)."""

    def __init__(self, engine) -> None:
        super().__init__()
        self.engine = engine
        self.during: list[Any] = []

    def __call__(self, name: str) -> None:
        super().__call__(name)
        if name == "checkpoint.progress" and not self.during:
            body = raw(self.engine, "GET", "/*/_settings/" + THRESHOLD, flat_settings="true")
            self.during.append({i: s["settings"].get(THRESHOLD) for i, s in body.items()})


def test_faiss_field_is_loaded_without_a_graph_and_answers_knn(
    engine, engine_url, names, make_source, tmp_path: Path
) -> None:
    make_source(50)
    seen = SettingsSeen(engine)
    cfg = make_config(tmp_path, engine_url, crash=lambda: seen)
    path = write_jsonl(tmp_path / "docs.jsonl", 600)
    out = api.start(
        cfg,
        names.alias,
        options(
            recompute_embeddings=True,
            documents_path=str(path),
            text_field="title",
            batch_size=100,
            verify=True,
            vector_mapping=FAISS,
            settings_overrides={"index.number_of_shards": 1},
        ),
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    target = rec.target_index
    assert seen.during and seen.during[0].get(target) == "-1"  # no graph while copying
    now = raw(engine, "GET", f"/{target}/_settings", flat_settings="true", include_defaults="true")
    assert now[target]["defaults"].get(THRESHOLD) == "0"  # the engine default again
    assert THRESHOLD not in now[target]["settings"]
    assert engine.count(target) == 600
    assert _knn_top(engine, target, "title number 123") == "j00123"
    verified = next(e for e in cfg.repo().events(rec.id) if e.to_state == "SWAPPED").detail
    assert "force-merge" in verified["vector_graph"]
    segments = raw(engine, "GET", f"/_cat/segments/{target}", format="json")
    assert len(segments) == 1


def test_lucene_field_is_loaded_with_the_engine_default(
    engine, cfg, names, make_source, tmp_path: Path
) -> None:
    make_source(50)
    path = write_jsonl(tmp_path / "docs.jsonl", 300)
    out = api.start(
        cfg,
        names.alias,
        options(recompute_embeddings=True, documents_path=str(path), text_field="title"),
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.plan["mappings"]["properties"]["embedding"]["method"]["engine"] == "lucene"
    assert THRESHOLD not in rec.plan["copy_settings"]
    assert _knn_top(engine, rec.target_index, "title number 7") == "j00007"
    verified = next(e for e in cfg.repo().events(rec.id) if e.to_state == "SWAPPED").detail
    assert "vector_graph" not in verified
