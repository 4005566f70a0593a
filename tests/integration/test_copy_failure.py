"""A mapping override that the data does not fit fails the copy on the real engine, and the
error names the document and the field."""

from __future__ import annotations

import json

import pytest

from reindex_fsm.errors import ExitCode

from .conftest import alias_snapshot, cli_json

pytestmark = pytest.mark.integration


def test_a_mapping_override_the_data_does_not_fit_names_the_field_and_the_document(
    engine, engine_url, tmp_path, names
):
    engine.create_index(
        names.source,
        {"index.number_of_shards": 1, "index.number_of_replicas": 0},
        {"properties": {"title": {"type": "text"}, "n": {"type": "integer"}}},
    )
    docs = {f"d{i}": {"title": "hello world" if i == 3 else str(i), "n": i} for i in range(10)}
    _ok, errors = engine.bulk(
        {"_op_type": "index", "_index": names.source, "_id": k, "_source": v}
        for k, v in docs.items()
    )
    assert not errors
    engine.update_aliases([{"add": {"index": names.source, "alias": names.alias}}])
    engine.refresh(names.source)
    aliases_before = alias_snapshot(engine, names.prefix)
    mappings = tmp_path / "mappings.json"
    mappings.write_text(json.dumps({"properties": {"title": {"type": "integer"}}}))
    state_db = ("--state-db", str(tmp_path / "state.db"))

    code, out = cli_json(
        "start",
        "--alias",
        names.alias,
        "--target-index",
        names.target,
        "--mappings",
        str(mappings),
        "--force",
        *state_db,
        "--engine-url",
        engine_url,
    )

    assert code == ExitCode.RUN_FAILED, out
    assert out["state"] == "FAILED"
    error = out["error"]
    assert "1 document(s) failed, first: document d3 " in error, error
    assert "field title (mapped as integer) refused its value" in error, error
    assert 'caused by number_format_exception: For input string: "hello world"' in error, error
    assert f"`reindex-fsm abort {out['run_id']}`" in error
    assert alias_snapshot(engine, names.prefix)[names.source] == aliases_before[names.source]
    assert list(engine.get_alias(names.alias)) == [names.source]
    code, shown = cli_json("show", out["run_id"], *state_db)
    assert code == 0 and shown["error"] == error
