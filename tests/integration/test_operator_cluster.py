"""The suites never touch the operator's cluster or state database: with the operator's
``REINDEX_FSM_*`` settings exported (their cluster URL and credentials, their state
database), a slice of the suite (unit tests that run the CLI in-process, a unit test that
sets the variable itself, integration tests that run the CLI as a subprocess and the library
on the tests' own engine) passes, and the operator's "cluster" (a loopback HTTP server that
records every request) receives nothing, and their state database is never made."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.engine import TEST_ENGINE_URL_ENV

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SLICE = [
    "tests/test_cli.py::test_start_json_prints_one_object",
    "tests/test_cli.py::test_history_and_show_json[sqlite]",
    "tests/test_cli.py::test_start_human_output_and_progress_lines",
    "tests/test_lease_holders.py::test_the_cli_reads_the_environment_as_the_variable_not_as_engine_url",
    "tests/integration/test_dry_run.py::test_dry_run_prints_the_plan_and_changes_nothing",
    "tests/integration/test_output.py::test_the_engines_bracketed_reason_reaches_stderr_intact",
]


class Recorder(ThreadingHTTPServer):
    """An HTTP server that records every request and answers each like a cluster would."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def _record(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        body = b'{"cluster_name": "operator", "version": {"number": "2.19.6"}}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _record

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def operator_cluster() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_suite_run_with_the_operators_settings_sends_nothing_to_their_cluster(
    operator_cluster: Recorder, engine_url: str, tmp_path: Path
) -> None:
    operator_db = tmp_path / "operator" / "reindex_fsm.db"
    operator_db.parent.mkdir()
    env = {
        **os.environ,
        "REINDEX_FSM_ENGINE_URL": operator_cluster.url,
        "REINDEX_FSM_STATE_DB": str(operator_db),
        "REINDEX_FSM_USERNAME": "operator",
        "REINDEX_FSM_PASSWORD": "operator-secret",
        TEST_ENGINE_URL_ENV: engine_url,
    }
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *SLICE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert f"{len(SLICE)} passed" in ran.stdout, ran.stdout[-2000:]
    assert operator_cluster.requests == [], "the suite reached the operator's cluster"
    assert list(operator_db.parent.iterdir()) == [], "the suite wrote the operator's state DB"
