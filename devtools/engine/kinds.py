"""The engine kinds the launcher can run (``REINDEX_FSM_ENGINE_KIND``), in one table: the
one place that says what differs between them. ``cache`` (which JDK, which pom and launcher
source, ``javac --release``), ``cluster`` (what a running engine was started as) and the
test suites' capability selection (``tests/support/capabilities.py``) read a kind from here
and nowhere else.

Another kind is one more :class:`Kind` in ``KINDS``. A kind launched the same way (a pom
that collects the server and its modules, a one-file ``EngineNode.java`` launcher) needs
nothing more; one launched otherwise says so by its ``launcher`` and the steps that differ
(fetching the cache entry, a node's config file, its command line) branch on that value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .settings import DEFAULT_KIND, ENGINE_SRC, LauncherError, Settings

# Capabilities, the names of ``@pytest.mark.needs`` (pyproject.toml lists them): what the
# launcher's own engine of a kind offers, so the suites know it without asking.
OPENSEARCH_CORE = frozenset(
    {"painless", "ingest", "analysis_common", "data_streams", "index_templates"}
)


@dataclass(frozen=True)
class Kind:
    """One engine the launcher can fetch and run."""

    name: str  # the value of REINDEX_FSM_ENGINE_KIND
    flavor: str  # "opensearch" or "elasticsearch": what GET / says
    src: Path  # the pom.xml (its jars) and EngineNode.java (its launcher)
    jdk: Path  # the JDK tried first, after REINDEX_FSM_ENGINE_JAVA_HOME
    min_java: int  # the oldest Java it runs on
    java_release: int  # javac --release of the launcher
    knn: bool  # a k-NN plugin build is served that runs on it (the pom's "knn" profile)
    capabilities: frozenset[str]  # with "knn" only while the k-NN plugin is loaded
    launcher: str = "classpath"  # EngineNode on the server's jars, one JVM per node


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="opensearch-2",
            flavor="opensearch",
            src=ENGINE_SRC,
            jdk=Path("/usr/lib/jvm/java-17-openjdk-amd64"),
            min_java=17,
            java_release=17,
            knn=True,
            capabilities=OPENSEARCH_CORE | {"knn"},
        ),
        Kind(
            name="opensearch-3",
            flavor="opensearch",
            src=ENGINE_SRC / "opensearch-3",
            jdk=Path("/usr/lib/jvm/temurin-25-jdk-amd64"),
            min_java=21,
            java_release=21,
            knn=False,  # served (3.5.0.0) but needs transport-grpc, which is not: see its pom
            capabilities=OPENSEARCH_CORE,
        ),
        # The integ-test-zip and the *-client modules Maven Central serves, laid out as a
        # stock home and started by its own bin/elasticsearch (devtools/engine/elasticsearch.py):
        # no painless, ingest processors, analysis-common filters, dense_vector, data streams
        # or ILM (their modules are not served); composable templates are in its core.
        Kind(
            name="elasticsearch-7",
            flavor="elasticsearch",
            src=ENGINE_SRC / "elasticsearch-7",
            jdk=Path("/usr/lib/jvm/java-17-openjdk-amd64"),
            min_java=17,
            java_release=17,
            knn=False,
            capabilities=frozenset({"index_templates", "elasticsearch"}),
            launcher="distribution",
        ),
    )
}
__all__ = ["DEFAULT_KIND", "KINDS", "Kind", "kind_of", "source_dir"]


def kind_of(name: str) -> Kind:
    """The kind named ``name``; LauncherError naming the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(KINDS)
        raise LauncherError(
            f"unknown engine kind {name!r} (REINDEX_FSM_ENGINE_KIND): use one of {known}"
        ) from None


def source_dir(settings: Settings) -> Path:
    """Where the pom.xml and EngineNode.java of ``settings``' engine are."""
    return settings.src or kind_of(settings.kind).src
