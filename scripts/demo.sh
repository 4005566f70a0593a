#!/usr/bin/env bash
# The newcomer path, end to end on a fresh machine: set up, start a local OpenSearch
# (unless REINDEX_FSM_ENGINE_URL names a cluster: this is an operator command, so it reads
# the operator's variable, unlike the tests), create the alias `documents` over
# 20,000 realistic articles, run a real `reindex-fsm start --verify --force`, and print
# the run ID and its result. Run it again to rebuild the alias once more.
#
#   scripts/demo.sh             (REINDEX_FSM_DEMO_DOCS=N to change the size)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
scripts/setup.sh
PY="$ROOT/.venv/bin"

if [ -n "${REINDEX_FSM_ENGINE_URL:-}" ]; then
    URL="$REINDEX_FSM_ENGINE_URL"
    echo "demo: using the engine at $($PY/python -c 'import sys; from reindex_fsm.engine.connect import redact_url; print(redact_url(sys.argv[1]))' "$URL")" >&2
else
    echo "demo: starting a local OpenSearch (first time: downloads it from Maven Central)" >&2
    URL="$(scripts/engine.sh start)"
    echo "demo: engine up at $URL (stop it with: scripts/engine.sh stop)" >&2
fi
export REINDEX_FSM_ENGINE_URL="$URL"

"$PY/python" -m reindex_fsm.testing.sample --alias documents --docs "${REINDEX_FSM_DEMO_DOCS:-20000}"
"$PY/reindex-fsm" start --alias documents --dry-run --json >/dev/null
set +e
"$PY/reindex-fsm" start --alias documents --verify --rollback-on-failure --force --json \
    >"$ROOT/state/demo-result.json"
code=$?
set -e
"$PY/python" - "$ROOT/state/demo-result.json" "$code" <<'PYEOF'
import json, sys
data = json.load(open(sys.argv[1]))
print(f"run ID:  {data.get('run_id')}")
print(f"result:  {data.get('state')} (exit code {sys.argv[2]})")
print(f"alias:   {data.get('alias')}: {data.get('source_index')} -> {data.get('target_index')}")
print(f"counts:  source {data.get('source_count')}, target {data.get('target_count')}")
if data.get("error"):
    print(f"error:   {data['error']}")
PYEOF
echo "demo: see it with: . .venv/bin/activate && reindex-fsm history && reindex-fsm show RUN_ID" >&2
exit "$code"
