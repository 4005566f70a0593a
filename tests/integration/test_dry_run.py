"""``start --dry-run --json`` prints the plan and leaves the cluster as it was."""

from __future__ import annotations

import pytest

from .conftest import alias_snapshot, cli_json, indices_under, raw, reindex_tasks_under

pytestmark = pytest.mark.integration


def cluster_state(engine, names) -> dict:
    return {
        "indices": indices_under(engine, names.prefix),
        "aliases": alias_snapshot(engine, names.prefix),
        "alias": raw(engine, "GET", f"/_alias/{names.alias}"),
        "source_settings": engine.get_index(names.source).settings,  # uuid and all
        "source_mappings": engine.get_index(names.source).mappings,
        "source_count": engine.count(names.source),
        "copies": reindex_tasks_under(engine, names.prefix),
    }


def test_dry_run_prints_the_plan_and_changes_nothing(
    engine, engine_url, tmp_path, names, make_source
):
    n_docs = make_source(extra_aliases={names("public"): {"filter": {"term": {"lang": "fr"}}}})
    before = cluster_state(engine, names)
    db = str(tmp_path / "state.db")

    code, plan = cli_json(
        "start",
        "--alias",
        names.alias,
        "--dry-run",
        "--set",
        "index.number_of_shards=1",
        "--verify",
        "--state-db",
        db,
        "--engine-url",
        engine_url,
    )

    assert code == 0, plan
    assert cluster_state(engine, names) == before
    assert plan["dry_run"] is True and plan["run_id"] is None and plan["state"] is None
    assert plan["alias"] == names.alias and plan["source_index"] == names.source
    target = plan["target_index"]
    assert target.startswith(f"{names.alias}-") and not engine.index_exists(target)
    assert plan["source_count"] == n_docs
    assert plan["settings"]["index.number_of_shards"] == 1  # the override
    assert plan["settings"]["index.analysis.analyzer.folding.type"] == "custom"
    assert "index.uuid" not in plan["settings"]
    assert plan["copy_settings"] == {
        "index.number_of_replicas": "0",
        "index.refresh_interval": "-1",
    }
    assert plan["mappings"]["_meta"]["reindex_fsm"]["source_index"] == names.source
    # the copy's batch size, chosen from the source's documents (steps/copy/tuning.py)
    assert plan["reindex"]["source"] == {"index": names.source, "size": 1000}
    assert plan["copy_tuning"]["batch_size"] == 1000
    assert plan["reindex"]["dest"]["index"] == target
    assert plan["aliases"] == before["aliases"][names.source]["aliases"]
    removes = [a["remove"] for a in plan["alias_actions"] if "remove" in a]
    adds = [a["add"] for a in plan["alias_actions"] if "add" in a]
    assert {(r["index"], r["alias"]) for r in removes} == {
        (names.source, names.alias),
        (names.source, names("public")),
    }
    assert {(a["index"], a["alias"]) for a in adds} == {
        (target, names.alias),
        (target, names("public")),
    }
    assert [s["step"] for s in plan["steps"]] == [
        "create_target",
        "write_policy",
        "copy",
        "verify",
        "swap",
    ]
    assert plan["steps"][1]["policy"] == "block"
    assert plan["engine"]["flavor"] in ("opensearch", "elasticsearch")
    # and no run was stored
    assert cli_json("history", "--state-db", db) == (0, [])
