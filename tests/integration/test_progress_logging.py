"""Progress events and logs of a real run, in a `reindex-fsm` subprocess (not a
terminal): JSON lines on stderr, the summary alone on stdout, no secret anywhere."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import pytest

from reindex_fsm.errors import ExitCode

from .conftest import BIG_DOCS, run_cli

pytestmark = pytest.mark.integration


def _with_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"ops:s3cret@{parts.netloc}"))


def test_json_events_and_json_logs_of_a_sliced_copy(cfg, big_source):
    result = run_cli(
        "-vv", "--log-format", "json", "start", "--alias", big_source.alias, "--force",
        "--json", "--slices", "4", "--engine-url", _with_credentials(cfg.engine_url),
        "--state-db", cfg.state_db,
    )  # fmt: skip
    assert result.returncode == ExitCode.OK, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # stdout: the one summary object
    assert summary["state"] == "SWAPPED"
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    events = [x for x in lines if "event" in x]
    records = [x for x in lines if "level" in x]
    assert len(events) + len(records) == len(lines)
    assert {e["run_id"] for e in events} == {summary["run_id"]}
    progress = [e for e in events if e["event"] == "progress"]
    # the four slices are summed into one count of the whole source
    # (a report taken before every slice has started counts fewer)
    assert progress and progress[-1]["completed"]
    assert progress[-1]["done"] == progress[-1]["total"] == BIG_DOCS
    assert all(p["done"] <= p["total"] <= BIG_DOCS for p in progress), progress
    ours = [r for r in records if r["logger"].startswith("reindex_fsm")]
    assert ours and {r["run_id"] for r in ours} == {summary["run_id"]}
    assert any(r["logger"].startswith("opensearch") for r in records)  # -vv: requests
    assert "s3cret" not in result.stderr + result.stdout
