#!/usr/bin/env bash
# Local OpenSearch engine for tests: a thin wrapper of the Python launcher (devtools/engine,
# standard library only, so the system python3 runs it before any virtualenv exists).
#
#   scripts/engine.sh start [--nodes N]        start (or reuse) the engine; prints ONLY its URL
#   scripts/engine.sh url                      print the URL of the running engine (exit 1 if none)
#   scripts/engine.sh status                   print cluster health JSON (exit 1 if none)
#   scripts/engine.sh nodes                    print one line per node: name pid url up|down
#   scripts/engine.sh stop                     stop all nodes, wait for them, delete their data
#   scripts/engine.sh stop-node NAME|INDEX [--kill]   stop one node (--kill: SIGKILL, a crash)
#   scripts/engine.sh start-node NAME|INDEX    start a stopped node again (keeps its data)
#   scripts/engine.sh fetch                    only populate the cache (download + compile)
#
# `scripts/engine.sh --help` lists the environment variables (REINDEX_FSM_ENGINE_HOME,
# REINDEX_FSM_ENGINE_CACHE, ..._TIMEOUT, ..._HEAP, ..._JAVA_HOME, ..._JAVA_OPTS, ..._MVN_REPO,
# ..._KNN, ..._KIND: opensearch-2 or opensearch-3); devtools/engine/cli.py says what the engine is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m devtools.engine "$@"
