"""Capability selection of the real-engine tests (``tests/support/capabilities.py``): what an
engine has from what it answers or from its kind, which tests it deselects, what the summary
says; a run of pytest inside the test (``pytester``), once with pytest-xdist workers asking a
small HTTP server that answers as an engine would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devtools.engine import Settings
from tests.support import capabilities
from tests.support.capabilities import (
    CAPABILITIES,
    RULES,
    EngineFacts,
    capabilities_of,
    components_of,
    kind_engine,
)

ROOT = Path(__file__).resolve().parents[1]

# What the launcher's OpenSearch 2.19 lists (modules under their class names), what the
# launcher's 3.5 lists (stock names), and an Elasticsearch 7.17 integ-test-zip's modules.
OPENSEARCH_2_LOCAL = frozenset(
    {
        "opensearch-knn",
        "org.opensearch.knn.plugin.KNNPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.ingest.common.IngestCommonPlugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
    }
)
OPENSEARCH_3_LOCAL = frozenset({"lang-painless", "ingest-common", "analysis-common", "reindex"})
ELASTICSEARCH_7 = frozenset({"reindex", "transport-netty4", "x-pack-security", "mapper-extras"})


def test_every_capability_has_a_rule_and_the_markers_name_them_all() -> None:
    assert set(RULES) == set(CAPABILITIES)
    text = (ROOT / "pyproject.toml").read_text()
    needs_marker = next(line for line in text.splitlines() if '"needs(' in line)
    for name in CAPABILITIES:
        assert name in needs_marker, name


@pytest.mark.parametrize(
    ("facts", "want"),
    [
        (
            EngineFacts("opensearch", "2.19.6", OPENSEARCH_2_LOCAL),
            {"painless", "ingest", "analysis_common", "knn", "data_streams", "index_templates"}
            | {"vector_field"},
        ),
        (
            EngineFacts("opensearch", "3.5.0", OPENSEARCH_3_LOCAL, nodes=3),
            {"painless", "ingest", "analysis_common", "data_streams", "index_templates"}
            | {"multi_node"},
        ),
        (
            EngineFacts("elasticsearch", "7.17.29", ELASTICSEARCH_7, security=True),
            {"index_templates", "security", "elasticsearch"},
        ),
        (
            EngineFacts("elasticsearch", "7.7.1", frozenset({"lang-painless"})),
            {"painless", "elasticsearch"},
        ),
        (
            EngineFacts("elasticsearch", "8.15.0", frozenset({"x-pack-ilm", "lang-painless"})),
            {"painless", "dense_vector", "vector_field", "data_streams", "index_templates", "ilm"}
            | {"elasticsearch"},
        ),
        (
            EngineFacts(
                "opensearch",
                "2.19.6",
                frozenset({"opensearch-security", "opensearch-index-management"}),
                security=True,
            ),
            {"data_streams", "index_templates", "ism", "security"},
        ),
    ],
)
def test_what_an_engine_has(facts: EngineFacts, want: set[str]) -> None:
    assert capabilities_of(facts) == want


def test_components_every_node_has_by_name_and_class() -> None:
    answer = {
        "nodes": {
            "a": {
                "modules": [{"name": "lang-painless", "classname": "x.PainlessModulePlugin"}],
                "plugins": [{"name": "opensearch-knn", "classname": "x.KNNPlugin"}],
            },
            "b": {
                "modules": [{"name": "lang-painless", "classname": "x.PainlessModulePlugin"}],
                "plugins": [],
            },
        }
    }
    assert components_of(answer) == (
        frozenset({"lang-painless", "x.PainlessModulePlugin"}),
        2,
    )
    assert components_of({}) == (frozenset(), 0)


def test_the_launchers_engine_is_known_by_its_kind(tmp_path: Path) -> None:
    two = kind_engine(Settings(home=tmp_path, kind="opensearch-2"))
    assert (two.facts.flavor, two.facts.version, two.how) == (
        "opensearch",
        "2.19.6",
        "by its kind opensearch-2",
    )
    assert {"knn", "vector_field", "painless", "local_engines"} <= two.capabilities
    assert "multi_node" not in two.capabilities
    without_knn = kind_engine(Settings(home=tmp_path, knn=False)).capabilities
    assert not without_knn & {"knn", "vector_field"}
    three = kind_engine(Settings(home=tmp_path, kind="opensearch-3"))
    assert three.facts.version == "3.5.0"
    assert not three.capabilities & {"knn", "vector_field"} and "painless" in three.capabilities


def test_an_unknown_kind_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REINDEX_FSM_TEST_ENGINE_URL", raising=False)
    monkeypatch.setenv("REINDEX_FSM_ENGINE_KIND", "opensearch-9")
    with pytest.raises(pytest.UsageError, match="unknown engine kind 'opensearch-9'"):
        capabilities.learn_engine()


# -- pytest inside the test ---------------------------------------------------------------------

SUITE = """
import pytest

pytestmark = pytest.mark.integration

def test_plain():
    pass

@pytest.mark.needs("painless")
def test_scripted():
    pass

@pytest.mark.needs("knn", "painless")
def test_vectors():
    pass
"""
UNIT = """
import pytest

@pytest.mark.needs("knn")
def test_unit_with_a_mark():
    pass

def test_unit():
    pass
"""
INI = """
[pytest]
markers =
    integration: real engine
    crash: real engine, killed
    needs(*capabilities): engine features
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest('pytest_plugins = ["tests.support.capabilities"]\n')
    pytester.makepyfile(test_real=SUITE, test_unit=UNIT)
    return pytester


def fake_engine(have: set[str]) -> capabilities.Engine:
    facts = EngineFacts("opensearch", "3.5.0")
    return capabilities.Engine(facts, frozenset(have), "http://127.0.0.1:1", "asked")


def test_a_test_needing_what_the_engine_lacks_is_deselected_and_named(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []

    def learn() -> capabilities.Engine:
        asked.append(1)
        return fake_engine({"painless"})

    monkeypatch.setattr(capabilities, "learn_engine", learn)
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, deselected=1)
    assert asked == [1]  # once per session
    result.stdout.fnmatch_lines(
        [
            "*= engine and capabilities =*",
            "engine: opensearch 3.5.0 at http://127.0.0.1:1 (asked)",
            "  has: painless",
            "  2 integration/crash test(s) ran on it (2 passed)",
            "  1 deselected for a capability the engine lacks",
            "    test_real.py::test_vectors  (needs knn)",
        ]
    )
    # the unit test with a needs mark is not the engine's: it runs
    assert "test_unit_with_a_mark" not in result.stdout.str().split("engine and capabilities")[1]


def test_a_unit_run_asks_nothing_and_prints_nothing(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def learn() -> capabilities.Engine:
        raise AssertionError("a unit run asked the engine")

    monkeypatch.setattr(capabilities, "learn_engine", learn)
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "-m", "not integration")
    result.assert_outcomes(passed=2, deselected=3)
    assert "engine and capabilities" not in result.stdout.str()


def test_a_needs_name_that_is_no_capability_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest('pytest_plugins = ["tests.support.capabilities"]\n')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.needs("painles")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs() names no known capability*test_typo*'painles'*"])


class _EngineAnswers(BaseHTTPRequestHandler):
    """GET / and GET /_nodes/plugins as a two-node OpenSearch 3.5 answers them."""

    answers: dict[str, Any] = {
        "/": {
            "name": "node-1",
            "cluster_name": "c",
            "version": {"distribution": "opensearch", "number": "3.5.0"},
            "tagline": "The OpenSearch Project: https://opensearch.org/",
        },
        "/_nodes/plugins": {
            "nodes": {
                n: {"modules": [], "plugins": [{"name": "ingest-common"}, {"name": "reindex"}]}
                for n in ("a", "b")
            }
        },
    }

    def do_GET(self) -> None:
        body = self.answers.get(self.path.split("?")[0])
        data = json.dumps(body or {"error": "no such thing"}).encode()
        self.send_response(200 if body else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def engine_answers() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EngineAnswers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow  # two worker processes: some 20 s on a loaded machine
def test_xdist_workers_ask_the_engine_and_the_controller_prints_it(
    suite: pytest.Pytester, engine_answers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REINDEX_FSM_TEST_ENGINE_URL", engine_answers)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=3)  # xdist's own count leaves the workers' deselected out
    result.stdout.fnmatch_lines(
        [
            f"engine: opensearch 3.5.0 at {engine_answers} (asked)",
            "  has: data_streams, index_templates, ingest, multi_node",
            "  1 integration/crash test(s) ran on it (1 passed)",
            "  2 deselected for a capability the engine lacks",
            "    test_real.py::test_scripted  (needs painless)",
            "    test_real.py::test_vectors  (needs knn, painless)",
        ]
    )
