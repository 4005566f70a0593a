"""--notify-url: a local HTTP receiver (http.server in a thread) gets one JSON event when a
run ends: success, failure, rollback; a receiver that is down, slow, or answers 5xx first
never fails the run (one warning line at most), and no event carries a secret."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reindex_fsm import api, metrics, notify
from reindex_fsm.errors import EngineError, TargetRefused, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, SOURCE, make_config
from .test_cli import invoke

TOKEN = "s3cr3t-hook-token"


@dataclass
class Receiver:
    """A webhook receiver: answers ``statuses`` in turn (then 200), ``delay_s`` first."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def hook_url(self) -> str:
        return f"{self.url}/hooks/{TOKEN}?key={TOKEN}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.requests.append({"path": self.path, "headers": dict(self.headers)})
            if got.delay_s:
                time.sleep(got.delay_s)
            status = got.statuses.pop(0) if got.statuses else 200
            if status == 200:
                got.events.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    got.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ncfg(fake, state_db, receiver):
    """A Config notifying the receiver, its warnings kept."""
    cfg = make_config(fake, state_db)
    cfg.notify_url = receiver.hook_url()
    cfg.warnings = []  # type: ignore[attr-defined]
    cfg.warn = cfg.warnings.append  # type: ignore[attr-defined]
    return cfg


def no_secret(text: str) -> None:
    assert TOKEN not in text
    assert "password" not in text.lower() or '"password"' not in text


def test_a_swapped_run_posts_one_success_event(ncfg, fake, receiver):
    rec = api.start(ncfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED
    assert len(receiver.events) == 1 and ncfg.warnings == []
    event = receiver.events[0]
    assert event["event"] == "run_ended"
    assert event["run_id"] == rec.id and event["alias"] == ALIAS
    assert event["source_index"] == SOURCE and event["target_index"] == rec.target_index
    assert (event["state"], event["outcome"]) == ("SWAPPED", "success")
    assert event["counts"]["source"] == event["counts"]["target"] == rec.source_count
    assert event["counts"]["done"] == event["counts"]["total"] == rec.source_count
    assert event["error"] is None and event["duration_s"] >= 0
    assert event["tool"]["name"] == "reindex-fsm" and event["tool"]["version"]
    assert event["host"]
    request = receiver.requests[0]
    assert request["path"] == f"/hooks/{TOKEN}?key={TOKEN}"  # the URL as given
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Idempotency-Key"] == event["event_id"]
    no_secret(json.dumps(event))


def test_a_failed_run_posts_the_failure_with_its_error(ncfg, fake, receiver):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(ncfg, ALIAS, RunOptions()).record
    assert rec.state is State.FAILED
    [event] = receiver.events
    assert (event["state"], event["outcome"]) == ("FAILED", "failure")
    assert event["error"] == rec.error and event["error_kind"] == rec.error_kind
    assert event["counts"]["failed_documents"] >= 1


def test_a_rollback_posts_one_event_not_two(ncfg, fake, receiver):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(ncfg, ALIAS, RunOptions(rollback_on_failure=True)).record
    assert rec.state is State.ROLLED_BACK
    assert [(e["state"], e["outcome"]) for e in receiver.events] == [("ROLLED_BACK", "rollback")]


def test_a_resumed_run_posts_its_own_end(ncfg, fake, receiver):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(ncfg, ALIAS, RunOptions()).record
    fake.task_script = TaskScript()
    assert api.resume(ncfg, rec.id).record.state is State.SWAPPED
    assert [e["state"] for e in receiver.events] == ["FAILED", "SWAPPED"]
    assert receiver.events[0]["event_id"] != receiver.events[1]["event_id"]


def test_abort_and_undo_post_their_end(ncfg, fake, receiver):
    fake.task_script = TaskScript(fail_after_polls=1)
    failed = api.start(ncfg, ALIAS, RunOptions()).record
    assert api.abort(ncfg, failed.id).record.state is State.ROLLED_BACK
    fake.task_script = TaskScript()
    swapped = api.start(ncfg, ALIAS, RunOptions()).record
    assert api.undo(ncfg, swapped.id).state is State.UNDONE
    outcomes = [e["outcome"] for e in receiver.events]
    assert outcomes == ["failure", "rollback", "success", "undone"]


def test_a_refused_start_posts_cancelled(ncfg, fake, receiver):
    fake.fail_on(
        "create_index", error=EngineError("illegal_argument_exception: bad analyzer", status=400)
    )
    with pytest.raises(TargetRefused):
        api.start(ncfg, ALIAS, RunOptions())
    [event] = receiver.events
    assert (event["state"], event["outcome"]) == ("CANCELLED", "cancelled")
    assert "bad analyzer" in event["error"]


def test_a_receiver_down_is_one_warning_and_the_run_succeeds(fake, state_db, receiver):
    cfg = make_config(fake, state_db)
    warnings: list[str] = []
    cfg.warn = warnings.append
    cfg.notify_url = f"http://127.0.0.1:1/hooks/{TOKEN}"  # nothing listens on port 1
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert line.startswith("notify: run_ended event to http://127.0.0.1:1/... not delivered")
    assert f"after {notify.ATTEMPTS} attempts" in line and "the run is not affected" in line
    no_secret(line)
    assert cfg.sleep.__self__.sleeps[-(notify.ATTEMPTS - 1) :] == [1.0, 2.0, 4.0]  # backoff


def test_a_slow_receiver_times_out_and_the_run_succeeds(ncfg, receiver, monkeypatch):
    monkeypatch.setattr(notify, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(notify, "ATTEMPTS", 2)
    receiver.delay_s = 1.0
    started = time.monotonic()
    rec = api.start(ncfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED
    assert time.monotonic() - started < 10
    [line] = ncfg.warnings
    assert "no answer within 0.2s" in line and "after 2 attempts" in line
    no_secret(line)


def test_5xx_then_200_is_delivered_on_a_retry(ncfg, receiver):
    receiver.statuses = [503, 502]
    rec = api.start(ncfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED
    assert len(receiver.requests) == 3 and len(receiver.events) == 1
    assert ncfg.warnings == []
    keys = {r["headers"]["Idempotency-Key"] for r in receiver.requests}
    assert keys == {receiver.events[0]["event_id"]}  # the same event each time


def test_4xx_is_not_retried(ncfg, receiver):
    receiver.statuses = [404]
    api.start(ncfg, ALIAS, RunOptions())
    assert len(receiver.requests) == 1
    [line] = ncfg.warnings
    assert "HTTP 404" in line and "after 1 attempt:" in line


def test_a_redirect_is_not_followed(ncfg, receiver):
    receiver.statuses = [302]
    api.start(ncfg, ALIAS, RunOptions())
    assert len(receiver.requests) == 1 and "HTTP 302" in ncfg.warnings[0]


def test_userinfo_goes_as_basic_auth_and_never_in_the_event(ncfg, receiver):
    ncfg.notify_url = receiver.url.replace("http://", f"http://hook:{TOKEN}@") + "/in"
    api.start(ncfg, ALIAS, RunOptions())
    [request] = receiver.requests
    assert request["path"] == "/in"
    assert request["headers"]["Authorization"].startswith("Basic ")
    no_secret(json.dumps(receiver.events[0]))


def test_engine_credentials_never_reach_the_event(ncfg, fake, receiver):
    ncfg.client_options = {"username": "admin", "password": TOKEN}
    api.start(ncfg, ALIAS, RunOptions())
    no_secret(json.dumps(receiver.events[0]))


def test_no_url_no_event(cfg, receiver):
    assert api.start(cfg, ALIAS, RunOptions()).record.state is State.SWAPPED
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://host/x", "hooks.example/x", "http://", "http://h:99999/"]
)
def test_a_bad_url_is_refused_at_the_cli(cfg, url):
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--notify-url", url)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--notify-url" in result.stderr
    with pytest.raises(UsageError):
        notify.check_url(url)


def test_the_cli_takes_the_flag_and_the_variable(cfg, receiver, monkeypatch):
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--notify-url", receiver.hook_url())
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("REINDEX_FSM_NOTIFY_URL", receiver.hook_url())
    result = invoke(cfg, "start", "--alias", ALIAS, "--force")
    assert result.exit_code == 0, result.stderr
    assert [e["outcome"] for e in receiver.events] == ["success", "success"]
    for run_id in (e["run_id"] for e in receiver.events):  # the URL is not stored
        assert TOKEN not in json.dumps(api.show(cfg, run_id)[0].as_dict(), default=str)


def test_the_cli_warning_shows_no_token(cfg, monkeypatch):
    url = f"http://127.0.0.1:1/hooks/{TOKEN}?key={TOKEN}"
    monkeypatch.setattr(notify, "ATTEMPTS", 1)
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--notify-url", url)
    assert result.exit_code == 0
    assert "not delivered" in result.stderr and TOKEN not in result.stderr + result.stdout


def test_the_batch_event(cfg, fake, receiver):
    good = api.start(cfg, ALIAS, RunOptions()).record
    fake.add_index("other-v1", {f"d{i}": {"n": i} for i in range(10)}, aliases={"other": {}})
    fake.task_script = TaskScript(fail_after_polls=0)
    bad = api.start(cfg, "other", RunOptions()).record
    runs = [replace(r, batch_id="b1") for r in (good, bad)]
    now = cfg.repo().now()
    event = notify.batch_event("b1", "FAILED", [metrics.RunFigures(r, now) for r in runs], now)
    warnings: list[str] = []
    assert notify.Notifier(receiver.hook_url(), warnings.append, lambda _s: None).send(event)
    [got] = receiver.events
    assert got["event"] == "batch_ended" and got["batch_id"] == "b1" and got["state"] == "FAILED"
    assert got["runs_total"] == 2 and got["outcomes"] == {"success": 1, "failure": 1}
    assert [r["run_id"] for r in got["runs"]] == [good.id, bad.id]
    assert got["counts"]["total"] == good.source_count + bad.source_count
    assert warnings == []


def test_shown_url_keeps_only_scheme_and_host():
    assert notify.shown_url(f"https://u:{TOKEN}@hooks.example:8443/x/{TOKEN}?t={TOKEN}") == (
        "https://hooks.example:8443/..."
    )
    assert notify.shown_url("http://[::1]:9/x") == "http://[::1]:9/..."


def test_a_bad_url_in_the_variable_is_refused_by_the_verbs_that_notify(cfg, monkeypatch):
    monkeypatch.setenv("REINDEX_FSM_NOTIFY_URL", "file:///etc/passwd")
    result = invoke(cfg, "start", "--alias", ALIAS, "--force")
    assert result.exit_code == 2 and "--notify-url" in result.stderr
    listed = invoke(cfg, "cleanup", "--alias", ALIAS, "--keep", "1", "--dry-run")
    assert listed.exit_code == 0, listed.stderr  # a verb that ends no run ignores it


def test_batch_ended_writes_the_batch_file_and_posts_one_event(ncfg, fake, receiver, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from reindex_fsm import outputs

    runs = [api.start(ncfg, ALIAS, RunOptions()).record for _ in range(2)]
    assert len(receiver.events) == 2  # each run's own
    runs = [replace(r, batch_id="b7") for r in runs]
    path = tmp_path / "batch.prom"
    outputs.batch_ended(ncfg, "b7", "SUCCEEDED", runs, str(path))
    event = receiver.events[-1]
    assert event["event"] == "batch_ended" and event["outcomes"] == {"success": 2}
    assert event["state"] == "SUCCEEDED" and "batch_id" in event
    names = {f.name for f in text_string_to_metric_families(path.read_text())}
    assert {"reindex_fsm_batch_runs", "reindex_fsm_run_state"} <= names
    assert ncfg.warnings == []
    outputs.batch_moved(ncfg, "b7", "RUNNING", runs, str(tmp_path / "gone" / "b.prom"))
    [line] = ncfg.warnings
    assert line.startswith(f"metrics file {tmp_path / 'gone' / 'b.prom'} not written: ")
    assert line.endswith("; the batch goes on")


def test_a_broken_answer_is_a_warning_not_a_crash(ncfg, fake, state_db, monkeypatch):
    """Whatever the connection raises (a broken answer, a URL http.client refuses with
    the URL in its text), the run ends as it would, one warning line, no token."""
    import http.client

    def broken(request, timeout):
        raise http.client.IncompleteRead(b"")

    monkeypatch.setattr(notify._OPENER, "open", broken)
    monkeypatch.setattr(notify, "ATTEMPTS", 2)
    assert api.start(ncfg, ALIAS, RunOptions()).record.state is State.SWAPPED
    assert "IncompleteRead" in ncfg.warnings[-1] and "after 2 attempts" in ncfg.warnings[-1]

    def refused(request, timeout):
        raise http.client.InvalidURL(f"URL can't contain control characters. {request.full_url!r}")

    monkeypatch.setattr(notify._OPENER, "open", refused)
    cfg = make_config(fake, state_db)
    cfg.warn = (warnings := []).append
    cfg.notify_url = f"http://127.0.0.1:9/hooks/{TOKEN}"
    assert api.start(cfg, ALIAS, RunOptions()).record.state is State.SWAPPED
    [line] = warnings
    assert "InvalidURL" in line and "not delivered" in line
    no_secret(line)


def test_scrub_removes_the_secret_parts():
    n = notify.Notifier(f"https://u:{TOKEN}@h.example/hooks/{TOKEN}?k={TOKEN}", print, print)
    assert TOKEN not in n._scrub(f"failed for https://h.example/hooks/{TOKEN}?k={TOKEN} ({TOKEN})")
