"""``scripts/engine.sh`` (``python3 -m devtools.engine``): the local OpenSearch engine for
tests, a real OpenSearch server (jars from Maven Central), one JVM per node, bound to
127.0.0.1, plain HTTP, no auth.

Nodes are named node-1..node-N, each its own JVM (so stop-node is a real process exit); all
are cluster-manager-eligible data nodes and node-1 bootstraps the cluster. The URL that
``start`` prints is node-1's: tests that stop a node should stop node-2.. (use --nodes 3 if
any node, including the elected cluster manager, may be stopped). Not the stock launcher: no
root refusal, bootstrap checks or security manager, and the modules show up in GET
_cat/plugins. Data is deleted by ``stop``; logs stay in logs/.

The k-NN plugin (org.opensearch.plugin:opensearch-knn, the version in scripts/engine/pom.xml:
Maven Central's only 2.19.x, 2.19.1.0) is on by default: a second mvn run unpacks its zip into
the cache and every node loads it as a classpath plugin, listed as "opensearch-knn" in
_cat/plugins. Only its pure-Java "lucene" engine works (no faiss/nmslib native libraries):
give every knn_vector field "method": {"name": "hnsw", "engine": "lucene", ...}. Without it
2.19 picks faiss, and such an index is created but its first refresh/flush never answers
(UnsatisfiedLinkError in the node's log; the node stays up and the index can be deleted). If
it cannot be downloaded the engine starts without it and says so on stderr; ``start`` retries
the download at most once an hour, ``fetch`` every time.

The engine kind (``REINDEX_FSM_ENGINE_KIND``, ``devtools/engine/kinds.py``) picks which
OpenSearch: ``opensearch-2`` (the default, above) or ``opensearch-3`` (3.5.0 from
scripts/engine/opensearch-3/, on the Temurin 25 JDK, its modules listed under their stock
names; no k-NN plugin, see that pom). A home restarts its engine when started as another kind.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import cache
from .cluster import parse_node_count
from .homes import engine_home
from .settings import LauncherError, Settings, log

PROG = "scripts/engine.sh"
LOG_PREFIX = "engine.sh: "

ENVIRONMENT = """\
environment:
  REINDEX_FSM_ENGINE_CACHE      cache of jars (default ~/.cache/reindex-fsm/engine); the
                                network (mvn -> Maven Central) is only needed to fill it
  REINDEX_FSM_ENGINE_HOME       state dir: node dirs, logs/, url (default /tmp/reindex-fsm-engine)
  REINDEX_FSM_ENGINE_TIMEOUT    seconds to wait for green health (default 180)
  REINDEX_FSM_ENGINE_HEAP       max heap per node (default 1g; -Xms is 512m or the max if less)
  REINDEX_FSM_ENGINE_JAVA_HOME  JDK to use (default: OpenJDK 17 if present, else JAVA_HOME,
                                else PATH)
  REINDEX_FSM_ENGINE_JAVA_OPTS  extra JVM options for every node
  REINDEX_FSM_ENGINE_MVN_REPO   local Maven repository for the first download (default ~/.m2)
  REINDEX_FSM_ENGINE_KNN        0: no k-NN plugin (neither downloaded nor loaded); default 1
  REINDEX_FSM_ENGINE_KIND       the engine: opensearch-2 (default, 2.19.6 on Java 17),
                                opensearch-3 (3.5.0 on Temurin 25, no k-NN plugin) or
                                elasticsearch-7 (7.17.29, run as the system user
                                reindexfsm-es when started as root); each kind has its own
                                cache entry (devtools/engine/kinds.py)
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Local OpenSearch engine for tests (one JVM per node, 127.0.0.1, no auth).",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    start = sub.add_parser("start", help="start (or reuse) the engine; prints ONLY its URL")
    start.add_argument("--nodes", metavar="N", help="number of nodes, 1..9 (default 1)")
    sub.add_parser(
        "url",
        help="print the URL of the running engine (exit 1 if none): node-1's, or the first "
        "live node's if node-1 is down",
    )
    sub.add_parser("status", help="print cluster health JSON (exit 1 if none)")
    sub.add_parser("nodes", help="print one line per node: name pid url up|down")
    sub.add_parser("stop", help="stop all nodes, wait for them, delete their data")
    stop_node = sub.add_parser(
        "stop-node", help="stop one node (SIGTERM; --kill: SIGKILL, a crash)"
    )
    stop_node.add_argument("node", metavar="NAME|INDEX")
    stop_node.add_argument("--kill", action="store_true", help="SIGKILL (a crash)")
    start_node = sub.add_parser("start-node", help="start a stopped node again (keeps its data)")
    start_node.add_argument("node", metavar="NAME|INDEX")
    sub.add_parser(
        "fetch",
        help="only populate the cache (download + compile); also retries a k-NN plugin "
        "download that failed",
    )
    sub.add_parser("help", help="print this help")
    return top


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one parsed command; its exit code. Only URLs, health and the node list go to
    stdout; everything else goes to the log (stderr)."""
    if args.command == "help":
        parser().print_help(sys.stderr)
        return 0
    if args.command == "fetch" and settings.kind == "elasticsearch-7":
        from .elasticsearch import ElasticsearchHome

        log.info("cache ready: %s", ElasticsearchHome(settings).fetch())
        return 0
    if args.command == "fetch":
        java = cache.select_java(settings)
        dist = cache.ensure_dist(settings, java)
        knn = cache.ensure_knn(settings, java, dist, force=True)
        log.info("cache ready: %s%s", dist, " (with the k-NN plugin)" if knn else "")
        return 0
    home = engine_home(settings)
    if args.command == "start":
        count = None if args.nodes is None else parse_node_count(args.nodes)
        print(home.start(count), flush=True)
    elif args.command == "url":
        url = home.url()
        if url is None:
            return 1
        print(url)
    elif args.command == "status":
        code, body = home.status()
        sys.stdout.write(body)
        return code
    elif args.command == "nodes":
        for node in home.nodes():
            print(node.line())
    elif args.command == "stop":
        home.stop()
    elif args.command == "stop-node":
        home.stop_node(args.node, kill=args.kill)
    elif args.command == "start-node":
        home.start_node(args.node)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_PREFIX + "%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        return run(args, Settings.from_env())
    except LauncherError as err:
        log.error("error: %s", err)
        return 1
    finally:
        log.removeHandler(handler)
