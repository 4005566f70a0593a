"""Capability selection of the real-engine tests: ``@pytest.mark.needs("painless", ...)``.

An integration or crash test that needs an engine feature some real engine lacks says so
with ``needs``; the names are ``CAPABILITIES`` (also listed in pyproject's markers). The
session learns once what its engine has, when the selection holds an integration or crash
test (a unit run asks nothing and starts nothing):

* ``REINDEX_FSM_TEST_ENGINE_URL`` set: that engine is asked (``GET /``, ``GET _nodes/plugins``
  for its modules and plugins on every node, the node count; ``GET _xpack`` on
  Elasticsearch for security);
* else the launcher's own engine: its kind (``REINDEX_FSM_ENGINE_KIND``,
  ``devtools/engine/kinds.py``) says what it has, without starting it; the launcher may start
  engines of their own (``local_engines``).

A test needing what the engine lacks is deselected (``pytest_deselected``, never skipped),
and the terminal summary says which engine the tests ran on, how many ran, and each
deselected test with what it lacked. A ``needs`` name that is not a capability is a usage
error, so a typo cannot deselect a test. Under pytest-xdist each worker selects (all of them
alike) and hands what it learned to the controller, which prints the summary.

Registered for the whole session by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from devtools.engine import LauncherError, Settings
from devtools.engine.cache import pom_property
from devtools.engine.kinds import kind_of, source_dir
from tests.support.engine import ENGINE_URL_USED, TEST_ENGINE_URL_ENV

# name -> what it is (the marker's documentation and the summary's words)
CAPABILITIES: dict[str, str] = {
    "painless": "Painless scripts (lang-painless)",
    "ingest": "ingest pipelines with the common processors (ingest-common)",
    "analysis_common": "the analysis-common tokenizers and filters (asciifolding, reverse, ...)",
    "knn": "the OpenSearch k-NN plugin (knn_vector)",
    "dense_vector": "Elasticsearch's dense_vector field",
    "vector_field": "a vector field type: knn_vector (k-NN plugin) or dense_vector",
    "data_streams": "data streams",
    "elasticsearch": "the session's engine is Elasticsearch",
    "index_templates": "composable index templates (_index_template)",
    "ism": "OpenSearch Index State Management (opensearch-index-management)",
    "ilm": "Elasticsearch index lifecycle management (x-pack-ilm)",
    "security": "a security plugin with users and roles",
    "multi_node": "a cluster of two or more nodes",
    "local_engines": "the launcher may start engines of the tests' own "
    f"({TEST_ENGINE_URL_ENV} unset)",
}
REAL_ENGINE_MARKERS = ("integration", "crash")


@dataclass(frozen=True)
class EngineFacts:
    """What the session's engine is and has."""

    flavor: str  # opensearch, elasticsearch
    version: str
    components: frozenset[str] = frozenset()  # names and class names of modules and plugins
    nodes: int = 1
    security: bool = False  # security is on (not merely installed)
    local: bool = False  # the launcher's own engine, known by its kind

    @property
    def major(self) -> int:
        head = self.version.split(".")[0]
        return int(head) if head.isdigit() else 0

    @property
    def minor(self) -> int:
        parts = self.version.split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def has(self, name: str, *classes: str) -> bool:
        """A module or plugin named ``name``, or one whose class is one of ``classes``
        (without its package: the local engine of OpenSearch 2 lists its modules under
        their class names)."""
        simple = {c.rsplit(".", 1)[-1] for c in self.components}
        return name in self.components or any(c in simple for c in classes)


def _elasticsearch_at_least(facts: EngineFacts, major: int, minor: int = 0) -> bool:
    return facts.flavor == "elasticsearch" and (facts.major, facts.minor) >= (major, minor)


# capability -> does an engine with these facts have it (the launcher's own engine: its kind)
RULES: dict[str, Callable[[EngineFacts], bool]] = {
    "painless": lambda f: f.has("lang-painless", "PainlessPlugin", "PainlessModulePlugin"),
    "ingest": lambda f: f.has("ingest-common", "IngestCommonPlugin", "IngestCommonModulePlugin"),
    "analysis_common": lambda f: f.has(
        "analysis-common", "CommonAnalysisPlugin", "CommonAnalysisModulePlugin"
    ),
    "knn": lambda f: f.has("opensearch-knn", "KNNPlugin"),
    "dense_vector": lambda f: (
        _elasticsearch_at_least(f, 8)
        or (f.flavor == "elasticsearch" and f.has("x-pack-vectors", "Vectors"))
    ),
    "vector_field": lambda f: RULES["knn"](f) or RULES["dense_vector"](f),
    "data_streams": lambda f: (
        f.flavor == "opensearch"
        or _elasticsearch_at_least(f, 8)
        or (f.flavor == "elasticsearch" and f.has("x-pack-data-streams", "DataStreamsPlugin"))
    ),
    "index_templates": lambda f: f.flavor == "opensearch" or _elasticsearch_at_least(f, 7, 8),
    "ism": lambda f: f.has("opensearch-index-management", "IndexManagementPlugin"),
    "ilm": lambda f: f.flavor == "elasticsearch" and f.has("x-pack-ilm", "IndexLifecycle"),
    "security": lambda f: f.security,
    "elasticsearch": lambda f: f.flavor == "elasticsearch",
    "multi_node": lambda f: f.nodes >= 2,
    "local_engines": lambda f: f.local,
}


def capabilities_of(facts: EngineFacts) -> frozenset[str]:
    return frozenset(name for name, rule in RULES.items() if rule(facts))


def missing(item: pytest.Item, have: frozenset[str]) -> list[str]:
    """The capabilities ``item`` needs and the engine lacks, in the order named."""
    wanted: list[str] = []
    for mark in item.iter_markers("needs"):
        wanted += [name for name in mark.args if name not in wanted]
    return [name for name in wanted if name not in have]


def unknown_names(items: Iterable[pytest.Item]) -> list[str]:
    """``needs`` arguments that are not capabilities, as ``nodeid: name``."""
    bad = []
    for item in items:
        for mark in item.iter_markers("needs"):
            if not mark.args:
                bad.append(f"{item.nodeid}: needs() names no capability")
            bad += [
                f"{item.nodeid}: {name!r}"
                for name in mark.args
                if not isinstance(name, str) or name not in CAPABILITIES
            ]
    return bad


def uses_real_engine(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) for name in REAL_ENGINE_MARKERS)


# -- learning what the engine has --------------------------------------------------------------


@dataclass
class Engine:
    """The session's engine as the summary shows it."""

    facts: EngineFacts
    capabilities: frozenset[str]
    url: str  # credential-free; "" while the launcher's engine has not started
    how: str  # "asked" or "by its kind <name>"

    def to_json(self) -> dict[str, Any]:
        return {
            "flavor": self.facts.flavor,
            "version": self.facts.version,
            "url": self.url,
            "how": self.how,
            "capabilities": sorted(self.capabilities),
        }


def components_of(nodes_plugins: Mapping[str, Any]) -> tuple[frozenset[str], int]:
    """(the modules and plugins every node has, by name and class name; the node count)
    from a ``GET _nodes/plugins`` answer."""
    per_node: list[set[str]] = []
    for node in (nodes_plugins.get("nodes") or {}).values():
        names: set[str] = set()
        for entry in [*(node.get("modules") or []), *(node.get("plugins") or [])]:
            names |= {str(entry[k]) for k in ("name", "classname") if entry.get(k)}
        per_node.append(names)
    if not per_node:
        return frozenset(), 0
    return frozenset(set.intersection(*per_node)), len(per_node)


def ask_engine(url: str) -> Engine:
    """Ask the engine at ``url`` what it is and has."""
    from reindex_fsm.engine.connect import connect
    from reindex_fsm.engine.urls import redact_url

    engine = connect(url)
    try:
        info = engine.info()
        components, nodes = components_of(engine.request("GET", "/_nodes/plugins"))
        security = "opensearch-security" in components
        if info.flavor == "elasticsearch":
            try:
                xpack = engine.request("GET", "/_xpack")
                security = bool(
                    ((xpack.get("features") or {}).get("security") or {}).get("enabled")
                )
            except Exception:  # an engine without x-pack has no _xpack: no security
                security = False
        facts = EngineFacts(str(info.flavor), info.version, components, nodes, security)
    finally:
        engine.close()
    return Engine(facts, capabilities_of(facts), redact_url(url), "asked")


def kind_engine(settings: Settings) -> Engine:
    """The launcher's own engine, known by its kind (not started here)."""
    kind = kind_of(settings.kind)
    pom = source_dir(settings) / "pom.xml"
    version = pom_property(pom, f"{kind.flavor}.version") or "?"
    facts = EngineFacts(kind.flavor, version, local=True)
    have = set(kind.capabilities) | {"local_engines"}
    if not settings.knn:
        have.discard("knn")
    if have & {"knn", "dense_vector"}:
        have.add("vector_field")
    return Engine(facts, frozenset(have), "", f"by its kind {kind.name}")


def learn_engine() -> Engine:
    url = os.environ.get(TEST_ENGINE_URL_ENV)
    try:
        return ask_engine(url) if url else kind_engine(Settings.from_env())
    except LauncherError as err:
        raise pytest.UsageError(f"the test engine's kind: {err}") from None
    except Exception as err:
        raise pytest.UsageError(
            f"could not ask the test engine at {TEST_ENGINE_URL_ENV} what it has: {err}"
        ) from None


# -- the plugin ----------------------------------------------------------------------------------


@dataclass
class Selection:
    """What this process selected, and (on the controller or a run without workers) what
    ran."""

    engine: dict[str, Any] | None = None
    deselected: dict[str, list[str]] = field(default_factory=dict)  # nodeid -> missing
    outcomes: dict[str, str] = field(default_factory=dict)  # nodeid -> passed/failed/skipped

    def absorb(self, payload: Mapping[str, Any]) -> None:
        if payload.get("engine") and not self.engine:
            self.engine = dict(payload["engine"])
        for nodeid, lacks in (payload.get("deselected") or {}).items():
            self.deselected.setdefault(nodeid, list(lacks))

    def summary_lines(self) -> list[str]:
        if self.engine is None:
            return []
        e = self.engine
        where = e["url"] or "the launcher's engine"
        lines = [f"engine: {e['flavor']} {e['version']} at {where} ({e['how']})"]
        lines.append(f"  has: {', '.join(e['capabilities']) or 'none of the capabilities'}")
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        detail = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
        ran = len(self.outcomes)
        lines.append(
            f"  {ran} integration/crash test(s) ran on it" + (f" ({detail})" if ran else "")
        )
        lines.append(f"  {len(self.deselected)} deselected for a capability the engine lacks")
        for nodeid, lacks in sorted(self.deselected.items()):
            lines.append(f"    {nodeid}  (needs {', '.join(lacks)})")
        return lines


PAYLOAD_KEY = "reindex_fsm_capabilities"  # in a pytest-xdist worker's workeroutput
PLUGIN_NAME = "reindex-fsm-capabilities"


class _Reporter:
    """The session's selection: filled by the collection hook (in each worker under
    pytest-xdist), the outcomes and the summary where the reports arrive."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.selection = Selection()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not any(name in report.keywords for name in REAL_ENGINE_MARKERS):
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.selection.outcomes[report.nodeid] = report.outcome

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        engine = self.selection.engine
        if engine is not None and not engine["url"]:
            engine["url"] = session.config.stash.get(ENGINE_URL_USED, "")
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None and engine is not None:
            workeroutput[PAYLOAD_KEY] = {
                "engine": engine,
                "deselected": self.selection.deselected,
            }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = self.selection.summary_lines()
        if lines:
            terminalreporter.section("engine and capabilities")
            for line in lines:
                terminalreporter.write_line(line)


class _XdistController:
    """On the controller of a pytest-xdist run: what each worker selected."""

    def __init__(self, reporter: _Reporter) -> None:
        self.reporter = reporter

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(PAYLOAD_KEY)
        if payload:
            self.reporter.selection.absorb(payload)


def pytest_configure(config: pytest.Config) -> None:
    reporter = _Reporter(config)
    config.pluginmanager.register(reporter, PLUGIN_NAME)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(reporter), PLUGIN_NAME + "-xdist")


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bad = unknown_names(items)
    if bad:
        known = ", ".join(CAPABILITIES)
        raise pytest.UsageError(f"needs() names no known capability ({known}): {'; '.join(bad)}")
    if not any(uses_real_engine(item) for item in items):
        return  # a unit run: nothing to ask, nothing started
    engine = learn_engine()
    selection = config.pluginmanager.get_plugin(PLUGIN_NAME).selection
    selection.engine = engine.to_json()
    keep, dropped = [], []
    for item in items:
        lacks = missing(item, engine.capabilities) if uses_real_engine(item) else []
        if lacks:
            selection.deselected[item.nodeid] = lacks
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
