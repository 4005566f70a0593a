#!/usr/bin/env bash
# Local OpenSearch engine for tests: a real OpenSearch server (jars from Maven Central),
# one JVM per node, bound to 127.0.0.1, plain HTTP, no auth.
#
#   scripts/engine.sh start [--nodes N]        start (or reuse) the engine; prints ONLY its URL
#   scripts/engine.sh url                      print the URL of the running engine (exit 1 if none):
#                                              node-1's, or the first live node's if node-1 is down
#   scripts/engine.sh status                   print cluster health JSON (exit 1 if none)
#   scripts/engine.sh nodes                    print one line per node: name pid url up|down
#   scripts/engine.sh stop                     stop all nodes, wait for them, delete their data
#   scripts/engine.sh stop-node NAME|INDEX [--kill]
#                                              stop one node (SIGTERM; --kill: SIGKILL, a crash)
#   scripts/engine.sh start-node NAME|INDEX    start a stopped node again (keeps its data)
#   scripts/engine.sh fetch                    only populate the cache (download + compile);
#                                              also retries a k-NN plugin download that failed
#
# Nodes are named node-1..node-N, each its own JVM (so stop-node is a real process exit);
# all are cluster-manager-eligible data nodes and node-1 bootstraps the cluster. The URL
# that `start` prints is node-1's: tests that stop a node should stop node-2.. (use
# --nodes 3 if any node, including the elected cluster manager, may be stopped).
# Not the stock launcher: no root refusal, bootstrap checks or security manager, and the
# modules show up in GET _cat/plugins. Data is deleted by `stop`; logs stay in logs/.
#
# The k-NN plugin (org.opensearch.plugin:opensearch-knn, the version in engine/pom.xml: Maven
# Central's only 2.19.x, 2.19.1.0) is on by default: a second mvn run unpacks its zip into the
# cache and every node loads it as a classpath plugin, listed as "opensearch-knn" in
# _cat/plugins. Only its pure-Java "lucene" engine works (no faiss/nmslib native libraries):
# give every knn_vector field "method": {"name": "hnsw", "engine": "lucene", ...}. Without it
# 2.19 picks faiss, and such an index is created but its first refresh/flush never answers
# (UnsatisfiedLinkError in the node's log; the node stays up and the index can be deleted).
# If it cannot be downloaded the engine starts without it and says so on stderr; `start`
# retries the download at most once an hour, `fetch` every time.
#
# Environment:
#   REINDEX_FSM_ENGINE_CACHE      cache of jars (default ~/.cache/reindex-fsm/engine); the
#                                 network (mvn -> Maven Central) is only needed to fill it
#   REINDEX_FSM_ENGINE_HOME       state dir: node dirs, logs/, url (default /tmp/reindex-fsm-engine)
#   REINDEX_FSM_ENGINE_TIMEOUT    seconds to wait for green health (default 180)
#   REINDEX_FSM_ENGINE_HEAP       max heap per node (default 1g; -Xms is 512m or the max if less)
#   REINDEX_FSM_ENGINE_JAVA_HOME  JDK to use (default: OpenJDK 17 if present, else JAVA_HOME, else PATH)
#   REINDEX_FSM_ENGINE_JAVA_OPTS  extra JVM options for every node
#   REINDEX_FSM_ENGINE_MVN_REPO   local Maven repository for the first download (default ~/.m2)
#   REINDEX_FSM_ENGINE_KNN        0: no k-NN plugin (neither downloaded nor loaded); default 1
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ENGINE_SRC="$SCRIPT_DIR/engine"
CACHE_ROOT="${REINDEX_FSM_ENGINE_CACHE:-${HOME:-/root}/.cache/reindex-fsm/engine}"
STATE_DIR_RAW="${REINDEX_FSM_ENGINE_HOME:-/tmp/reindex-fsm-engine}"
START_TIMEOUT="${REINDEX_FSM_ENGINE_TIMEOUT:-180}"
HEAP_MAX="${REINDEX_FSM_ENGINE_HEAP:-1g}"
CLUSTER_NAME="reindex-fsm-engine"
MAX_NODES=9
KNN_MODE="${REINDEX_FSM_ENGINE_KNN:-1}"
KNN_RETRY_SECONDS=3600

STATE_DIR=""   # canonical, set by init_state_dir
DIST_DIR=""    # set by ensure_dist
KNN_DIR=""     # set by ensure_knn: the unpacked k-NN plugin, or empty to run without it
JAVA_HOME_SEL=""

log() { printf 'engine.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

# --------------------------------------------------------------------------- java / cache

select_java() {
    local candidate
    for candidate in "${REINDEX_FSM_ENGINE_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 "${JAVA_HOME:-}"; do
        if [[ -n "$candidate" && -x "$candidate/bin/java" && -x "$candidate/bin/javac" ]]; then
            JAVA_HOME_SEL="$candidate"
            return 0
        fi
    done
    local javac_path
    javac_path="$(command -v javac || true)"
    [[ -n "$javac_path" ]] || die "no JDK found (need java + javac 17+); set REINDEX_FSM_ENGINE_JAVA_HOME"
    JAVA_HOME_SEL="$(dirname "$(dirname "$(readlink -f "$javac_path")")")"
}

java_major() {
    "$JAVA_HOME_SEL/bin/java" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

pom_property() { # name
    sed -n "s:.*<$1>\\(.*\\)</$1>.*:\\1:p" "$ENGINE_SRC/pom.xml" | head -n 1
}

pom_opensearch_version() { pom_property opensearch.version; }

# Populates "$CACHE_ROOT/opensearch-<version>-<hash of pom+launcher>/{lib,classes}" once;
# afterwards no network is needed.
ensure_dist() {
    [[ -f "$ENGINE_SRC/pom.xml" && -f "$ENGINE_SRC/EngineNode.java" ]] ||
        die "missing $ENGINE_SRC/pom.xml or EngineNode.java"
    select_java
    local version key
    version="$(pom_opensearch_version)"
    [[ -n "$version" ]] || die "cannot read opensearch.version from $ENGINE_SRC/pom.xml"
    key="$(cat "$ENGINE_SRC/pom.xml" "$ENGINE_SRC/EngineNode.java" | sha256sum | cut -c1-12)"
    DIST_DIR="$CACHE_ROOT/opensearch-$version-$key"
    if [[ -f "$DIST_DIR/.complete" ]]; then
        return 0
    fi

    mkdir -p "$CACHE_ROOT"
    local lock_fd
    exec {lock_fd}>"$CACHE_ROOT/.lock"
    flock -w 900 "$lock_fd" || die "timed out waiting for the cache lock $CACHE_ROOT/.lock"
    if [[ -f "$DIST_DIR/.complete" ]]; then
        exec {lock_fd}>&-
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: needed once to download OpenSearch $version into $CACHE_ROOT"

    local tmp="$DIST_DIR.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cp "$ENGINE_SRC/pom.xml" "$tmp/pom.xml"
    log "downloading OpenSearch $version jars with mvn into $DIST_DIR (first run only) ..."
    local -a mvn_args=(-B -f "$tmp/pom.xml" dependency:copy-dependencies
        "-DoutputDirectory=$tmp/lib" -DincludeScope=runtime)
    if [[ -n "${REINDEX_FSM_ENGINE_MVN_REPO:-}" ]]; then
        mvn_args+=("-Dmaven.repo.local=$REINDEX_FSM_ENGINE_MVN_REPO")
    fi
    local attempt ok=0
    for attempt in 1 2 3; do
        if (cd "$tmp" && JAVA_HOME="$JAVA_HOME_SEL" mvn "${mvn_args[@]}") >"$tmp/mvn.log" 2>&1; then
            ok=1
            break
        fi
        log "mvn attempt $attempt failed (log: $tmp/mvn.log)"
        sleep $((attempt * 3))
    done
    if [[ "$ok" != 1 ]]; then
        tail -n 30 "$tmp/mvn.log" >&2 || true
        exec {lock_fd}>&-
        die "could not download OpenSearch $version with mvn (see $tmp/mvn.log)"
    fi
    [[ -f "$tmp/lib/opensearch-$version.jar" ]] || die "mvn did not produce opensearch-$version.jar in $tmp/lib"
    mkdir -p "$tmp/classes"
    if ! "$JAVA_HOME_SEL/bin/javac" --release 17 -nowarn -d "$tmp/classes" -cp "$tmp/lib/*" \
        "$ENGINE_SRC/EngineNode.java" >"$tmp/javac.log" 2>&1; then
        cat "$tmp/javac.log" >&2
        exec {lock_fd}>&-
        die "could not compile $ENGINE_SRC/EngineNode.java"
    fi
    rm -rf "$tmp/target"
    touch "$tmp/.complete"
    rm -rf "$DIST_DIR"
    mv "$tmp" "$DIST_DIR"
    exec {lock_fd}>&-
    log "cached OpenSearch $version in $DIST_DIR"
}

knn_enabled() {
    case "$KNN_MODE" in
        0 | false | no | off) return 1 ;;
        *) return 0 ;;
    esac
}

# Sets KNN_DIR to "$DIST_DIR/knn" (the k-NN plugin zip, unpacked) once it is there,
# downloading it if need be, else to "" with a warning: the engine then runs without it.
# A failed download is tried again only after KNN_RETRY_SECONDS, unless FORCE is given.
ensure_knn() { # [force]
    local force="${1:-}" failed="$DIST_DIR/knn.failed" age
    KNN_DIR=""
    knn_enabled || return 0
    if [[ ! -f "$DIST_DIR/knn/.complete" ]]; then
        if [[ -z "$force" && -f "$failed" ]]; then
            age=$(($(date +%s) - $(stat -c %Y "$failed")))
            if ((age < KNN_RETRY_SECONDS)); then
                log "warning: no k-NN plugin: its download failed ${age}s ago (log: $failed); the engine runs without it (scripts/engine.sh fetch retries)"
                return 0
            fi
        fi
        if ! fetch_knn; then
            log "warning: no k-NN plugin: could not download it (log: $failed); the engine runs without it (scripts/engine.sh fetch retries)"
            return 0
        fi
    fi
    KNN_DIR="$DIST_DIR/knn"
}

# Unpacks org.opensearch.plugin:opensearch-knn (profile "knn" of the pom) into "$DIST_DIR/knn".
fetch_knn() {
    local version lock_fd tmp="$DIST_DIR/knn.tmp.$$" failed="$DIST_DIR/knn.failed"
    version="$(pom_property opensearch-knn.version)"
    exec {lock_fd}>"$CACHE_ROOT/.lock"
    if ! flock -w 900 "$lock_fd"; then
        exec {lock_fd}>&-
        log "timed out waiting for the cache lock $CACHE_ROOT/.lock"
        return 1
    fi
    if [[ -f "$DIST_DIR/knn/.complete" ]]; then
        exec {lock_fd}>&-
        return 0
    fi
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cp "$ENGINE_SRC/pom.xml" "$tmp/pom.xml"
    local ok=0 attempt
    if [[ -z "$version" ]]; then
        echo "no opensearch-knn.version in $ENGINE_SRC/pom.xml" >"$tmp/mvn.log"
    elif ! command -v mvn >/dev/null; then
        echo "mvn not found" >"$tmp/mvn.log"
    else
        log "downloading the k-NN plugin (org.opensearch.plugin:opensearch-knn:$version) with mvn into $DIST_DIR/knn ..."
        local -a mvn_args=(-B -f "$tmp/pom.xml" -P knn dependency:unpack-dependencies
            -DincludeGroupIds=org.opensearch.plugin -DincludeArtifactIds=opensearch-knn
            -DincludeTypes=zip "-DoutputDirectory=$tmp/plugin")
        if [[ -n "${REINDEX_FSM_ENGINE_MVN_REPO:-}" ]]; then
            mvn_args+=("-Dmaven.repo.local=$REINDEX_FSM_ENGINE_MVN_REPO")
        fi
        for attempt in 1 2; do
            if (cd "$tmp" && JAVA_HOME="$JAVA_HOME_SEL" mvn "${mvn_args[@]}") >"$tmp/mvn.log" 2>&1; then
                ok=1
                break
            fi
            ((attempt == 2)) || sleep 3
        done
        if [[ "$ok" == 1 ]] && ! grep -qs '^classname=org\.opensearch\.knn\.' "$tmp/plugin/plugin-descriptor.properties"; then
            echo "the opensearch-knn zip has no plugin-descriptor.properties naming a k-NN plugin class" >>"$tmp/mvn.log"
            ok=0
        fi
        if [[ "$ok" == 1 ]] && ! compgen -G "$tmp/plugin/opensearch-knn-*.jar" >/dev/null; then
            echo "the opensearch-knn zip has no opensearch-knn-*.jar" >>"$tmp/mvn.log"
            ok=0
        fi
    fi
    if [[ "$ok" != 1 ]]; then
        mv -f "$tmp/mvn.log" "$failed"
        rm -rf "$tmp"
        exec {lock_fd}>&-
        return 1
    fi
    touch "$tmp/plugin/.complete"
    rm -rf "$DIST_DIR/knn"
    mv "$tmp/plugin" "$DIST_DIR/knn"
    rm -rf "$tmp" "$failed"
    exec {lock_fd}>&-
    log "cached the k-NN plugin $version in $DIST_DIR/knn"
}

# --------------------------------------------------------------------------- state

init_state_dir() {
    mkdir -p "$STATE_DIR_RAW"
    STATE_DIR="$(cd "$STATE_DIR_RAW" && pwd -P)"
}

# Serialises start/stop/... of one state dir. The fd is closed for the node JVMs.
STATE_LOCK_FD=""
lock_state() {
    exec {STATE_LOCK_FD}>"$STATE_DIR/.lock"
    flock -w 600 "$STATE_LOCK_FD" || die "timed out waiting for $STATE_DIR/.lock"
}

node_home() { printf '%s/nodes/%s' "$STATE_DIR" "$1"; }
node_marker() { printf -- '-Dreindexfsm.engine.node=%s' "$(node_home "$1")"; }

# Node table: "name http_port transport_port" per line.
nodes_file() { printf '%s/nodes.tsv' "$STATE_DIR"; }

node_names() {
    local f
    f="$(nodes_file)"
    [[ -f "$f" ]] || return 0
    awk '{print $1}' "$f"
}

node_field() { # name column
    awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$(nodes_file)"
}

node_count() {
    local f
    f="$(nodes_file)"
    [[ -f "$f" ]] || {
        echo 0
        return 0
    }
    wc -l <"$f" | tr -d ' '
}

# PIDs of the JVM(s) running a node, found by the marker on their command line (the
# pattern is read from a file so that grep's own command line does not match).
node_pids() {
    local marker file
    marker="$(node_marker "$1")"
    while IFS= read -r file; do
        file="${file#/proc/}"
        printf '%s\n' "${file%/cmdline}"
    done < <(grep -lzxF -f <(printf '%s\n' "$marker") /proc/[0-9]*/cmdline 2>/dev/null || true)
}

node_alive() { [[ -n "$(node_pids "$1")" ]]; }

resolve_node() { # NAME_OR_INDEX -> name
    local arg="$1" name
    if [[ "$arg" =~ ^[0-9]+$ ]]; then
        name="node-$arg"
    else
        name="$arg"
    fi
    if [[ ! -f "$(nodes_file)" ]] || ! grep -q "^$name " "$(nodes_file)"; then
        die "no node '$arg' in the engine (nodes: $(node_names | tr '\n' ' '))"
    fi
    printf '%s' "$name"
}

# --------------------------------------------------------------------------- http

# http_json URL TIMEOUT -> body on stdout; non-zero exit if unreachable.
http_get() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.request, urllib.error
url, timeout = sys.argv[1], float(sys.argv[2])
try:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        sys.stdout.write(r.read().decode("utf-8"))
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode("utf-8", "replace"))
    sys.exit(0 if e.code < 500 else 2)
except Exception as e:
    sys.stderr.write(str(e) + "\n")
    sys.exit(1)
PY
}

# health_summary BASE_URL -> "status number_of_nodes" or non-zero exit
health_summary() {
    local body
    body="$(http_get "$1/_cluster/health" 5 2>/dev/null)" || return 1
    python3 -c '
import json, sys
h = json.loads(sys.argv[1])
print(h["status"], h["number_of_nodes"])
' "$body" 2>/dev/null
}

free_ports() { # count
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# --------------------------------------------------------------------------- nodes

write_node_config() { # name http transport seeds(csv) count
    local name="$1" http="$2" transport="$3" seeds="$4" count="$5" home
    home="$(node_home "$name")"
    mkdir -p "$home/config" "$home/data" "$home/logs" "$home/repo" "$home/tmp"
    {
        echo "cluster.name: $CLUSTER_NAME"
        echo "node.name: $name"
        echo "path.data: $home/data"
        echo "path.logs: $home/logs"
        echo "path.repo: [\"$home/repo\"]"
        echo "network.host: 127.0.0.1"
        echo "http.port: $http"
        echo "transport.port: $transport"
        if [[ "$count" == 1 ]]; then
            echo "discovery.type: single-node"
        else
            echo "discovery.seed_hosts: [$seeds]"
            echo "cluster.initial_cluster_manager_nodes: [\"node-1\"]"
        fi
        echo "cluster.routing.allocation.disk.threshold_enabled: false"
        echo "node.store.allow_mmap: false"
        echo "bootstrap.memory_lock: false"
        echo "reindex.remote.allowlist: [\"127.0.0.1:*\", \"localhost:*\"]"
    } >"$home/config/opensearch.yml"
    cat >"$home/config/log4j2.properties" <<'EOF'
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
appender.header_warning.type = HeaderWarningAppender
appender.header_warning.name = header_warning
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = deprecation
logger.deprecation.appenderRef.console.ref = console
logger.deprecation.appenderRef.header_warning.ref = header_warning
logger.deprecation.additivity = false
EOF
}

launch_node() { # name
    local name="$1" home logfile major xms
    home="$(node_home "$name")"
    logfile="$STATE_DIR/logs/$name.log"
    mkdir -p "$STATE_DIR/logs" "$home/tmp"
    major="$(java_major)"
    xms=512m
    case "$HEAP_MAX" in
        [0-9]*m | [0-9]*M) if ((${HEAP_MAX%[mM]} < 512)); then xms="$HEAP_MAX"; fi ;;
    esac
    local -a opts=(
        "-Xms$xms" "-Xmx$HEAP_MAX" -Xss1m -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow
        -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true
        -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true
        "-Djava.io.tmpdir=$home/tmp"
    )
    if [[ -n "$major" ]] && ((major < 23)); then
        opts+=("-Djava.locale.providers=SPI,COMPAT")
    fi
    # The k-NN plugin, if the cluster was started with it (see launch_cluster).
    local classpath="$DIST_DIR/lib/*:$DIST_DIR/classes" knn=""
    [[ ! -f "$STATE_DIR/knn" ]] || knn="$(cat "$STATE_DIR/knn")"
    if [[ -n "$knn" && -f "$knn/.complete" ]]; then
        classpath="$DIST_DIR/lib/*:$knn/*:$DIST_DIR/classes"
        opts+=("-Dengine.plugin.descriptors=$knn/plugin-descriptor.properties")
    elif [[ -n "$knn" ]]; then
        log "warning: the k-NN plugin is gone from $knn; starting $name without it"
    fi
    if [[ -n "${REINDEX_FSM_ENGINE_JAVA_OPTS:-}" ]]; then
        local -a extra
        read -r -a extra <<<"$REINDEX_FSM_ENGINE_JAVA_OPTS"
        opts+=("${extra[@]}")
    fi
    opts+=("$(node_marker "$name")" -cp "$classpath" EngineNode "$home")
    printf '=== %s starting %s (java %s) ===\n' "$(date -u +%FT%TZ)" "$name" "$major" >>"$logfile"
    # New session: the JVM outlives this script and the caller's terminal / process group.
    # The state lock fd is closed for it so that it never holds the lock.
    if [[ -n "$STATE_LOCK_FD" ]]; then
        setsid "$JAVA_HOME_SEL/bin/java" "${opts[@]}" </dev/null >>"$logfile" 2>&1 {STATE_LOCK_FD}>&- &
    else
        setsid "$JAVA_HOME_SEL/bin/java" "${opts[@]}" </dev/null >>"$logfile" 2>&1 &
    fi
}

kill_node() { # name signal wait_seconds
    local name="$1" sig="$2" wait_s="$3" pids i
    pids="$(node_pids "$name")"
    [[ -n "$pids" ]] || return 0
    # shellcheck disable=SC2086 # word splitting of the pid list is intended
    kill "-$sig" $pids 2>/dev/null || true
    for ((i = 0; i < wait_s * 5; i++)); do
        node_alive "$name" || return 0
        sleep 0.2
    done
    pids="$(node_pids "$name")"
    if [[ -n "$pids" ]]; then
        log "$name did not exit after SIG$sig in ${wait_s}s; sending SIGKILL"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            node_alive "$name" || return 0
            sleep 0.2
        done
        die "could not stop $name (pids: $pids)"
    fi
}

stop_all() {
    local name names
    names="$(node_names)"
    # Nodes whose table was lost are still found by their marker.
    if [[ -d "$STATE_DIR/nodes" ]]; then
        names="$(printf '%s\n%s\n' "$names" "$(find "$STATE_DIR/nodes" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')" | sort -u)"
    fi
    for name in $names; do
        local pids
        pids="$(node_pids "$name")"
        # shellcheck disable=SC2086
        [[ -z "$pids" ]] || kill -TERM $pids 2>/dev/null || true
    done
    for name in $names; do
        kill_node "$name" TERM 30
    done
    rm -rf "$STATE_DIR/nodes" "$(nodes_file)" "$STATE_DIR/url" "$STATE_DIR/knn"
}

log_tail() { # name
    local logfile="$STATE_DIR/logs/$1.log"
    if [[ -f "$logfile" ]]; then
        log "last lines of $logfile:"
        tail -n 40 "$logfile" >&2 || true
    fi
}

# wait_health URL want_nodes want_status(green|yellow|any) deadline_epoch
wait_health() {
    local url="$1" want_nodes="$2" want_status="$3" deadline="$4" summary status nodes name
    local -A missing=()
    while :; do
        for name in $(node_names); do
            if [[ -f "$(node_home "$name")/.stopped" ]]; then
                continue
            fi
            # A node just launched may not have exec'd java yet (its command line has no
            # marker for a moment on a loaded machine): only a node missing on 5 checks
            # in a row has exited.
            if node_alive "$name"; then
                missing[$name]=0
            elif ((++missing[$name] >= 5)); then
                log_tail "$name"
                log "node $name exited during startup"
                return 1
            fi
        done
        if summary="$(health_summary "$url")"; then
            status="${summary% *}"
            nodes="${summary#* }"
            if [[ "$nodes" == "$want_nodes" ]]; then
                case "$want_status:$status" in
                    green:green | yellow:green | yellow:yellow | any:*) return 0 ;;
                esac
            fi
        fi
        if (($(date +%s) >= deadline)); then
            log "timed out after ${START_TIMEOUT}s waiting for $want_status health with $want_nodes node(s) at $url (last: ${summary:-no answer})"
            return 1
        fi
        sleep 1
    done
}

engine_url() {
    [[ -f "$STATE_DIR/url" ]] && cat "$STATE_DIR/url"
}

# First URL of a live node that answers, else nothing.
live_url() {
    local name url
    url="$(engine_url || true)"
    if [[ -n "$url" ]] && health_summary "$url" >/dev/null; then
        printf '%s' "$url"
        return 0
    fi
    for name in $(node_names); do
        node_alive "$name" || continue
        url="http://127.0.0.1:$(node_field "$name" 2)"
        if health_summary "$url" >/dev/null; then
            printf '%s' "$url"
            return 0
        fi
    done
    return 1
}

# --------------------------------------------------------------------------- commands

cmd_start() {
    local count=1 explicit=0
    while (($#)); do
        case "$1" in
            --nodes)
                [[ $# -ge 2 ]] || die "--nodes needs a value"
                count="$2"
                explicit=1
                shift 2
                ;;
            --nodes=*)
                count="${1#--nodes=}"
                explicit=1
                shift
                ;;
            *) die "unknown option for start: $1" ;;
        esac
    done
    if ! [[ "$count" =~ ^[1-9][0-9]*$ ]] || ((count > MAX_NODES)); then
        die "--nodes must be 1..$MAX_NODES"
    fi

    ensure_dist
    ensure_knn
    init_state_dir
    lock_state

    # Reuse a healthy engine started earlier (with the k-NN plugin iff it is to be loaded now).
    if [[ -f "$STATE_DIR/url" ]]; then
        local url have summary="" down="" name had_knn=""
        url="$(engine_url)"
        have="$(node_count)"
        [[ ! -f "$STATE_DIR/knn" ]] || had_knn="$(cat "$STATE_DIR/knn")"
        for name in $(node_names); do
            node_alive "$name" || down+=" $name"
        done
        if [[ -z "$down" ]] && summary="$(health_summary "$url")" &&
            [[ "${summary% *}" != red && "${summary#* }" == "$have" ]] &&
            { ((explicit == 0)) || [[ "$have" == "$count" ]]; } &&
            [[ "$had_knn" == "$KNN_DIR" ]]; then
            printf '%s\n' "$url"
            return 0
        fi
        local knn_was=off knn_wanted=off
        [[ -z "$had_knn" ]] || knn_was=on
        [[ -z "$KNN_DIR" ]] || knn_wanted=on
        log "restarting the engine in $STATE_DIR (was: $have node(s), down:${down:- none}, health: ${summary:-no answer}, k-NN: $knn_was; wanted: $count, k-NN: $knn_wanted)"
    fi

    local attempt
    for attempt in 1 2 3; do
        stop_all
        if launch_cluster "$count"; then
            printf '%s\n' "$ENGINE_URL" >"$STATE_DIR/url"
            printf '%s\n' "$ENGINE_URL"
            return 0
        fi
        # A port picked as free can be taken before the JVM binds it: retry with new ones.
        if ((attempt < 3)) && grep -qsE 'BindHttpException|BindTransportException|Address already in use' \
            "$STATE_DIR"/logs/node-*.log; then
            log "port clash on attempt $attempt; retrying with other ports"
            continue
        fi
        break
    done
    stop_all
    die "OpenSearch did not start (green within ${START_TIMEOUT}s); logs: $STATE_DIR/logs/"
}

ENGINE_URL=""
# Writes the configs of COUNT fresh nodes, launches them and waits for green.
launch_cluster() { # count
    local count="$1" ports i seeds="" name deadline
    read -r -a ports <<<"$(free_ports $((2 * count)))"
    for ((i = 0; i < count; i++)); do
        seeds+="${seeds:+, }\"127.0.0.1:${ports[$((count + i))]}\""
    done
    mkdir -p "$STATE_DIR/nodes" "$STATE_DIR/logs"
    : >"$(nodes_file).tmp"
    for ((i = 0; i < count; i++)); do
        name="node-$((i + 1))"
        : >"$STATE_DIR/logs/$name.log"
        write_node_config "$name" "${ports[$i]}" "${ports[$((count + i))]}" "$seeds" "$count"
        printf '%s %s %s\n' "$name" "${ports[$i]}" "${ports[$((count + i))]}" >>"$(nodes_file).tmp"
    done
    mv "$(nodes_file).tmp" "$(nodes_file)"
    printf '%s\n' "$KNN_DIR" >"$STATE_DIR/knn"
    for name in $(node_names); do
        launch_node "$name"
    done
    ENGINE_URL="http://127.0.0.1:${ports[0]}"
    deadline=$(($(date +%s) + START_TIMEOUT))
    wait_health "$ENGINE_URL" "$count" green "$deadline"
}

cmd_url() {
    init_state_dir
    [[ -f "$STATE_DIR/url" ]] || exit 1
    # node-1's URL (the one `start` printed) while it runs, else the first live node's.
    local name
    for name in $(node_names); do
        if node_alive "$name"; then
            printf 'http://127.0.0.1:%s\n' "$(node_field "$name" 2)"
            return 0
        fi
    done
    exit 1
}

cmd_status() {
    init_state_dir
    local url
    url="$(live_url)" || {
        log "no engine running (state dir $STATE_DIR)"
        exit 1
    }
    http_get "$url/_cluster/health?pretty" 10
}

cmd_nodes() {
    init_state_dir
    local name pids state
    for name in $(node_names); do
        pids="$(node_pids "$name" | tr '\n' ',')"
        pids="${pids%,}"
        state=down
        [[ -z "$pids" ]] || state=up
        printf '%s\t%s\thttp://127.0.0.1:%s\t%s\n' "$name" "${pids:--}" "$(node_field "$name" 2)" "$state"
    done
}

cmd_stop() {
    init_state_dir
    lock_state
    stop_all
}

cmd_stop_node() {
    [[ $# -ge 1 ]] || die "usage: stop-node NAME|INDEX [--kill]"
    local sig=TERM
    [[ "${2:-}" == "--kill" ]] && sig=KILL
    init_state_dir
    lock_state
    local name
    name="$(resolve_node "$1")"
    node_alive "$name" || log "$name is not running"
    touch "$(node_home "$name")/.stopped"
    kill_node "$name" "$sig" 30
    log "stopped $name (SIG$sig)"
}

cmd_start_node() {
    [[ $# -ge 1 ]] || die "usage: start-node NAME|INDEX"
    ensure_dist
    init_state_dir
    lock_state
    local name
    name="$(resolve_node "$1")"
    if node_alive "$name"; then
        log "$name is already running"
        return 0
    fi
    rm -f "$(node_home "$name")/.stopped"
    launch_node "$name"
    local url deadline
    url="http://127.0.0.1:$(node_field "$name" 2)"
    deadline=$(($(date +%s) + START_TIMEOUT))
    # The node is back when it answers and sees the cluster (not necessarily green yet).
    local want=0 n
    for n in $(node_names); do
        [[ -f "$(node_home "$n")/.stopped" ]] || want=$((want + 1))
    done
    wait_health "$url" "$want" any "$deadline" || die "$name did not rejoin within ${START_TIMEOUT}s"
    log "started $name ($url)"
}

main() {
    local cmd="${1:-}"
    [[ $# -eq 0 ]] || shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        url) cmd_url ;;
        status) cmd_status ;;
        nodes) cmd_nodes ;;
        stop) cmd_stop ;;
        stop-node) cmd_stop_node "$@" ;;
        start-node) cmd_start_node "$@" ;;
        fetch)
            ensure_dist
            ensure_knn force
            log "cache ready: $DIST_DIR${KNN_DIR:+ (with the k-NN plugin)}"
            ;;
        -h | --help | help)
            usage
            ;;
        *)
            usage
            exit 2
            ;;
    esac
}

main "$@"
