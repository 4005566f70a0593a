"""The gate before the swap on the fake engine: --pause-before-swap stops a verified run in
VERIFIED; swap RUN_ID checks again what may have changed and swaps; abort cleans up;
resume waits at the gate unless a swap was asked for; show and the CLI present it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from reindex_fsm import api, gate
from reindex_fsm.cli import cli
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.engine.base import ENGINE_WRITES
from reindex_fsm.errors import ExitCode, ReindexFsmError, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps import views as gate_steps
from reindex_fsm.steps.gate import NotAtTheGate, SourceGoneAtTheGate
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, TARGET, make_cluster, make_config
from .test_write_policy import with_since_field

PAUSE = RunOptions(pause_before_swap=True)
CATCH_UP = RunOptions(pause_before_swap=True, write_policy="catch-up", since_field="updated_at")


class Stop(BaseException):
    """A process killed at a crash point."""


def _stop(name: str) -> None:
    raise Stop(name)


@pytest.fixture
def fake() -> FakeEngine:
    return make_cluster(n_docs=200)


@pytest.fixture
def cfg(fake: FakeEngine, tmp_path: Any) -> api.Config:
    return make_config(fake, f"sqlite:///{tmp_path / 'state.db'}")


def _writes(fake: FakeEngine) -> list[str]:
    return [c.method for c in fake.calls if c.method in ENGINE_WRITES]


def _paused(cfg: api.Config, options: RunOptions = PAUSE) -> api.Outcome:
    outcome = api.start(cfg, ALIAS, options)
    assert outcome.record.state is State.VERIFIED, outcome.record.error
    assert outcome.exit_code is ExitCode.PAUSED
    return outcome


def test_a_paused_run_waits_verified_with_the_alias_untouched_locked_and_blocked(fake, cfg):
    record = _paused(cfg).record
    assert ALIAS in fake.indices[SOURCE].aliases and not fake.indices[TARGET].aliases
    assert fake.write_blocked(SOURCE)  # the block policy keeps writers out until the swap
    assert cfg.repo().active_run_for(ALIAS).id == record.id  # the alias lock is held
    stored = gate_steps.record_of(record)
    assert stored["target"]["count"] == stored["source"]["count"] == 200
    assert stored.get("approved_at") is None
    lease = fake.leases[ALIAS][0]
    assert lease["run_id"] == record.id and lease.get("driving") is False  # swap need not wait
    view = gate_steps.view(record)
    assert view["waiting"] and view["counts_equal"] and view["target_count"] == 200
    assert "BLOCKED" in view["write_block"]


def test_resume_of_a_paused_run_waits_at_the_gate_and_writes_nothing(fake, cfg):
    record = _paused(cfg).record
    before = len(_writes(fake))
    again = api.resume(cfg, record.id)
    assert again.record.state is State.VERIFIED and again.exit_code is ExitCode.PAUSED
    assert [w for w in _writes(fake)[before:] if w != "put_lease"] == []
    assert [e.trigger for e in cfg.repo().events(record.id)][-1] == "verified"


def test_swap_checks_again_and_swaps_then_the_block_comes_off(fake, cfg):
    record = _paused(cfg).record
    done = gate.swap(cfg, record.id)
    assert done.record.state is State.SWAPPED and done.exit_code is ExitCode.OK
    assert ALIAS in fake.indices[TARGET].aliases and ALIAS not in fake.indices[SOURCE].aliases
    assert not fake.write_blocked(SOURCE)
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    events = cfg.repo().events(record.id)
    assert [e.trigger for e in events][-2:] == ["swap_approved", "swap"]
    assert events[-1].detail["recheck"] == {
        "target": "as verified",
        "source": "as verified: nothing to copy again",
    }
    assert cfg.repo().active_run_for(ALIAS) is None


def test_catch_up_writers_go_on_while_the_run_waits_and_the_swap_copies_them(fake, cfg):
    with_since_field(fake)
    record = _paused(cfg, CATCH_UP).record
    assert not fake.write_blocked(SOURCE)  # the final block came off for the wait
    assert (record.write_policy or {}).get("resync") is True
    late = {"title": "late", "updated_at": "2026-11-25T03:00:00.000+00:00"}
    fake.write(ALIAS, "late-1", late)
    fake.write(ALIAS, "d1", {**late, "title": "updated"})
    fake.write(ALIAS, "d2", None)  # a delete
    assert "go on" in gate_steps.view(record)["write_block"]
    done = gate.swap(cfg, record.id)
    assert done.record.state is State.SWAPPED, done.record.error
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert (
        fake.indices[TARGET].docs["d1"]["title"] == "updated"
        and "d2" not in fake.indices[TARGET].docs
    )
    assert not fake.write_blocked(SOURCE)
    assert "catch-up" in cfg.repo().events(record.id)[-1].detail["recheck"]["verified_again"]


def test_abort_from_the_gate_rolls_back_the_alias_and_source_as_before(fake, cfg):
    record = _paused(cfg).record
    aborted = api.abort(cfg, record.id)
    assert aborted.record.state is State.ROLLED_BACK and aborted.exit_code is ExitCode.OK
    assert TARGET not in fake.indices and not fake.write_blocked(SOURCE)
    assert ALIAS in fake.indices[SOURCE].aliases
    assert cfg.repo().active_run_for(ALIAS) is None


@pytest.mark.parametrize("options", [RunOptions(), RunOptions(pause_before_swap=False)])
def test_swap_of_a_run_not_at_the_gate_is_refused_before_anything_is_written(fake, cfg, options):
    record = api.start(cfg, ALIAS, options).record
    assert record.state is State.SWAPPED
    before = len(fake.calls)
    with pytest.raises(NotAtTheGate) as refused:
        gate.swap(cfg, record.id)
    assert refused.value.exit_code is ExitCode.USAGE
    assert (
        "not VERIFIED" in refused.value.one_line() and "nothing to swap" in refused.value.one_line()
    )
    assert fake.calls[before:] == []


def test_a_target_written_to_while_the_run_waits_is_not_swapped(fake, cfg):
    record = _paused(cfg).record
    fake.indices[TARGET].docs["intruder"] = {"title": "not from the source"}
    done = gate.swap(cfg, record.id)
    assert done.record.state is State.FAILED and done.exit_code is ExitCode.VERIFICATION_FAILED
    assert "changed while the run waited at the gate (count 200 -> 201" in done.record.error
    assert done.record.failed_from is State.VERIFIED
    assert ALIAS in fake.indices[SOURCE].aliases and not fake.indices[TARGET].aliases
    assert not fake.write_blocked(SOURCE)  # a FAILED run does not keep writers out
    # resume retries from the verification (the whole source copied again, the foreign
    # document deleted as one not in the source) and waits at the gate again
    again = api.resume(cfg, record.id)
    assert again.record.state is State.VERIFIED, again.record.error
    assert "intruder" not in fake.indices[TARGET].docs and fake.write_blocked(SOURCE)
    assert gate.swap(cfg, record.id).record.state is State.SWAPPED


def test_with_rollback_on_failure_a_refused_swap_rolls_back(fake, cfg):
    record = _paused(cfg, RunOptions(pause_before_swap=True, rollback_on_failure=True)).record
    fake.indices[TARGET].docs["intruder"] = {"title": "x"}
    done = gate.swap(cfg, record.id)
    assert done.record.state is State.ROLLED_BACK
    assert done.exit_code is ExitCode.VERIFICATION_FAILED
    assert TARGET not in fake.indices and not fake.write_blocked(SOURCE)


def test_the_alias_moved_while_the_run_waits_fails_the_swap(fake, cfg):
    record = _paused(cfg).record
    fake.add_index("manual-1", {}, mappings=fake.indices[SOURCE].mappings)
    fake.indices["manual-1"].aliases[ALIAS] = fake.indices[SOURCE].aliases.pop(ALIAS)
    done = gate.swap(cfg, record.id)
    assert done.record.state is State.FAILED and done.exit_code is ExitCode.RUN_FAILED
    assert "someone moved it while the run waited at the gate" in done.record.error
    assert ALIAS in fake.indices["manual-1"].aliases and not fake.indices[TARGET].aliases


@pytest.mark.parametrize("block_again", [False, True])
def test_a_source_written_to_while_the_run_waits_is_copied_again(fake, cfg, block_again):
    record = _paused(cfg).record
    fake.remove_write_block(SOURCE)  # someone lifted the block ...
    fake.write(ALIAS, "sneaked-in", {"title": "written at the gate"})
    fake.write(ALIAS, "d3", None)
    if block_again:  # ... and put it back: only the marks tell
        fake.add_write_block(SOURCE)
    done = gate.swap(cfg, record.id)
    assert done.record.state is State.SWAPPED, done.record.error
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert "sneaked-in" in fake.indices[TARGET].docs and "d3" not in fake.indices[TARGET].docs
    recheck = cfg.repo().events(record.id)[-1].detail["recheck"]
    expected = "changed while the run waited" if block_again else "write block was lifted"
    assert expected in recheck["verified_again"]


def test_a_source_deleted_while_the_run_waits_is_refused_and_abort_ends_the_run(fake, cfg):
    record = _paused(cfg).record
    del fake.indices[SOURCE]
    with pytest.raises(SourceGoneAtTheGate) as refused:
        gate.swap(cfg, record.id)
    assert refused.value.exit_code is ExitCode.RUN_FAILED
    assert cfg.repo().get(record.id).state is State.VERIFIED  # nothing changed
    assert api.abort(cfg, record.id).record.state is State.ROLLED_BACK


@pytest.mark.parametrize(
    "point",
    ["checkpoint.swap_approved", "swap.recorded", "swap.engine_done", "write_policy.released"],
)
def test_a_swap_killed_is_carried_on_by_resume(fake, tmp_path, point):
    db = f"sqlite:///{tmp_path / 'state.db'}"
    record = _paused(make_config(fake, db)).record
    with pytest.raises(Stop):
        gate.swap(make_config(fake, db, crash=lambda: Crashpoints(point, _stop)), record.id)
    again = api.resume(make_config(fake, db), record.id)  # the swap was asked for: finished
    assert again.record.state is State.SWAPPED and again.exit_code is ExitCode.OK
    assert ALIAS in fake.indices[TARGET].aliases and not fake.write_blocked(SOURCE)


def test_the_dry_run_and_the_question_name_the_gate(fake, cfg):
    planned = api.plan(cfg, ALIAS, PAUSE)
    steps = [s["step"] for s in api.describe(planned, PAUSE)]
    assert steps[-2:] == ["gate", "swap"]
    assert "gate" not in [s["step"] for s in api.describe(planned, RunOptions())]
    assert any("stops VERIFIED" in line for line in gate_steps.confirmation(PAUSE))
    assert gate_steps.confirmation(RunOptions()) == []


def test_deep_verification_is_shown_at_the_gate(fake, cfg):
    record = _paused(cfg, RunOptions(pause_before_swap=True, verify_level="deep")).record
    deep = gate_steps.view(record)["deep"]
    assert deep["passed"] and deep["documents_compared"] == 200
    assert deep["missing_in_target"] == deep["differing"] == deep["only_in_target"] == 0


# -- the CLI ----------------------------------------------------------------------------------
def _cli(cfg: api.Config, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def test_cli_start_pauses_with_exit_16_show_presents_the_gate_swap_needs_force(fake, cfg):
    started = _cli(cfg, "start", "--alias", ALIAS, "--pause-before-swap", "--force", "--json")
    assert started.exit_code == ExitCode.PAUSED, started.output
    run = json.loads(started.stdout.strip().splitlines()[-1])
    assert run["state"] == "VERIFIED"
    assert f"`reindex-fsm swap {run['run_id']}`" in started.stderr
    shown = _cli(cfg, "show", run["run_id"])
    assert shown.exit_code == 0
    assert "at the gate before the swap" in shown.stdout and "WAITING" in shown.stdout
    assert "counts" in shown.stdout and "equal" in shown.stdout
    shown_json = json.loads(_cli(cfg, "show", run["run_id"], "--json").stdout)
    assert shown_json["gate"]["waiting"] is True and shown_json["result"] == "waiting for swap"
    assert any("reindex-fsm swap" in step for step in shown_json["next_steps"])
    refused = _cli(cfg, "swap", run["run_id"], "--json")  # no terminal, no --force
    assert refused.exit_code == 2 and "without confirmation" in refused.stdout
    swapped = _cli(cfg, "swap", run["run_id"], "--force", "--json")
    assert swapped.exit_code == 0, swapped.output
    assert json.loads(swapped.stdout.strip().splitlines()[-1])["state"] == "SWAPPED"
    again = _cli(cfg, "swap", run["run_id"], "--force")
    assert again.exit_code == 2 and "not VERIFIED" in again.stderr


def test_every_refusal_of_swap_is_a_reindex_fsm_error(fake, cfg):
    with pytest.raises(ReindexFsmError):
        gate.swap(cfg, "nosuchrun")


def test_the_html_report_and_history_show_a_run_at_the_gate(fake, cfg, tmp_path):
    record = _paused(cfg).record
    page_file = tmp_path / "run.html"
    _record, _events, picture = api.show_picture(cfg, record.id, str(page_file))
    page = page_file.read_text()
    assert ">VERIFIED</text>" in page and "reindex-fsm swap" in page  # the box, "What now"
    assert picture["path"][-1] == "VERIFIED" and "VERIFIED" in picture["diagram"]
    (row,) = api.history_rows(cfg, state="verified")
    assert row["result"] == "waiting for swap"


def test_swap_asks_on_a_terminal_with_what_was_verified(fake, cfg, monkeypatch):
    record = _paused(cfg).record
    lines: list[str] = []
    import reindex_fsm.cli.gate as cli_gate

    monkeypatch.setattr(cli_gate, "need_terminal", lambda *a, **k: None)
    monkeypatch.setattr(cli_gate, "confirm", lambda shown, question: lines.extend(shown))
    done = _cli(cfg, "swap", record.id, "--json")
    assert done.exit_code == 0, done.output
    assert any(line.startswith("verified:   target 200 documents, source 200") for line in lines)
    assert any("BLOCKED" in line for line in lines if line.startswith("writes:"))


def test_the_gate_with_another_cluster_as_the_source_is_refused():
    with pytest.raises(UsageError, match="--pause-before-swap is not supported with --source-url"):
        RunOptions(pause_before_swap=True, source_url="http://src:9200").validate()
