"""Preflight on the fake engine: each failed check is one line and exit 13, before
anything is written to the engine or the state database; skips, warnings, dry-run."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.engine.base import EngineInfo, NodeDisk
from reindex_fsm.errors import ExitCode, PreflightFailed
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.preflight import preflight
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, db_rows

GIB = 2**30


def invoke(cfg: Config, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def red(fake: FakeEngine) -> None:
    fake.health_status, fake.unassigned_shards = "red", 3


def closed(fake: FakeEngine) -> None:
    fake.closed.add(SOURCE)


def no_source(fake: FakeEngine) -> None:
    fake.indices[SOURCE].mappings["_source"] = {"enabled": False}


def small_disk(fake: FakeEngine) -> None:
    # 1 GiB primary x 2 copies x 1.2 = 2.4 GiB needed; 3 GiB free of 10 GiB: 1.5 GiB usable
    fake.store_bytes[SOURCE] = GIB
    fake.disks = [NodeDisk("node-1", total_bytes=10 * GIB, available_bytes=3 * GIB)]


def missing_privileges(fake: FakeEngine) -> None:
    fake.set_info(EngineInfo("elasticsearch", "8.15.3", "fake"))
    fake.security_enabled = True
    fake.missing_privileges = {"cluster:manage", f"{ALIAS}-*:create_index"}


FAILURES = [
    (red, "preflight health: cluster health is red (3 unassigned shards)", "allocation/explain"),
    (closed, f"preflight closed: source index '{SOURCE}' is closed", f"POST {SOURCE}/_open"),
    (no_source, f"preflight _source: source index '{SOURCE}' has _source disabled", "--documents"),
    (small_disk, "preflight disk: the copy needs 2.4 GiB (primary store 1.0 GiB x 2", "1.5 GiB"),
    (
        missing_privileges,
        f"preflight privileges: user reindexer lacks cluster:manage, {ALIAS}-*:create_index",
        "--skip-preflight privileges",
    ),
]


@pytest.mark.parametrize(
    ("setup", "message", "hint"), FAILURES, ids=lambda v: getattr(v, "__name__", "")
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["start", "dry-run"])
def test_a_failed_check_is_one_line_exit_13_and_nothing_written(
    cfg: Config,
    fake: FakeEngine,
    state_db: str,
    setup: Callable[[FakeEngine], None],
    message: str,
    hint: str,
    dry_run: bool,
) -> None:
    setup(fake)
    engine_before, db_before = fake.snapshot(), db_rows(state_db)
    args = ["start", "--alias", ALIAS, "--dry-run" if dry_run else "--force"]
    result = invoke(cfg, *args)
    assert result.exit_code == ExitCode.PREFLIGHT_FAILED == 13, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr
    assert hint in lines[0]
    assert fake.call_names(mutating_only=True) == []  # no lease, no index, nothing
    assert fake.snapshot() == engine_before and fake.leases == {}
    assert db_rows(state_db) == db_before


def test_a_concrete_index_named_like_the_alias_keeps_its_exit_code(
    cfg: Config, fake: FakeEngine
) -> None:
    fake.add_index("plain", {"a": {"x": 1}})
    result = invoke(cfg, "start", "--alias", "plain", "--force")
    assert result.exit_code == ExitCode.USAGE
    assert "'plain' is a concrete index, not an alias" in result.stderr
    assert fake.call_names(mutating_only=True) == []


def test_a_skipped_check_lets_the_run_go_and_is_recorded(cfg: Config, fake: FakeEngine) -> None:
    small_disk(fake)
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--json", "--skip-preflight", "disk")
    assert result.exit_code == 0, result.stderr
    record = cfg.repo().get(json.loads(result.stdout)["run_id"])
    assert record.state is State.SWAPPED
    checks = {c["check"]: c["status"] for c in record.plan["preflight"]}
    assert checks == {
        "health": "ok",
        "closed": "ok",
        "_source": "ok",
        "disk": "skipped",
        "privileges": "not checked",
    }
    assert "data_node_disks" not in fake.call_names()


def test_a_lower_disk_headroom_passes_where_the_default_fails(
    cfg: Config, fake: FakeEngine
) -> None:
    small_disk(fake)  # 1.5 GiB usable: 1 GiB x 2 copies fits with headroom 0.7, not 1.2
    outcome = api.start(cfg, ALIAS, RunOptions(disk_headroom=0.7))
    assert outcome.record.state is State.SWAPPED


def test_yellow_health_is_a_warning_line_and_the_run_goes_on(cfg: Config, fake: FakeEngine) -> None:
    fake.health_status, fake.unassigned_shards = "yellow", 1
    result = invoke(cfg, "start", "--alias", ALIAS, "--force")
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: preflight health: cluster health is yellow (1 unassigned shards): "
        "replicas are missing"
    ) in result.stderr.splitlines()


def test_dry_run_shows_every_check_and_the_lease(cfg: Config, fake: FakeEngine) -> None:
    result = invoke(cfg, "start", "--alias", ALIAS, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(c["check"], c["status"]) for c in data["preflight"]] == [
        ("health", "ok"),
        ("closed", "ok"),
        ("_source", "ok"),
        ("disk", "ok"),
        ("privileges", "not checked"),
    ]
    assert data["preflight"][-1]["detail"] == "no security plugin"
    assert data["lease"] is None
    assert fake.call_names(mutating_only=True) == []


def test_opensearch_with_security_probes_the_privileges_and_names_user_and_roles(
    fake: FakeEngine,
) -> None:
    # the probes themselves: tests/test_opensearch_privileges.py
    fake.plugin_names = {"opensearch-security"}
    results = preflight(fake, fake.info(), ALIAS, RunOptions())
    assert results[-1].status == "ok"
    assert results[-1].detail.startswith("user reindexer (roles: reindex_role) passed every")


def test_elasticsearch_without_security_passes_and_with_all_privileges_is_ok(
    fake: FakeEngine,
) -> None:
    fake.set_info(EngineInfo("elasticsearch", "8.15.3", "fake"))
    assert preflight(fake, fake.info(), ALIAS, RunOptions())[-1].detail == (
        "security is not enabled"
    )
    fake.security_enabled = True
    last = preflight(fake, fake.info(), ALIAS, RunOptions())[-1]
    assert (last.status, last.detail) == (
        "ok",
        "user reindexer holds every privilege a run needs",
    )


def test_source_disabled_is_fine_when_documents_come_from_a_file(fake: FakeEngine) -> None:
    no_source(fake)
    options = RunOptions(recompute_embeddings=True, documents_path="docs.jsonl")
    result = {r.check: r for r in preflight(fake, fake.info(), ALIAS, options)}["_source"]
    assert result.status == "ok" and "docs.jsonl" in result.detail


def test_disk_needs_room_for_the_final_replicas(fake: FakeEngine) -> None:
    fake.store_bytes[SOURCE] = GIB
    fake.disks = [NodeDisk("node-1", total_bytes=10 * GIB, available_bytes=5 * GIB)]  # 3.5 usable
    assert preflight(fake, fake.info(), ALIAS, RunOptions())[3].status == "ok"  # 2 copies: 2.4
    three_copies = RunOptions(settings_overrides={"index.number_of_replicas": 2})  # 3.6 GiB
    with pytest.raises(PreflightFailed, match=r"x 3 copies") as failed:
        preflight(fake, fake.info(), ALIAS, three_copies)
    assert failed.value.exit_code == ExitCode.PREFLIGHT_FAILED


# -- the disk check reads the cluster's own watermarks --------------------------------------

DISK = "cluster.routing.allocation.disk."


def disk_result(fake: FakeEngine):
    return {r.check: r for r in preflight(fake, fake.info(), ALIAS, RunOptions())}["disk"]


def ten_gib_node_with(fake: FakeEngine, free_gib: float) -> None:
    fake.store_bytes[SOURCE] = GIB  # 2 copies x 1.2 headroom: 2.4 GiB needed
    fake.disks = [NodeDisk("node-1", total_bytes=10 * GIB, available_bytes=int(free_gib * GIB))]


def test_the_default_low_watermark_is_the_clusters_85_percent(fake: FakeEngine) -> None:
    ten_gib_node_with(fake, 4)  # 4 GiB free - 15 % of 10 GiB = 2.5 GiB usable
    result = disk_result(fake)
    assert result.status == "ok"
    assert result.detail.endswith(
        "1 data node(s) have 2.5 GiB free below the low disk watermark 85% (the default)"
    )


@pytest.mark.parametrize(
    ("layer", "low", "usable"),
    [
        ("transient", "75%", "1.5 GiB"),  # 4 - 2.5 GiB
        ("persistent", "0.75", "1.5 GiB"),  # a ratio
        ("persistent", "3.5gb", "512.0 MiB"),  # absolute: 3.5 GiB must stay free
        ("transient", "500mb", "3.5 GiB"),
    ],
)
def test_a_watermark_set_on_the_cluster_is_used_percent_ratio_or_bytes(
    fake: FakeEngine, layer: str, low: str, usable: str
) -> None:
    ten_gib_node_with(fake, 4)
    fake.cluster_settings[layer][DISK + "watermark.low"] = low
    expected = f"have {usable} free below the low disk watermark {low} (a {layer} cluster setting)"
    if usable == "3.5 GiB":  # room for the 2.4 GiB
        result = disk_result(fake)
        assert result.status == "ok" and expected in result.detail
        return
    with pytest.raises(PreflightFailed) as failed:
        disk_result(fake)
    assert expected in str(failed.value)


def test_a_transient_watermark_wins_over_a_persistent_one(fake: FakeEngine) -> None:
    fake.cluster_settings["persistent"][DISK + "watermark.low"] = "50%"
    fake.cluster_settings["transient"][DISK + "watermark.low"] = "1gb"
    marks = fake.disk_watermarks()
    assert (marks.low, marks.sources["low"], marks.high) == ("1gb", "transient", "90%")


def test_a_refusal_names_the_watermark_it_used(fake: FakeEngine) -> None:
    ten_gib_node_with(fake, 4)
    fake.cluster_settings["persistent"][DISK + "watermark.low"] = "3gb"
    with pytest.raises(PreflightFailed) as failed:
        preflight(fake, fake.info(), ALIAS, RunOptions())
    assert "have 1.0 GiB free below the low disk watermark 3gb (a persistent cluster " in str(
        failed.value
    )


def test_disabled_disk_thresholds_count_all_the_free_space(fake: FakeEngine) -> None:
    ten_gib_node_with(fake, 2.5)  # below 85 % only 1 GiB: would fail
    fake.cluster_settings["persistent"][DISK + "threshold_enabled"] = "false"
    result = disk_result(fake)
    assert result.status == "ok"
    assert "have 2.5 GiB free (the cluster has disk thresholds disabled" in result.detail


def test_elasticsearch_max_headroom_caps_what_a_percentage_asks_for(fake: FakeEngine) -> None:
    ten_gib_node_with(fake, 3)  # 15 % of 10 GiB is 1.5 GiB, capped at 512 MiB: 2.5 GiB usable
    fake.cluster_settings["defaults"][DISK + "watermark.low.max_headroom"] = "512mb"
    assert disk_result(fake).status == "ok"
    fake.cluster_settings["defaults"][DISK + "watermark.low.max_headroom"] = "-1"  # none
    with pytest.raises(PreflightFailed):
        disk_result(fake)


def test_a_watermark_that_cannot_be_read_is_not_checked(fake: FakeEngine) -> None:
    fake.cluster_settings["transient"][DISK + "watermark.low"] = "lots"
    result = disk_result(fake)
    assert (result.status, result.detail) == (
        "not checked",
        "cannot read the low disk watermark 'lots'",
    )


def test_the_checks_skip_preflight_names_are_the_checks_preflight_makes():
    """--skip-preflight's choices (options.PREFLIGHT_CHECKS) are the checks preflight makes,
    in its order: a check added to one and not the other could not be skipped or would be
    refused as unknown."""
    from reindex_fsm import preflight as preflight_module
    from reindex_fsm.options import PREFLIGHT_CHECKS

    assert tuple(preflight_module._CHECKS) == PREFLIGHT_CHECKS
