"""Settings and mapping overrides given on the CLI (``--set``, ``--settings FILE``,
``--mappings FILE``) take effect in the target: a new shard count, a new analyzer, and a
field analysed with it (seen with ``_analyze`` and with a search)."""

from __future__ import annotations

import json

import pytest

from .conftest import cli_json, mappings_without_meta, raw, stable_settings

pytestmark = pytest.mark.integration

REVERSED = {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "reverse"]}


def analyze(engine, index: str, field: str, text: str) -> list[str]:
    body = raw(engine, "POST", f"/{index}/_analyze", body={"field": field, "text": text})
    return [t["token"] for t in body["tokens"]]


def term_count(engine, index: str, field: str, term: str) -> int:
    body = {"query": {"term": {field: term}}}
    return raw(engine, "POST", f"/{index}/_count", body=body)["count"]


@pytest.mark.needs("analysis_common")  # the "reverse" filter
def test_settings_and_mapping_overrides_take_effect(
    engine, engine_url, tmp_path, names, make_source
):
    n_docs = make_source()
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"analysis": {"analyzer": {"reversed": REVERSED}}}))
    mappings_file = tmp_path / "mappings.json"
    new_body = {"type": "text", "analyzer": "reversed"}
    mappings_file.write_text(json.dumps({"mappings": {"properties": {"body": new_body}}}))
    src_settings = stable_settings(engine, names.source)
    src_mappings = mappings_without_meta(engine, names.source)
    assert src_settings["index.number_of_shards"] == "3"

    code, out = cli_json(
        "start",
        "--alias",
        names.alias,
        "--target-index",
        names.target,
        "--set",
        "index.number_of_shards=2",
        "--settings",
        str(settings_file),
        "--mappings",
        str(mappings_file),
        "--verify",
        "--force",
        "--state-db",
        str(tmp_path / "state.db"),
        "--engine-url",
        engine_url,
    )
    assert (code, out["state"]) == (0, "SWAPPED"), out
    assert out["target_count"] == n_docs

    # GET settings: the new shard count and analyzer, the source's other settings kept
    settings = stable_settings(engine, names.target)
    assert settings["index.number_of_shards"] == "2"
    assert settings["index.analysis.analyzer.reversed.filter"] == ["lowercase", "reverse"]
    assert settings["index.analysis.analyzer.reversed.tokenizer"] == "standard"
    expected = {
        **src_settings,
        "index.number_of_shards": "2",
        **{f"index.analysis.analyzer.reversed.{k}": v for k, v in REVERSED.items()},
    }
    assert settings == expected
    health = raw(engine, "GET", f"/_cluster/health/{names.target}")
    assert health["active_primary_shards"] == 2

    # GET mappings: body replaced, every other field as in the source
    mappings = mappings_without_meta(engine, names.target)
    assert mappings["properties"]["body"] == new_body
    assert mappings == {
        **src_mappings,
        "properties": {**src_mappings["properties"], "body": new_body},
    }

    # the analyzer applies: to _analyze, and to what was indexed by the copy
    assert analyze(engine, names.source, "body", "Index café") == ["index", "cafe"]
    assert analyze(engine, names.target, "body", "Index café") == ["xedni", "éfac"]
    assert term_count(engine, names.source, "body", "xedni") == 0
    in_source = term_count(engine, names.source, "body", "index")
    assert in_source > 0
    assert term_count(engine, names.target, "body", "xedni") == in_source
    assert term_count(engine, names.target, "body", "index") == 0
    # a field not overridden keeps its analyzer
    assert analyze(engine, names.target, "title", "Café") == ["cafe"]
