"""--metrics-file and --notify-url on the real engine: a throttled copy's figures written
while it goes (read back with prometheus_client's parser), the end POSTed to a local
receiver."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reindex_fsm import api, metrics
from reindex_fsm.machine import State

from .conftest import cli_argv, cli_env, options, wait_for

pytestmark = pytest.mark.integration

N = 3000
RPS = 500  # one slice, _reindex batches of 1000 every 2 s: counts seen between the batches


def samples(path: Path) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(found: dict[str, list[Any]], name: str) -> float:
    [s] = found[name]
    return s.value


def state(found: dict[str, list[Any]]) -> str:
    [on] = [s.labels["state"] for s in found["reindex_fsm_run_state"] if s.value == 1.0]
    return on


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook/tok3n", events
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_copy_writes_its_figures_as_it_goes_and_posts_its_end(
    engine, cfg, names, make_source, tmp_path, receiver, monkeypatch
):
    make_source(N)
    url, events = receiver
    cfg.notify_url = url
    seen: list[tuple[str, float, float]] = []
    write = metrics.write_run

    def spy(path: str, record: Any, now: datetime, docs_per_s: float | None = None) -> None:
        write(path, record, now, docs_per_s)
        found = samples(Path(path))
        done = value(found, "reindex_fsm_run_documents_done")
        seen.append((state(found), done, value(found, "reindex_fsm_run_documents_per_second")))

    monkeypatch.setattr(metrics, "write_run", spy)
    monkeypatch.setattr("reindex_fsm.outputs.EVERY_S", 0.5)
    path = tmp_path / "run.prom"
    rec = api.start(
        cfg, names.alias, options(metrics_file=str(path), requests_per_second=RPS, slices=1)
    )
    assert rec.record.state is State.SWAPPED
    copying = [(done, rate) for st, done, rate in seen if st == "REINDEXING"]
    assert any(0 < done < N for done, _ in copying), seen  # seen between the batches
    assert all(rate <= RPS * 1.5 for done, rate in copying if done), seen  # the throttle
    found = samples(path)
    assert state(found) == "SWAPPED"
    assert value(found, "reindex_fsm_run_documents_done") == N
    assert value(found, "reindex_fsm_run_documents_total") == N
    assert value(found, "reindex_fsm_run_target_documents") == N
    assert value(found, "reindex_fsm_run_duration_seconds") > 1
    [info] = found["reindex_fsm_run_info"]
    assert info.labels["alias"] == names.alias and info.labels["run_id"] == rec.record.id
    assert info.labels["engine_flavor"] == rec.record.engine_flavor
    [event] = events
    assert (event["state"], event["outcome"], event["run_id"]) == (
        "SWAPPED",
        "success",
        rec.record.id,
    )
    assert event["counts"]["target"] == N and "tok3n" not in json.dumps(event)


def _copying(path: Path) -> dict[str, list[Any]] | None:
    """The file's samples once it shows the copy under way (some documents done)."""
    if not path.exists():
        return None
    found = samples(path)
    done = value(found, "reindex_fsm_run_documents_done")
    return found if state(found) == "REINDEXING" and done > 0 else None


def test_a_start_killed_mid_copy_and_resumed_keeps_writing_its_file(
    cfg, names, make_source, tmp_path, receiver
):
    """The CLI: a start SIGKILLed while it copies leaves its file as it was (no event: the
    run did not end); `resume` without the flag writes the stored file to the end, and
    the variable's URL gets the one event."""
    n = 6000  # about 12 s of copy at RPS
    make_source(n)
    url, events = receiver
    path = tmp_path / "run.prom"
    start = subprocess.Popen(
        cli_argv(
            "start", "--alias", names.alias, "--force", "--metrics-file", str(path),
            "--requests-per-second", str(RPS), "--slices", "1", "--notify-url", url,
            "--engine-url", cfg.engine_url, "--state-db", cfg.state_db,
        ),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        found = wait_for("the metrics file to show the copy", lambda: _copying(path), 60)
        start.kill()
        start.wait(30)
    finally:
        if start.poll() is None:
            start.kill()
            start.wait(30)
    assert 0 < value(found, "reindex_fsm_run_documents_done") < n
    assert events == []  # killed: the run did not end
    [info] = found["reindex_fsm_run_info"]
    run_id = info.labels["run_id"]
    assert "tok3n" not in json.dumps(api.show(cfg, run_id)[0].as_dict(), default=str)
    resumed = subprocess.run(
        cli_argv("resume", run_id, "--state-db", cfg.state_db, "--json"),
        env={**cli_env(), "REINDEX_FSM_NOTIFY_URL": url},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "tok3n" not in resumed.stdout + resumed.stderr
    found = samples(path)
    assert state(found) == "SWAPPED"
    assert value(found, "reindex_fsm_run_documents_done") == n
    assert value(found, "reindex_fsm_run_target_documents") == n
    assert [(e["run_id"], e["outcome"]) for e in events] == [(run_id, "success")]
