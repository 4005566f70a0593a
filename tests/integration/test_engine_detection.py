"""The engine is recognised from ``GET /``: by ``connect(url)`` and by the CLI's default
``--engine auto``; naming the other flavour is refused with a usage error."""

from __future__ import annotations

import pytest

from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import ExitCode

from .conftest import cli_json, raw

pytestmark = pytest.mark.integration


def test_engine_is_auto_detected(engine, engine_url, tmp_path, names, make_source):
    root = raw(engine, "GET", "/")
    with connect(engine_url) as detected:
        info = detected.info()
    assert info.flavor in ("opensearch", "elasticsearch")
    expected = (
        "opensearch" if root["version"].get("distribution") == "opensearch" else "elasticsearch"
    )
    assert info.flavor == expected == detected.flavor
    assert info.version == root["version"]["number"]

    make_source(100)
    common = ["--alias", names.alias, "--dry-run", "--state-db", str(tmp_path / "state.db")]
    code, plan = cli_json("start", *common, "--engine-url", engine_url)  # --engine auto
    assert code == 0, plan
    assert plan["engine"] == {
        "url": engine.url,
        "flavor": info.flavor,
        "version": info.version,
        "cluster_name": root["cluster_name"],
        "cluster_uuid": root["cluster_uuid"],  # a run is continued on this cluster only
    }
    assert plan["source_index"] == names.source

    code, plan = cli_json("start", *common, "--engine-url", engine_url, "--engine", info.flavor)
    assert code == 0 and plan["engine"]["flavor"] == info.flavor

    other = "elasticsearch" if info.flavor == "opensearch" else "opensearch"
    code, out = cli_json("start", *common, "--engine-url", engine_url, "--engine", other)
    assert code == ExitCode.USAGE, out
    assert out["exit_code"] == ExitCode.USAGE and info.flavor in out["error"]
