"""Preflight on a real engine: a closed source, a source without _source, a disk check
that cannot pass, a red cluster: each is one line and exit 13, and nothing is written
(no index, no lease, no run in the state database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.errors import ExitCode
from reindex_fsm.testing.sample import SAMPLE_MAPPINGS, sample_settings

from .conftest import Names, alias_snapshot, indices_under, raw, run_cli

pytestmark = pytest.mark.integration


def start(names: Names, db: Path, url: str, *extra: str) -> Any:
    return run_cli(
        "start",
        "--alias",
        names.alias,
        "--force",
        "--state-db",
        f"sqlite:///{db}",
        "--engine-url",
        url,
        *extra,
    )


def assert_refused_untouched(
    engine: ClientEngine, names: Names, db: Path, url: str, *extra: str
) -> str:
    """Start; assert exit 13 with one error line and nothing written; return the line."""
    indices, aliases = indices_under(engine, names.prefix), alias_snapshot(engine, names.prefix)
    result = start(names, db, url, *extra)
    assert result.returncode == ExitCode.PREFLIGHT_FAILED, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: preflight ")
    assert indices_under(engine, names.prefix) == indices  # no target
    assert alias_snapshot(engine, names.prefix) == aliases
    assert engine.get_lease(names.alias) is None  # no lease taken
    history = run_cli("history", "--json", "--state-db", f"sqlite:///{db}")
    assert json.loads(history.stdout) == []  # no run stored
    return line


def test_a_closed_source_is_refused_with_the_fix(
    engine: ClientEngine, engine_url: str, names: Names, make_source: Any, tmp_path: Path
) -> None:
    make_source(200)
    raw(engine, "POST", f"/{names.source}/_close")
    line = assert_refused_untouched(engine, names, tmp_path / "s.db", engine_url)
    assert line == (
        f"error: preflight closed: source index '{names.source}' is closed; "
        f"open it with POST {names.source}/_open, then start again"
    )


def test_a_source_without_source_field_is_refused(
    engine: ClientEngine, engine_url: str, names: Names, tmp_path: Path
) -> None:
    mappings = {**SAMPLE_MAPPINGS, "_source": {"enabled": False}}
    engine.create_index(names.source, sample_settings(engine), mappings)
    engine.update_aliases([{"add": {"index": names.source, "alias": names.alias}}])
    line = assert_refused_untouched(engine, names, tmp_path / "s.db", engine_url)
    assert line.startswith(
        f"error: preflight _source: source index '{names.source}' has _source disabled"
    )
    assert "--recompute-embeddings --documents-path" in line


def test_a_disk_check_that_cannot_pass_shows_the_figures(
    engine: ClientEngine, engine_url: str, names: Names, make_source: Any, tmp_path: Path
) -> None:
    make_source(500)
    line = assert_refused_untouched(
        engine, names, tmp_path / "s.db", engine_url, "--disk-headroom", "1e12"
    )
    assert line.startswith("error: preflight disk: the copy needs ")
    assert "x 1e+12 headroom); 1 data node(s) have " in line
    assert line.split("; ")[1].endswith(expected_disk_wording(engine))
    # the same start skipping the check runs, with the real _nodes/stats and _cat/indices
    done = start(
        names, tmp_path / "s.db", engine_url, "--disk-headroom", "1e12", "--skip-preflight", "disk"
    )
    assert done.returncode == 0, done.stderr


def test_a_red_cluster_is_refused(
    engine: ClientEngine, engine_url: str, names: Names, make_source: Any, tmp_path: Path
) -> None:
    make_source(200)
    # an index whose primary can never be assigned: the cluster is red while it exists
    raw(
        engine,
        "PUT",
        f"/{names('unassignable')}",
        body={
            "settings": {
                "index.number_of_replicas": 0,
                "index.routing.allocation.require._name": "no-such-node",
            }
        },
        wait_for_active_shards="0",
    )
    line = assert_refused_untouched(engine, names, tmp_path / "s.db", engine_url)
    assert line.startswith("error: preflight health: cluster health is red (")
    assert "allocation/explain" in line


def test_dry_run_shows_the_checks(
    engine: ClientEngine, engine_url: str, names: Names, make_source: Any, tmp_path: Path
) -> None:
    make_source(200)
    result = run_cli(
        "start",
        "--alias",
        names.alias,
        "--dry-run",
        "--json",
        "--engine-url",
        engine_url,
        "--state-db",
        f"sqlite:///{tmp_path}/s.db",
    )
    assert result.returncode == 0, result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)["preflight"]}
    assert list(checks) == ["health", "closed", "_source", "disk", "privileges"]
    assert checks["closed"]["status"] == "ok" and checks["disk"]["status"] == "ok"
    assert checks["privileges"] == {
        "check": "privileges",
        "status": "not checked",
        # Elasticsearch 7.17's x-pack answers with security off: "must be explicitly enabled"
        "detail": (
            "no security plugin"
            if engine.info().flavor == "opensearch"
            else "security is not enabled"
        ),
        "hint": None,
    }


# -- the disk check reads the cluster's own watermarks --------------------------------------

DISK = "cluster.routing.allocation.disk."


def cluster_setting(engine: ClientEngine, key: str) -> tuple[str, str]:
    """``(value, layer)`` of one cluster setting, read raw (flat keys, with defaults)."""
    body = raw(engine, "GET", "/_cluster/settings", include_defaults="true", flat_settings="true")
    for layer in ("transient", "persistent", "defaults"):
        if key in body.get(layer, {}):
            return str(body[layer][key]), layer
    raise AssertionError(f"{key} is not reported")


def expected_disk_wording(engine: ClientEngine) -> str:
    """How the disk check must describe this cluster's rule, from its raw settings."""
    enabled, _ = cluster_setting(engine, DISK + "threshold_enabled")
    if enabled == "false":
        return (
            "free (the cluster has disk thresholds disabled: "
            "cluster.routing.allocation.disk.threshold_enabled is false)"
        )
    low, layer = cluster_setting(engine, DISK + "watermark.low")
    setting = "the default" if layer == "defaults" else f"a {layer} cluster setting"
    return f"free below the low disk watermark {low} ({setting})"


def test_the_adapter_reads_the_clusters_watermarks_and_a_transient_one_wins(
    engine: ClientEngine,
) -> None:
    marks = engine.disk_watermarks()
    for key in ("low", "high", "flood_stage"):
        value, layer = cluster_setting(engine, DISK + f"watermark.{key}")
        assert (getattr(marks, key), marks.sources[key]) == (value, layer)
    assert marks.enabled is (cluster_setting(engine, DISK + "threshold_enabled")[0] != "false")
    # byte values (all three must be of one kind); "1b" each is the least restrictive
    # setting there is, harmless on a shared cluster, and it is reset whatever happens
    least = {DISK + f"watermark.{k}": "1b" for k in ("low", "high", "flood_stage")}
    try:
        raw(engine, "PUT", "/_cluster/settings", body={"transient": least})
        marks = engine.disk_watermarks()
        assert (marks.low, marks.high, marks.flood_stage) == ("1b", "1b", "1b")
        assert set(marks.sources.values()) == {"transient"}
    finally:
        raw(engine, "PUT", "/_cluster/settings", body={"transient": dict.fromkeys(least)})
    assert engine.disk_watermarks().sources["low"] != "transient"


def test_the_disk_check_of_a_dry_run_uses_the_clusters_rule(
    engine: ClientEngine, engine_url: str, names: Names, make_source: Any, tmp_path: Path
) -> None:
    make_source(200)
    result = run_cli(
        "start",
        "--alias",
        names.alias,
        "--dry-run",
        "--json",
        "--state-db",
        f"sqlite:///{tmp_path / 's.db'}",
        "--engine-url",
        engine_url,
    )
    assert result.returncode == 0, result.stderr
    (disk,) = [c for c in json.loads(result.stdout)["preflight"] if c["check"] == "disk"]
    assert disk["status"] == "ok", disk
    assert disk["detail"].endswith(expected_disk_wording(engine)), disk
