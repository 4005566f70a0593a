"""Bulk-load tuning: while the copy runs the target has no replicas and no refresh; after
the swap it has the source's replica count and refresh interval."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.machine import State

from .conftest import make_config, options

pytestmark = pytest.mark.integration

TUNED = ("index.number_of_replicas", "index.refresh_interval")


def test_target_is_tuned_for_the_copy_and_restored_after(
    engine, engine_url, tmp_path, names, make_source
):
    n_docs = make_source(settings={"index.number_of_replicas": 1, "index.refresh_interval": "7s"})
    source_settings = engine.get_index(names.source).settings
    assert {k: source_settings[k] for k in TUNED} == {
        "index.number_of_replicas": "1",
        "index.refresh_interval": "7s",
    }
    during: list[dict[str, str]] = []

    def observe(_point: str) -> None:
        settings = engine.get_index(names.target).settings
        during.append({k: settings.get(k) for k in TUNED})
        assert engine.get_index_aliases(names.target) == {}

    cfg = make_config(
        tmp_path, engine_url, crash=lambda: Crashpoints(at="commit.REINDEXING", action=observe)
    )
    rec = api.start(cfg, names.alias, options(verify=True, target_index=names.target)).record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.target_count == n_docs

    assert during == [{"index.number_of_replicas": "0", "index.refresh_interval": "-1"}]
    after = engine.get_index(names.target).settings
    assert {k: after.get(k) for k in TUNED} == {k: source_settings[k] for k in TUNED}
    verified = cfg.repo().events(rec.id)[-1].detail
    assert verified["restored"] == {"index.number_of_replicas": "1", "index.refresh_interval": "7s"}


def test_the_operators_values_win_during_the_copy_and_after(
    engine, engine_url, tmp_path, names, make_source
):
    """--copy-set wins over the tuning while copying; --set is the final value restored."""
    make_source(settings={"index.number_of_replicas": 1, "index.refresh_interval": "7s"})
    during: list[dict[str, str]] = []

    def observe(_point: str) -> None:
        settings = engine.get_index(names.target).settings
        during.append({k: settings.get(k) for k in TUNED})

    cfg = make_config(
        tmp_path, engine_url, crash=lambda: Crashpoints(at="commit.REINDEXING", action=observe)
    )
    run_options = options(
        verify=True,
        target_index=names.target,
        settings_overrides={"index.refresh_interval": "3s"},
        copy_settings_overrides={"index.refresh_interval": "30s"},
    )
    rec = api.start(cfg, names.alias, run_options).record
    assert rec.state is State.SWAPPED, rec.error
    assert during == [{"index.number_of_replicas": "0", "index.refresh_interval": "30s"}]
    after = engine.get_index(names.target).settings
    assert {k: after.get(k) for k in TUNED} == {
        "index.number_of_replicas": "1",  # the source's
        "index.refresh_interval": "3s",  # the operator's final value
    }
    health = engine.cluster_health(names.target)
    assert health["status"] in ("green", "yellow")  # yellow: one node cannot hold a replica
