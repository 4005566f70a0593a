"""--metrics-file and --notify-url on the real engine: a throttled copy's figures written
while it goes (read back with prometheus_client's parser), the end POSTed to a local
receiver."""

from __future__ import annotations

import json
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

from .conftest import options

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
