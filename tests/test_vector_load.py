"""Vector targets on the fake engine: where the engine allows it the k-NN graph is not
built while the run copies (a copy-time setting of the plan), the setting is put back
before verification, and one force-merge builds the graph; where it does not (the
lucene engine, Elasticsearch's dense_vector), nothing is changed. The real engine runs
it in tests/integration/test_vector_load_engine.py, kills in tests/crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.embedders import hashing
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps import vector_load
from reindex_fsm.steps.copy import recompute
from reindex_fsm.steps.target import final_settings
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, make_cluster, make_config

THRESHOLD = vector_load.THRESHOLD
FAISS = {
    "type": "knn_vector",
    "dimension": hashing.DIMENSION,
    "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"},
}
LUCENE = {**FAISS, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}
KNN_ON = {"index.knn": "true"}


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"j{i:05d}", "text": f"text number {i}"}) + "\n")
    return path


def opts(path: Path, **kw: Any) -> RunOptions:
    base: dict[str, Any] = {
        "recompute_embeddings": True,
        "verify": True,
        "batch_size": 7,
        "vector_mapping": FAISS,
        "allow_shrink": True,
        "documents_path": str(path),
    }
    return RunOptions(**{**base, **kw})


def props(**fields: Any) -> dict[str, Any]:
    return {"properties": fields}


@pytest.mark.parametrize(
    "field",
    [
        FAISS,
        {**FAISS, "method": {"name": "hnsw", "engine": "nmslib"}},
        {"type": "knn_vector", "dimension": 8},  # no method: 2.19 gives it to faiss
        {"type": "knn_vector", "model_id": "m1"},
    ],
)
def test_native_engine_fields_are_deferred(field: dict[str, Any]) -> None:
    can, why = vector_load.decide(props(v=field, title={"type": "text"}), KNN_ON)
    assert can, why
    assert f"{THRESHOLD}=-1" in why


def test_what_cannot_be_deferred_says_why() -> None:
    can, why = vector_load.decide(props(v=FAISS, w=LUCENE), KNN_ON)
    assert not can and "lucene engine (w)" in why and "faiss/nmslib only" in why
    dense = {"type": "dense_vector", "dims": 8, "index": True}
    can, why = vector_load.decide(props(d=dense), {})
    assert not can and "dense_vector (d)" in why and "Elasticsearch" in why
    can, why = vector_load.decide(props(v=FAISS), {})
    assert not can and "index.knn is not on" in why
    assert vector_load.decide(props(t={"type": "text"}), KNN_ON) == (False, "no vector field")


def test_a_vector_field_inside_an_object_counts() -> None:
    nested = props(doc={"properties": {"v": LUCENE}})
    assert list(vector_load.vector_fields(nested)) == [("doc.v", LUCENE)]
    assert not vector_load.decide(nested, KNN_ON)[0]


def test_plan_defers_and_restores_through_the_copy_settings(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    fake.plugin_names = {"opensearch-knn"}
    p = api.plan(cfg, ALIAS, opts(write_jsonl(tmp_path / "d.jsonl", 5)))
    assert p.copy_settings[THRESHOLD] == "-1"
    assert final_settings(p)[THRESHOLD] is None  # back to the engine default before verify
    graph = recompute.describe(p)["vector_graph"]
    assert graph.startswith("knn_vector of faiss: no graph while copying")


def test_flag_and_copy_set_keep_the_engine_default(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    fake.plugin_names = {"opensearch-knn"}
    path = write_jsonl(tmp_path / "d.jsonl", 5)
    p = api.plan(cfg, ALIAS, opts(path, defer_vector_graph=False))
    assert THRESHOLD not in p.copy_settings
    assert recompute.describe(p)["vector_graph"].startswith("not deferred (--no-defer")
    p = api.plan(cfg, ALIAS, opts(path, copy_settings_overrides={THRESHOLD: 500}))
    assert p.copy_settings[THRESHOLD] == 500  # the operator's copy-time value wins
    assert not vector_load.deferred(p.copy_settings)


def test_the_tools_own_lucene_mapping_is_left_as_it_is(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    fake.plugin_names = {"opensearch-knn"}
    p = api.plan(cfg, ALIAS, opts(write_jsonl(tmp_path / "d.jsonl", 5), vector_mapping=None))
    assert p.mappings["properties"]["embedding"]["method"]["engine"] == "lucene"
    assert THRESHOLD not in p.copy_settings
    assert recompute.describe(p)["vector_graph"].startswith("not deferred: knn_vector of the")


def test_elasticsearch_dense_vector_is_left_as_it_is(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    es = FakeEngine(flavor="elasticsearch", version="8.15.0")
    es.indices = fake.indices
    path = write_jsonl(tmp_path / "d.jsonl", 5)
    p = api.plan(make_config(es, cfg.state_db), ALIAS, opts(path, vector_mapping=None))
    assert p.mappings["properties"]["embedding"]["type"] == "dense_vector"
    assert THRESHOLD not in p.copy_settings
    assert "Elasticsearch has no setting" in recompute.describe(p)["vector_graph"]


def test_run_builds_the_graph_once_after_the_restore(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    fake.plugin_names = {"opensearch-knn"}
    out = api.start(cfg, ALIAS, opts(write_jsonl(tmp_path / "d.jsonl", 20)))
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    target = fake.indices[rec.target_index]
    assert len(target.docs) == 20
    assert THRESHOLD not in target.settings  # the engine default again
    (merge,) = fake.force_merges
    assert merge[0] == rec.target_index and merge[1] == 1
    assert THRESHOLD not in merge[2]  # merged with the graph build on
    names = fake.call_names()
    assert names.index("force_merge") > names.index("put_settings")
    verified = next(e for e in api.show(cfg, rec.id)[1] if e.to_state == "SWAPPED")
    assert "force-merge" in verified.detail["vector_graph"]


def test_no_force_merge_without_deferral(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    fake.plugin_names = {"opensearch-knn"}
    path = write_jsonl(tmp_path / "d.jsonl", 10)
    out = api.start(cfg, ALIAS, opts(path, defer_vector_graph=False))
    assert out.record.state is State.SWAPPED, out.record.error
    assert fake.force_merges == []


class Kill(BaseException):
    pass


class KillAt(Crashpoints):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __call__(self, name: str) -> None:
        if name == self.name:
            raise Kill(name)


@pytest.mark.parametrize(
    "point",
    ["checkpoint.progress", "verify.settings_restored", "verify.vector_merge_started"],
)
def test_a_kill_while_deferred_or_merging_resumes_to_the_same_end(
    tmp_path: Path, point: str
) -> None:
    fake = make_cluster()
    fake.plugin_names = {"opensearch-knn"}
    state_db = f"sqlite:///{tmp_path}/s.db"
    options = opts(write_jsonl(tmp_path / "d.jsonl", 20))
    with pytest.raises(Kill):
        api.start(make_config(fake, state_db, crash=lambda: KillAt(point)), ALIAS, options)
    (run,) = api.history(make_config(fake, state_db))
    if point == "checkpoint.progress":  # killed while copying: no graph in force
        assert fake.indices[run.target_index].settings[THRESHOLD] == "-1"
    out = api.resume(make_config(fake, state_db), run.id)
    assert out.record.state is State.SWAPPED, out.record.error
    target = fake.indices[out.record.target_index]
    assert len(target.docs) == 20 and THRESHOLD not in target.settings
    assert fake.force_merges and all(THRESHOLD not in m[2] for m in fake.force_merges)


def test_the_vector_load_benchmark_imports_and_prints_its_help(monkeypatch) -> None:
    import importlib

    from click.testing import CliRunner

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    module = importlib.import_module("bench_vector_load")
    result = CliRunner().invoke(module.main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "lucene,faiss-deferred,float" in result.output


def test_an_opensearch_before_the_setting_is_left_as_it_is() -> None:
    can, why = vector_load.decide(props(v=FAISS), KNN_ON, "2.17.1")
    assert not can and "OpenSearch 2.17.1 has no" in why and "2.18 and later" in why
    assert vector_load.decide(props(v=FAISS), KNN_ON, "2.18.0")[0]
    assert vector_load.decide(props(v=FAISS), KNN_ON, "3.5.0")[0]
