"""--recompute-embeddings on the real engine: from a JSONL file and from the source index,
with the vector mapping the engine supports (knn_vector where the OpenSearch k-NN plugin
is installed, dense_vector on Elasticsearch, else a plain float array given with
--vector-mapping); the mapping used is printed in the session summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.embedders import hashing
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State

from .conftest import (
    SMALL_DOCS,
    cli_json,
    indices_under,
    knn_searchable,
    make_config,
    options,
    raw,
    run_cli,
    vector_type,
)

pytestmark = pytest.mark.integration

USED: list[str] = []


@pytest.fixture(scope="module")
def vector_options(engine) -> dict[str, Any]:
    """The engine's own vector type when it has one, else a plain float array."""
    if vector_type(engine) != "float":
        return {}
    return {"vector_mapping": {"type": "float"}}


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            doc = {"id": f"j{i:05d}", "title": f"title {i}", "body": f"body text {i % 97}"}
            out.write(json.dumps(doc) + "\n")
    return path


def test_jsonl_run_indexes_vectors_the_engine_can_search(
    engine, cfg, names, make_source, vector_options, tmp_path: Path
) -> None:
    make_source(200)
    path = write_jsonl(tmp_path / "docs.jsonl", 1500)
    out = api.start(
        cfg,
        names.alias,
        options(
            recompute_embeddings=True,
            documents_path=str(path),
            text_field="{title}: {body}",
            batch_size=200,
            verify=True,
            **vector_options,
        ),
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    target = rec.target_index
    assert engine.count(target) == 1500 and list(engine.get_alias(names.alias)) == [target]
    mapping = engine.get_index(target).mappings["properties"]["embedding"]
    USED.append(f"{engine.info().flavor} {engine.info().version}: {mapping['type']}")
    hit = raw(engine, "GET", f"/{target}/_doc/j00042")["_source"]
    want = hashing.compute_embeddings(["title 42: body text 42"])[0]
    assert np.allclose(hit["embedding"], want, atol=1e-7)
    assert hit["title"] == "title 42" and hit["id"] == "j00042"
    verified = next(e for e in cfg.repo().events(rec.id) if e.to_state == "SWAPPED").detail
    assert verified["sample_sample"] == 50 and verified["sample_min_cosine"] > 0.9999
    if mapping["type"] in ("knn_vector", "dense_vector"):
        assert verified["mapped_dimension"] == hashing.DIMENSION
    if knn_searchable(engine):
        body = {"size": 1, "query": {"knn": {"embedding": {"vector": want.tolist(), "k": 3}}}}
        if mapping["type"] == "dense_vector":
            body = {
                "knn": {
                    "field": "embedding",
                    "query_vector": want.tolist(),
                    "k": 3,
                    "num_candidates": 10,
                }
            }
        top = raw(engine, "POST", f"/{target}/_search", body=body)["hits"]["hits"][0]
        assert top["_id"] == "j00042"


def test_source_index_run_keeps_every_field_and_adds_the_vector(
    engine, cfg, names, make_source, vector_options
) -> None:
    make_source(SMALL_DOCS)
    out = api.start(
        cfg,
        names.alias,
        options(
            recompute_embeddings=True,
            text_field="{title}\n{body}",
            vector_field="vec",
            batch_size=300,
            workers=2,
            verify=True,
            **vector_options,
        ),
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    source = {h["_id"]: h["_source"] for h in engine.scan(names.source)}
    target = {h["_id"]: h["_source"] for h in engine.scan(rec.target_index)}
    assert set(target) == set(source) and len(target) == SMALL_DOCS
    for doc_id in list(source)[:50]:
        vec = target[doc_id].pop("vec")
        assert target[doc_id] == source[doc_id]
        text = f"{source[doc_id]['title']}\n{source[doc_id]['body']}"
        assert np.allclose(vec, hashing.compute_embeddings([text])[0], atol=1e-7)
    stripes = rec.progress["stripes"]
    assert len(stripes) == 2 and sum(s["indexed"] for s in stripes) == SMALL_DOCS


class StopBefore(Exception):
    pass


@pytest.mark.needs("painless")
def test_verification_catches_vectors_that_do_not_match_their_text(
    engine, tmp_path: Path, engine_url, names, make_source, vector_options
) -> None:
    make_source(100)
    path = write_jsonl(tmp_path / "docs.jsonl", 300)

    def stop_at_verify() -> Crashpoints:
        def action(name: str) -> None:
            raise StopBefore(name)

        return Crashpoints("commit.VERIFYING", action=action)

    opts = options(
        recompute_embeddings=True,
        documents_path=str(path),
        text_field="title",
        verify=True,
        rollback_on_failure=True,
        **vector_options,
    )
    with pytest.raises(StopBefore):
        api.start(make_config(tmp_path, engine_url, crash=stop_at_verify), names.alias, opts)
    cfg = make_config(tmp_path, engine_url)
    (run,) = api.history(cfg)
    # Someone (a bug, a bad pipeline) changed the stored vectors before verification.
    script = {
        "source": "for (int i = 0; i < ctx._source.embedding.length; i++) "
        "{ ctx._source.embedding[i] = -ctx._source.embedding[i]; }"
    }
    engine.refresh(run.target_index)  # refresh is off while copying: make the docs visible
    raw(
        engine,
        "POST",
        f"/{run.target_index}/_update_by_query",
        body={"script": script},
        refresh="true",
    )
    out = api.resume(cfg, run.id)
    assert out.record.state is State.ROLLED_BACK
    assert out.exit_code == ExitCode.VERIFICATION_FAILED
    assert "stored vectors differ from a fresh embedding" in out.record.error
    assert list(engine.get_alias(names.alias)) == [names.source]
    assert indices_under(engine, names.prefix) == [names.source]


def test_cli_bad_line_exits_12_and_writes_nothing(
    engine, names, make_source, vector_options, tmp_path
) -> None:
    make_source(50)
    path = write_jsonl(tmp_path / "docs.jsonl", 10)
    lines = path.read_text().splitlines()
    lines[6] = '{"id": "j00001", "title": "duplicate"}'
    path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "state.db"
    result = run_cli(
        "start",
        "--alias",
        names.alias,
        "--recompute-embeddings",
        "--documents-path",
        str(path),
        "--text-field",
        "title",
        "--force",
        "--state-db",
        f"sqlite:///{db}",
        "--engine-url",
        engine.url,
        *(["--vector-mapping", '{"type": "float"}'] if vector_options else []),
    )
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    err = result.stderr.strip().splitlines()
    assert len(err) == 1
    assert f"{path}:7: duplicate ID 'j00001' (first on line 2)" in err[0]
    assert "--skip-invalid" in err[0]
    assert indices_under(engine, names.prefix) == [names.source]
    assert list(engine.get_alias(names.alias)) == [names.source]
    code, runs = cli_json("history", "--state-db", f"sqlite:///{db}")
    assert code == 0 and runs == []


def test_vector_mapping_used(engine) -> None:
    """Say which vector mapping the engine under test gave (and that one was found)."""
    kind = vector_type(engine)
    print(f"\nrecompute vector mapping on this engine: {kind}; runs used: {USED}")
    assert USED and all(u.endswith(kind) for u in USED)


def test_minilm_run_on_the_source_index(engine, cfg, names, make_source, vector_options) -> None:
    """The real sentence-embedding model through a whole run: 384 dimensions, and a
    k-NN search for a document's own text finds that document."""
    make_source(120)
    out = api.start(
        cfg,
        names.alias,
        options(
            recompute_embeddings=True,
            embedder="minilm",
            text_field="title",
            batch_size=40,
            verify=True,
            verify_sample=10,
            **vector_options,
        ),
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    assert (rec.plan["recompute"] or {})["dimension"] == 384
    hit = next(iter(engine.scan(rec.target_index)))
    assert len(hit["_source"]["embedding"]) == 384
    if knn_searchable(engine):  # search by the document's text
        from reindex_fsm.embedders import minilm

        query = minilm.compute_embeddings([hit["_source"]["title"]])[0].tolist()
        body = {"size": 1, "query": {"knn": {"embedding": {"vector": query, "k": 1}}}}
        if engine.info().flavor == "elasticsearch":
            body = {
                "knn": {"field": "embedding", "query_vector": query, "k": 1, "num_candidates": 10}
            }
        top = raw(engine, "POST", f"/{rec.target_index}/_search", body=body)["hits"]["hits"][0]
        assert top["_source"]["title"] == hit["_source"]["title"]
