#!/usr/bin/env bash
# Local PostgreSQL server for the state-store tests: a throwaway cluster in a temp dir,
# listening on 127.0.0.1 only, on a free port, password authentication (scram) for one
# role. Installs Debian's `postgresql` package with apt-get when initdb is missing.
#
#   scripts/postgres.sh start     start (or reuse) the server; prints ONLY its URL
#   scripts/postgres.sh url       print the URL of the running server (exit 1 if none)
#   scripts/postgres.sh stop      stop the server and delete its data
#
# The URL is postgresql+psycopg://reindex_fsm:<password>@127.0.0.1:<port>/reindex_fsm; its
# role may create databases (the tests make one per test). Run as root, the cluster is
# owned by and run as the `postgres` user (initdb refuses root).
#
# Environment:
#   REINDEX_FSM_POSTGRES_HOME   state dir: data/, socket, log, url (default /tmp/reindex-fsm-postgres)
#   REINDEX_FSM_POSTGRES_BIN    folder of initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin,
#                               else PATH)
set -euo pipefail

HOME_DIR="${REINDEX_FSM_POSTGRES_HOME:-/tmp/reindex-fsm-postgres}"
ROLE="reindex_fsm"
DB="reindex_fsm"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

find_bin() {
    local dir
    if [[ -n "${REINDEX_FSM_POSTGRES_BIN:-}" ]]; then
        echo "$REINDEX_FSM_POSTGRES_BIN"
        return 0
    fi
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        echo "$dir"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        return 1
    fi
}

ensure_bin() {
    if ! BIN="$(find_bin)"; then
        command -v apt-get >/dev/null 2>&1 || die "initdb not found and no apt-get to install postgresql"
        log "installing postgresql (apt-get)"
        if [[ "$(id -u)" == 0 ]]; then
            apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        else
            sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        fi
        BIN="$(find_bin)" || die "postgresql installed but initdb still not found"
    fi
}

# Run a command as the cluster's owner: the postgres user when we are root.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

running() {
    [[ -f "$HOME_DIR/url" && -d "$HOME_DIR/data" ]] && as_owner "$BIN/pg_ctl" -D "$HOME_DIR/data" status >/dev/null 2>&1
}

cmd_start() {
    ensure_bin
    mkdir -p "$HOME_DIR"
    exec 9>"$HOME_DIR/.lock"
    flock 9  # several pytest-xdist workers may start it at once: one initdb
    if running; then
        cat "$HOME_DIR/url"
        return 0
    fi
    rm -rf "$HOME_DIR/data" "$HOME_DIR/url" "$HOME_DIR/sock"
    mkdir -p "$HOME_DIR/data" "$HOME_DIR/sock"
    chmod 700 "$HOME_DIR/data"
    if [[ "$(id -u)" == 0 ]]; then
        as_owner true  # creates the postgres user if missing
        chown postgres: "$HOME_DIR/data" "$HOME_DIR/sock"
        chmod 755 "$HOME_DIR"
    fi
    local password port pwfile
    password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    pwfile="$HOME_DIR/sock/.pw"
    printf '%s\n' "$password" >"$pwfile"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$pwfile"
    chmod 600 "$pwfile"
    as_owner "$BIN/initdb" -D "$HOME_DIR/data" -U "$ROLE" --pwfile="$pwfile" --auth=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$HOME_DIR/initdb.log" 2>&1 \
        || { cat "$HOME_DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    port="$(free_port)"
    as_owner "$BIN/pg_ctl" -D "$HOME_DIR/data" -l "$HOME_DIR/sock/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $HOME_DIR/sock -c fsync=off -c max_connections=200" \
        start >&2 9>&- || { cat "$HOME_DIR/sock/server.log" >&2; die "the server did not start"; }
    PGPASSWORD="$password" "$BIN/psql" -h 127.0.0.1 -p "$port" -U "$ROLE" -d postgres -qAt \
        -c "CREATE DATABASE $DB" >&2 || die "cannot create database $DB"
    printf 'postgresql+psycopg://%s:%s@127.0.0.1:%s/%s\n' "$ROLE" "$password" "$port" "$DB" >"$HOME_DIR/url"
    chmod 600 "$HOME_DIR/url"
    cat "$HOME_DIR/url"
}

cmd_url() {
    ensure_bin
    running || die "no server running in $HOME_DIR"
    cat "$HOME_DIR/url"
}

cmd_stop() {
    ensure_bin
    if [[ -d "$HOME_DIR/data" ]]; then
        as_owner "$BIN/pg_ctl" -D "$HOME_DIR/data" -m fast -w stop >&2 2>/dev/null || true
    fi
    rm -rf "$HOME_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    url) cmd_url ;;
    stop) cmd_stop ;;
    *)
        sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
