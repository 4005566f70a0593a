"""Verification is on by default: the count is compared unless --no-verify (which warns),
and a target much smaller than its source (under 90% of its documents) is swapped in only
with --allow-shrink, refused at plan time when the plan already says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.cli import cli
from reindex_fsm.errors import ExitCode, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, N_DOCS, SOURCE, TARGET, db_rows, make_config


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"j{i:05d}", "text": f"text number {i}"}) + "\n")
    return path


def recompute(path: Path, **kw: Any) -> RunOptions:
    return RunOptions(
        recompute_embeddings=True,
        documents_path=str(path),
        vector_mapping={"type": "float"},
        **kw,
    )


def drop_from_copies(fake: FakeEngine, every: int) -> None:
    """The copy skips every ``every``-th document (as a script setting ctx.op = noop)."""
    original = fake.start_reindex

    def start_reindex(request):  # type: ignore[no-untyped-def]
        task_id = original(request)
        task = fake.tasks[task_id]
        task.pending = [d for i, d in enumerate(task.pending) if i % every]
        return task_id

    fake.start_reindex = start_reindex  # type: ignore[method-assign]


def test_count_verification_is_on_by_default(cfg, fake):
    drop_from_copies(fake, every=20)  # 5% missing: not a shrink, a difference
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.FAILED and rec.error_kind == "VerificationFailed", rec.error
    assert f"had {N_DOCS}" in rec.error
    assert list(fake.get_alias(ALIAS)) == [SOURCE]


def test_without_verification_a_small_difference_is_swapped(cfg, fake):
    drop_from_copies(fake, every=20)
    rec = api.start(cfg, ALIAS, RunOptions(verify=False)).record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.target_count == N_DOCS - N_DOCS // 20


def test_a_much_smaller_copy_is_not_swapped_even_without_verification(cfg, fake):
    drop_from_copies(fake, every=2)  # half the documents
    rec = api.start(cfg, ALIAS, RunOptions(verify=False)).record
    assert rec.state is State.FAILED and rec.error_kind == "VerificationFailed"
    assert "much smaller than its source" in rec.error and "50.0%" in rec.error
    assert f"`reindex-fsm abort {rec.id}`, then start again with --allow-shrink" in rec.error
    assert list(fake.get_alias(ALIAS)) == [SOURCE]


def test_allow_shrink_swaps_a_much_smaller_copy(cfg, fake):
    drop_from_copies(fake, every=2)
    rec = api.start(cfg, ALIAS, RunOptions(verify=False, allow_shrink=True)).record
    assert rec.state is State.SWAPPED, rec.error
    assert list(fake.get_alias(ALIAS)) == [TARGET]


def test_a_recompute_from_a_small_file_is_refused_before_anything_is_written(
    cfg, fake, state_db, tmp_path
):
    path = write_jsonl(tmp_path / "docs.jsonl", 21)
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(UsageError, match="much smaller than its source") as info:
        api.start(cfg, ALIAS, recompute(path))
    assert info.value.exit_code == ExitCode.USAGE
    assert "would hold 21 documents, 0.8% of the 2500" in str(info.value)
    assert "--allow-shrink" in info.value.one_line()
    assert fake.snapshot() == before and db_rows(state_db) == rows
    assert fake.call_names(mutating_only=True) == []


def test_allow_shrink_swaps_a_recompute_from_a_small_file_and_the_plan_says_so(cfg, fake, tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", 21)
    options = recompute(path, allow_shrink=True)
    steps = api.describe(api.plan(cfg, ALIAS, options), options)
    (verify_step,) = [s for s in steps if s["step"] == "verify"]
    assert "will hold 21 documents" in verify_step["shrink"]
    assert "allowed by --allow-shrink" in verify_step["shrink"]
    planned = api.plan(cfg, ALIAS, options)
    assert planned.shrink == verify_step["shrink"]
    from reindex_fsm import render  # the confirmation's lines

    (warning,) = [w for w in render.confirmation(planned, options) if "--allow-shrink" in w]
    assert "will hold 21 documents, 0.8% of the 2500" in warning
    rec = api.start(cfg, ALIAS, options).record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.target_count == 21


# -- the CLI -------------------------------------------------------------------------------


def invoke(fake: FakeEngine, state_db: str, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["start", "--alias", ALIAS, *args], obj=make_config(fake, state_db)
    )


def test_cli_no_verify_warns_in_one_line_and_the_plan_says_so(fake, state_db):
    result = invoke(fake, state_db, "--dry-run", "--json", "--no-verify")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: --no-verify: the target's document count is NOT compared with the source's"
    ]
    (verify_step,) = [s for s in json.loads(result.stdout)["steps"] if s["step"] == "verify"]
    assert verify_step["check"].startswith("NONE: --no-verify")
    result = invoke(fake, state_db, "--force", "--no-verify")
    assert result.exit_code == 0, result.output
    (rec,) = make_config(fake, state_db).repo().list()
    assert rec.state is State.SWAPPED and rec.options["verify"] is False


def test_cli_verifies_counts_without_being_asked(fake, state_db):
    result = invoke(fake, state_db, "--dry-run", "--json")
    (verify_step,) = [s for s in json.loads(result.stdout)["steps"] if s["step"] == "verify"]
    assert verify_step["check"] == f"target count == {N_DOCS}"
    drop_from_copies(fake, every=20)
    result = invoke(fake, state_db, "--force")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED


@pytest.mark.parametrize("verify", [["--verify"], ["--verify", "deep"]])
def test_cli_verify_and_no_verify_contradict(fake, state_db, verify):
    before = fake.snapshot()
    result = invoke(fake, state_db, "--force", *verify, "--no-verify")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip().splitlines()[-1].startswith("error: --verify")
    assert "contradict" in result.stderr and fake.snapshot() == before


def test_cli_a_small_file_is_one_usage_line(fake, state_db, tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", 21)
    args = ["--force", "--recompute-embeddings", "--documents-path", str(path)]
    before = fake.snapshot()
    result = invoke(fake, state_db, *args, "--vector-mapping", '{"type": "float"}')
    assert result.exit_code == ExitCode.USAGE
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: target ") and "--allow-shrink" in line
    assert fake.snapshot() == before


def test_the_confirmation_says_verification_is_off(cfg):
    from reindex_fsm import render

    options = RunOptions(verify=False)
    lines = render.confirmation(api.plan(cfg, ALIAS, options), options)
    assert any("verification is OFF" in line for line in lines)
    options = RunOptions()
    lines = render.confirmation(api.plan(cfg, ALIAS, options), options)
    assert not any(line.startswith("warning:") for line in lines)
