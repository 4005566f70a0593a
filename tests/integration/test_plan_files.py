"""``apply PLAN_FILE`` on a real engine: a small plan (a new shard count, a throttle, deep
verification) dry-run first (nothing written), then applied: the alias moves to a target
with the file's settings and the source's exact documents, and the run stores the file's
path and SHA-256."""

from __future__ import annotations

import hashlib

import pytest

from reindex_fsm.testing import sample

from .conftest import cli_json, content_digest, raw, stable_settings

pytestmark = pytest.mark.integration


def test_apply_a_small_plan_file(engine, engine_url, tmp_path, names, make_source):
    make_source(500)
    state_db = str(tmp_path / "state.db")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"alias: {names.alias}\n"
        f"target-index: {names.target}\n"
        "verify: deep\n"
        "requests-per-second: unlimited\n"
        "set:\n"
        "  index.number_of_shards: 2\n"
        f"engine-url: {engine_url}\n"
        f"state-db: {state_db}\n",
        encoding="utf-8",
    )
    digest = hashlib.sha256(plan.read_bytes()).hexdigest()
    before = content_digest(engine, names.source)

    code, dry = cli_json("apply", str(plan), "--dry-run")
    assert code == 0, dry
    (change,) = dry["aliases"]
    assert change["target_index"] == names.target
    assert change["settings"]["changed"]["index.number_of_shards"] == ["3", 2]
    assert not engine.index_exists(names.target)

    code, out = cli_json("apply", str(plan), "--force")
    assert code == 0, out
    assert out["state"] == "SWAPPED" and out["verification"]["passed"]
    assert (out["plan_path"], out["plan_hash"]) == (str(plan), digest)
    assert list(raw(engine, "GET", f"/_alias/{names.alias}")) == [names.target]
    assert stable_settings(engine, names.target)["index.number_of_shards"] == "2"
    assert content_digest(engine, names.target) == before

    code, shown = cli_json("show", out["run_id"], "--state-db", state_db)
    assert code == 0 and (shown["plan_path"], shown["plan_hash"]) == (str(plan), digest)


def test_apply_a_pattern_with_an_override_as_a_batch(engine, engine_url, tmp_path, names):
    aliases = [names("logs-a"), names("logs-b")]
    for alias in aliases:
        sample.create_sample(engine, f"{alias}-src", alias, 200)
    state_db = str(tmp_path / "state.db")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"alias-pattern: {names.prefix}-logs-*\n"
        "aliases:\n"
        f"  - alias: {aliases[1]}\n"
        "    set: {index.number_of_shards: 1}\n"
        "concurrency: 2\n"
        "on-failure: continue\n"
        f"engine-url: {engine_url}\n"
        f"state-db: {state_db}\n",
        encoding="utf-8",
    )
    digest = hashlib.sha256(plan.read_bytes()).hexdigest()
    before = {alias: content_digest(engine, f"{alias}-src") for alias in aliases}

    code, out = cli_json("apply", str(plan), "--force")
    assert code == 0, out
    assert (out["swapped"], out["total"]) == (2, 2)
    assert (out["plan_path"], out["plan_hash"]) == (str(plan), digest)
    targets = {r["alias"]: r["target_index"] for r in out["runs"]}
    for alias in aliases:
        assert list(raw(engine, "GET", f"/_alias/{alias}")) == [targets[alias]]
        assert content_digest(engine, targets[alias]) == before[alias]
    assert stable_settings(engine, targets[aliases[1]])["index.number_of_shards"] == "1"
    assert stable_settings(engine, targets[aliases[0]])["index.number_of_shards"] == "3"
    code, rows = cli_json("history", "--state-db", state_db)
    assert code == 0 and {(r["plan_path"], r["plan_hash"]) for r in rows} == {(str(plan), digest)}
