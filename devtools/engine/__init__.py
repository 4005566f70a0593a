"""The local test engine: a real OpenSearch from Maven Central on 127.0.0.1, one JVM per
node, in an engine home of its own (``REINDEX_FSM_ENGINE_HOME``). ``scripts/engine.sh`` is a
thin wrapper of ``python3 -m devtools.engine``; tests import it::

    from devtools.engine import EngineHome, Settings
    home = EngineHome(Settings.from_env(home=Path("/tmp/my-engine"), knn=False))
    url = home.start(2)       # or reuse the healthy engine already there
    home.stop_node("node-2", kill=True)
    home.start_node("node-2")
    home.stop()

Modules by topic: ``settings`` (environment variables, defaults), ``kinds`` (the engines it
can run, ``REINDEX_FSM_ENGINE_KIND``), ``locks`` (flock with a timeout), ``cache`` (Java,
the Maven download and its cache), ``nodes`` (the node table, ports, config files,
processes), ``cluster`` (start/stop/health waits), ``cli``, ``security`` (a secured home:
the security plugin, TLS, users; ``Settings(security=True)``).
"""

from .cluster import EngineHome, Health, NodeStatus, health, parse_node_count
from .settings import VARIABLES, LauncherError, Settings

__all__ = [
    "VARIABLES",
    "EngineHome",
    "Health",
    "LauncherError",
    "NodeStatus",
    "Settings",
    "health",
    "parse_node_count",
]
