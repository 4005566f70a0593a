"""On the real engine: input it would refuse is refused before anything is written. One
line on stderr, exit 2, and nothing left behind: no unfinished run holding the alias (at
most a CANCELLED one), no lease document, no target index, no write block on the source.

The target's settings and mappings are validated by the engine itself, with the run's
first write (the create, before the write block and the copy): a refusal ends the run
CANCELLED and prints the engine's reason verbatim."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reindex_fsm.errors import ExitCode

from .conftest import indices_under, run_cli

pytestmark = pytest.mark.integration


def _history(state_db: Path) -> list[dict]:
    result = run_cli("history", "--json", "--state-db", str(state_db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _nothing_left(engine, names, state_db: Path, *, cancelled: bool = False) -> None:
    runs = _history(state_db) if state_db.exists() else []
    assert [r["state"] for r in runs] == (["CANCELLED"] if cancelled else [])
    assert engine.get_lease(names.alias) is None
    assert indices_under(engine, names.prefix) == [names.source]  # no target
    settings = engine.get_index(names.source).settings
    assert str(settings.get("index.blocks.write", "false")).lower() == "false"
    assert engine.get_alias(names.alias) == {names.source: {names.alias: {"is_write_index": True}}}


REFUSED_TARGETS = [
    (["--set", "index.no_such_setting=1"], "unknown setting [index.no_such_setting]"),
    (["--set", "index.number_of_shards=0"], "for setting [index.number_of_shards] must be >= 1"),
    (
        ["--set", "index.number_of_shards=banana"],
        "Failed to parse value [banana] for setting [index.number_of_shards]",
    ),
    (["--mappings", "{mappings}"], "No handler for type [nosuchtype] declared on field [extra]"),
]


@pytest.mark.parametrize(
    ("args", "reason"), REFUSED_TARGETS, ids=["unknown", "shards-0", "banana", "type"]
)
def test_target_settings_or_mappings_the_engine_refuses(
    engine, engine_url, names, make_source, tmp_path, args, reason
):
    make_source(50)
    mappings = tmp_path / "mappings.json"
    mappings.write_text(json.dumps({"properties": {"extra": {"type": "nosuchtype"}}}))
    state_db = tmp_path / "state.db"
    args = [a.format(mappings=mappings) for a in args]
    result = run_cli(
        "start", "--alias", names.alias, "--force", "--verify", *args,
        "--engine-url", engine_url, "--state-db", str(state_db),
    )  # fmt: skip
    assert result.returncode == ExitCode.USAGE, result.stderr
    line = _one_error_line(result)
    assert "the engine refused to create the target index" in line
    assert reason in line  # the engine's own words, brackets included
    assert "is CANCELLED and the alias free" in line
    _nothing_left(engine, names, state_db, cancelled=True)
    # the alias takes the next run at once
    again = run_cli(
        "start", "--alias", names.alias, "--dry-run",
        "--engine-url", engine_url, "--state-db", str(state_db),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr


def test_a_verify_query_the_engine_refuses_is_refused_at_start(
    engine, engine_url, names, make_source, tmp_path
):
    make_source(50)
    queries = tmp_path / "queries.txt"
    queries.write_text('{"match": {"title": "river"}}\nriver delta\n{"nosuchquery": {}}\n')
    state_db = tmp_path / "state.db"
    result = run_cli(
        "start", "--alias", names.alias, "--force", "--verify", "deep",
        "--verify-queries", str(queries), "--engine-url", engine_url, "--state-db", str(state_db),
    )  # fmt: skip
    assert result.returncode == ExitCode.USAGE, result.stderr
    line = _one_error_line(result)
    assert f"{queries}:3: the engine refuses this query on {names.source}" in line
    assert "unknown query [nosuchquery]" in line
    _nothing_left(engine, names, state_db)


def test_slices_beyond_the_bound_are_refused(engine, engine_url, names, make_source, tmp_path):
    make_source(50)  # 3 primary shards
    state_db = tmp_path / "state.db"
    common = ["--engine-url", engine_url, "--state-db", str(state_db)]
    for slices, message in (
        ("100000", f"--slices 100000 is more than 12 for {names.source} (3 primary shard(s))"),
        ("13", "--slices 13 is more than 12"),
        ("0", "--slices 0 is not a positive number or auto"),
    ):
        result = run_cli("start", "--alias", names.alias, "--force", "--slices", slices, *common)
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert message in _one_error_line(result)
    _nothing_left(engine, names, state_db)
    ok = run_cli("start", "--alias", names.alias, "--dry-run", "--slices", "12", *common)
    assert ok.returncode == 0, ok.stderr


def test_alias_patterns_and_bad_target_names_are_refused(
    engine, engine_url, names, make_source, tmp_path
):
    make_source(50)
    state_db = tmp_path / "state.db"
    common = ["--force", "--engine-url", engine_url, "--state-db", str(state_db)]
    cases = [
        (["--alias", f"{names.alias}*"], "contains '*'"),  # matches the alias: planned a run
        (["--alias", f"{names.alias},{names.source}"], "contains ','"),
        (["--alias", ""], "is not an alias name: it is empty"),
        (["--alias", names.alias, "--target-index", f"{names.prefix}/x"], "contains '/'"),
        (["--alias", names.alias, "--target-index", f"{names.prefix} x"], "contains space"),
        (["--alias", names.alias, "--target-index", ".."], "it is '..'"),
        (["--alias", names.alias, "--target-index", f"{names.prefix}-X"], "uppercase"),
    ]
    for args, message in cases:
        result = run_cli("start", *args, *common)
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert message in _one_error_line(result)
    assert engine.get_lease(f"{names.alias}*") is None
    _nothing_left(engine, names, state_db)


class _NotFound(http.server.BaseHTTPRequestHandler):
    """A proxy that answers 404 to everything."""

    def do_GET(self) -> None:
        body = b"<html><body>404 Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    """`python -m http.server` on loopback: 200 with an HTML directory listing."""
    root = tmp_path / "www"
    root.mkdir()

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    yield from _serve(Files)


@pytest.fixture
def proxy_404() -> Iterator[str]:
    yield from _serve(_NotFound)


def test_a_url_that_is_not_an_engine_is_one_line_naming_it(
    engine_url, file_server, proxy_404, tmp_path
):
    state_db = tmp_path / "state.db"
    prefixed = f"{engine_url.rstrip('/')}/not-the-engine-root"
    for url, kind in (
        (file_server, "auto"),
        (file_server, "opensearch"),
        (proxy_404, "auto"),
        (prefixed, "auto"),  # the real engine, behind a path it does not have
    ):
        result = run_cli(
            "start", "--alias", "documents", "--force", "--engine-url", url, "--engine", kind,
            "--state-db", str(state_db),
        )  # fmt: skip
        assert result.returncode == ExitCode.USAGE, (url, result.stderr)
        line = _one_error_line(result)
        assert f"the server at {url} is not Elasticsearch or OpenSearch" in line, line
    assert "the URL has the path '/not-the-engine-root'" in line
    assert not state_db.exists() or _history(state_db) == []
