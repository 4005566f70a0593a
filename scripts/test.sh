#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up, then pytest with every marker
# (unit, integration, crash, slow). Tests that need a real engine use the cluster at
# REINDEX_FSM_TEST_ENGINE_URL, or start a local OpenSearch themselves (scripts/engine.sh) and
# stop it at the end. They never read REINDEX_FSM_ENGINE_URL (the operator's cluster): the
# session runs without any of the tool's REINDEX_FSM_* settings. The state-store tests
# marked `postgres` use the PostgreSQL server at REINDEX_FSM_TEST_POSTGRES_URL (its role
# must be able to create schemas), or start a throwaway local one themselves
# (scripts/postgres.sh). Extra arguments go to pytest, e.g.
#
#   scripts/test.sh                                            everything
#   REINDEX_FSM_TEST_ENGINE_URL=http://127.0.0.1:9200 scripts/test.sh -m integration
#                                                              on an engine of yours
#   scripts/test.sh -m "not integration and not crash and not slow and not postgres" -n auto
#                                                              unit tests only,
#                                                              on every core (pytest-xdist)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
scripts/setup.sh
export PATH="$ROOT/.venv/bin:$PATH"  # the crash tests run `reindex-fsm` as a subprocess
exec "$ROOT/.venv/bin/python" -m pytest "$@"
