"""Batches on the command line (fake engine): start with several --alias values or an
--alias-pattern, resume/abort/show given a batch ID, history --batches, --json, exit
codes and bad input (one line, nothing written)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from reindex_fsm.cli import cli, interrupted_line
from reindex_fsm.errors import ExitCode
from reindex_fsm.testing.fake import TaskScript

from .conftest import db_rows
from .test_batch import ALIASES, bcfg, fleet, locked  # fixtures too

__all__ = ["bcfg", "fleet", "locked"]


def invoke(cfg, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def test_start_with_a_pattern_prints_the_batch(bcfg, fleet):
    result = invoke(bcfg, "start", "--alias-pattern", "logs-*", "--concurrency", "2", "--force")
    assert result.exit_code == 0, result.stderr
    assert "SUCCEEDED, 6/6 SWAPPED" in result.stdout
    for alias in ALIASES:
        assert alias in result.stdout
    assert "PLANNED -> TARGET_CREATED" in result.stderr  # each run's state lines


def test_start_json_and_show_history_resume_abort_by_batch_id(bcfg, fleet):
    result = invoke(bcfg, "start", "--alias", "logs-00", "--alias", "other", "--force", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["batch_id"].startswith("batch-") and data["state"] == "SUCCEEDED"
    assert [r["alias"] for r in data["runs"]] == ["logs-00", "other"]
    assert all(r["state"] == "SWAPPED" for r in data["runs"])
    batch_id = data["batch_id"]
    shown = json.loads(invoke(bcfg, "show", batch_id, "--json").stdout)
    assert shown["runs"] == data["runs"] and shown["swapped"] == 2
    assert "2/2 SWAPPED" in invoke(bcfg, "show", batch_id).stdout
    listed = json.loads(invoke(bcfg, "history", "--batches", "--json").stdout)
    assert [b["batch_id"] for b in listed] == [batch_id]
    assert batch_id in invoke(bcfg, "history", "--batches").stdout
    runs = json.loads(invoke(bcfg, "history", "--json").stdout)
    assert {r["run_id"] for r in runs} == {r["run_id"] for r in data["runs"]}
    for verb in ("resume", "abort"):
        again = invoke(bcfg, verb, batch_id, "--json")
        assert again.exit_code == ExitCode.USAGE
        assert "already finished in state SUCCEEDED" in again.stderr


def test_failed_run_gives_the_batch_exit_code(bcfg, fleet):
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    result = invoke(
        bcfg,
        "start",
        "--alias",
        "logs-00",
        "--alias",
        "logs-01",
        "--on-failure",
        "continue",
        "--force",
    )
    assert result.exit_code == ExitCode.BATCH_INCOMPLETE
    assert "FAILED, 0/2 SWAPPED" in result.stdout
    line = [x for x in result.stderr.splitlines() if x.startswith("error: batch")]
    assert len(line) == 1 and "0/2 runs SWAPPED" in line[0] and "resume batch-" in line[0]
    batch_id = line[0].split()[2]
    fleet.task_script = TaskScript(docs_per_poll=10)
    resumed = invoke(bcfg, "resume", batch_id, "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["swapped"] == 2


def test_abort_by_batch_id(bcfg, fleet):
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    first = invoke(bcfg, "start", "--alias", "logs-00", "--alias", "logs-01", "--force", "--json")
    batch_id = json.loads(first.stdout)["batch_id"]
    result = invoke(bcfg, "abort", batch_id, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "ABORTED"
    assert [r["state"] for r in data["runs"]] == ["ROLLED_BACK", None]


def test_one_alias_is_an_ordinary_run(bcfg):
    result = invoke(bcfg, "start", "--alias", "logs-00", "--force", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert "batch_id" not in data and data["state"] == "SWAPPED"
    assert json.loads(invoke(bcfg, "history", "--batches", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--alias", "logs-00", "--concurrency", "2"], "--concurrency needs several --alias"),
        (["--alias", "logs-00", "--on-failure", "continue"], "--on-failure needs several"),
        ([], "start needs --alias NAME (repeatable) or --alias-pattern PATTERN"),
        (["--alias", "logs-00", "--alias", "logs-00"], "alias 'logs-00' is given twice"),
        (["--alias-pattern", "none-*"], "no alias matches --alias-pattern 'none-*'"),
        (["--alias-pattern", "logs-0?"], "'logs-0?' is not one alias pattern"),
        (["--alias", "logs-00", "--alias", "nope"], "alias 'nope' does not exist"),
    ],
)
def test_bad_batch_input_is_one_line_and_writes_nothing(bcfg, state_db, fleet, args, line):
    before = db_rows(state_db)
    indices = set(fleet.indices)
    result = invoke(bcfg, "start", *args, "--force")
    assert result.exit_code == ExitCode.USAGE, result.output
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and line in errors[0]
    assert db_rows(state_db) == before and set(fleet.indices) == indices


@pytest.mark.parametrize("verb", ["resume", "abort", "show"])
def test_unknown_batch_id_is_one_line(bcfg, verb):
    bcfg.repo()  # the state database exists (show does not create one)
    result = invoke(bcfg, verb, "batch-0123456789ab")
    assert result.exit_code == ExitCode.RUN_NOT_FOUND
    assert "no batch with ID 'batch-0123456789ab'" in result.stderr


def test_dry_run_plans_every_alias_and_writes_nothing(bcfg, state_db, fleet):
    before = db_rows(state_db)
    result = invoke(bcfg, "start", "--alias-pattern", "logs-*", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["aliases"] == ALIASES and len(data["plans"]) == 6
    assert db_rows(state_db) == before


def test_interrupted_batch_line_names_the_batch():
    exc = KeyboardInterrupt()
    exc.batch_id = "batch-0123456789ab"  # type: ignore[attr-defined]
    assert "`reindex-fsm resume batch-0123456789ab` continues them" in interrupted_line(exc)
