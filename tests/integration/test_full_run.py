"""A full run on the shared 20,000-document sample, and what it carries across: the
definition (settings, mappings), every document, and every alias with its properties."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State

from .conftest import (
    BIG_DOCS,
    as_reported,
    content_digest,
    mappings_without_meta,
    options,
    raw,
    stable_settings,
)

pytestmark = pytest.mark.integration


def test_full_run_copies_definition_and_every_document(engine, cfg, big_source):
    source = big_source.index
    settings_overrides = {"index.max_result_window": 25000}
    new_field = {"summary": {"type": "text", "analyzer": "folding"}}
    src_settings = stable_settings(engine, source)
    src_mappings = mappings_without_meta(engine, source)
    assert src_settings["index.number_of_shards"] == "3"
    assert {"folding", "autocomplete"} <= {
        k.split(".")[3] for k in src_settings if k.startswith("index.analysis.analyzer.")
    }

    outcome = api.start(
        cfg,
        big_source.alias,
        options(
            verify=True,
            settings_overrides=settings_overrides,
            mappings_override={"properties": new_field},
        ),
    )
    rec = outcome.record
    assert rec.state is State.SWAPPED, rec.error
    assert outcome.exit_code == ExitCode.OK
    assert rec.source_count == rec.target_count == BIG_DOCS
    target = rec.target_index
    assert target.startswith(f"{big_source.alias}-") and target != source
    assert [(e.from_state, e.to_state) for e in cfg.repo().events(rec.id)] == [
        (None, "PLANNED"),
        ("PLANNED", "TARGET_CREATED"),
        ("TARGET_CREATED", "TARGET_CREATED"),  # write_block: recorded, then put on
        ("TARGET_CREATED", "REINDEXING"),
        ("REINDEXING", "VERIFYING"),
        ("VERIFYING", "SWAPPED"),
    ]

    # the definition: the source's, less volatile keys and _meta, plus the overrides
    assert stable_settings(engine, target) == {**src_settings, **as_reported(settings_overrides)}
    expected_mappings = {
        **src_mappings,
        "properties": {**src_mappings["properties"], **new_field},
    }
    assert mappings_without_meta(engine, target) == expected_mappings
    meta = engine.get_index(target).mappings["_meta"]["reindex_fsm"]
    assert meta["run_id"] == rec.id and meta["source_index"] == source
    assert stable_settings(engine, source) == src_settings  # the source is not touched

    # every document: the same IDs with the same _source
    src_digest = content_digest(engine, source)
    assert src_digest[0] == BIG_DOCS
    assert content_digest(engine, target) == src_digest

    # the alias: on the target with its properties, gone from the source
    assert engine.get_index_aliases(target) == big_source.aliases
    assert engine.get_index_aliases(source) == {}
    assert list(engine.get_alias(big_source.alias)) == [target]
    assert engine.count(big_source.alias) == BIG_DOCS
    # the nested field and the multi-fields are searchable in the target as in the source
    nested = {"query": {"nested": {"path": "comments", "query": {"exists": {"field": "comments"}}}}}
    by_raw = {"query": {"exists": {"field": "title.raw"}}}
    for body in (nested, by_raw):
        counts = [raw(engine, "POST", f"/{i}/_count", body=body)["count"] for i in (source, target)]
        assert counts[0] == counts[1] > 0
