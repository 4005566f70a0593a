#!/usr/bin/env bash
# The engine matrix: the integration suite and a few crash tests on each other engine kind
# the local launcher runs (REINDEX_FSM_ENGINE_KIND), one after another, each in an engine home
# of its own, started and stopped by the session (scripts/test.sh runs everything on the
# default kind, OpenSearch 2.19). Tests needing what a kind lacks are deselected by
# capability and named in each session's summary. Prints each kind's wall time at the end.
#
#   scripts/test-engines.sh                              opensearch-3, then elasticsearch-7
#   scripts/test-engines.sh elasticsearch-7              one kind
#   scripts/test-engines.sh opensearch-3 -- -x           extra pytest arguments after --
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
kinds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    kinds+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
[ ${#kinds[@]} -gt 0 ] || kinds=(opensearch-3 elasticsearch-7)
# The secured-engine tests (marked slow) start an OpenSearch 2.19 of their own whatever the
# kind: they run once, in scripts/test.sh. Of the crash tests: the convergence check of the
# named points, the double crashes and kill-then-abort.
selection=(-m "(integration and not slow) or crash" tests/integration tests/crash/test_crash_resume.py
    -k "not test_crash_resume or test_named_points_are_those or test_double_crash or test_kill_then_abort")
times=()
status=0
for kind in "${kinds[@]}"; do
    started=$(date +%s)
    echo "== engine kind $kind" >&2
    if ! env -u REINDEX_FSM_TEST_ENGINE_URL REINDEX_FSM_ENGINE_KIND="$kind" \
        REINDEX_FSM_ENGINE_HOME="${TMPDIR:-/tmp}/reindex-fsm-engine-$kind" \
        scripts/test.sh "${selection[@]}" "$@"; then
        status=1
    fi
    times+=("$kind: $(($(date +%s) - started)) s")
done
printf 'engine matrix wall time: %s\n' "${times[@]}" >&2
exit "$status"
